package sqlapi_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// notices returns a pool whose sessions run in TimeZone Pacific/Chatham and
// bytea_output 'escape' (the payload must not depend on either) and a
// function returning the NOTICE messages received so far.
func noticePool(t *testing.T, db *testdb.Database) (*pgxpool.Pool, func() []string) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	cfg.ConnConfig.RuntimeParams["timezone"] = "Pacific/Chatham"
	cfg.ConnConfig.RuntimeParams["bytea_output"] = "escape"
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		got = append(got, n.Message)
		mu.Unlock()
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestAttach(t *testing.T) {
	db := testdb.New(t)
	p, notices := noticePool(t, db)
	ctx := context.Background()
	exec(t, p, `
		CREATE TYPE price AS (amount numeric, currency text, at timestamptz);
		CREATE TABLE deals (
		  tenant_id   integer,
		  deal_no     bigint,
		  owner_user  text,
		  "Deal Name" text,
		  amount      numeric,
		  big         bigint,
		  blob        bytea,
		  closed_at   timestamptz,
		  list_price  price,
		  tags        text[],
		  note        text,
		  PRIMARY KEY (tenant_id, deal_no))`)
	exec(t, p, `SELECT outbox_attach('deals', 'Deal', 'owner_user')`)
	if n := notices(); len(n) != 0 {
		t.Errorf("first attach raised notices %q", n)
	}
	exec(t, p, `SELECT outbox_attach('deals'::regclass, 'Deal', 'owner_user')`)
	if n := notices(); len(n) != 0 {
		t.Errorf("re-attach with the same arguments raised notices %q", n)
	}
	var triggers int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'deals'::regclass AND NOT tgisinternal`).Scan(&triggers); err != nil || triggers != 3 {
		t.Fatalf("%d triggers on deals (%v), want 3", triggers, err)
	}

	exec(t, p, `INSERT INTO deals VALUES (7, 9223372036854775807, 'user-9', 'Big one', 12345678901234567890.123456789, -9223372036854775808,
	            '\x00ff10fe', '2026-01-02 03:04:05.123456+00', ROW(99.95, 'EUR', '2026-01-01 00:00:00+00'), ARRAY['a', NULL], NULL)`)
	exec(t, p, `UPDATE deals SET amount = 1, note = 'hi'`)
	exec(t, p, `UPDATE deals SET amount = 1`) // no change: no event
	exec(t, p, `UPDATE deals SET note = NULL`)
	exec(t, p, `DELETE FROM deals`)
	got := rows(t, p, "")
	if len(got) != 4 {
		t.Fatalf("%d events, want Created, Updated, Updated, Deleted: %+v", len(got), got)
	}
	for i, name := range []string{"Deal Created", "Deal Updated", "Deal Updated", "Deal Deleted"} {
		if got[i].Name != name || got[i].UserID != "user-9" || got[i].OrderingKey == nil || *got[i].OrderingKey != "deals:7:9223372036854775807" ||
			got[i].Payload["eventId"] != got[i].EventID {
			t.Errorf("event %d: %s user %s key %v", i, got[i].Name, got[i].UserID, got[i].OrderingKey)
		}
	}
	c := got[0]
	for _, want := range []string{
		`"dealNo": 9223372036854775807`, `"big": -9223372036854775808`, `"amount": 12345678901234567890.123456789`,
		`"blob": "AP8Q/g=="`, `"closedAt": "2026-01-02T03:04:05.123456Z"`, `"dealName": "Big one"`, `"tenantId": 7`,
		`"listPrice": {"at": "2026-01-01T00:00:00+00:00", "amount": 99.95, "currency": "EUR"}`, `"tags": ["a", null]`,
		`"ownerUser": "user-9"`,
	} {
		if !strings.Contains(c.raw, want) {
			t.Errorf("Created payload lacks %s: %s", want, c.raw)
		}
	}
	if _, ok := c.Payload["note"]; ok {
		t.Errorf("Created must leave NULL note out: %s", c.raw)
	}
	if !reflect.DeepEqual(got[1].Payload["changedFields"], []any{"amount", "note"}) || got[1].Payload["note"] != "hi" {
		t.Errorf("update 1: %s", got[1].raw)
	}
	if v, ok := got[2].Payload["note"]; !ok || v != nil || !reflect.DeepEqual(got[2].Payload["changedFields"], []any{"note"}) {
		t.Errorf("update 2 must send the cleared note as null: %s", got[2].raw)
	}
	if _, ok := got[3].Payload["deletedAt"]; !ok || got[3].Payload["dealNo"] == nil {
		t.Errorf("deleted: %s", got[3].raw)
	}

	// A row without a Connected User fails the app's statement, naming
	// table and column, and writes nothing.
	before := count(t, p)
	_, err := p.Exec(ctx, `INSERT INTO deals (tenant_id, deal_no, owner_user) VALUES (1, 1, '  ')`)
	var pg *pgconn.PgError
	if !asPg(err, &pg) || pg.Code != "23502" || pg.TableName != "deals" || pg.ColumnName != "owner_user" ||
		!strings.Contains(pg.Message, "deals.owner_user") {
		t.Errorf("blank user column: %v", err)
	}
	if _, err := p.Exec(ctx, `INSERT INTO deals (tenant_id, deal_no) VALUES (1, 2)`); sqlstate(err) != "23502" {
		t.Errorf("NULL user column: %v", err)
	}
	if n := count(t, p); n != before {
		t.Errorf("%d events written for refused rows", n-before)
	}

	// Other arguments replace the attachment, and say so.
	exec(t, p, `SELECT outbox_attach('deals', 'Opportunity', 'owner_user')`)
	if n := notices(); len(n) != 1 || !strings.Contains(n[0], "replacing the outbox attachment of deals") {
		t.Errorf("replacing: notices %q", n)
	}
	exec(t, p, `INSERT INTO deals (tenant_id, deal_no, owner_user) VALUES (1, 3, 'u')`)
	if r := rows(t, p, `WHERE id > (SELECT max(id) - 1 FROM outbox)`); r[0].Name != "Opportunity Created" {
		t.Errorf("after replace: %s", r[0].Name)
	}

	// Detach: no event afterwards, for any statement.
	exec(t, p, `SELECT outbox_detach('deals')`)
	before = count(t, p)
	exec(t, p, `INSERT INTO deals (tenant_id, deal_no, owner_user) VALUES (1, 4, 'u')`)
	exec(t, p, `UPDATE deals SET note = 'x'`)
	exec(t, p, `DELETE FROM deals`)
	if n := count(t, p); n != before {
		t.Errorf("%d events after detach", n-before)
	}
	exec(t, p, `SELECT outbox_detach('deals')`) // detaching again does nothing
}

func asPg(err error, pg **pgconn.PgError) bool {
	return errors.As(err, pg)
}

func TestAttachRefused(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	ctx := context.Background()
	exec(t, p, `CREATE TABLE nopk (a int, owner text); CREATE TABLE ok (id int PRIMARY KEY, owner text); CREATE VIEW v AS SELECT * FROM ok`)
	cases := []struct{ q, code, msg string }{
		{`SELECT outbox_attach('nopk', 'X', 'owner')`, "42P16", "nopk has no primary key"},
		{`SELECT outbox_attach('ok', 'X', 'nope')`, "42703", "ok has no column nope"},
		{`SELECT outbox_attach('ok', ' ', 'owner')`, "22023", "must not be blank"},
		{`SELECT outbox_attach('ok', NULL, 'owner')`, "22004", "must not be NULL"},
		{`SELECT outbox_attach(NULL, 'X', 'owner')`, "22004", "tbl is NULL"},
		{`SELECT outbox_attach('v', 'X', 'owner')`, "42809", "v is not a table"},
	}
	for _, c := range cases {
		_, err := p.Exec(ctx, c.q)
		if sqlstate(err) != c.code || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %s %q", c.q, err, c.code, c.msg)
		}
	}
	var n int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('nopk'::regclass, 'ok'::regclass)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d triggers left by refused attaches (%v)", n, err)
	}
}
