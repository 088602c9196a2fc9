// Package pgutil is the one place that knows how Postgres fails: it
// classifies database errors (permanent, read-only node, transient; see
// Classify), configures connection pools to survive failover (NewPool), and
// has small helpers for creating scratch databases on the server a
// connection string points at (benchmarks, demos, tests and sqlc vet,
// see scratchdb/).
package pgutil

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"

	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

// WithDatabase returns connString with its database name replaced by name.
// It accepts URL (postgres://…) and key=value forms.
func WithDatabase(connString, name string) (string, error) {
	if _, err := pgx.ParseConfig(connString); err != nil {
		return "", fmt.Errorf("connection string does not parse: %w", err)
	}
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return connString + " dbname=" + name, nil
}

// Recreate drops database name (terminating its sessions) and creates it
// empty, connecting through connString. It returns the new database's
// connection string.
func Recreate(ctx context.Context, connString, name string) (string, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sqlfiles.DropDatabase(name)); err != nil {
		return "", fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, sqlfiles.CreateDatabase(name)); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return WithDatabase(connString, name)
}

// Drop removes database name if it exists.
func Drop(ctx context.Context, connString, name string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sqlfiles.DropDatabase(name))
	return err
}
