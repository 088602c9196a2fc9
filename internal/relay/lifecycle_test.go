package relay_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/relay"
)

// enteredSender signals each Send it begins.
type enteredSender struct {
	inner   relay.Sender
	entered chan struct{}
}

func (s enteredSender) Send(ctx context.Context, ev paragon.Event) paragon.Result {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	return s.inner.Send(ctx, ev)
}

// TestStartReturnsAtOnceAndStopIsSafeTwice: Start runs the relay in the
// background; Stop waits for a graceful shutdown, may be called twice at
// once, and a stopped relay does not start again.
func TestStartReturnsAtOnceAndStopIsSafeTwice(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{})
	n := h.loadCSV(t, "../../testdata/leads-sample.csv")
	r, err := relay.New(h.store, h.client, fastConfig("relay-startstop"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitSettled(t, n, time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.Stop(context.Background()) }()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("Stop twice: %v, %v", errs[0], errs[1])
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("third Stop: %v", err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Fatal("a stopped relay started again")
	}
	if got := h.countStatus(t); got["delivered"] != n {
		t.Fatalf("statuses %v, want %d delivered", got, n)
	}
}

// TestStopContextBoundsTheShutdownGrace: with sends hanging and an hour of
// ShutdownGrace, Stop returns once its context ends, cancelling the sends;
// neither they nor the released rows spend an attempt.
func TestStopContextBoundsTheShutdownGrace(t *testing.T) {
	h := newHarness(t, paragonlocal.Faults{Latency: time.Hour})
	if _, err := h.db.Pool.Exec(context.Background(), `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || g, 'L' || g FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig("relay-grace")
	cfg.ShutdownGrace = time.Hour
	entered := make(chan struct{}, 1)
	r, err := relay.New(h.store, enteredSender{h.client, entered}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select { // a send is in flight (it would take an hour)
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("the relay never sent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = r.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want sends abandoned because of the context deadline", err)
	}
	if err2 := r.Stop(context.Background()); !errors.Is(err2, context.DeadlineExceeded) {
		t.Fatalf("second Stop = %v, want the same result", err2)
	}
	var pending, spent int
	if err := h.db.Pool.QueryRow(context.Background(), `
		SELECT count(*) FILTER (WHERE status = 'pending'), coalesce(sum(attempts - attempts_base), 0) FROM outbox`).Scan(&pending, &spent); err != nil {
		t.Fatal(err)
	}
	if pending != 5 || spent != 0 {
		t.Fatalf("after the cut shutdown: %d of 5 rows pending, %d attempts spent; want 5 and 0", pending, spent)
	}
}
