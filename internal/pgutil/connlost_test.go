package pgutil_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

func TestIsConnectionLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"unexpected EOF, wrapped", fmt.Errorf("check the relay's claim statement: %w", io.ErrUnexpectedEOF), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure class 08", &pgconn.PgError{Code: "08006"}, true},
		{"insufficient privilege", &pgconn.PgError{Code: "42501"}, false},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"plain error", errors.New("database schema is behind this binary"), false},
	} {
		if got := pgutil.IsConnectionLost(tc.err); got != tc.want {
			t.Errorf("%s: IsConnectionLost(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
