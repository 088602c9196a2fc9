package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
)

// runSkip releases ordering keys blocked by a dead event: the dead events
// (by -id, or every dead event of each -key) become skipped, are never
// sent, and the next event of each key goes out. Recorded in
// outbox_redrives with -by and -reason.
func runSkip(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var ids, keys, reason, by string
	var asJSON bool
	cfg, fs, err := loadConfig("skip", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&ids, "id", "", "dead outbox ids to skip, comma separated")
		fs.StringVar(&keys, "key", "", "ordering keys to release (their dead events are skipped), comma separated, e.g. lead:1024")
		fs.StringVar(&reason, "reason", "", "why, recorded with each skip; required (the event is never sent)")
		fs.StringVar(&by, "by", defaultActor(), "who is skipping, recorded with each skip (default $USER, else the OS user and host)")
		fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q (use -id or -key)", errUsage, fs.Args())
	}
	idList, err := parseIDs(ids)
	if err != nil {
		return fmt.Errorf("%w: -id: %v", errUsage, err)
	}
	var keyList []string
	for k := range strings.SplitSeq(keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keyList = append(keyList, k)
		}
	}
	if len(idList) == 0 && len(keyList) == 0 {
		return fmt.Errorf("%w: %v (-id or -key)", errUsage, operator.ErrNothingToSkip)
	}
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: -reason is required: a skipped event is never sent, so say why (recorded with the skip, as the console requires)", errUsage)
	}
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: -by is required (who is skipping)", errUsage)
	}
	pool, err := openMigratedPool(ctx, cfg, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := operator.Skip(ctx, pool, idList, keyList, by, reason)
	if errors.Is(err, operator.ErrNothingToSkip) || errors.Is(err, operator.ErrNoActor) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if len(res.Skipped) == 0 {
		fmt.Fprintln(stdout, "No dead event matches; nothing was skipped.")
	} else {
		fmt.Fprintf(stdout, "Skipped %d dead event(s), recorded as by %q; they will not be sent (re-drive one with retry -id <id> -force).\n", len(res.Skipped), by)
		for _, s := range res.Skipped {
			key, next := "-", "nothing waiting"
			if s.OrderingKey != nil {
				key = *s.OrderingKey
			}
			if s.Promoted != nil {
				next = fmt.Sprintf("event %d is now pending", *s.Promoted)
			}
			fmt.Fprintf(stdout, "  %d\tuser %s\tkey %s\t%s\n", s.ID, s.UserID, key, next)
		}
	}
	if len(res.Untouched) > 0 || len(res.UntouchedKeys) > 0 {
		fmt.Fprintf(stdout, "Untouched (not dead, or no dead event): ids %v keys %q\n", res.Untouched, res.UntouchedKeys)
	}
	return nil
}
