package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// TestSkipCommand: a dead Lead Created blocks its lead's Lead Updated;
// `skip -key` releases the key (the dead event becomes skipped, the update
// pending), records who and why, and `retry -force` is needed to re-drive
// the skipped event. Bad invocations exit 2 and change nothing.
func TestSkipCommand(t *testing.T) {
	db := operatorDB(t)
	ctx := context.Background()
	var lead int64
	if err := db.Pool.QueryRow(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('usr_s', 'S') RETURNING id`).Scan(&lead); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE leads SET title = 'x' WHERE id = $1`, lead); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET status = 'dead', attempts = 1, last_error = 'rejected, not retried: 422' WHERE event_name = 'Lead Created'`); err != nil {
		t.Fatal(err)
	}
	key := "lead:" + itoa(lead)
	for _, args := range [][]string{{"skip"}, {"skip", "-by", " ", "-key", key, "-reason", "r"}, {"skip", "-id", "x"}, {"skip", "extra"}} {
		if code, _, stderr := runCmd(t, args...); code != 2 {
			t.Errorf("%q: exit %d (%s), want 2", args, code, stderr)
		}
	}
	// -reason is required (a skipped event is never sent), as in the console.
	for _, args := range [][]string{{"skip", "-key", key, "-by", "bob"}, {"skip", "-key", key, "-by", "bob", "-reason", "  "}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "-reason is required") {
			t.Errorf("%q: exit %d (%s), want 2 naming -reason", args, code, stderr)
		}
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox WHERE status = 'dead'`); n != 1 {
		t.Fatalf("refused invocations changed the outbox")
	}
	code, stdout, stderr := runCmd(t, "skip", "-key", key, "-by", "bob", "-reason", "lead was test data")
	if code != 0 || !strings.Contains(stdout, "Skipped 1 dead event(s)") || !strings.Contains(stdout, "is now pending") {
		t.Fatalf("skip: %d\n%s\n%s", code, stdout, stderr)
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox WHERE event_name = 'Lead Created' AND status = 'skipped'`); n != 1 {
		t.Errorf("Lead Created not skipped")
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox WHERE event_name = 'Lead Updated' AND status = 'pending'`); n != 1 {
		t.Errorf("Lead Updated not released")
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives WHERE action = 'skip' AND redriven_by = 'bob' AND reason = 'lead was test data'`); n != 1 {
		t.Errorf("skip not recorded")
	}
	id := itoa(opCount(t, db.Pool, `SELECT id FROM outbox WHERE status = 'skipped'`))
	// Without -force: says the event is skipped and how to send it anyway,
	// and exits 1 (nothing given by -id moved); so does a pending id.
	code, stdout, stderr = runCmd(t, "retry", "-id", id, "-by", "bob")
	if code != 1 || !strings.Contains(stdout, "No dead event matches") ||
		!strings.Contains(stdout, "Skipped (released by `outbox-relay skip`; its ordering key moved on), not re-driven: "+id+"\n") ||
		!strings.Contains(stdout, "outbox-relay retry -force -id "+id+" ") || strings.Contains(stdout, "Untouched") ||
		!strings.Contains(stderr, "none of the events given by -id could be re-driven") {
		t.Errorf("retry without -force of a skipped event: %d\n%s\n%s", code, stdout, stderr)
	}
	pending := itoa(opCount(t, db.Pool, `SELECT id FROM outbox WHERE status = 'pending'`))
	if code, stdout, _ := runCmd(t, "retry", "-id", pending, "-by", "bob"); code != 1 || !strings.Contains(stdout, "Untouched (not dead, not matching the other filters, or no such event): "+pending) {
		t.Errorf("retry of a pending event: %d %s", code, stdout)
	}
	if code, stdout, stderr := runCmd(t, "retry", "-id", id, "-by", "bob", "-force", "-reason", "resend"); code != 0 || !strings.Contains(stdout, "Re-drove 1") {
		t.Fatalf("retry -force: %d %s %s", code, stdout, stderr)
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives WHERE action = 'redrive' AND forced AND previous_status = 'skipped'`); n != 1 {
		t.Errorf("forced re-drive not recorded as forced")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
