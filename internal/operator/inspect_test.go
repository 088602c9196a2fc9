package operator_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
	"github.com/paragon-outbox/outbox-relay/internal/operator/operatortest"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestParseRef(t *testing.T) {
	good := []struct {
		in   string
		want operator.Ref
	}{
		{"5000000001", operator.Ref{Kind: operator.RefOutboxID, ID: 5000000001}},
		{" 42 ", operator.Ref{Kind: operator.RefOutboxID, ID: 42}},
		{"lead:3000000000", operator.Ref{Kind: operator.RefLeadID, ID: 3000000000}},
		{"0190F3C4-7A1B-7C2D-8E3F-0123456789AB", operator.Ref{Kind: operator.RefEventID, EventID: "0190f3c4-7a1b-7c2d-8e3f-0123456789ab"}},
		{"0190f3c47a1b7c2d8e3f0123456789ab", operator.Ref{Kind: operator.RefEventID, EventID: "0190f3c4-7a1b-7c2d-8e3f-0123456789ab"}},
	}
	for _, tc := range good {
		got, err := operator.ParseRef(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "abc", "lead:", "lead:x", "lead:-1", "lead:0", "0", "-5", "+5", "99999999999999999999", "0190f3c4-7a1b", "lead: 5"} {
		if got, err := operator.ParseRef(bad); !errors.Is(err, operator.ErrBadRef) {
			t.Errorf("ParseRef(%q) = %+v, %v; want ErrBadRef", bad, got, err)
		}
	}
}

func TestInspectFindsEventByEachKindOfRef(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	other := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_other", Status: "delivered", Attempts: 1, DeliveredAgo: time.Minute})
	row := operatortest.Add(t, db.Pool, operatortest.Event{
		User: "usr_1", Status: "dead", Attempts: 3, LastError: "paragon answered 500 Internal Server Error: boom", HTTPStatus: 500,
		CreatedAgo: 2 * time.Hour,
	})
	res, err := operator.Redrive(ctx, db.Pool, operator.Filter{IDs: []int64{row.ID}}, "alice", "Paragon outage over", false)
	if err != nil || res.Moved != 1 {
		t.Fatalf("redrive: %+v %v", res, err)
	}

	for _, ref := range []string{
		strconv.FormatInt(row.ID, 10),
		"lead:" + strconv.FormatInt(row.LeadID, 10),
		row.EventID,
		strings.ToUpper(row.EventID),
	} {
		t.Run(ref, func(t *testing.T) {
			in, err := operator.Inspect(ctx, db.Pool, ref)
			if err != nil {
				t.Fatal(err)
			}
			e := in.Event
			if e.ID != row.ID || e.EventID != row.EventID || e.LeadID == nil || *e.LeadID != row.LeadID {
				t.Fatalf("event %+v, want ids %+v", e, row)
			}
			if e.EventName != "Lead Created" || e.UserID != "usr_1" || e.Status != "pending" || e.Attempts != 3 || e.AttemptsBase != 3 {
				t.Errorf("event state %+v", e)
			}
			if e.LastError != nil || e.LastHTTPStatus != nil || e.DeliveredAt != nil || e.LeaseOwner != nil || e.ClaimedAt != nil || e.LeaseExpiresAt != nil {
				t.Errorf("re-driven event keeps stale columns: %+v", e)
			}
			if age := in.At.Sub(e.CreatedAt); age < 2*time.Hour-time.Minute || age > 2*time.Hour+time.Minute {
				t.Errorf("created %s before the inspection, want 2h", age)
			}
			if d := in.At.Sub(e.NextAttemptAt); d < 0 || d > time.Minute {
				t.Errorf("next_attempt_at %s, want about now %s", e.NextAttemptAt, in.At)
			}
			var payload map[string]any
			if err := json.Unmarshal(e.Payload, &payload); err != nil {
				t.Fatalf("payload %s: %v", e.Payload, err)
			}
			if payload["eventId"] != row.EventID || payload["lastName"] != "Fixture" || payload["leadId"] != float64(row.LeadID) {
				t.Errorf("payload %s", e.Payload)
			}
			if len(in.Attempts) != 3 {
				t.Fatalf("attempts %+v, want 3", in.Attempts)
			}
			for i, a := range in.Attempts {
				if a.Attempt != int32(i+1) || a.Error == nil || *a.Error != "paragon answered 500 Internal Server Error: boom" ||
					a.HTTPStatus == nil || *a.HTTPStatus != 500 || a.FinishedAt == nil || a.RelayID == nil || *a.RelayID != "relay-a" {
					t.Errorf("attempt %d: %+v", i+1, a)
				}
			}
			if len(in.Redrives) != 1 {
				t.Fatalf("redrives %+v, want 1", in.Redrives)
			}
			rd := in.Redrives[0]
			if rd.RedrivenBy != "alice" || rd.Reason == nil || *rd.Reason != "Paragon outage over" || rd.PreviousStatus != "dead" ||
				rd.PreviousAttempts != 3 || rd.PreviousLastError == nil || !strings.Contains(*rd.PreviousLastError, "boom") ||
				rd.PreviousLastHTTPStatus == nil || *rd.PreviousLastHTTPStatus != 500 {
				t.Errorf("redrive %+v", rd)
			}
			if len(in.OtherEventsOfLead) != 0 {
				t.Errorf("other events of lead: %v", in.OtherEventsOfLead)
			}
		})
	}

	// The other event is not confused with this one, and has no history
	// beyond its one successful attempt.
	in, err := operator.Inspect(ctx, db.Pool, strconv.FormatInt(other.ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	if in.Event.Status != "delivered" || in.Event.DeliveredAt == nil || len(in.Attempts) != 1 || in.Attempts[0].Error != nil ||
		*in.Attempts[0].HTTPStatus != 200 || len(in.Redrives) != 0 {
		t.Errorf("delivered event: %+v", in)
	}
}

func TestInspectNotFoundAndBadRef(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	row := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_1"})
	for _, ref := range []string{
		strconv.FormatInt(row.ID+1000, 10),
		// The lead id is not an outbox id: plain digits never match leads.
		strconv.FormatInt(row.LeadID, 10),
		"lead:" + strconv.FormatInt(row.ID, 10),
		"0190f3c4-7a1b-7c2d-8e3f-0123456789ab",
	} {
		_, err := operator.Inspect(ctx, db.Pool, ref)
		if !errors.Is(err, operator.ErrNotFound) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Inspect(%q) err = %v, want ErrNotFound naming it", ref, err)
		}
	}
	if _, err := operator.Inspect(ctx, db.Pool, "lead:abc"); !errors.Is(err, operator.ErrBadRef) {
		t.Errorf("bad ref: %v", err)
	}
}

// TestInspectLeadWithTwoEvents: a lead written twice has two events;
// lead:<id> shows the newest and lists the other.
func TestInspectLeadWithTwoEvents(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	row := operatortest.Add(t, db.Pool, operatortest.Event{User: "usr_1"})
	var second int64
	err := db.Pool.QueryRow(ctx, `
		INSERT INTO outbox (event_name, user_id, lead_id, payload)
		VALUES ('Lead Created', 'usr_1', $1, '{"again": true}')
		RETURNING id`, row.LeadID).Scan(&second)
	if err != nil {
		t.Fatal(err)
	}
	in, err := operator.Inspect(ctx, db.Pool, "lead:"+strconv.FormatInt(row.LeadID, 10))
	if err != nil {
		t.Fatal(err)
	}
	if in.Event.ID != second || string(in.Event.Payload) != `{"again": true}` || len(in.OtherEventsOfLead) != 1 || in.OtherEventsOfLead[0] != row.ID {
		t.Fatalf("inspection %+v", in)
	}
}
