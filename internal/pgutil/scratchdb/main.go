// Command scratchdb creates and drops the migrated scratch database that
// `sqlc vet` prepares every statement on (sql/sqlc.sh):
//
//	go run ./internal/pgutil/scratchdb create SERVER_URL NAME  # prints the new database's URL
//	go run ./internal/pgutil/scratchdb drop SERVER_URL NAME
//
// create drops NAME if it exists, creates it empty and applies every
// embedded migration. It is a development tool; the relay never runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/migrate"
	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scratchdb:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 3 || (args[0] != "create" && args[0] != "drop") {
		return fmt.Errorf("usage: scratchdb create|drop SERVER_URL NAME")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server, name := args[1], args[2]
	if args[0] == "drop" {
		return pgutil.Drop(ctx, server, name)
	}
	url, err := pgutil.Recreate(ctx, server, name)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := migrate.Up(ctx, pool, nil); err != nil {
		_ = pgutil.Drop(ctx, server, name)
		return err
	}
	fmt.Println(url)
	return nil
}
