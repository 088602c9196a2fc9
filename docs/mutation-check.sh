#!/usr/bin/env bash
# Breaks each guarantee of docs/RELIABILITY.md once, in a scratch git
# worktree, and checks that the test named for it fails. Prints one line per
# mutation: CAUGHT (the test failed, as it must) or MISSED.
# Usage: TEST_DATABASE_URL=... bash docs/mutation-check.sh
#        ONLY='claim|record' ... runs only the mutations whose name matches
#        that (bash) regular expression.
set -uo pipefail
repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)/mut
git -C "$repo" worktree add -q --detach "$work" HEAD
trap 'git -C "$repo" worktree remove --force "$work"' EXIT
cd "$work"

# mutate NAME FILE PYTHON-OLD PYTHON-NEW PACKAGE TEST-REGEX [COUNT]
mutate() {
  local name=$1 file=$2 old=$3 new=$4 pkg=$5 run=$6 count=${7:-1}
  [[ -z ${ONLY:-} || $name =~ $ONLY ]] || return 0
  git checkout -q -- .
  python3 - "$file" "$old" "$new" <<'PY' || { echo "SKIPPED  $name (pattern not found)"; return; }
import sys
p, old, new = sys.argv[1:]
s = open(p).read()
# Several replacements may be given, separated by lines of "@@".
for o, n in zip(old.split("\n@@\n"), new.split("\n@@\n")):
    if o not in s: sys.exit(1)
    s = s.replace(o, n)
open(p, 'w').write(s)
PY
  # Statements in sql/queries reach Go through the code sqlc generates.
  case $file in
  sql/queries/*.sql) sql/sqlc.sh generate >/tmp/mutation.out 2>&1 || { echo "BROKEN   $name (sqlc generate failed: $(tail -1 /tmp/mutation.out))"; return; } ;;
  esac
  if go test -count="$count" -run "$run" "$pkg" >/tmp/mutation.out 2>&1; then
    echo "MISSED   $name ($run still passes)"
  else
    echo "CAUGHT   $name by $run"
  fi
}

mutate "record without compare-and-set" sql/queries/record_results.sql \
  "    AND o.attempts = r.attempt
    AND ((o.status = 'in_flight' AND o.lease_owner = sqlc.arg(relay_id)::text)
         OR (o.status = 'pending' AND o.attempts_base < o.attempts))" "" \
  ./internal/outbox 'TestLateResultAfterRescue|TestTerminalStatesStayTerminal'
mutate "rescuer resets by id without lock or re-check" sql/queries/rescue_expired.sql \
  "  FOR UPDATE SKIP LOCKED
@@
  WHERE o.id = ANY (ARRAY(SELECT id FROM expired))
    AND o.status = 'in_flight' AND o.lease_expires_at < now()" "
@@
  WHERE o.id = ANY (ARRAY(SELECT id FROM expired))" ./internal/outbox TestRescueRacingCompletionNeverRedelivers 5
mutate "claim without FOR UPDATE SKIP LOCKED" sql/queries/claim.sql \
  "  LIMIT greatest(sqlc.arg(max_rows)::int - (SELECT count(*) FROM fair), 0)
  FOR UPDATE SKIP LOCKED" "  LIMIT greatest(sqlc.arg(max_rows)::int - (SELECT count(*) FROM fair), 0)" \
  ./internal/outbox TestConcurrentClaimsTakeAtMostLimitAndNeverTheSameRow 3
mutate "release spends the attempt" sql/queries/release.sql "    attempts         = o.attempts - 1," "" \
  ./internal/outbox TestReleaseGivesBackWithoutSpendingAnAttempt
mutate "no fair pass in the claim" internal/outbox/outbox.go \
  "FairUsers: 100, FairPerUser: 10" "FairUsers: 100, FairPerUser: 0" ./internal/outbox TestClaimIsFairAcrossConnectedUsers
mutate "circuit breaker never opens" internal/relay/breaker.go \
  "if b.streak >= b.threshold {" "if false {" ./internal/relay 'TestOutageDoesNotKillEvents|TestOneUsersBacklogSurvivesAnOutage'
mutate "Retry-After ignored" internal/relay/retry_policy.go \
  "out.RetryDelay = max(d, res.RetryAfter)" "out.RetryDelay = d" ./internal/relay TestRetries500And429UntilDelivered
mutate "leases not extended" internal/relay/lease_extender.go \
  "	ext, err := s.store.ExtendLeasesOf(ctx, s.cfg.RelayID, ids, s.cfg.Lease)" \
  "	ext, err := s.store.ExtendLeasesOf(ctx, s.cfg.RelayID, nil, s.cfg.Lease)" \
  ./internal/relay 'TestLiveRelayKeepsItsLease|TestLeaseExtenderAlone'
mutate "unsent rows not released at shutdown" internal/relay/pipeline.go \
  "	r.release(bg, toRelease)" "	_ = toRelease" ./internal/relay TestGracefulShutdownReleasesUnsentRowsWithoutSpendingAttempts
mutate "payload decoded through float64" internal/outbox/outbox.go \
  "		e.Payload = []byte(row.Payload)
@@
import (" "		var v any
		_ = json.Unmarshal([]byte(row.Payload), &v)
		e.Payload, _ = json.Marshal(v)
@@
import (
	\"encoding/json\"" ./internal/relay TestPoisonEvents
mutate "refused (401) attempts count toward max attempts" internal/relay/retry_policy.go \
  "out.Uncounted = configProblem || c.BreakerOpen || shuttingDown" \
  "out.Uncounted = false" ./internal/relay 'TestRotatedKeyDoesNotKillEvents|TestRetryPolicyFollowsTheReliabilityTable'
mutate "rejected (4xx) events retried instead of dead" internal/paragon/client.go \
  "	case status >= 400 && status < 500:
		return Rejected, false" "	case status >= 400 && status < 500:
		return Retry, false" ./internal/relay TestRejectedEventGoesDeadAfterOneAttemptWithoutBlockingOthers
mutate "relay exits when the database is down at start-up" internal/relayrun/relayrun.go \
  "OpenPoolWaiting(ctx, cfg, PoolMaxConns, log)" "OpenPool(ctx, cfg, PoolMaxConns)" ./cmd/outbox-relay TestRelayWaitsOutARestartingServer
mutate "retryable failures summarised only when another batch arrives" internal/relay/log_throttle.go \
  "		s.timer = s.after(s.lastLog.Add(s.every).Sub(now), s.onTimer)" "" ./internal/relay TestFailureSummary
mutate "re-check finds rows behind the low-water mark but never lowers it" internal/outbox/outbox.go \
  "	s.mark = behind
	s.markGen++
	return true, nil" "	return true, nil" ./internal/outbox TestNothingIsSkippedBehindTheMark
mutate "claim runs its fair pass when the due rows fit one batch" sql/queries/claim.sql \
  "     AND (SELECT due FROM backlog) > sqlc.arg(max_rows)::int
" "" ./internal/outbox TestClaimWorkStaysFlatWhileASnapshotIsHeld
mutate "maintenance statements not paced" internal/backoff/backoff.go \
  "	return min(max(interval, PaceFactor*took), PaceCap*interval)" "	return interval" ./internal/backoff TestPacedStretchesTheIntervalWithTheTaskUpToTheCap
mutate "skipped events never purged" internal/operator/purge.go \
  "		{\"skipped\", q.PurgeSkipped, deadOlderThan},
" "" ./internal/operator TestPurgeWithDefaults
mutate "a claim raises the mark over a lowering it never saw" internal/outbox/outbox.go \
  "	if gen == s.markGen && !oldestFill.IsZero()" "	if !oldestFill.IsZero()" ./internal/outbox TestAClaimDoesNotUndoTheRechecksLowering
mutate "the mark kept while the re-check keeps failing" internal/relay/rechecker.go \
  "				s.store.DropMark()
" "" ./internal/relay TestRecheckerDropsTheMarkWhenTheRecheckKeepsFailing
mutate "purge ignores a key's event being written" sql/queries/purge_dead.sql \
  "         AND pg_try_advisory_xact_lock(1869967988, hashtext(outbox.ordering_key)))" "         )" \
  ./internal/operator TestPurgeKeepsADeadHeadWhileItsKeysNextEventIsBeingWritten
mutate "relay sessions allow sequential scans" internal/relayrun/pool.go \
  "NoSeqScan: true," "NoSeqScan: false," ./internal/relayrun TestCachedGenericPlansNeverScanTheOutbox
