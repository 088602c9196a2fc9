package sqlapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type row struct {
	ID          int64
	EventID     string
	Name        string
	UserID      string
	Status      string
	OrderingKey *string
	Payload     map[string]any
	raw         string
}

func rows(t *testing.T, pool *pgxpool.Pool, where string) []row {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT id, event_id::text, event_name, user_id, status, ordering_key, payload::text FROM outbox `+where+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.ID, &r.EventID, &r.Name, &r.UserID, &r.Status, &r.OrderingKey, &r.raw); err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(strings.NewReader(r.raw))
		d.UseNumber()
		if err := d.Decode(&r.Payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func exec(t *testing.T, pool *pgxpool.Pool, q string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func sqlstate(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// keys returns the payload's field names, sorted (encoding/json sorts map keys).
func keys(m map[string]any) string {
	b, _ := json.Marshal(m)
	var names []string
	var o map[string]json.RawMessage
	_ = json.Unmarshal(b, &o)
	for k := range o {
		names = append(names, k)
	}
	return fmt.Sprint(sortStrings(names))
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestLeadUpdatedAndDeleted(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	var id int64
	if err := p.QueryRow(context.Background(), `
		INSERT INTO leads (external_id, owner_id, first_name, last_name, email, annual_revenue, created_at)
		VALUES ('ext-7', 'user-1', 'Ann', 'Lee', 'ann@example.com', 9007199254740993, '2026-09-01 00:12:19.678+00')
		RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// Changes first_name, clears email (NULL) and company stays NULL.
	exec(t, p, `UPDATE leads SET first_name = 'Anna', email = NULL WHERE id = $1`, id)
	// Changes nothing: no event.
	exec(t, p, `UPDATE leads SET first_name = 'Anna' WHERE id = $1`, id)
	// An empty text counts as cleared (sent as null, like Created leaves it out).
	exec(t, p, `UPDATE leads SET last_name = '', owner_id = 'user-2' WHERE id = $1`, id)
	exec(t, p, `DELETE FROM leads WHERE id = $1`, id)

	got := rows(t, p, "")
	if len(got) != 4 {
		t.Fatalf("want Created, Updated, Updated, Deleted; got %d rows: %+v", len(got), got)
	}
	wantKey := fmt.Sprintf("lead:%d", id)
	for i, name := range []string{"Lead Created", "Lead Updated", "Lead Updated", "Lead Deleted"} {
		r := got[i]
		if r.Name != name || r.OrderingKey == nil || *r.OrderingKey != wantKey || r.Payload["eventId"] != r.EventID {
			t.Errorf("row %d: %s key %v eventId %v (event_id %s); want %s, key %s, eventId = event_id", i, r.Name, r.OrderingKey, r.Payload["eventId"], r.EventID, name, wantKey)
		}
	}
	// The first event of the key is pending, the later ones wait behind it.
	for i, want := range []string{"pending", "waiting", "waiting", "waiting"} {
		if got[i].Status != want {
			t.Errorf("row %d status %s, want %s", i, got[i].Status, want)
		}
	}
	u1 := got[1].Payload
	if keys(u1) != "[annualRevenue changedFields createdAt email eventId externalId firstName lastName leadId]" {
		t.Errorf("first update fields %s", keys(u1))
	}
	if u1["email"] != nil || u1["firstName"] != "Anna" || !reflect.DeepEqual(u1["changedFields"], []any{"firstName", "email"}) {
		t.Errorf("first update: %s", got[1].raw)
	}
	// Exact digits beyond 2^53.
	if !strings.Contains(got[1].raw, `"annualRevenue": 9007199254740993`) {
		t.Errorf("annualRevenue lost digits: %s", got[1].raw)
	}
	if u1["createdAt"] != "2026-09-01T00:12:19.678Z" {
		t.Errorf("createdAt %v", u1["createdAt"])
	}
	u2 := got[2]
	if u2.UserID != "user-2" || !reflect.DeepEqual(u2.Payload["changedFields"], []any{"ownerId", "lastName"}) {
		t.Errorf("second update: user %s payload %s", u2.UserID, u2.raw)
	}
	if v, ok := u2.Payload["lastName"]; !ok || v != nil {
		t.Errorf("cleared lastName must be null: %s", u2.raw)
	}
	if _, ok := u2.Payload["email"]; ok {
		t.Errorf("email did not change in the second update and is NULL: left out, got %s", u2.raw)
	}
	d := got[3]
	if keys(d.Payload) != "[deletedAt eventId externalId leadId]" || d.Payload["externalId"] != "ext-7" || d.UserID != "user-2" {
		t.Errorf("deleted: %s (user %s)", d.raw, d.UserID)
	}
	if ts, _ := d.Payload["deletedAt"].(string); !strings.HasSuffix(ts, "Z") || len(ts) != len("2026-09-01T00:12:19.678Z") {
		t.Errorf("deletedAt %q is not ISO-8601 UTC with milliseconds", ts)
	}
}

