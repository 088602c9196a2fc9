package pgutil

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class is what a database error means for a caller that wants to retry.
type Class int

const (
	// Transient errors go away on their own: a refused or cut connection, a
	// server shutting down, restarting or in crash recovery (57P01-57P03),
	// a terminated backend, a lock timeout, a serialization failure. Retry
	// with backoff.
	Transient Class = iota
	// ReadOnly is a statement refused because the session is on a read-only
	// node (25006: a standby, a demoted primary, default_transaction_read_only).
	// The connection will never accept writes again: drop it, reconnect
	// (target_session_attrs=read-write finds the new primary) and retry.
	ReadOnly
	// Permanent errors need an operator: the database or role does not
	// exist, the password is wrong, a privilege is missing, the schema is
	// missing. Retrying cannot help until someone fixes the cause.
	Permanent
)

func (c Class) String() string {
	switch c {
	case ReadOnly:
		return "read-only"
	case Permanent:
		return "permanent"
	default:
		return "transient"
	}
}

// SQLSTATE codes the relay treats specially.
const (
	CodeReadOnlyTransaction  = "25006" // read_only_sql_transaction
	CodeInvalidAuthorization = "28000" // invalid_authorization_specification (no such role, pg_hba reject)
	CodeInvalidPassword      = "28P01" // invalid_password
	CodeInvalidCatalogName   = "3D000" // invalid_catalog_name: no such database
	CodeInvalidSchemaName    = "3F000" // invalid_schema_name
	CodeInsufficientPriv     = "42501" // insufficient_privilege
	CodeUndefinedTable       = "42P01" // undefined_table
	CodeUndefinedColumn      = "42703" // undefined_column
	CodeUndefinedFunction    = "42883" // undefined_function
	CodeAdminShutdown        = "57P01" // admin_shutdown (also pg_terminate_backend)
	CodeCrashShutdown        = "57P02" // crash_shutdown
	CodeCannotConnectNow     = "57P03" // cannot_connect_now (starting up, recovering)
	CodeLockNotAvailable     = "55P03" // lock_not_available (lock_timeout)
)

// advice says what an operator does about each permanent error.
var advice = map[string]string{
	CodeInvalidCatalogName:   "the database named in DATABASE_URL does not exist: check the name, or create it and run `outbox-relay migrate up`",
	CodeInvalidPassword:      "the server refused the password for the user in DATABASE_URL: check the password (or the secret it comes from)",
	CodeInvalidAuthorization: "the server refused the role in DATABASE_URL (it does not exist, may not log in, or pg_hba.conf has no entry for it): check the user name, or create the role as in sql/roles.sql",
	CodeInsufficientPriv:     "the relay's role lacks a privilege on the outbox tables: grant it as in sql/roles.sql (GRANT outbox_relay TO <role>)",
	CodeInvalidSchemaName:    "the outbox schema is missing: run `outbox-relay migrate up` against this database",
	CodeUndefinedTable:       "the outbox tables are missing: run `outbox-relay migrate up` against this database",
	CodeUndefinedColumn:      "the outbox schema is older than this relay: run `outbox-relay migrate up`",
	CodeUndefinedFunction:    "the outbox schema is older than this relay: run `outbox-relay migrate up`",
}

// SQLState returns err's SQLSTATE, or "" when err carries none.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Classify says whether err is Permanent, ReadOnly or Transient (anything
// unknown, including network errors and nil, is Transient). A context
// cancellation is Transient too; callers check their context first.
func Classify(err error) Class {
	if err == nil {
		return Transient
	}
	code := SQLState(err)
	if code == CodeReadOnlyTransaction || errors.Is(err, pgconn.ErrReadOnlyConnection) {
		return ReadOnly
	}
	if _, ok := advice[code]; ok {
		return Permanent
	}
	return Transient
}

// IsPermanent is Classify(err) == Permanent.
func IsPermanent(err error) bool { return Classify(err) == Permanent }

// IsReadOnly is Classify(err) == ReadOnly.
func IsReadOnly(err error) bool { return Classify(err) == ReadOnly }

// Advice returns what to do about a permanent error, or "" for others.
func Advice(err error) string {
	if !IsPermanent(err) {
		return ""
	}
	return advice[SQLState(err)]
}

// PermanentError wraps a permanent database error with what to do about it.
// Its message is "<advice> (<error>)"; errors.Is/As reach the cause.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return Advice(e.Err) + " (" + e.Err.Error() + ")" }
func (e *PermanentError) Unwrap() error { return e.Err }

// Explain returns a *PermanentError for a permanent err and err otherwise.
func Explain(err error) error {
	if IsPermanent(err) {
		return &PermanentError{Err: err}
	}
	return err
}

// IsConnectionLost reports whether err means the session was lost or never
// established rather than that the statement itself failed: a network error
// (refused, reset, unexpected EOF, timeout), an error pgx marks safe to retry
// (nothing was sent), a connection-exception SQLSTATE (class 08) or a server
// shutting down, crashing or starting (57P01-57P03). The same statement on a
// fresh connection may succeed; a caller waiting for its database (start-up)
// retries these and gives up at once on anything else.
func IsConnectionLost(err error) bool {
	if err == nil {
		return false
	}
	switch code := SQLState(err); {
	case code == CodeAdminShutdown, code == CodeCrashShutdown, code == CodeCannotConnectNow:
		return true
	case len(code) == 5 && code[:2] == "08":
		return true
	case code != "":
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}
