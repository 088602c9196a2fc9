// Command outbox-relay delivers the transactional outbox of a Postgres
// database to Paragon as App Events, and gives operators the tools around it.
//
// Usage: outbox-relay <command> [flags]; `outbox-relay help` lists commands.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/paragon-outbox/outbox-relay/internal/buildinfo"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"relay", "run the relay: claim outbox rows and deliver them to Paragon until SIGINT/SIGTERM", runRelay},
		{"migrate", "apply (up), roll back (down) or list (status) the schema migrations", runMigrate},
		{"status", "print delivery status: counts, backlog age, rate, top backlog, errors", runStatus},
		{"demo", "run the whole thing locally on the sample leads against a local Paragon endpoint", runDemo},
		{"bench", "measure throughput, latency, insert cost, scale, memory, fairness and rate limiting (docs/BENCHMARKS.md)", runBench},
		{"paragon-local", "serve a local Paragon-compatible App Event endpoint (for demos and tests)", runParagonLocal},
		{"keygen", "write a new RSA signing key pair (PKCS#8 private key 0600, public key 0644; never overwrites)", runKeygen},
		{"token", "mint a Paragon User Token for a Connected User with the configured signing key", runToken},
		{"inspect", "show one event: its row, payload, every attempt and re-drive (outbox id, lead:<id> or event id)", runInspect},
		{"retry", "re-drive dead events to pending, by id, user, error text or time of death (-dry-run to preview)", runRetry},
		{"skip", "release ordering keys blocked by a dead event: mark it skipped (never sent) so the key's later events go out", runSkip},
		{"purge", "delete old delivered and dead events, with their attempts, in small batches", runPurge},
		{"console", "serve the operator console in the browser: overview, events, attempts, re-drive (CONSOLE_ADDR, default 127.0.0.1:8080)", runConsole},
		{"version", "print the build's version and VCS revision (also: outbox-relay -version)", runVersion},
		{"doctor", "check database, migrations, signing key, project id, token minting and Paragon reachability", runDoctor},
	}
}

// errUsage marks errors that are the caller's invocation; they exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "-version" || args[0] == "--version" {
		args = append([]string{"version"}, args[1:]...)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				fmt.Fprintf(stderr, "outbox-relay %s: %v\n", c.name, err)
				return 2
			default:
				fmt.Fprintf(stderr, "outbox-relay %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "outbox-relay: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "outbox-relay: a transactional outbox relay for Paragon App Events")
	fmt.Fprintln(w, "\nUsage: outbox-relay <command> [flags]   (outbox-relay <command> -h for flags)")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from the environment (see README); flags override it.")
}

// runVersion prints `outbox-relay <version> (revision …, go…)` from the
// build information (buildinfo.Read), or JSON with -json.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("outbox-relay version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := noArgs("version", fs); err != nil {
		return err
	}
	in := buildinfo.Read()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(in)
	}
	_, err := fmt.Fprintf(stdout, "outbox-relay %s\n", in)
	return err
}
