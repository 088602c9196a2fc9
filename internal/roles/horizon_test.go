package roles_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/status"
)

// TestRelayAndOperatorSeeTheXminHorizonButNotQueries: through the narrow
// SECURITY DEFINER function outbox_xmin_horizon(), the relay and operator
// roles see another role's open REPEATABLE READ transaction (which
// pg_stat_activity hides from them) without its query text; the app may not
// call it.
func TestRelayAndOperatorSeeTheXminHorizonButNotQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()

	// Another role's session holds a snapshot (as superuser here: a role
	// the relay is certainly not).
	holder, err := pgx.Connect(ctx, e.db.URL+"&application_name=nightly_report")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT count(*) /* secret-query-text */ FROM outbox"); err != nil {
		t.Fatal(err)
	}
	var pid string
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid()::text").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// Without the function the relay's role cannot tell how long it has
	// been open (pg_stat_activity hides xact_start of other roles' sessions).
	var seen int
	if err := e.relay.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nightly_report' AND xact_start IS NOT NULL`).Scan(&seen); err != nil {
		t.Fatal(err)
	}
	if seen != 0 {
		t.Fatalf("the relay's role sees other roles' xact_start in pg_stat_activity; the function would not be needed")
	}
	for name, pool := range map[string]*pgxpool.Pool{"relay": e.relay, "operator": e.operator} {
		h, err := status.ReadHorizon(ctx, pool)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		found := false
		for _, x := range h.Holders {
			if x.Holder == "session" && strings.Contains(x.Detail, "pid "+pid) && strings.Contains(x.Detail, "nightly_report") && x.AgeSeconds != nil {
				found = true
			}
			if strings.Contains(x.Detail, "secret-query-text") {
				t.Errorf("%s: the horizon shows query text: %q", name, x.Detail)
			}
		}
		if !found {
			t.Errorf("%s: the open REPEATABLE READ session (pid %s) is not among the holders %+v", name, pid, h.Holders)
		}
		if _, ok := h.DeadTuples["outbox"]; !ok {
			t.Errorf("%s: no dead tuple count for outbox: %v", name, h.DeadTuples)
		}
	}
	mustDeny(t, "app", e.app, `SELECT * FROM outbox_xmin_horizon()`)
}
