package relay_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paragon-outbox/outbox-relay/internal/relay"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestHorizonAlone: the horizon service publishes 0 while nothing holds the
// database's xmin horizon, the age of a REPEATABLE READ transaction's
// snapshot while one is open, and 0 again once it ends; and the outbox
// tables' dead tuples.
func TestHorizonAlone(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	m := relay.NewMetrics(nil)
	s := relay.NewHorizon(db.Pool, relay.HorizonConfig{Interval: 10 * time.Millisecond, Metrics: m}, nil)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "the first read sets the dead tuples of the outbox", func() bool { return promtest.CollectAndCount(m.DeadTuples) > 0 })
	if age := promtest.ToFloat64(m.XminHorizonAgeSeconds); age != 0 {
		t.Fatalf("horizon age %v with no transaction open, want 0", age)
	}

	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM outbox"); err != nil { // takes the snapshot
		t.Fatal(err)
	}
	waitFor(t, "the open snapshot's age is published", func() bool { return promtest.ToFloat64(m.XminHorizonAgeSeconds) > 0 })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the age falls back to 0 once the transaction ended", func() bool { return promtest.ToFloat64(m.XminHorizonAgeSeconds) == 0 })
	s.Stop()
	s.Stop() // safe twice
}
