package roles_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/outbox"
	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

// TestOrderingSQLAPIPrivileges: roles.sql grants exactly what the SQL API
// and the ordering commands need. The app enqueues events and its updates
// and deletes of leads write Lead Updated/Deleted, but it cannot attach or
// detach a table (not even with EXECUTE granted: only a table's owner may)
// nor read the outbox settings; the relay promotes waiting events and reads
// the blocked-key gauges; operators read blocked keys; only
// outbox_operator_write may skip.
func TestOrderingSQLAPIPrivileges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	var lead int64
	if err := e.app.QueryRow(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_1', 'A') RETURNING id`).Scan(&lead); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE leads SET title = 'CTO' WHERE id = $1`,
		`DELETE FROM leads WHERE id = $1`,
	} {
		if _, err := e.app.Exec(ctx, q, lead); err != nil {
			t.Fatalf("app: %s: %v", q, err)
		}
	}
	if _, err := e.app.Exec(ctx, `SELECT outbox_enqueue('Deal Won', 'usr_1', '{"amount": 3}', 'lead:' || $1::bigint)`, lead); err != nil {
		t.Fatalf("app: outbox_enqueue: %v", err)
	}
	if got := scalar[int64](t, e.db.Pool, `SELECT count(*) FROM outbox WHERE ordering_key = 'lead:' || $1::bigint`, lead); got != 4 {
		t.Fatalf("%d events for the lead, want Created, Updated, Deleted and the enqueued one", got)
	}
	mustDeny(t, "app", e.app,
		`SELECT outbox_attach('leads', 'Lead', 'owner_id')`,
		`SELECT outbox_detach('leads')`,
		`SELECT * FROM outbox_settings`,
		`UPDATE outbox_settings SET max_payload_bytes = 1`,
	)
	// EXECUTE alone is not enough: the function checks ownership.
	if _, err := e.db.Pool.Exec(ctx, `GRANT EXECUTE ON FUNCTION outbox_attach(regclass, text, text), outbox_detach(regclass) TO outbox_app`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT outbox_attach('leads', 'Lead', 'owner_id')`, `SELECT outbox_detach('leads')`} {
		_, err := e.app.Exec(ctx, q)
		if !isDenied(err) || !strings.Contains(err.Error(), "only the owner of leads") {
			t.Errorf("app with EXECUTE: %s: %v, want 42501 only the owner", q, err)
		}
	}
	applyRoles(t, e.db.Pool) // back to exactly roles.sql

	// The relay: promotion sweep, gauges (blocked keys), its start-up check.
	store := outbox.New(e.relay)
	if _, _, err := store.PromoteWaiting(ctx, "", 100); err != nil {
		t.Fatalf("relay: promote_waiting: %v", err)
	}
	if _, err := store.ReadGauges(ctx); err != nil {
		t.Fatalf("relay: gauges: %v", err)
	}
	if scalar[int32](t, e.relay, `SELECT max_payload_bytes FROM outbox_settings`) != 1<<20 {
		t.Error("relay: outbox_settings default is not 1 MiB")
	}
	mustDeny(t, "relay", e.relay,
		`SELECT outbox_enqueue('E', 'u', '{}')`,
		`SELECT outbox_attach('leads', 'Lead', 'owner_id')`,
		`UPDATE outbox SET ordering_key = 'x'`,
		`UPDATE outbox_settings SET max_payload_bytes = 1`,
	)

	// Operators: blocked keys and settings readable; skip needs _write.
	q, err := sqlfiles.Operator("blocked_keys")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.operator.Exec(ctx, q); err != nil {
		t.Errorf("operator: blocked_keys.sql: %v", err)
	}
	mustDeny(t, "operator", e.operator, `SELECT outbox_enqueue('E', 'u', '{}')`)
	if _, err := e.db.Pool.Exec(ctx, `UPDATE outbox SET status = 'dead' WHERE event_name = 'Lead Created' AND ordering_key = 'lead:' || $1::bigint`, lead); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Skip(ctx, e.operator, nil, []string{"lead:" + itoa(lead)}, "alice", ""); !isDenied(err) {
		t.Errorf("operator (read-only): skip: %v, want permission denied", err)
	}
	res, err := operator.Skip(ctx, e.operatorWrite, nil, []string{"lead:" + itoa(lead)}, "alice", "test data")
	if err != nil || len(res.Skipped) != 1 || res.Skipped[0].Promoted == nil {
		t.Fatalf("operator_write: skip: %+v %v", res, err)
	}
	if _, err := operator.Redrive(ctx, e.operatorWrite, operator.Filter{IDs: []int64{res.Skipped[0].ID}, Force: true}, "alice", "", false); err != nil {
		t.Errorf("operator_write: forced re-drive: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
