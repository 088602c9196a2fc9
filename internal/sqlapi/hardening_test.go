package sqlapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// refused runs q (with args) and wants it to fail with SQLSTATE code and a
// message containing every string of msgs (hint included), writing nothing.
func refused(t *testing.T, p *pgxpool.Pool, code string, msgs []string, q string, args ...any) {
	t.Helper()
	before := count(t, p)
	_, err := p.Exec(context.Background(), q, args...)
	text := ""
	if err != nil {
		text = err.Error()
		if h := hint(err); h != "" {
			text += " HINT: " + h
		}
	}
	if sqlstate(err) != code {
		t.Fatalf("%s: got %v, want SQLSTATE %s", q, err, code)
	}
	for _, m := range msgs {
		if !strings.Contains(text, m) {
			t.Fatalf("%s: error %q does not say %q", q, text, m)
		}
	}
	if n := count(t, p); n != before {
		t.Fatalf("%s: %d outbox rows written by a refused statement", q, n-before)
	}
}

// Issue: UPDATE leads SET id = 901 WHERE id = 900 sent Lead Updated under
// lead:901 while the Created was under lead:900 (no order between them).
func TestPrimaryKeyChangeRefused(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	exec(t, p, `INSERT INTO leads (id, owner_id) VALUES (900, 'u')`)
	refused(t, p, "55000", []string{"leads.id", "900 to 901", "Delete the lead and insert it again"},
		`UPDATE leads SET id = 901 WHERE id = 900`)
	exec(t, p, `UPDATE leads SET first_name = 'Ann' WHERE id = 900`)
	exec(t, p, `DELETE FROM leads WHERE id = 900`)
	for _, r := range rows(t, p, "") {
		if r.OrderingKey == nil || *r.OrderingKey != "lead:900" || r.Payload["leadId"].(interface{ String() string }).String() != "900" {
			t.Errorf("%s: key %v leadId %v, want lead:900 and 900", r.Name, r.OrderingKey, r.Payload["leadId"])
		}
	}

	exec(t, p, `CREATE TABLE lines (order_no int, line text, owner text, qty int, PRIMARY KEY (order_no, line));
		SELECT outbox_attach('lines', 'Line', 'owner');
		INSERT INTO lines VALUES (1, 'a', 'u', 1)`)
	refused(t, p, "55000", []string{"lines.line", "Delete the row and insert it again"},
		`UPDATE lines SET line = 'b' WHERE order_no = 1`)
	refused(t, p, "55000", []string{"lines.order_no"}, `UPDATE lines SET order_no = 2, qty = 5`)
	exec(t, p, `UPDATE lines SET qty = 2`)
	if got := rows(t, p, "WHERE event_name = 'Line Updated' AND ordering_key = 'lines:1:a'"); len(got) != 1 {
		t.Fatalf("Line Updated of a non-key column: %d rows, want 1", len(got))
	}
}

// Issue: outbox_attach dropped one of two columns with the same camelCase
// name, or a column named like a field the outbox sets, silently.
func TestAttachRefusesCollidingFieldNames(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	exec(t, p, `
		CREATE TABLE c1 (id int PRIMARY KEY, owner text, a_b int, "aB" int);
		CREATE TABLE c2 (id int PRIMARY KEY, owner text, "eventId" text, event_id text);
		CREATE TABLE c3 (id int PRIMARY KEY, owner text, event_id text);
		CREATE TABLE c4 (id int PRIMARY KEY, owner text, changed_fields text);
		CREATE TABLE c5 (id int PRIMARY KEY, owner text, "deletedAt" timestamptz);
		CREATE TABLE c6 (id int PRIMARY KEY, owner text, "Due Date" date, due_date date)`)
	cases := []struct {
		tbl  string
		msgs []string
	}{
		{"c1", []string{"a_b and \"aB\" become \"aB\""}},
		{"c2", []string{"\"eventId\" and event_id become \"eventId\""}},
		{"c3", []string{"event_id becomes \"eventId\"", "the outbox sets"}},
		{"c4", []string{"changed_fields becomes \"changedFields\""}},
		{"c5", []string{"\"deletedAt\" becomes \"deletedAt\""}},
		{"c6", []string{"\"Due Date\" and due_date become \"dueDate\""}},
	}
	for _, c := range cases {
		refused(t, p, "42711", append(c.msgs, c.tbl, "Rename"), `SELECT outbox_attach($1::regclass, 'X', 'owner')`, c.tbl)
	}
	var n int
	if err := p.QueryRow(context.Background(), `SELECT count(*) FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'c_'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d triggers left by refused attaches (%v)", n, err)
	}
}

// Issue: only spaces counted as blank: E'\t\n', U+00A0, ... were accepted
// as event names, Connected Users and ordering keys.
func TestWhitespaceOnlyIsBlank(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	blanks := []string{"", " ", "\t", "\n", "\r", "\f", "\v", " \t\r\n", "\u00a0", "\u2003", "\u3000", "\u202f", "\ufeff", "\u0085"}
	for _, b := range blanks {
		refused(t, p, "22023", []string{"event_name is blank"}, `SELECT outbox_enqueue($1, 'u', '{}')`, b)
		refused(t, p, "22023", []string{"user_id (the Connected User) is blank"}, `SELECT outbox_enqueue('E', $1, '{}')`, b)
		if b != "" {
			refused(t, p, "22023", []string{"ordering_key is blank"}, `SELECT outbox_enqueue('E', 'u', '{}', $1)`, b)
		}
		refused(t, p, "23514", []string{"leads_owner_id_not_blank"}, `INSERT INTO leads (owner_id) VALUES ($1)`, b)
		refused(t, p, "22023", []string{"must not be blank"}, `SELECT outbox_attach('leads', $1, 'owner_id')`, b)
	}
	// Not blank: text around or between the spaces.
	exec(t, p, `SELECT outbox_enqueue(E'\tDeal Won\u00a0', E'u\u2003v', '{}', E'k\t')`)
	exec(t, p, `INSERT INTO leads (id, owner_id) VALUES (1, 'u')`)
	refused(t, p, "23514", []string{"leads_owner_id_not_blank"}, `UPDATE leads SET owner_id = E'\t' WHERE id = 1`)

	exec(t, p, `CREATE TABLE deals (id int PRIMARY KEY, owner text); SELECT outbox_attach('deals', 'Deal', 'owner')`)
	for _, b := range blanks {
		refused(t, p, "23502", []string{"deals.owner is NULL or blank", "Deal Created"}, `INSERT INTO deals VALUES (1, $1)`, b)
	}
	exec(t, p, `INSERT INTO deals VALUES (1, 'u')`)
	refused(t, p, "23502", []string{"deals.owner is NULL or blank", "Deal Updated"}, `UPDATE deals SET owner = E'\u00a0'`)
}

// The migration replaced leads_owner_id_not_blank NOT VALID: a row that
// was already blank does not block it, new rows are checked.
func TestOwnerCheckIsNotValid(t *testing.T) {
	db := testdb.New(t)
	var valid bool
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT convalidated FROM pg_constraint WHERE conname = 'leads_owner_id_not_blank' AND conrelid = 'leads'::regclass`).Scan(&valid); err != nil {
		t.Fatal(err)
	}
	if valid {
		t.Fatal("leads_owner_id_not_blank is validated: the migration scanned (and could be blocked by) existing rows")
	}
}

