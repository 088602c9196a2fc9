package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/status"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestStatusNamesTheHolderOfTheXminHorizon: with a REPEATABLE READ
// transaction open, `status` names it (text and JSON) and reports the dead
// tuples it keeps; without one it says nothing holds the horizon.
func TestStatusNamesTheHolderOfTheXminHorizon(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	text := func() (string, *status.Report) {
		rep, err := status.Collect(ctx, db.Pool, 5)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := rep.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(b.String()), " "), rep
	}
	if out, _ := text(); !strings.Contains(out, "xmin held by nothing") {
		t.Fatalf("idle database: %s", out)
	}
	holder, err := pgx.Connect(ctx, db.URL+"&application_name=pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "SELECT 1 FROM outbox LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	out, rep := text()
	if !strings.Contains(out, "xmin held by session pid") || !strings.Contains(out, "application pg_dump") || !strings.Contains(out, "dead tuples") {
		t.Fatalf("status does not name the open transaction:\n%s", out)
	}
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var js struct {
		Horizon struct {
			Holders []struct {
				Holder     string   `json:"holder"`
				AgeSeconds *float64 `json:"age_seconds"`
			} `json:"holders"`
			DeadTuples map[string]int64 `json:"dead_tuples"`
		} `json:"xmin_horizon"`
	}
	if err := json.Unmarshal(b.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Horizon.Holders) == 0 || js.Horizon.Holders[0].Holder != "session" || js.Horizon.Holders[0].AgeSeconds == nil {
		t.Fatalf("-json xmin_horizon: %s", b.String())
	}
	if _, ok := js.Horizon.DeadTuples["outbox"]; !ok {
		t.Fatalf("-json xmin_horizon.dead_tuples: %s", b.String())
	}
}

// TestStatusWithoutTheHorizonFunction: a role that may read the outbox but
// not call outbox_xmin_horizon() (sql/roles.sql not re-run after upgrading)
// still gets its status, with the reason the horizon is unknown.
func TestStatusWithoutTheHorizonFunction(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	role := fmt.Sprintf("status_nohorizon_%d", time.Now().UnixNano())
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + role,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = db.Pool.Exec(context.Background(), "DROP ROLE "+role)
	})
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rep, err := status.Collect(ctx, pool, 5)
	if err != nil {
		t.Fatalf("status failed for want of the horizon function: %v", err)
	}
	if !strings.Contains(rep.Horizon.Error, "42501") {
		t.Fatalf("horizon error %q, want permission denied (42501)", rep.Horizon.Error)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "re-run sql/roles.sql") {
		t.Fatalf("status does not say what to do:\n%s", b.String())
	}
}
