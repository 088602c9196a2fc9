// Package leads writes leads into the app's leads table the way an app
// would, through SQL, so that the outbox trigger creates their App Events.
// Used by the demo, the benchmarks and tests; the relay itself never writes
// leads.
package leads

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

// Columns are the leads columns in the order of leads.csv's header.
const Columns = "external_id, owner_id, first_name, last_name, email, company, title, phone, lead_source, status, country, annual_revenue, number_of_employees, description, created_at"

// CopyCSV loads a CSV with a header row (the layout of leads.csv) into leads
// with `COPY leads (...) FROM STDIN (FORMAT csv, HEADER true)` in one
// transaction: Postgres parses the CSV, row triggers fire, and either every
// lead and its outbox row is committed or none is. Returns rows loaded.
func CopyCSV(ctx context.Context, pool *pgxpool.Pool, csv io.Reader) (int64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("load leads: %w", err)
	}
	defer conn.Release()
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, csv, sqlfiles.CopyLeadsCSV(Columns))
	if err != nil {
		return 0, fmt.Errorf("load leads (COPY): %w", err)
	}
	return tag.RowsAffected(), nil
}