// Issue: no length limit on event_name, user_id, ordering_key (a
// 100,000-character user became a token's sub; a long key failed with
// the btree's "index row size" error, SQLSTATE 54000 like a big payload).
func TestLengthLimits(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	x := strings.Repeat
	// At the limits: accepted.
	exec(t, p, `SELECT outbox_enqueue($1, $2, '{}', $3)`, x("é", 200), x("ü", 255), x("é", 256))
	refused(t, p, "22001", []string{"event_name is 201 characters, over the limit of 200"},
		`SELECT outbox_enqueue($1, 'u', '{}')`, x("é", 201))
	refused(t, p, "22001", []string{"user_id (the Connected User) is 256 characters, over the limit of 255"},
		`SELECT outbox_enqueue('E', $1, '{}')`, x("u", 256))
	refused(t, p, "22001", []string{"user_id (the Connected User) is 100000 characters"},
		`SELECT outbox_enqueue('E', $1, '{}')`, x("u", 100000))
	refused(t, p, "22001", []string{"ordering_key is 514 bytes, over the limit of 512 bytes"},
		`SELECT outbox_enqueue('E', 'u', '{}', $1)`, x("é", 257))
	// An incompressible 3 KB key: our error, not the btree's.
	refused(t, p, "22001", []string{"ordering_key is"},
		`SELECT outbox_enqueue('E', 'u', '{}', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100) g))`)

	exec(t, p, `INSERT INTO leads (id, owner_id) VALUES (1, $1)`, x("o", 255))
	refused(t, p, "22001", []string{"leads.owner_id of lead 2 is over the limit of 255 characters"},
		`INSERT INTO leads (id, owner_id) VALUES (3, 'u'), (2, $1)`, x("o", 256))
	refused(t, p, "22001", []string{"leads.owner_id of lead 1 is over the limit of 255"},
		`UPDATE leads SET owner_id = $1 WHERE id = 1`, x("o", 256))

	exec(t, p, `CREATE TABLE notes (k text PRIMARY KEY, owner text); SELECT outbox_attach('notes', 'Note', 'owner')`)
	exec(t, p, `INSERT INTO notes VALUES ($1, $2)`, x("k", 512-len("notes:")), x("o", 255))
	refused(t, p, "22001", []string{"notes.owner is 256 characters", "Note Created"},
		`INSERT INTO notes VALUES ('a', $1)`, x("o", 256))
	refused(t, p, "22001", []string{"ordering key of this notes row", "513 bytes", "Note Created"},
		`INSERT INTO notes VALUES ($1, 'u')`, x("k", 513-len("notes:")))
	exec(t, p, `CREATE TABLE e (id int PRIMARY KEY, owner text)`)
	exec(t, p, `SELECT outbox_attach('e', $1, 'owner')`, x("E", 192))
	refused(t, p, "22001", []string{"entity is 193 characters, over the limit of 192"},
		`SELECT outbox_attach('e', $1, 'owner')`, x("E", 193))
}

func hint(err error) string {
	var pg *pgconn.PgError
	if asPg(err, &pg) {
		return pg.Hint
	}
	return ""
}
