package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
)

// retryListMax is how many re-driven events retry lists one by one.
const retryListMax = 100

// runRetry re-drives dead events back to pending (due now), recording who
// and why in outbox_redrives. Filters combine with AND; with none, -all is
// required.
func runRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		ids, user, errText, since, reason, by string
		event, createdFrom, createdBefore     string
		lead                                  int64
		all, dryRun, force                    bool
	)
	cfg, fs, err := loadConfig("retry", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&ids, "id", "", "outbox ids, comma separated (e.g. 5000000001,5000000002)")
		fs.StringVar(&user, "user", "", "only this Connected User's events (outbox.user_id)")
		fs.StringVar(&errText, "error", "", "only events whose last error contains this text (case-insensitive, literal)")
		fs.StringVar(&since, "since", "", "only events that died at or after this time: RFC3339 (2026-05-01T12:00:00Z) or a duration ago (2h, 90m)")
		fs.StringVar(&event, "event", "", "only events with this App Event name (outbox.event_name), e.g. 'Lead Created'")
		fs.Int64Var(&lead, "lead", 0, "only the events of this lead (outbox.lead_id)")
		fs.StringVar(&createdFrom, "created-from", "", "only events created at or after this time (outbox.created_at): RFC3339 or a duration ago")
		fs.StringVar(&createdBefore, "created-before", "", "only events created before this time (outbox.created_at): RFC3339 or a duration ago")
		fs.BoolVar(&all, "all", false, "allow re-driving every dead event when no other filter is given")
		fs.StringVar(&reason, "reason", "", "why, recorded with each re-drive")
		fs.StringVar(&by, "by", defaultActor(), "who is re-driving, recorded with each re-drive (default $USER, else the OS user and host)")
		fs.BoolVar(&dryRun, "dry-run", false, "only show what would be re-driven")
		fs.BoolVar(&force, "force", false, "also re-drive the skipped events among -id: their ordering key moved on, so the event is sent out of order (recorded as forced)")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (filters are flags: -id, -user, -error, -since, -event, -lead, -created-from, -created-before, -all)", errUsage, fs.Args())
	}
	f := operator.Filter{UserID: user, ErrorContains: errText, EventName: event, LeadID: lead, All: all, Force: force}
	if f.IDs, err = parseIDs(ids); err != nil {
		return fmt.Errorf("%w: -id: %v", errUsage, err)
	}
	if f.DeadSince, err = parseSince(since, time.Now()); err != nil {
		return fmt.Errorf("%w: -since: %v", errUsage, err)
	}
	if f.CreatedFrom, err = parseSince(createdFrom, time.Now()); err != nil {
		return fmt.Errorf("%w: -created-from: %v", errUsage, err)
	}
	if f.CreatedBefore, err = parseSince(createdBefore, time.Now()); err != nil {
		return fmt.Errorf("%w: -created-before: %v", errUsage, err)
	}
	if err := f.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if f.Empty() && !f.All {
		return fmt.Errorf("%w: %v (-id, -user, -error, -since, -event, -lead, -created-from, -created-before, or -all)", errUsage, operator.ErrEmptyFilter)
	}
	if strings.TrimSpace(by) == "" && !dryRun {
		return fmt.Errorf("%w: -by is required (who is re-driving)", errUsage)
	}
	pool, err := openMigratedPool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := operator.Redrive(ctx, pool, f, by, reason, dryRun)
	if errors.Is(err, operator.ErrEmptyFilter) || errors.Is(err, operator.ErrNoActor) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	writeRedrive(stdout, res, by, reason)
	if len(f.IDs) > 0 && res.Moved == 0 {
		return errors.New("none of the events given by -id could be re-driven (see above)")
	}
	return nil
}

// parseIDs reads "1,2, 3" into outbox ids; "" is none.
func parseIDs(s string) ([]int64, error) {
	var out []int64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("%q is not an outbox id", part)
		}
		out = append(out, id)
	}
	return out, nil
}

// parseSince reads an RFC3339 time, or a duration meaning that long before
// now; "" is the zero time (no filter).
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC3339 time (2026-05-01T12:00:00Z) nor a positive duration ago (2h, 90m)", s)
	}
	return now.Add(-d), nil
}

func writeRedrive(w io.Writer, res operator.Result, by, reason string) {
	switch {
	case res.Moved == 0 && res.DryRun:
		fmt.Fprintln(w, "Dry run: no dead event matches; nothing would be re-driven.")
	case res.Moved == 0:
		fmt.Fprintln(w, "No dead event matches; nothing was re-driven.")
	case res.DryRun:
		fmt.Fprintf(w, "Dry run: would re-drive %s to pending (due now). Nothing was changed.\n", retryDeadEvents(res.Moved))
	default:
		why := ""
		if reason != "" {
			why = fmt.Sprintf(", reason %q", reason)
		}
		fmt.Fprintf(w, "Re-drove %s to pending (due now), recorded as by %q%s.\n", retryDeadEvents(res.Moved), by, why)
	}
	if res.Moved > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  id\tuser\tattempts\thttp\tlast error\n")
		for i, e := range res.Events {
			if i == retryListMax {
				fmt.Fprintf(tw, "  ... and %d more\n", len(res.Events)-retryListMax)
				break
			}
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t%s\n", e.ID, e.UserID, e.PreviousAttempts, opOrDash(e.PreviousLastHTTPStatus), opOneLine(opOrDash(e.PreviousLastError)))
		}
		tw.Flush()
	}
	var skipped, other []string
	for _, id := range res.Untouched {
		if res.UntouchedStatus[id] == "skipped" {
			skipped = append(skipped, strconv.FormatInt(id, 10))
		} else {
			other = append(other, strconv.FormatInt(id, 10))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "Skipped (released by `outbox-relay skip`; its ordering key moved on), not re-driven: %s\n", strings.Join(skipped, ", "))
		fmt.Fprintf(w, "  To send it anyway, out of order: outbox-relay retry -force -id %s -reason ...\n", strings.Join(skipped, ","))
	}
	if len(other) > 0 {
		fmt.Fprintf(w, "Untouched (not dead, not matching the other filters, or no such event): %s\n", strings.Join(other, ", "))
	}
}

func retryDeadEvents(n int64) string {
	if n == 1 {
		return "1 dead event"
	}
	return fmt.Sprintf("%d dead events", n)
}

// defaultActor is operator.DefaultActor: $USER, else the OS user at this host.
func defaultActor() string { return operator.DefaultActor() }
