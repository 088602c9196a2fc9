package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
)

// runInspect prints one event: its row, its payload and every attempt and
// re-drive. `outbox-relay inspect <ref> [-json]`; ref is an outbox id
// (digits), lead:<lead id> or an event id (uuid). Flags may come before or
// after ref.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	cfg, fs, err := loadConfig("inspect", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
		fs.Usage = func() {
			fmt.Fprintln(fs.Output(), "Usage: outbox-relay inspect <outbox id | lead:<lead id> | event id> [-json]")
			fmt.Fprintln(fs.Output(), "A plain number is an outbox id; write lead:42 for lead 42.")
			fs.PrintDefaults()
		}
	})
	if err != nil {
		return err
	}
	positional := fs.Args()
	if len(positional) == 0 {
		return fmt.Errorf("%w: inspect needs an outbox id, lead:<lead id> or an event id", errUsage)
	}
	ref := positional[0]
	if len(positional) > 1 {
		return fmt.Errorf("%w: inspect takes one reference, got also %q", errUsage, positional[1:])
	}
	if _, err := operator.ParseRef(ref); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	pool, err := openMigratedPool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	in, err := operator.Inspect(ctx, pool, ref)
	if errors.Is(err, operator.ErrNotFound) {
		return fmt.Errorf("no outbox event matches %s (digits are an outbox id; use lead:<id> for a lead id)", ref)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return writeInspection(stdout, in)
}

// writeInspection prints in for people. Times are UTC.
func writeInspection(w io.Writer, in *operator.Inspection) error {
	e := in.Event
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Event %d\n", e.ID)
	fmt.Fprintf(tw, "  event_id\t%s\n", e.EventID)
	fmt.Fprintf(tw, "  name\t%s\n", e.EventName)
	fmt.Fprintf(tw, "  user\t%s\n", e.UserID)
	fmt.Fprintf(tw, "  lead\t%s\n", opOrDash(e.LeadID))
	fmt.Fprintf(tw, "  status\t%s\n", e.Status)
	attempts := fmt.Sprint(e.Attempts)
	for i := len(in.Redrives) - 1; i >= 0; i-- { // only a re-drive (not a skip) splits the count
		if rd := in.Redrives[i]; rd.Action == "redrive" {
			attempts += fmt.Sprintf(" (%d since the last re-drive)", e.Attempts-rd.PreviousAttempts)
			break
		}
	}
	fmt.Fprintf(tw, "  attempts\t%s\n", attempts)
	fmt.Fprintf(tw, "  created_at\t%s (%s ago)\n", opTime(e.CreatedAt), opAgo(in.At, e.CreatedAt))
	switch e.Status {
	case "pending":
		when := "due now"
		if e.NextAttemptAt.After(in.At) {
			when = "in " + e.NextAttemptAt.Sub(in.At).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "  next_attempt_at\t%s (%s)\n", opTime(e.NextAttemptAt), when)
	case "delivered":
		if e.DeliveredAt != nil {
			fmt.Fprintf(tw, "  delivered_at\t%s (%s after it was written)\n", opTime(*e.DeliveredAt), e.DeliveredAt.Sub(e.CreatedAt).Round(time.Millisecond))
		}
	case "in_flight":
		if e.LeaseOwner != nil && e.LeaseExpiresAt != nil {
			state := "expires in " + e.LeaseExpiresAt.Sub(in.At).Round(time.Millisecond).String()
			if !e.LeaseExpiresAt.After(in.At) {
				state = "EXPIRED " + opAgo(in.At, *e.LeaseExpiresAt) + " ago"
			}
			fmt.Fprintf(tw, "  lease\t%s, claimed %s, %s\n", *e.LeaseOwner, opTimePtr(e.ClaimedAt), state)
		}
	}
	if e.LastHTTPStatus != nil || e.LastError != nil {
		fmt.Fprintf(tw, "  last_http_status\t%s\n", opOrDash(e.LastHTTPStatus))
		fmt.Fprintf(tw, "  last_error\t%s\n", opOneLine(opOrDash(e.LastError)))
	}
	for _, id := range in.OtherEventsOfLead {
		fmt.Fprintf(tw, "  note\tthe lead also has outbox event %d\n", id)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nPayload")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, e.Payload, "  ", "  "); err != nil {
		pretty.Reset()
		pretty.Write(e.Payload)
	}
	fmt.Fprintf(w, "  %s\n", pretty.Bytes())

	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(in.Attempts) == 0 {
		fmt.Fprintln(tw, "\nAttempts: none yet")
	} else {
		fmt.Fprintf(tw, "\nAttempts\n  #\tstarted_at\ttook\trelay\thttp\toutcome\n")
		for _, a := range in.Attempts {
			took, outcome := "-", "delivered"
			if a.FinishedAt != nil {
				took = a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond).String()
			} else {
				outcome = "interrupted"
			}
			if a.Error != nil {
				outcome = opOneLine(*a.Error)
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, opTime(a.StartedAt), took, opOrDash(a.RelayID), opOrDash(a.HTTPStatus), outcome)
		}
	}
	if len(in.Redrives) > 0 {
		fmt.Fprintf(tw, "\nRe-drives\n  at\taction\tby\treason\twas\n")
		for _, r := range in.Redrives {
			plural := "s"
			if r.PreviousAttempts == 1 {
				plural = ""
			}
			was := fmt.Sprintf("%s after %d attempt%s", r.PreviousStatus, r.PreviousAttempts, plural)
			if r.PreviousLastError != nil {
				was += ": " + opOneLine(*r.PreviousLastError)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", opTime(r.RedrivenAt), redriveAction(r), r.RedrivenBy, opOrDash(r.Reason), was)
		}
	}
	return tw.Flush()
}

// redriveAction names what an outbox_redrives row did: "re-drive",
// "re-drive (forced)" (retry -force of a skipped event) or "skip".
func redriveAction(r operator.RedriveRecord) string {
	a := r.Action
	if a == "redrive" {
		a = "re-drive"
	}
	if r.Forced {
		a += " (forced)"
	}
	return a
}

func opTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func opTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return opTime(*t)
}

func opAgo(now, t time.Time) string { return now.Sub(t).Round(time.Second).String() }

// opOrDash renders a nullable column: its value, or "-" for NULL.
func opOrDash[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// opOneLine keeps a table row on one line: newlines become spaces and long
// texts are cut at 160 characters.
func opOneLine(s string) string {
	b := []rune(s)
	for i, r := range b {
		if r == '\n' || r == '\r' || r == '\t' {
			b[i] = ' '
		}
	}
	if len(b) > 160 {
		return string(b[:157]) + "..."
	}
	return string(b)
}
