package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

const cmdErr500 = "paragon answered 500 Internal Server Error: upstream"

// operatorDB returns a fresh migrated database that DATABASE_URL points at,
// with every other setting cleared.
func operatorDB(t *testing.T) *testdb.Database {
	t.Helper()
	clearEnv(t)
	db := testdb.New(t)
	t.Setenv("DATABASE_URL", db.URL)
	return db
}

func opID(r operatortest.Row) string { return strconv.FormatInt(r.ID, 10) }

// outboxState returns status, attempts, attempts_base of an outbox row.
func outboxState(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var status string
	var attempts, base int
	err := pool.QueryRow(context.Background(), `SELECT status, attempts, attempts_base FROM outbox WHERE id = $1`, id).Scan(&status, &attempts, &base)
	if errors.Is(err, pgx.ErrNoRows) {
		return "gone"
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/%d/%d", status, attempts, base)
}

func opCount(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInspectCommand(t *testing.T) {
	db := operatorDB(t)
	row := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_1", Status: "dead", Attempts: 2, LastError: cmdErr500, HTTPStatus: 500})
	if _, err := operator.Redrive(context.Background(), db.Pool, operator.Filter{IDs: []int64{row.ID}}, "alice", "incident 42 over", false); err != nil {
		t.Fatal(err)
	}
	lead := "lead:" + strconv.FormatInt(row.LeadID, 10)

	for _, ref := range []string{opID(row), lead, row.EventID} {
		t.Run("text "+ref, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, "inspect", ref)
			if code != 0 {
				t.Fatalf("code %d: %s", code, stderr)
			}
			q := regexp.QuoteMeta
			for _, want := range []string{
				`^Event ` + opID(row) + `\n`,
				`\n  event_id +` + row.EventID + `\n`,
				`\n  lead +` + strconv.FormatInt(row.LeadID, 10) + `\n`,
				`\n  status +pending\n`,
				`\n  attempts +2 \(0 since the last re-drive\)\n`,
				`\n  next_attempt_at +\S+ \(due now\)\n`,
				`\nPayload\n  \{\n    "email": "ada@example.com",\n    "leadId": ` + strconv.FormatInt(row.LeadID, 10) + `,\n`,
				`\n    "eventId": "` + row.EventID + `",\n`,
				`\nAttempts\n  # +started_at +took +relay +http +outcome\n`,
				`\n  1  \S+  100ms  relay-a  500   ` + q(cmdErr500) + `\n`,
				`\n  2  \S+  100ms  relay-a  500   ` + q(cmdErr500) + `\n`,
				`\nRe-drives\n  at +action +by +reason +was\n  \S+  re-drive  alice  incident 42 over  dead after 2 attempts: ` + q(cmdErr500) + `\n$`,
			} {
				if !regexp.MustCompile(want).MatchString(stdout) {
					t.Errorf("output does not match %s:\n%s", want, stdout)
				}
			}
			if n := len(regexp.MustCompile(`(?m)^  [12]  \d{4}-`).FindAllString(stdout, -1)); n != 2 {
				t.Errorf("attempt table has %d rows, want 2:\n%s", n, stdout)
			}
		})
	}

	// -json before or after the reference.
	for _, args := range [][]string{{"inspect", "-json", strings.ToUpper(row.EventID)}, {"inspect", lead, "-json"}} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("%v: code %d: %s", args, code, stderr)
		}
		var in operator.Inspection
		if err := json.Unmarshal([]byte(stdout), &in); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stdout)
		}
		var payload struct{ EventID string }
		if err := json.Unmarshal(in.Event.Payload, &payload); err != nil {
			t.Fatal(err)
		}
		if in.Event.ID != row.ID || payload.EventID != row.EventID || len(in.Attempts) != 2 || len(in.Redrives) != 1 || in.Redrives[0].RedrivenBy != "alice" {
			t.Errorf("%v: %+v", args, in)
		}
	}

	// Not found: exit 1, saying what was looked for.
	for _, ref := range []string{"1", strconv.FormatInt(row.LeadID, 10), "lead:1", "0190f3c4-7a1b-7c2d-8e3f-0123456789ab"} {
		code, stdout, stderr := runCmd(t, "inspect", ref)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "no outbox event matches "+ref) {
			t.Errorf("inspect %s: code %d, stdout %q, stderr %q", ref, code, stdout, stderr)
		}
	}
	// Bad invocations: exit 2.
	for _, args := range [][]string{{"inspect"}, {"inspect", "lead:x"}, {"inspect", "abc"}, {"inspect", "1", "2"}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "usage") {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}

