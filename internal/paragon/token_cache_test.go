package paragon_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

// Concurrent callers for one Connected User with no cached token share one
// signature, and all get the token it made.
func TestTokenSingleFlight(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, nil)
	var entered atomic.Int32
	gate := make(chan struct{})
	paragon.SetSignHook(tk, func() { entered.Add(1); <-gate })

	const callers = 32
	var wg, started sync.WaitGroup
	toks := make([]string, callers)
	for i := range callers {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			tok, err := tk.Token("user-1")
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		}()
	}
	started.Wait()
	testutil.WaitUntil(t, time.Minute, "a signature under way", func() bool { return entered.Load() >= 1 })
	// Give the other callers time to reach Token while the signature is held
	// (a caller arriving later finds the token cached, which is also right:
	// either way no second signature may be made).
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	if s := tk.Stats(); s.Signed != 1 || entered.Load() != 1 {
		t.Fatalf("%d callers for one user made %d signatures (%d started), want 1", callers, s.Signed, entered.Load())
	}
	for i, tok := range toks {
		if tok != toks[0] {
			t.Fatalf("caller %d got another token", i)
		}
	}
	if c := verifyToken(t, toks[0], &testKey().PublicKey, clock.Now()); c.Subject != "user-1" {
		t.Fatalf("sub = %q", c.Subject)
	}
}

// A signature held for one user does not hold up a caller whose token is
// cached, nor a caller for another user.
func TestTokenSignatureOffOtherUsersPath(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, nil)
	cached, err := tk.Token("cached")
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var entered atomic.Int32
	paragon.SetSignHook(tk, func() {
		if entered.Add(1) == 1 {
			<-gate // only the first signature (user "slow") is held
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := tk.Token("slow"); err != nil {
			t.Error(err)
		}
	}()
	testutil.WaitUntil(t, time.Minute, "the signature for slow under way", func() bool { return entered.Load() == 1 })
	if got, err := tk.Token("cached"); err != nil || got != cached {
		t.Fatalf("cached user: %v, same token %v", err, got == cached)
	}
	other, err := tk.Token("other")
	if err != nil {
		t.Fatal(err)
	}
	if c := verifyToken(t, other, &testKey().PublicKey, clock.Now()); c.Subject != "other" {
		t.Fatalf("sub = %q", c.Subject)
	}
	close(gate)
	<-done
}

// A full cache evicts the least recently used user's token only.
func TestTokenCacheEvictsLeastRecentlyUsed(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, func(c *paragon.TokensConfig) { c.MaxCached = 3 })
	first := map[string]string{}
	for _, sub := range []string{"a", "b", "c"} {
		tok, err := tk.Token(sub)
		if err != nil {
			t.Fatal(err)
		}
		first[sub] = tok
	}
	clock.Advance(time.Second) // a new signature would now differ
	if got, _ := tk.Token("a"); got != first["a"] {
		t.Fatal("a not cached")
	}
	// Least recently used is now b. Adding d evicts b, and only b.
	if _, err := tk.Token("d"); err != nil {
		t.Fatal(err)
	}
	if s := tk.Stats(); s.Evicted != 1 || s.Cached != 3 {
		t.Fatalf("stats %+v, want 1 evicted, 3 cached", s)
	}
	signed := tk.Stats().Signed
	for _, sub := range []string{"a", "c"} {
		if got, _ := tk.Token(sub); got != first[sub] {
			t.Fatalf("%s was evicted; only b (least recently used) should be", sub)
		}
	}
	if tk.Stats().Signed != signed {
		t.Fatal("a cached user was signed for again")
	}
	if got, _ := tk.Token("b"); got == first["b"] {
		t.Fatal("b still cached: the cache grew past MaxCached")
	}
}

