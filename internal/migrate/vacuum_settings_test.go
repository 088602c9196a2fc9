package migrate_test

import (
	"context"
	"slices"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/testdb"
)

// TestQueueTablesHaveTheirVacuumSettings: the per-table autovacuum settings
// of migrations 00001 and 00011 (explained there and in
// docs/RELIABILITY.md) are in place.
func TestQueueTablesHaveTheirVacuumSettings(t *testing.T) {
	db := testdb.New(t)
	want := map[string][]string{
		"outbox": {"fillfactor=80", "autovacuum_vacuum_scale_factor=0.02", "autovacuum_analyze_scale_factor=0.02",
			"autovacuum_vacuum_threshold=1000", "autovacuum_vacuum_cost_limit=2000"},
		"outbox_attempts": {"autovacuum_vacuum_scale_factor=0.02", "autovacuum_analyze_scale_factor=0.02",
			"autovacuum_vacuum_threshold=1000", "autovacuum_vacuum_cost_limit=2000"},
	}
	for table, opts := range want {
		var got []string
		if err := db.Pool.QueryRow(context.Background(), `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $1::regclass`, table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		for _, o := range opts {
			if !slices.Contains(got, o) {
				t.Errorf("%s: reloptions %v lack %s", table, got, o)
			}
		}
	}
}
