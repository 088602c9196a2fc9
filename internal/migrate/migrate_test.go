package migrate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestLeadTriggerWritesTheAppEventPayload checks the payload the trigger
// builds, whatever the session's time zone.
func TestLeadTriggerWritesTheAppEventPayload(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET TimeZone = 'Asia/Shanghai'`); err != nil {
		t.Fatal(err)
	}
	var leadID int64
	err = conn.QueryRow(ctx, `
		INSERT INTO leads (external_id, owner_id, first_name, last_name, email, company, title, phone,
		                   lead_source, status, country, annual_revenue, number_of_employees, description, created_at)
		VALUES ('ext-1', 'usr_1', '', 'Ørsted "Q"', 'q@example.com', 'A, B & C', NULL, '', 'Web', 'Open', 'Česko',
		        9007199254740993, 12, E'line one\nline two', '2026-09-01T00:12:19.678Z')
		RETURNING id`).Scan(&leadID)
	if err != nil {
		t.Fatal(err)
	}
	var payload, eventID, userID, name, status string
	var lead int64
	err = conn.QueryRow(ctx, `SELECT payload::text, event_id::text, user_id, event_name, status, lead_id FROM outbox`).
		Scan(&payload, &eventID, &userID, &name, &status, &lead)
	if err != nil {
		t.Fatal(err)
	}
	if name != "Lead Created" || userID != "usr_1" || status != "pending" || lead != leadID {
		t.Fatalf("outbox row: name=%q user=%q status=%q lead=%d", name, userID, status, lead)
	}
	for _, want := range []string{
		`"createdAt": "2026-09-01T00:12:19.678Z"`, // UTC, milliseconds, despite the session zone
		`"annualRevenue": 9007199254740993`,       // every digit
		`"numberOfEmployees": 12`,
		`"lastName": "Ørsted \"Q\""`,
		`"company": "A, B & C"`,
		`"description": "line one\nline two"`,
		`"eventId": "` + eventID + `"`,
		`"externalId": "ext-1"`,
	} {
		if !strings.Contains(payload, want) {
			t.Errorf("payload lacks %s: %s", want, payload)
		}
	}
	for _, absent := range []string{`"firstName"`, `"title"`, `"phone"`, `"ownerId"`, `null`} {
		if strings.Contains(payload, absent) {
			t.Errorf("payload should not contain %s: %s", absent, payload)
		}
	}
	if eventID[14] != '7' {
		t.Errorf("eventId %s is not a version 7 UUID", eventID)
	}
}

func TestLeadWithoutOwnerIsRefusedAndLeavesNoEvent(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) VALUES ('  ', 'x')`)
	if err == nil || !strings.Contains(err.Error(), "leads_owner_id_not_blank") {
		t.Fatalf("blank owner_id: err = %v, want the check constraint", err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("outbox rows = %d (%v), want 0", n, err)
	}
}