// A token due for refresh keeps being served while its replacement is signed
// in the background; once signed, the replacement is served.
func TestTokenBackgroundRefresh(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, func(c *paragon.TokensConfig) { c.RefreshAhead = 20 * time.Minute })
	old, err := tk.Token("u")
	if err != nil {
		t.Fatal(err)
	}
	exp := verifyToken(t, old, &testKey().PublicKey, clock.Now()).ExpiresAt.Time

	// 6 minutes before exp: past every possible refresh instant (at most
	// 20m, at least 5m before the 5-minute cutoff) and before the cutoff.
	var entered atomic.Int32
	gate := make(chan struct{})
	paragon.SetSignHook(tk, func() { entered.Add(1); <-gate })
	clock.Set(exp.Add(-6 * time.Minute))
	for range 10 {
		got, err := tk.Token("u")
		if err != nil || got != old {
			t.Fatalf("while the refresh is under way: %v, old token served %v", err, got == old)
		}
	}
	testutil.WaitUntil(t, time.Minute, "the background refresh to start", func() bool { return entered.Load() >= 1 })
	close(gate)
	testutil.WaitUntil(t, time.Minute, "the background refresh to finish", func() bool { return tk.Stats().Refreshed == 1 })
	if entered.Load() != 1 {
		t.Fatalf("%d signatures started for one user's refresh, want 1", entered.Load())
	}
	fresh, err := tk.Token("u")
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old {
		t.Fatal("the refreshed token is not served")
	}
	c := verifyToken(t, fresh, &testKey().PublicKey, clock.Now())
	if want := clock.Now().Add(-paragon.DefaultClockSkew).Truncate(time.Second); !c.IssuedAt.Time.Equal(want) {
		t.Fatalf("refreshed iat = %s, want %s", c.IssuedAt.Time, want)
	}
	if s := tk.Stats(); s.Signed != 2 {
		t.Fatalf("%d signatures, want 2", s.Signed)
	}
}

// Tokens minted in the same second get refresh instants spread over the
// refresh window, so they are not all replaced in the same minute.
func TestTokenRefreshSpread(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, nil) // defaults: 1h TTL, refresh 15m to 3m45s before the cutoff
	const users = 200
	exp := time.Time{}
	for i := range users {
		tok, err := tk.Token(fmt.Sprint("user-", i))
		if err != nil {
			t.Fatal(err)
		}
		exp = verifyToken(t, tok, &testKey().PublicKey, clock.Now()).ExpiresAt.Time
	}
	if s := tk.Stats(); s.Signed != users {
		t.Fatalf("%d signatures for %d users", s.Signed, users)
	}
	// Walk the clock through the refresh window minute by minute, touching
	// every user; count the background refreshes each minute.
	perMinute := map[int]int64{}
	last := int64(0)
	start := exp.Add(-5*time.Minute - paragon.DefaultRefreshAhead)
	for m := 0; m <= 15; m++ {
		clock.Set(start.Add(time.Duration(m) * time.Minute))
		for i := range users {
			if _, err := tk.Token(fmt.Sprint("user-", i)); err != nil {
				t.Fatal(err)
			}
		}
		testutil.WaitUntil(t, time.Minute, "background refreshes to finish", func() bool {
			return tk.Stats().RefreshPending == 0
		})
		r := tk.Stats().Refreshed
		perMinute[m], last = r-last, r
	}
	if last != users {
		t.Fatalf("%d of %d tokens refreshed in the background before the cutoff", last, users)
	}
	for m, n := range perMinute {
		if n > users/4 {
			t.Fatalf("minute %d: %d of %d tokens refreshed together (%v)", m, n, users, perMinute)
		}
	}
}

// Whatever the clock does, no token is served with less than 5 minutes left
// (so none is ever served expired), and every one verifies at the time it
// was served.
func TestTokenNeverServedExpired(t *testing.T) {
	clock := newFakeClock(t0)
	tk := newTokens(t, clock, func(c *paragon.TokensConfig) { c.TTL = 10 * time.Minute; c.MaxCached = 5 })
	type served struct {
		sub, tok string
		at       time.Time
	}
	var (
		clockMu sync.RWMutex // the clock moves only between Token calls
		mu      sync.Mutex
		all     []served
		wg      sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 150 {
				sub := fmt.Sprint("user-", r.IntN(8))
				if g == 0 {
					clockMu.Lock()
					clock.Advance(time.Duration(r.IntN(90)) * time.Second)
					clockMu.Unlock()
				}
				clockMu.RLock()
				now := clock.Now()
				tok, err := tk.Token(sub)
				clockMu.RUnlock()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, served{sub, tok, now})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	pub := &testKey().PublicKey
	for _, s := range all {
		c := verifyToken(t, s.tok, pub, s.at)
		if left := c.ExpiresAt.Time.Sub(s.at); left <= 5*time.Minute {
			t.Fatalf("token for %s served with %s left", s.sub, left)
		}
		if c.Subject != s.sub {
			t.Fatalf("token for %s has sub %s", s.sub, c.Subject)
		}
	}
	if len(all) != 4*150 {
		t.Fatalf("%d tokens served, want %d", len(all), 4*150)
	}
}