// TestInspectRedriveActionsAndAttemptSplit: inspect names each
// outbox_redrives row's action (skip, re-drive, forced re-drive), and splits
// the attempt count only for a re-drive: an event never re-driven whose
// attempts_base was raised by uncounted attempts shows its plain count.
func TestInspectRedriveActionsAndAttemptSplit(t *testing.T) {
	db := operatorDB(t)
	ctx := context.Background()
	skipped := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_1", Status: "dead", Attempts: 3, LastError: cmdErr500, HTTPStatus: 500})
	if _, err := operator.Skip(ctx, db.Pool, []int64{skipped.ID}, nil, "bob", "key released"); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{skipped.ID}, Force: true}, "carol", "send it after all", false); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "inspect", opID(skipped))
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	for _, want := range []string{
		`\n  attempts +3 \(0 since the last re-drive\)\n`,
		`\nRe-drives\n  at +action +by +reason +was\n  \S+  skip +bob +key released +dead after 3 attempts`,
		`\n  \S+  re-drive \(forced\)  carol +send it after all +skipped after 3 attempts`,
	} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("output does not match %s:\n%s", want, stdout)
		}
	}
	code, stdout, stderr = runCmd(t, "inspect", opID(skipped), "-json")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	var in operator.Inspection
	if err := json.Unmarshal([]byte(stdout), &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Redrives) != 2 || in.Redrives[0].Action != "skip" || in.Redrives[0].Forced ||
		in.Redrives[1].Action != "redrive" || !in.Redrives[1].Forced {
		t.Errorf("redrives %+v, want a skip then a forced re-drive", in.Redrives)
	}
	if !strings.Contains(stdout, `"action": "skip"`) || !strings.Contains(stdout, `"forced": true`) {
		t.Errorf("-json lacks action/forced:\n%s", stdout)
	}

	// Never re-driven, 23 attempts of which none counted (attempts_base
	// raised by refused-configuration attempts): no re-drive split.
	never := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_2", Attempts: 23, LastError: "paragon answered 401", HTTPStatus: 401})
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox SET attempts_base = attempts WHERE id = $1`, never.ID); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd(t, "inspect", opID(never))
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`\n  attempts +23\n`).MatchString(stdout) || strings.Contains(stdout, "re-drive") {
		t.Errorf("never re-driven event mentions a re-drive split:\n%s", stdout)
	}
}

// retryMix: dead events differing in user, error and time of death, plus
// live ones sharing user and error that retry must never touch.
type retryMix struct{ d1, d2, d3, p1, f1, ok1 operatortest.Row }

func newRetryMix(t *testing.T, pool *pgxpool.Pool) retryMix {
	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, pool, e) }
	return retryMix{
		d1:  add(operatortest.Event{User: "usr_a", Status: "dead", Attempts: 25, LastError: "gave up after 25 attempts: " + cmdErr500, HTTPStatus: 500, CreatedAgo: 5 * time.Hour}),
		d2:  add(operatortest.Event{User: "usr_a", Status: "dead", Attempts: 1, LastError: "rejected, not retried: paragon answered 422 Unprocessable Entity", HTTPStatus: 422, CreatedAgo: 20 * time.Minute}),
		d3:  add(operatortest.Event{User: "usr_b", Status: "dead", Attempts: 25, LastError: "gave up after 25 attempts: " + cmdErr500, HTTPStatus: 500, CreatedAgo: 40 * time.Minute}),
		p1:  add(operatortest.Event{User: "usr_a", Attempts: 3, LastError: cmdErr500, HTTPStatus: 500, NextAttemptIn: time.Minute}),
		f1:  add(operatortest.Event{User: "usr_b", Status: "in_flight", Attempts: 2, LastError: cmdErr500, HTTPStatus: 500, LeaseExpiresIn: time.Minute}),
		ok1: add(operatortest.Event{User: "usr_a", Status: "delivered", Attempts: 1, DeliveredAgo: time.Minute}),
	}
}

func (m retryMix) all() []operatortest.Row {
	return []operatortest.Row{m.d1, m.d2, m.d3, m.p1, m.f1, m.ok1}
}

func TestRetryCommand(t *testing.T) {
	cases := []struct {
		name  string
		args  func(m retryMix) []string
		moved func(m retryMix) []operatortest.Row
		out   []string
	}{
		{"ids", func(m retryMix) []string { return []string{"-id", opID(m.d1) + ", " + opID(m.p1) + "," + opID(m.ok1)} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d1} },
			[]string{"Re-drove 1 dead event to pending (due now)", "Untouched (not dead, not matching the other filters, or no such event): "}},
		{"user", func(m retryMix) []string { return []string{"-user", "usr_a"} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d1, m.d2} },
			[]string{"Re-drove 2 dead events"}},
		{"error text", func(m retryMix) []string { return []string{"-error", "500 internal SERVER"} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d1, m.d3} },
			[]string{"Re-drove 2 dead events", "gave up after 25 attempts: " + cmdErr500}},
		{"since a duration ago", func(m retryMix) []string { return []string{"-since", "1h"} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d2, m.d3} },
			[]string{"Re-drove 2 dead events"}},
		{"since an RFC3339 time", func(m retryMix) []string {
			return []string{"-since", time.Now().Add(-30 * time.Minute).UTC().Format(time.RFC3339)}
		},
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d2} },
			[]string{"Re-drove 1 dead event"}},
		{"filters combine", func(m retryMix) []string { return []string{"-user", "usr_a", "-error", "500"} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d1} },
			[]string{"Re-drove 1 dead event"}},
		{"all", func(m retryMix) []string { return []string{"-all"} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d1, m.d2, m.d3} },
			[]string{"Re-drove 3 dead events"}},
		{"lead", func(m retryMix) []string { return []string{"-lead", strconv.FormatInt(m.d2.LeadID, 10)} },
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d2} },
			[]string{"Re-drove 1 dead event"}},
		{"event name and created range", func(m retryMix) []string {
			return []string{"-event", "Lead Created", "-created-from", "6h", "-created-before", "30m"}
		},
			func(m retryMix) []operatortest.Row { return []operatortest.Row{m.d1, m.d3} },
			[]string{"Re-drove 2 dead events"}},
		{"nothing matches", func(m retryMix) []string { return []string{"-user", "usr_nobody"} },
			func(m retryMix) []operatortest.Row { return nil },
			[]string{"No dead event matches; nothing was re-driven."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := operatorDB(t)
			m := newRetryMix(t, db.Pool)
			before := map[int64]string{}
			for _, r := range m.all() {
				before[r.ID] = outboxState(t, db.Pool, r.ID)
			}
			attempts := opCount(t, db.Pool, `SELECT count(*) FROM outbox_attempts`)
			moved := tc.moved(m)

			// Dry run first: same list, nothing changes.
			code, stdout, stderr := runCmd(t, append([]string{"retry", "-dry-run"}, tc.args(m)...)...)
			if code != 0 {
				t.Fatalf("dry run: code %d: %s", code, stderr)
			}
			if len(moved) > 0 && !strings.Contains(stdout, fmt.Sprintf("Dry run: would re-drive %s to pending (due now). Nothing was changed.", retryDeadEvents(int64(len(moved))))) {
				t.Errorf("dry run output:\n%s", stdout)
			}
			for _, r := range m.all() {
				if got := outboxState(t, db.Pool, r.ID); got != before[r.ID] {
					t.Fatalf("dry run changed %d: %s -> %s", r.ID, before[r.ID], got)
				}
			}
			if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives`); n != 0 {
				t.Fatalf("dry run recorded %d re-drives", n)
			}

			code, stdout, stderr = runCmd(t, append([]string{"retry", "-by", "alice", "-reason", "fixed upstream"}, tc.args(m)...)...)
			if code != 0 {
				t.Fatalf("code %d: %s", code, stderr)
			}
			for _, w := range tc.out {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			for _, r := range m.all() {
				got := outboxState(t, db.Pool, r.ID)
				if slices.Contains(moved, r) {
					var attempts int
					fmt.Sscanf(strings.Split(before[r.ID], "/")[1], "%d", &attempts)
					if want := fmt.Sprintf("pending/%d/%d", attempts, attempts); got != want {
						t.Errorf("%d: %s, want %s", r.ID, got, want)
					}
					if !strings.Contains(stdout, "\n  "+opID(r)+"  ") {
						t.Errorf("output does not list %d:\n%s", r.ID, stdout)
					}
					if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives WHERE outbox_id = $1 AND redriven_by = 'alice'
						AND reason = 'fixed upstream' AND previous_status = 'dead'`, r.ID); n != 1 {
						t.Errorf("%d: %d matching outbox_redrives rows, want 1", r.ID, n)
					}
				} else if got != before[r.ID] {
					t.Errorf("%d not selected but changed: %s -> %s", r.ID, before[r.ID], got)
				}
			}
			if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives`); n != int64(len(moved)) {
				t.Errorf("%d re-drives recorded, want %d", n, len(moved))
			}
			if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_attempts`); n != attempts {
				t.Errorf("outbox_attempts went from %d to %d rows: history must be kept", attempts, n)
			}
		})
	}
}

func TestRetryCommandRefusals(t *testing.T) {
	db := operatorDB(t)
	m := newRetryMix(t, db.Pool)
	t.Setenv("USER", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"retry"}, "refusing to re-drive every dead event"},
		{[]string{"retry", "-by", "alice"}, "refusing to re-drive every dead event"},
		{[]string{"retry", "-id", ""}, "refusing to re-drive every dead event"},
		{[]string{"retry", "-user", "usr_a", "-by", " "}, "-by is required"},
		{[]string{"retry", "-id", "1,x", "-by", "a"}, `-id: "x" is not an outbox id`},
		{[]string{"retry", "-id", "-5", "-by", "a"}, `-id: "-5" is not an outbox id`},
		{[]string{"retry", "-since", "yesterday", "-by", "a"}, `-since: "yesterday" is neither an RFC3339 time`},
		{[]string{"retry", "-all", "extra", "-by", "a"}, "unexpected arguments"},
		{[]string{"retry", "-created-from", "1h", "-created-before", "2h", "-by", "a"}, "is not after created from"},
		{[]string{"retry", "-created-before", "soon", "-by", "a"}, `-created-before: "soon" is neither`},
		{[]string{"retry", "-lead", "-3", "-by", "a"}, "lead id -3 is negative"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox WHERE status = 'dead'`); n != 3 {
		t.Fatalf("%d dead left, want all 3", n)
	}
	// Without $USER (as in a container) -by defaults to the OS user at this host.
	if code, _, stderr := runCmd(t, "retry", "-id", opID(m.d1)); code != 0 {
		t.Fatalf("retry without $USER: code %d: %s", code, stderr)
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives WHERE outbox_id = $1 AND redriven_by LIKE '%@%'`, m.d1.ID); n != 1 {
		t.Fatalf("re-drive without $USER not recorded as user@host")
	}
	// -by defaults to $USER.
	t.Setenv("USER", "carol")
	if code, _, stderr := runCmd(t, "retry", "-id", opID(m.d2)); code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_redrives WHERE outbox_id = $1 AND redriven_by = 'carol' AND reason IS NULL`, m.d2.ID); n != 1 {
		t.Fatalf("re-drive by $USER not recorded")
	}
}

