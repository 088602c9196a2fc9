package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/leads"
)

// Leads is a parsed leads CSV in the layout of testdata/leads.csv (the
// header is leads.Columns). The scenarios write these rows as an app would:
// COPY of generated CSV, or one INSERT per lead.
type Leads struct {
	rows     [][]string
	ownerCol int
	extCol   int
	params   [][]any // rows as INSERT arguments, built once
}

// ParseLeads parses a leads CSV and checks its header is leads.Columns.
func ParseLeads(data []byte) (*Leads, error) {
	r := csv.NewReader(bytes.NewReader(data))
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("leads CSV: %w", err)
	}
	cols := strings.Split(leads.Columns, ", ")
	if len(recs) < 2 || !slices.Equal(recs[0], cols) {
		return nil, fmt.Errorf("leads CSV: need a header %q and at least one row", leads.Columns)
	}
	l := &Leads{rows: recs[1:], ownerCol: slices.Index(cols, "owner_id"), extCol: slices.Index(cols, "external_id")}
	l.params = make([][]any, len(l.rows))
	for i, rec := range l.rows {
		p, err := toParams(cols, rec)
		if err != nil {
			return nil, fmt.Errorf("leads CSV row %d: %w", i+2, err)
		}
		l.params[i] = p
	}
	return l, nil
}

// Len is the number of rows.
func (l *Leads) Len() int { return len(l.rows) }

// toParams converts one CSV record to INSERT arguments: an empty field is
// NULL (as COPY reads an unquoted empty field), numbers and created_at are
// typed.
func toParams(cols, rec []string) ([]any, error) {
	out := make([]any, len(cols))
	for i, c := range cols {
		v := rec[i]
		if v == "" {
			continue
		}
		switch c {
		case "annual_revenue", "number_of_employees":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c, err)
			}
			out[i] = n
		case "created_at":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c, err)
			}
			out[i] = t
		default:
			out[i] = v
		}
	}
	return out, nil
}

// CSV returns a CSV with the header and n rows, cycling through the parsed
// rows. When owner is non-nil, row i's owner_id is owner(i).
func (l *Leads) CSV(n int, owner func(i int) string) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(strings.Split(leads.Columns, ", "))
	rec := make([]string, len(l.rows[0]))
	for i := range n {
		copy(rec, l.rows[i%len(l.rows)])
		if owner != nil {
			rec[l.ownerCol] = owner(i)
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return buf.Bytes()
}

// Args returns the INSERT arguments of row i (cycling), with external_id
// replaced by externalID when it is not empty. The slice is new; the values
// are shared.
func (l *Leads) Args(i int, externalID string) []any {
	a := slices.Clone(l.params[i%len(l.params)])
	if externalID != "" {
		a[l.extCol] = externalID
	}
	return a
}

// InsertSQL is a one-lead INSERT into table returning the lead's id.
func InsertSQL(table string) string {
	n := len(strings.Split(leads.Columns, ", "))
	ph := make([]string, n)
	for i := range ph {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	return "INSERT INTO " + pgx.Identifier{table}.Sanitize() + " (" + leads.Columns + ") VALUES (" + strings.Join(ph, ", ") + ") RETURNING id"
}

// copyCSV loads csv into table with COPY ... FROM STDIN (FORMAT csv,
// HEADER), in one transaction, as leads.CopyCSV does for leads.
func copyCSV(ctx context.Context, pool *pgxpool.Pool, table string, data []byte) (int64, error) {
	if table == "leads" {
		return leads.CopyCSV(ctx, pool, bytes.NewReader(data))
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data),
		"COPY "+pgx.Identifier{table}.Sanitize()+" ("+leads.Columns+") FROM STDIN WITH (FORMAT csv, HEADER true)")
	if err != nil {
		return 0, fmt.Errorf("COPY into %s: %w", table, err)
	}
	return tag.RowsAffected(), nil
}