func TestEnqueue(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	ctx := context.Background()
	var eid string
	if err := p.QueryRow(ctx, `SELECT outbox_enqueue('Deal Won', 'user-1', '{"amount": 123456789012345678901234567890.5, "deal": "d-1"}', 'deal:d-1')::text`).Scan(&eid); err != nil {
		t.Fatal(err)
	}
	var unkeyed string
	if err := p.QueryRow(ctx, `SELECT outbox_enqueue('Contact Created', 'user-1', '{}')::text`).Scan(&unkeyed); err != nil {
		t.Fatal(err)
	}
	if err := p.QueryRow(ctx, `SELECT outbox_enqueue('Deal Won', 'user-1', '{"amount": 2}', 'deal:d-1')::text`).Scan(new(string)); err != nil {
		t.Fatal(err)
	}
	got := rows(t, p, "")
	if len(got) != 3 {
		t.Fatalf("%d rows", len(got))
	}
	if got[0].EventID != eid || got[0].Payload["eventId"] != eid || got[0].Name != "Deal Won" || got[0].UserID != "user-1" ||
		*got[0].OrderingKey != "deal:d-1" || got[0].Status != "pending" {
		t.Errorf("first: %+v (returned %s)", got[0], eid)
	}
	if !strings.Contains(got[0].raw, "123456789012345678901234567890.5") {
		t.Errorf("amount lost digits: %s", got[0].raw)
	}
	if got[1].EventID != unkeyed || got[1].OrderingKey != nil || got[1].Status != "pending" {
		t.Errorf("unkeyed: %+v", got[1])
	}
	if got[2].Status != "waiting" {
		t.Errorf("second event of deal:d-1 is %s, want waiting", got[2].Status)
	}
}

// TestEnqueueBadInput: each bad input raises its documented SQLSTATE with a
// message naming the problem, and writes nothing, also when the function
// is called in a transaction that had already written an event.
func TestEnqueueBadInput(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	ctx := context.Background()
	exec(t, p, `UPDATE outbox_settings SET max_payload_bytes = 200`)
	big := `{"text": "` + strings.Repeat("x", 200) + `"}`
	// Exactly the limit once eventId is added (`, "eventId": "<36 characters>"` = 51 bytes).
	exact := `{"t": "` + strings.Repeat("x", 200-len(`{"t": ""}`)-51) + `"}`
	cases := []struct {
		name, user, payload string // "NULL" is SQL NULL
		key                 *string
		code, msg           string
	}{
		{"NULL", "u", "{}", nil, "22004", "event_name is NULL"},
		{"  ", "u", "{}", nil, "22023", "event_name is blank"},
		{"E", "NULL", "{}", nil, "22004", "user_id (the Connected User) is NULL"},
		{"E", "", "{}", nil, "22023", "user_id (the Connected User) is blank"},
		{"E", "u", "NULL", nil, "22004", "payload is NULL"},
		{"E", "u", "[1]", nil, "22023", "payload is a JSON array, not an object"},
		{"E", "u", `"s"`, nil, "22023", "payload is a JSON string, not an object"},
		{"E", "u", `{"eventId": "mine"}`, nil, "22023", `payload has its own "eventId"`},
		{"E", "u", "{}", ptr(" "), "22023", "ordering_key is blank"},
		{"E", "u", big, nil, "54000", "over the limit of 200 bytes"},
	}
	arg := func(s string) any {
		if s == "NULL" {
			return nil
		}
		return s
	}
	for _, c := range cases {
		t.Run(c.msg, func(t *testing.T) {
			before := count(t, p)
			tx, err := p.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `SELECT outbox_enqueue('Fine', 'u', '{}', 'k')`); err != nil {
				t.Fatal(err)
			}
			var key any
			if c.key != nil {
				key = *c.key
			}
			_, err = tx.Exec(ctx, `SELECT outbox_enqueue($1, $2, $3::jsonb, $4)`, arg(c.name), arg(c.user), arg(c.payload), key)
			if sqlstate(err) != c.code || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want SQLSTATE %s and %q", err, c.code, c.msg)
			}
			if err := tx.Commit(ctx); err == nil {
				t.Fatal("commit after the error succeeded")
			}
			if n := count(t, p); n != before {
				t.Fatalf("%d rows written", n-before)
			}
		})
	}
	if _, err := p.Exec(ctx, `SELECT outbox_enqueue('E', 'u', $1::jsonb)`, exact); err != nil {
		t.Fatalf("payload of exactly the limit refused: %v", err)
	}
	var size int
	if err := p.QueryRow(ctx, `SELECT octet_length(payload::text) FROM outbox`).Scan(&size); err != nil || size != 200 {
		t.Fatalf("payload at the limit: %d bytes (%v), want 200", size, err)
	}
}

