#!/usr/bin/env bash
# Runs the pinned sqlc (tools/sqlc/go.mod) from the repository root:
#   sql/sqlc.sh generate   rewrite internal/dbsqlc from sql/queries (make generate)
#   sql/sqlc.sh diff       fail if internal/dbsqlc is not what generate writes
#   sql/sqlc.sh vet        PREPARE every statement on a scratch database
#                          migrated to the current migrations (rule
#                          sqlc/db-prepare in sqlc.yaml)
# generate and diff need no database. vet creates a database named
# outbox_sqlc_vet_<pid> on the server of TEST_DATABASE_URL (or DATABASE_URL),
# applies the embedded migrations, and drops it when done, whatever
# happens; concurrent runs never share one.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
# `go run -modfile` builds sqlc from its own module, so its dependencies
# never enter the relay's go.mod; the build cache makes later runs fast.
sqlc() { "$GO" run -modfile=tools/sqlc/go.mod github.com/sqlc-dev/sqlc/cmd/sqlc "$@"; }

cmd=${1:?usage: sql/sqlc.sh generate|diff|vet}
case $cmd in
generate | diff)
  sqlc "$cmd"
  ;;
vet)
  server=${TEST_DATABASE_URL:-${DATABASE_URL:-}}
  if [ -z "$server" ]; then
    echo "sqlc vet needs a PostgreSQL server: set TEST_DATABASE_URL (or DATABASE_URL)" >&2
    exit 2
  fi
  name=outbox_sqlc_vet_$$
  trap '"$GO" run ./internal/pgutil/scratchdb drop "$server" "$name"' EXIT
  url=$("$GO" run ./internal/pgutil/scratchdb create "$server" "$name")
  SQLC_VET_DATABASE_URL=$url sqlc vet
  ;;
*)
  echo "usage: sql/sqlc.sh generate|diff|vet" >&2
  exit 2
  ;;
esac
