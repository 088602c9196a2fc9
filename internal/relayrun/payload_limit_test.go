package relayrun

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/config"
	"github.com/paragon-outbox/outbox-relay/internal/testdb"
	"github.com/paragon-outbox/outbox-relay/internal/testutil"
)

// TestPayloadLimitFromTheDatabase: the relay's payload limit is the one the
// database enforces (outbox_settings), lowered by RELAY_MAX_PAYLOAD_BYTES
// only; a higher configured value is refused with a warning.
func TestPayloadLimitFromTheDatabase(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	var logs testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if n, err := payloadLimit(ctx, db.Pool, config.DefaultMaxPayloadBytes, log); err != nil || n != 1<<20 {
		t.Fatalf("default: %d %v, want 1 MiB", n, err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE outbox_settings SET max_payload_bytes = 4096`); err != nil {
		t.Fatal(err)
	}
	if n, err := payloadLimit(ctx, db.Pool, config.DefaultMaxPayloadBytes, log); err != nil || n != 4096 {
		t.Fatalf("database 4096, not configured: %d %v", n, err)
	}
	if n, err := payloadLimit(ctx, db.Pool, 2048, log); err != nil || n != 2048 {
		t.Fatalf("configured lower: %d %v", n, err)
	}
	if logs.String() != "" {
		t.Fatalf("unexpected warning: %s", logs.String())
	}
	if n, err := payloadLimit(ctx, db.Pool, 8192, log); err != nil || n != 4096 || !strings.Contains(logs.String(), "above the database's limit") {
		t.Fatalf("configured higher: %d %v, log %q", n, err, logs.String())
	}
}