func TestPurgeCommand(t *testing.T) {
	db := operatorDB(t)
	const day = 24 * time.Hour
	add := func(e operatortest.Event) operatortest.Row { return operatortest.Add(t, db.Pool, e) }
	oldDelivered := add(operatortest.Event{User: "u", Status: "delivered", Attempts: 3, LastError: "flaky", CreatedAgo: 9 * day, DeliveredAgo: 8 * day})
	newDelivered := add(operatortest.Event{User: "u", Status: "delivered", Attempts: 1, CreatedAgo: 2 * day, DeliveredAgo: day})
	oldDead := add(operatortest.Event{User: "u", Status: "dead", Attempts: 2, LastError: "rejected", CreatedAgo: 31 * day})
	newDead := add(operatortest.Event{User: "u", Status: "dead", Attempts: 2, LastError: "rejected", CreatedAgo: 10 * day})
	oldPending := add(operatortest.Event{User: "u", Attempts: 4, LastError: "503", CreatedAgo: 90 * day})
	oldInFlight := add(operatortest.Event{User: "u", Status: "in_flight", Attempts: 2, CreatedAgo: 90 * day, LeaseExpiresIn: -time.Hour})
	ids := func() []int64 {
		rows, err := db.Pool.Query(context.Background(), `SELECT id FROM outbox ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := ids()

	code, stdout, stderr := runCmd(t, "purge", "-dry-run")
	if code != 0 || !strings.Contains(stdout, "Dry run: would delete 2 events: 1 delivered more than 168h0m0s ago, 1 dead or skipped written more than 720h0m0s ago") {
		t.Fatalf("dry run: code %d\n%s%s", code, stdout, stderr)
	}
	if !slices.Equal(ids(), all) {
		t.Fatal("dry run deleted rows")
	}

	code, stdout, stderr = runCmd(t, "purge")
	if code != 0 || !strings.Contains(stdout, "Deleted 2 events (delivered more than 168h0m0s ago, dead or skipped written more than 720h0m0s ago)") {
		t.Fatalf("purge: code %d\n%s%s", code, stdout, stderr)
	}
	want := []int64{newDelivered.ID, newDead.ID, oldPending.ID, oldInFlight.ID}
	slices.Sort(want)
	if got := ids(); !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_attempts WHERE outbox_id = ANY($1)`, []int64{oldDelivered.ID, oldDead.ID}); n != 0 {
		t.Fatalf("%d attempts of purged events left", n)
	}
	if n := opCount(t, db.Pool, `SELECT count(*) FROM outbox_attempts`); n != 1+2+4+1 {
		t.Fatalf("%d attempts left, want the kept events' 8", n)
	}

	// RELAY_RETAIN_DEAD=0 keeps dead events, also for a purge by hand.
	t.Setenv("RELAY_RETAIN_DEAD", "0")
	if code, stdout, stderr := runCmd(t, "purge", "-delivered-age", "1h", "-dry-run"); code != 0 || !strings.Contains(stdout, " 0 dead or skipped written more than") {
		t.Fatalf("purge with RELAY_RETAIN_DEAD=0 would delete dead events: code %d\n%s%s", code, stdout, stderr)
	}
	t.Setenv("RELAY_RETAIN_DEAD", "")
	code, stdout, stderr = runCmd(t, "purge", "-delivered-age", "1h", "-dead-age", "1h", "-batch", "1")
	if code != 0 || !strings.Contains(stdout, "Deleted 2 events (delivered more than 1h0m0s ago, dead or skipped written more than 1h0m0s ago)") {
		t.Fatalf("purge with short ages: code %d\n%s%s", code, stdout, stderr)
	}
	if got, want := ids(), []int64{oldPending.ID, oldInFlight.ID}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want only pending and in-flight %v", got, want)
	}

	for _, args := range [][]string{{"purge", "-batch", "0"}, {"purge", "-dead-age", "-1s"}, {"purge", "-delivered-age", "-1h"}, {"purge", "now"}} {
		if code, _, stderr := runCmd(t, args...); code != 2 || !strings.Contains(stderr, "usage") {
			t.Errorf("%v: code %d, %s", args, code, stderr)
		}
	}
}