func TestMultiRowInsertWritesOneEventPerLead(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name) SELECT 'usr_' || g, 'L' || g FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	var n, distinct int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id) FROM outbox`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 50 || distinct != 50 {
		t.Fatalf("outbox rows %d, distinct event ids %d; want 50 and 50", n, distinct)
	}
}

func TestDownThenUp(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if err := migrate.Check(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	if err := migrate.Down(ctx, db.Pool, nil); err != nil {
		t.Fatal(err)
	}
	if err := migrate.Check(ctx, db.Pool); err == nil {
		t.Fatal("Check passed on a rolled-back schema")
	}
	if n, err := migrate.Up(ctx, db.Pool, nil); err != nil || n == 0 {
		t.Fatalf("up: %d %v", n, err)
	}
	if err := migrate.Check(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
}

// TestCheckIsReadOnly: checking an unmigrated database reports every
// version missing and creates nothing (the relay role may not CREATE).
func TestCheckIsReadOnly(t *testing.T) {
	db := testdb.NewEmpty(t)
	ctx := context.Background()
	err := migrate.Check(ctx, db.Pool)
	if err == nil || !strings.Contains(err.Error(), "migrate up") {
		t.Fatalf("Check on an empty database: %v", err)
	}
	var tables int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("Check created %d tables", tables)
	}
}

// TestStatementTriggerKeepsRowOrderAndTheLeadAsWritten: the Lead Created
// trigger fires once per statement (migration 00007). A multi-row INSERT
// gets one event per lead, outbox ids in the order the leads were inserted,
// each payload's eventId equal to its row's event_id, and the payload is
// the lead as written, after a BEFORE trigger changed it. A rolled-back
// statement leaves no event.
func TestStatementTriggerKeepsRowOrderAndTheLeadAsWritten(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
		CREATE FUNCTION upper_company() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN NEW.company := upper(NEW.company); RETURN NEW; END $$;
		CREATE TRIGGER leads_upper BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION upper_company();`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO leads (owner_id, last_name, company) SELECT 'usr_' || (g % 3), 'L' || g, 'acme ' || g FROM generate_series(1, 300) g ORDER BY g DESC`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT o.lead_id, o.event_id::text = o.payload->>'eventId', o.payload->>'company', o.payload->>'lastName', l.company, o.user_id = l.owner_id
		FROM outbox AS o JOIN leads AS l ON l.id = o.lead_id ORDER BY o.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prev int64
	n := 0
	for rows.Next() {
		var lead int64
		var sameID, sameUser bool
		var company, last, leadCompany string
		if err := rows.Scan(&lead, &sameID, &company, &last, &leadCompany, &sameUser); err != nil {
			t.Fatal(err)
		}
		n++
		if lead <= prev {
			t.Fatalf("outbox row %d is for lead %d after lead %d: events out of insertion order", n, lead, prev)
		}
		prev = lead
		if !sameID || !sameUser {
			t.Fatalf("lead %d: payload eventId matches event_id %v, user_id matches owner_id %v", lead, sameID, sameUser)
		}
		if company != leadCompany || company != strings.ToUpper(company) || last == "" {
			t.Fatalf("lead %d: payload company %q lastName %q, lead as written has company %q", lead, company, last, leadCompany)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if n != 300 {
		t.Fatalf("%d events for 300 leads", n)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO leads (owner_id) SELECT 'usr_x' FROM generate_series(1, 10)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var total int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 300 {
		t.Fatalf("%d events after a rolled-back insert of 10 leads, want 300", total)
	}
}

// TestConsoleIndexesSettled: migration 00017 replaces the console's
// non-partial user and event-name indexes by partial ones on settled events
// (delivered, dead, skipped); down brings the old ones back.
func TestConsoleIndexesSettled(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	indexes := func() map[string]string {
		rows, err := db.Pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
		  WHERE tablename = 'outbox' AND indexname IN ('outbox_user_id', 'outbox_event_name', 'outbox_user_id_settled', 'outbox_event_name_settled')`)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for rows.Next() {
			var n, def string
			if err := rows.Scan(&n, &def); err != nil {
				t.Fatal(err)
			}
			m[n] = def
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	const settled = "WHERE (status = ANY (ARRAY['delivered'::text, 'dead'::text, 'skipped'::text]))"
	up := indexes()
	if len(up) != 2 || !strings.HasSuffix(up["outbox_user_id_settled"], "(user_id) "+settled) ||
		!strings.HasSuffix(up["outbox_event_name_settled"], "(event_name) "+settled) {
		t.Fatalf("after up: %v", up)
	}
	if err := migrate.DownTo(ctx, db.Pool, 16, nil); err != nil {
		t.Fatal(err)
	}
	down := indexes()
	if len(down) != 2 || !strings.HasSuffix(down["outbox_user_id"], "btree (user_id)") ||
		!strings.HasSuffix(down["outbox_event_name"], "btree (event_name)") {
		t.Fatalf("after down to 16: %v", down)
	}
	if _, err := migrate.Up(ctx, db.Pool, nil); err != nil {
		t.Fatal(err)
	}
	if again := indexes(); len(again) != 2 || again["outbox_user_id_settled"] == "" {
		t.Fatalf("after up again: %v", again)
	}
}
