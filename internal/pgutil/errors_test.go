package pgutil_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want pgutil.Class
	}{
		{nil, pgutil.Transient},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), pgutil.Transient},
		{&pgconn.PgError{Code: "57P01"}, pgutil.Transient},
		{&pgconn.PgError{Code: "57P03"}, pgutil.Transient},
		{&pgconn.PgError{Code: "55P03"}, pgutil.Transient},
		{&pgconn.PgError{Code: "40001"}, pgutil.Transient},
		{&pgconn.PgError{Code: "25006"}, pgutil.ReadOnly},
		{fmt.Errorf("connect: %w", pgconn.ErrReadOnlyConnection), pgutil.ReadOnly},
		{&pgconn.PgError{Code: "3D000"}, pgutil.Permanent},
		{&pgconn.PgError{Code: "28P01"}, pgutil.Permanent},
		{&pgconn.PgError{Code: "28000"}, pgutil.Permanent},
		{fmt.Errorf("claim: %w", &pgconn.PgError{Code: "42501"}), pgutil.Permanent},
		{&pgconn.PgError{Code: "42P01"}, pgutil.Permanent},
	}
	for _, tc := range cases {
		if got := pgutil.Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
	err := pgutil.Explain(fmt.Errorf("ping: %w", &pgconn.PgError{Code: "3D000", Message: "database \"x\" does not exist"}))
	var pe *pgutil.PermanentError
	if !errors.As(err, &pe) || pgutil.SQLState(err) != "3D000" {
		t.Fatalf("Explain lost the cause: %v", err)
	}
	if pgutil.Explain(errors.New("refused")).Error() != "refused" {
		t.Fatal("Explain changed a transient error")
	}
}
