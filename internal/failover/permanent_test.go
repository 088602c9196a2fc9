package failover_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/pgcluster"
	relaysql "github.com/paragon-outbox/outbox-relay/sql"
)

// TestPrivilegesRevokedWhileRunning: a permanent error once running (the
// relay's role loses its privileges) keeps the relay up with /readyz
// failing and a clear error logged (once a minute), and delivery resumes by
// itself once the privileges are granted again.
func TestPrivilegesRevokedWhileRunning(t *testing.T) {
	c := pgcluster.New(t, "privs", pgcluster.Options{})
	url := migrated(t, c)
	c.MustExec("app", relaysql.Roles())
	c.MustExec("app", "CREATE ROLE relay_login LOGIN IN ROLE outbox_relay")
	relayURL := strings.Replace(url, "postgres://postgres@", "postgres://relay_login@", 1)
	e := newEnv(t, relayURL)
	p := e.startRelay(t)
	insertLeads(t, url, 50, "before")
	waitDelivered(t, e, url)
	waitReady(t, e)

	c.MustExec("app", "REVOKE outbox_relay FROM relay_login")
	insertLeads(t, url, 50, "while-revoked")
	// /readyz says why, and the log says what to do.
	end := time.Now().Add(deadline)
	var body string
	for {
		resp, err := http.Get(e.adminURL() + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "42501") {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatalf("/readyz never reported the revoked privileges; last answer %q", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, "sql/roles.sql") {
		t.Errorf("/readyz does not say what to do: %q", body)
	}
	for !strings.Contains(p.out.String(), "the database refuses the relay's statements") {
		if time.Now().After(end) {
			t.Fatalf("no error logged about the revoked privileges:\n%s", tail(p.out.String(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p.exited() {
		t.Fatal("the relay exited on a permanent error while running; it must stay up")
	}

	t0 := time.Now()
	c.MustExec("app", "GRANT outbox_relay TO relay_login")
	waitDelivered(t, e, url)
	waitReady(t, e)
	t.Logf("FAILOVER RESULT privileges_restored delivered_and_ready_in=%s", time.Since(t0).Round(10*time.Millisecond))
	p.stop(t)
}