func ptr(s string) *string { return &s }

// TestEnqueueCommitOrder: many transactions enqueue on one key at once and
// commit in an order the test records (a counter row updated just before
// commit, whose row lock makes the counter values the commit order); the
// outbox ids of the key must be in that order. Without the advisory lock
// a transaction that drew a lower id could commit later.
func TestEnqueueCommitOrder(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	ctx := context.Background()
	exec(t, p, `CREATE TABLE commit_order (n bigint NOT NULL); INSERT INTO commit_order VALUES (0);
	            CREATE TABLE committed (event_id uuid PRIMARY KEY, n bigint NOT NULL)`)
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range each {
				err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
					var eid string
					if err := tx.QueryRow(ctx, `SELECT outbox_enqueue('Seq', 'u', jsonb_build_object('w', $1::int, 'i', $2::int), 'seq:1')::text`, w, i).Scan(&eid); err != nil {
						return err
					}
					time.Sleep(time.Duration(rnd.IntN(3)) * time.Millisecond)
					_, err := tx.Exec(ctx, `WITH c AS (UPDATE commit_order SET n = n + 1 RETURNING n)
					                        INSERT INTO committed SELECT $1::uuid, n FROM c`, eid)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var bad int64
	if err := p.QueryRow(ctx, `
		SELECT count(*) FROM (
		  SELECT c.n, lag(c.n) OVER (ORDER BY o.id) AS prev
		  FROM outbox AS o JOIN committed AS c USING (event_id)) AS x
		WHERE n < prev`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if n := count(t, p); n != workers*each {
		t.Fatalf("%d events, want %d", n, workers*each)
	}
	if bad != 0 {
		t.Fatalf("%d events of seq:1 have a lower id than an event committed before them", bad)
	}
}

// TestLeadExamplesMatchTheTriggers: the field names of
// testdata/lead-updated.example.json and lead-deleted.example.json (the
// schemas people paste into Paragon) are what the triggers send.
func TestLeadExamplesMatchTheTriggers(t *testing.T) {
	db := testdb.New(t)
	p := db.Pool
	var id int64
	if err := p.QueryRow(context.Background(), `
		INSERT INTO leads (external_id, owner_id, first_name, last_name, company, title, phone, lead_source, status, country,
		                   annual_revenue, number_of_employees, description)
		VALUES ('ext', 'u', 'Sahra', 'Kohrt', 'Menne', 'CTO', '123', 'Webinar', 'Open', 'Germany', 1, 2, 'd') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	exec(t, p, `UPDATE leads SET title = 'VP', phone = NULL, status = 'Working' WHERE id = $1`, id)
	exec(t, p, `DELETE FROM leads WHERE id = $1`, id)
	got := rows(t, p, `WHERE event_name <> 'Lead Created'`)
	for i, file := range []string{"lead-updated", "lead-deleted"} {
		b, err := os.ReadFile("../../testdata/" + file + ".example.json")
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if keys(want) != keys(got[i].Payload) {
			t.Errorf("%s.example.json has fields %s, the trigger sends %s", file, keys(want), keys(got[i].Payload))
		}
		if i == 0 && !reflect.DeepEqual(want["changedFields"], got[i].Payload["changedFields"]) {
			t.Errorf("changedFields: example %v, trigger %v", want["changedFields"], got[i].Payload["changedFields"])
		}
	}
}