// doctorEnv sets up a configuration on which every doctor check passes and
// returns the key's PEM text (to check it is never printed).
func doctorEnv(t *testing.T) (keyPEM string) {
	t.Helper()
	clearEnv(t)
	db := testdb.New(t)
	key, pemBytes := paragontest.Key(t)
	keyPath := filepath.Join(t.TempDir(), "signing-key.pem")
	if err := os.WriteFile(keyPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	// Paragon stand-in that knows project proj-123 and its key: it answers
	// GET /projects/proj-123/sdk/me for valid tokens, 404 elsewhere.
	p := paragontest.New(t, paragontest.Options{ProjectID: "proj-123", Key: key})
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("PARAGON_PROJECT_ID", "proj-123")
	t.Setenv("PARAGON_SIGNING_KEY_FILE", keyPath)
	t.Setenv("PARAGON_BASE_URL", p.BaseURL)
	return string(pemBytes)
}

// doctorLine returns the report line of check name.
func doctorLine(t *testing.T, stdout, name string) string {
	t.Helper()
	for _, l := range strings.Split(stdout, "\n") {
		if len(l) > 6 && strings.HasPrefix(l[6:], name+" ") {
			return l
		}
	}
	t.Fatalf("no %q line in:\n%s", name, stdout)
	return ""
}

func TestDoctorPassesOnAGoodSetup(t *testing.T) {
	keyPEM := doctorEnv(t)
	code, stdout, stderr := runCmd(t, "doctor")
	if code != 0 {
		t.Fatalf("code %d\n%s%s", code, stdout, stderr)
	}
	base := os.Getenv("PARAGON_BASE_URL")
	for name, want := range map[string]string{
		"database":       "OK    database        connected to " + os.Getenv("DATABASE_URL") + " (PostgreSQL ",
		"migrations":     "OK    migrations      all ",
		"signing key":    "OK    signing key     RSA 2048-bit private key from PARAGON_SIGNING_KEY_FILE (" + os.Getenv("PARAGON_SIGNING_KEY_FILE") + ")",
		"project id":     "OK    project id      PARAGON_PROJECT_ID=proj-123",
		"user token":     `OK    user token      minted an RS256 token (sub "outbox-relay-doctor", aud "useparagon.com/proj-123", valid for 1h0m0s) and verified it with the public key`,
		"paragon":        "OK    paragon         PARAGON_BASE_URL=" + base + " is reachable: a server answered in ",
		"paragon auth":   "OK    paragon auth    Paragon accepted a token for project proj-123 (GET .../sdk/me answered 200 OK)",
		"relay settings": "OK    relay settings  RELAY_* and LOG_* settings are valid",
	} {
		if l := doctorLine(t, stdout, name); !strings.HasPrefix(l, want) {
			t.Errorf("line %q\nwant prefix %q", l, want)
		}
	}
	// The base URL's own 404 is reported as what it is, not as a problem.
	if l := doctorLine(t, stdout, "paragon"); !strings.HasSuffix(l, " (404 Not Found to a GET of the bare base URL; the API is checked below)") {
		t.Errorf("paragon line %q", l)
	}
	if !strings.HasSuffix(stdout, "All 8 checks passed.\n") || strings.Contains(stdout, "warning") {
		t.Errorf("output:\n%s", stdout)
	}
	lines := strings.Split(strings.TrimSpace(keyPEM), "\n")
	for _, l := range lines[1 : len(lines)-1] {
		if strings.Contains(stdout+stderr, l) {
			t.Fatal("doctor printed key material")
		}
	}
}

func TestDoctorFailsWithExactReasons(t *testing.T) {
	closedPort := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}
	cases := []struct {
		name  string
		setup func(t *testing.T)
		want  map[string]string // check -> its whole line (prefix with "~" for a prefix match)
	}{
		{"unmigrated database", func(t *testing.T) { t.Setenv("DATABASE_URL", testdb.NewEmpty(t).URL) }, map[string]string{
			"migrations": "~FAIL  migrations      database schema is behind this binary: run `outbox-relay migrate up`",
		}},
		{"garbage key", func(t *testing.T) {
			t.Setenv("PARAGON_SIGNING_KEY_FILE", "")
			t.Setenv("PARAGON_SIGNING_KEY", "not a key")
		}, map[string]string{
			"signing key":  "FAIL  signing key     PARAGON_SIGNING_KEY: bad Paragon signing key: no PEM block found (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
			"user token":   `SKIP  user token      not checked: no usable signing key (see "signing key" above)`,
			"paragon auth": `SKIP  paragon auth    not checked: no usable signing key (see "signing key" above)`,
		}},
		{"key file missing", func(t *testing.T) { t.Setenv("PARAGON_SIGNING_KEY_FILE", "/nonexistent/key.pem") }, map[string]string{
			"signing key":  `FAIL  signing key     PARAGON_SIGNING_KEY_FILE: cannot read "/nonexistent/key.pem": no such file or directory`,
			"user token":   `SKIP  user token      not checked: no usable signing key (see "signing key" above)`,
			"paragon auth": `SKIP  paragon auth    not checked: no usable signing key (see "signing key" above)`,
		}},
		{"public key instead of private", func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "pub.pem")
			if err := os.WriteFile(p, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PARAGON_SIGNING_KEY_FILE", p)
		}, map[string]string{
			"signing key":  "FAIL  signing key     PARAGON_SIGNING_KEY_FILE: bad Paragon signing key: PEM block is a public key; the relay needs the private signing key",
			"user token":   `SKIP  user token      not checked: no usable signing key (see "signing key" above)`,
			"paragon auth": `SKIP  paragon auth    not checked: no usable signing key (see "signing key" above)`,
		}},
		{"two key sources", func(t *testing.T) { t.Setenv("PARAGON_SIGNING_KEY", "x") }, map[string]string{
			"signing key":  "FAIL  signing key     set only one of PARAGON_SIGNING_KEY and PARAGON_SIGNING_KEY_FILE",
			"user token":   `SKIP  user token      not checked: no usable signing key (see "signing key" above)`,
			"paragon auth": `SKIP  paragon auth    not checked: no usable signing key (see "signing key" above)`,
		}},
		{"no project id", func(t *testing.T) { t.Setenv("PARAGON_PROJECT_ID", "") }, map[string]string{
			"project id":   "FAIL  project id      PARAGON_PROJECT_ID is not set (your Paragon project id, from the dashboard)",
			"user token":   `SKIP  user token      not checked: PARAGON_PROJECT_ID is not set (see "project id" above)`,
			"paragon auth": `SKIP  paragon auth    not checked: PARAGON_PROJECT_ID is not set (see "project id" above)`,
		}},
		{"unreachable base URL", func(t *testing.T) { t.Setenv("PARAGON_BASE_URL", closedPort(t)) }, map[string]string{
			"paragon":      "~FAIL  paragon         PARAGON_BASE_URL=http://127.0.0.1:",
			"paragon auth": "~FAIL  paragon auth    GET http://127.0.0.1:",
		}},
		{"base URL not http", func(t *testing.T) { t.Setenv("PARAGON_BASE_URL", "api.useparagon.com") }, map[string]string{
			"paragon":      `FAIL  paragon         PARAGON_BASE_URL="api.useparagon.com" is not an http(s) URL`,
			"paragon auth": `SKIP  paragon auth    not checked: PARAGON_BASE_URL is not an http(s) URL (see "paragon" above)`,
		}},
		{"wrong project id", func(t *testing.T) { t.Setenv("PARAGON_PROJECT_ID", "proj-other") }, map[string]string{
			"paragon auth": "FAIL  paragon auth    Paragon answered 404 Not Found for project proj-other: check PARAGON_PROJECT_ID and PARAGON_BASE_URL",
		}},
		{"key of another project (or rotated)", func(t *testing.T) {
			other, _ := writeKey(t)
			t.Setenv("PARAGON_SIGNING_KEY_FILE", other)
		}, map[string]string{
			"paragon auth": "FAIL  paragon auth    Paragon refused the token (401 Unauthorized): the signing key does not belong to project proj-123, or it was rotated; every event would fail with 401",
		}},
		{"database unreachable", func(t *testing.T) {
			t.Setenv("DATABASE_URL", "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2")
		}, map[string]string{
			"database":   "~FAIL  database        cannot reach the database at DATABASE_URL (postgres://u:xxxxx@127.0.0.1:1/db?connect_timeout=2): ",
			"migrations": `SKIP  migrations      not checked: no database connection (see "database" above)`,
		}},
		{"bad relay settings", func(t *testing.T) {
			t.Setenv("RELAY_LEASE", "5s")
			t.Setenv("RELAY_CONCURRENCY", "lots")
		}, map[string]string{
			"relay settings": `FAIL  relay settings  RELAY_CONCURRENCY="lots" is not a whole number; RELAY_LEASE=5s must exceed RELAY_SEND_TIMEOUT=10s by at least 10s, or a live relay's lease could expire mid-send`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doctorEnv(t)
			tc.setup(t)
			code, stdout, stderr := runCmd(t, "doctor")
			if code != 1 {
				t.Fatalf("code %d, want 1\n%s%s", code, stdout, stderr)
			}
			count := func(state string) int {
				return strings.Count("\n"+stdout, "\n"+state+"  ")
			}
			failed, skipped := count("FAIL"), count("SKIP")
			wantStderr := fmt.Sprintf("outbox-relay doctor: %d of 8 checks failed\n", failed)
			if skipped > 0 {
				wantStderr = fmt.Sprintf("outbox-relay doctor: %d of 8 checks failed, %d not checked because of them\n", failed, skipped)
			}
			if failed+skipped != len(tc.want) || failed == 0 || !strings.Contains(stderr, wantStderr) {
				t.Errorf("%d checks failed and %d skipped, want %d lines (%v); stderr %q\n%s", failed, skipped, len(tc.want), tc.want, stderr, stdout)
			}
			for name, want := range tc.want {
				l := doctorLine(t, stdout, name)
				if p, prefix := strings.CutPrefix(want, "~"); prefix {
					if !strings.HasPrefix(l, p) {
						t.Errorf("line %q\nwant prefix %q", l, p)
					}
				} else if l != want {
					t.Errorf("line %q\nwant      %q", l, want)
				}
			}
			if strings.Contains(stdout+stderr, "s3cretpw") {
				t.Fatal("doctor printed the database password")
			}
		})
	}
	// The closed port's failure carries the network error.
	t.Run("unreachable reason", func(t *testing.T) {
		doctorEnv(t)
		u := closedPort(t)
		t.Setenv("PARAGON_BASE_URL", u)
		_, stdout, _ := runCmd(t, "doctor")
		if l := doctorLine(t, stdout, "paragon"); !strings.Contains(l, "PARAGON_BASE_URL="+u+" is unreachable: ") || !strings.Contains(l, "connection refused") {
			t.Errorf("line %q", l)
		}
	})
}

// TestDoctorWarnsAboutAReadableKeyFile: a group/world-readable key passes
// with a warning.
func TestDoctorWarnsAboutAReadableKeyFile(t *testing.T) {
	doctorEnv(t)
	p := os.Getenv("PARAGON_SIGNING_KEY_FILE")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "doctor")
	if code != 0 {
		t.Fatalf("code %d\n%s%s", code, stdout, stderr)
	}
	if want := "warning: signing key file " + p + " is accessible to other users (mode -rw-r--r--); chmod 600 it"; !strings.Contains(stdout, want) {
		t.Errorf("output lacks %q:\n%s", want, stdout)
	}
}
