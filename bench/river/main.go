// Command outbox-relay-river is the River half of `outbox-relay bench
// -scenario river`: the same job as the relay (deliver a "Lead Created" App
// Event for every lead, written in the lead's transaction) done with River
// v0.51.2 (github.com/riverqueue/river, driver riverpgxv5), so the two can be
// measured side by side in one run.
//
// It lives in its own Go module (bench/river/go.mod, with a replace of
// github.com/paragon-outbox/outbox-relay to ../..) so that River is a
// benchmark-only dependency: the relay binary never links it, and the main
// module's go.mod does not list it. `make bench` builds it into
// bin/outbox-relay-river; `outbox-relay bench` starts it as a subprocess.
//
// Protocol with the parent (one line each, on stdin/stdout): the child sets up
// (River migrations, and in drain mode the backlog), prints "ready", waits for
// "go", starts the River client, runs its phase, prints "done <seconds>" (the
// time from client start until every job was completed and recorded), then
// waits for "stop" (or end of stdin), stops the client and exits 0. Errors go
// to stderr with exit status 1.
//
// Modes:
//
//   - drain: load -n leads (testdata/leads.csv, cycled; owners as in the
//     file) 500 per transaction, each with its job inserted by InsertManyTx in
//     the lead's transaction; after "go" a client with -max-workers (2,000) and
//     -fetch-cooldown (10 ms) works them off.
//   - latency: after "go" a client with -max-workers (200), -fetch-cooldown
//     (10 ms) and -fetch-poll-interval (50 ms) starts; -delay (2 s) later a
//     writer inserts -rate leads/s (500) for -duration (10 s), one lead per
//     transaction (INSERT … RETURNING, then InsertTx, then COMMIT), owners
//     cycling over -users (200) Connected Users, over 4 connections.
//
// The worker posts the App Event to the endpoint of PARAGON_BASE_URL with the
// relay's own Paragon client (internal/paragon: same HTTP transport, same
// per-user RS256 Paragon User Token cached after its first signature), so
// the HTTP path is the same for both. The payload is the lead as written
// (the same fields as the relay's trigger writes), with eventId and createdAt
// (the lead's created_at: the transaction start).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/paragon-outbox/outbox-relay/internal/bench"
	"github.com/paragon-outbox/outbox-relay/internal/paragon"
)

// LeadCreatedArgs is one job: an App Event to post for one lead.
type LeadCreatedArgs struct {
	EventID   string          `json:"eventId"`
	UserID    string          `json:"userId"`
	CreatedAt time.Time       `json:"createdAt"`
	Payload   json.RawMessage `json:"payload"`
}

// Kind names the job kind in river_job.
func (LeadCreatedArgs) Kind() string { return "lead_created" }

// leadCreatedWorker posts the App Event.
type leadCreatedWorker struct {
	river.WorkerDefaults[LeadCreatedArgs]
	client *paragon.Client
}

func (w *leadCreatedWorker) Work(ctx context.Context, job *river.Job[LeadCreatedArgs]) error {
	res := w.client.Send(ctx, paragon.Event{Name: "Lead Created", UserID: job.Args.UserID, Payload: job.Args.Payload})
	if res.Outcome != paragon.Delivered {
		return fmt.Errorf("send: %v", res.Err)
	}
	return nil
}

type options struct {
	mode, databaseURL, leadsPath string
	n, rate, users, maxWorkers   int
	poolConns                    int
	delay, duration              time.Duration
	fetchCooldown, fetchPoll     time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "", "drain or latency")
	flag.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "database (River's tables are migrated into it)")
	flag.StringVar(&o.leadsPath, "leads", "testdata/leads.csv", "CSV of leads (leads.csv layout)")
	flag.IntVar(&o.n, "n", 20_000, "drain: pending leads to load before the client starts")
	flag.IntVar(&o.rate, "rate", 500, "latency: leads per second")
	flag.IntVar(&o.users, "users", 200, "latency: Connected Users the leads cycle over")
	flag.DurationVar(&o.delay, "delay", 2*time.Second, "latency: wait after the client starts before writing")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "latency: how long to write")
	flag.IntVar(&o.maxWorkers, "max-workers", 0, "River MaxWorkers (default 2000 for drain, 200 for latency)")
	flag.DurationVar(&o.fetchCooldown, "fetch-cooldown", 10*time.Millisecond, "River FetchCooldown")
	flag.DurationVar(&o.fetchPoll, "fetch-poll-interval", 0, "River FetchPollInterval (default River's 1s for drain, 50ms for latency)")
	flag.IntVar(&o.poolConns, "pool-conns", 16, "pgxpool MaxConns of the River client")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "outbox-relay-river:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	switch o.mode {
	case "drain":
		o.maxWorkers = max(o.maxWorkers, 0)
		if o.maxWorkers == 0 {
			o.maxWorkers = 2000
		}
		if o.fetchPoll == 0 {
			o.fetchPoll = river.FetchPollIntervalDefault
		}
	case "latency":
		if o.maxWorkers == 0 {
			o.maxWorkers = 200
		}
		if o.fetchPoll == 0 {
			o.fetchPoll = 50 * time.Millisecond
		}
	default:
		return fmt.Errorf("-mode must be drain or latency, not %q", o.mode)
	}
	if o.databaseURL == "" {
		return errors.New("-database-url (or DATABASE_URL) is required")
	}
	csv, err := os.ReadFile(o.leadsPath)
	if err != nil {
		return fmt.Errorf("leads file: %w", err)
	}
	leads, err := bench.ParseLeads(csv)
	if err != nil {
		return err
	}
	key, err := paragon.ParseSigningKey(os.Getenv("PARAGON_SIGNING_KEY"))
	if err != nil {
		return fmt.Errorf("PARAGON_SIGNING_KEY: %w", err)
	}
	tokens, err := paragon.NewTokens(paragon.TokensConfig{Key: key, ProjectID: os.Getenv("PARAGON_PROJECT_ID")})
	if err != nil {
		return err
	}
	pc, err := paragon.NewClient(paragon.ClientConfig{BaseURL: os.Getenv("PARAGON_BASE_URL"), ProjectID: os.Getenv("PARAGON_PROJECT_ID"), Tokens: tokens, MaxConns: 64})
	if err != nil {
		return err
	}

	cfg, err := pgxpool.ParseConfig(o.databaseURL)
	if err != nil {
		return fmt.Errorf("database URL: %w", err)
	}
	cfg.MaxConns = int32(o.poolConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	mig, err := rivermigrate.New(driver, nil)
	if err != nil {
		return err
	}
	if _, err := mig.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &leadCreatedWorker{client: pc})
	client, err := river.NewClient(driver, &river.Config{
		Queues: map[string]river.QueueConfig{river.QueueDefault: {
			MaxWorkers: o.maxWorkers, FetchCooldown: o.fetchCooldown, FetchPollInterval: o.fetchPoll,
		}},
		FetchCooldown:     o.fetchCooldown,
		FetchPollInterval: o.fetchPoll,
		Workers:           workers,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}

	total := o.n
	if o.mode == "drain" {
		if err := loadBacklog(ctx, pool, client, leads, o.n); err != nil {
			return err
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE river_job, leads`); err != nil {
			return err
		}
	} else {
		total = int(o.duration.Seconds() * float64(o.rate))
	}

	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	if !in.Scan() || strings.TrimSpace(in.Text()) != "go" {
		return errors.New(`expected "go" on stdin`)
	}
	// A buffer for every job: River drops events that overflow it.
	completed, cancelSub := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: total + 1000, Kinds: []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed}})
	defer cancelSub()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return err
	}
	writeErr := make(chan error, 1)
	if o.mode == "latency" {
		go func() {
			time.Sleep(o.delay)
			writeErr <- writeSteady(ctx, pool, client, leads, o)
		}()
	} else {
		writeErr <- nil
	}
	failed := 0
	for done := 0; done < total; {
		select {
		case ev := <-completed:
			done++
			if ev.Kind == river.EventKindJobFailed {
				failed++
			}
		case err := <-writeErr:
			if err != nil {
				return err
			}
			writeErr = nil
		case <-time.After(5 * time.Minute):
			return fmt.Errorf("timed out: %d of %d jobs done", done, total)
		}
	}
	if writeErr != nil {
		if err := <-writeErr; err != nil {
			return err
		}
	}
	// Completion events are sent once the completer stored them; check the
	// table anyway so "done" means recorded.
	for {
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	if failed > 0 {
		return fmt.Errorf("%d jobs failed", failed)
	}
	fmt.Printf("done %.6f\n", took.Seconds())
	in.Scan() // "stop" or EOF
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return client.Stop(stopCtx)
}

// insertLead is the app's INSERT of one lead; created_at takes its default
// (now(): the transaction start), as in an app.
const insertLead = `INSERT INTO leads (external_id, owner_id, first_name, last_name, email, company, title, phone,
  lead_source, status, country, annual_revenue, number_of_employees, description)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING id, created_at`

// leadArgs are the INSERT arguments of leads row i with owner (if not "").
func leadArgs(l *bench.Leads, i int, owner string) []any {
	a := l.Args(i, "")
	a = a[:14] // leads.Columns ends with created_at: leave it to the default
	if owner != "" {
		a[1] = owner
	}
	return a
}

// payload is the App Event payload of a lead as written: the fields the
// relay's trigger writes (camelCase, empty texts and NULLs left out).
func payload(eventID string, id int64, a []any, created time.Time) json.RawMessage {
	names := []string{"externalId", "", "firstName", "lastName", "email", "company", "title", "phone",
		"leadSource", "status", "country", "annualRevenue", "numberOfEmployees", "description"}
	m := map[string]any{"eventId": eventID, "leadId": id, "createdAt": created.UTC().Format("2006-01-02T15:04:05.000Z")}
	for i, n := range names {
		if n == "" || a[i] == nil || a[i] == "" {
			continue
		}
		m[n] = a[i]
	}
	b, _ := json.Marshal(m)
	return b
}

func newArgs(l []any, id int64, created time.Time) LeadCreatedArgs {
	eid := uuid.Must(uuid.NewV7()).String()
	return LeadCreatedArgs{EventID: eid, UserID: l[1].(string), CreatedAt: created, Payload: payload(eid, id, l, created)}
}

// loadBacklog writes n leads and their jobs, 500 leads per transaction.
func loadBacklog(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], l *bench.Leads, n int) error {
	const chunk = 500
	for done := 0; done < n; done += chunk {
		k := min(chunk, n-done)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			args := make([][]any, k)
			for i := range k {
				args[i] = leadArgs(l, done+i, "")
				b.Queue(insertLead, args[i]...)
			}
			br := tx.SendBatch(ctx, b)
			params := make([]river.InsertManyParams, k)
			for i := range k {
				var id int64
				var created time.Time
				if err := br.QueryRow().Scan(&id, &created); err != nil {
					br.Close()
					return err
				}
				params[i] = river.InsertManyParams{Args: newArgs(args[i], id, created)}
			}
			if err := br.Close(); err != nil {
				return err
			}
			_, err := client.InsertManyTx(ctx, tx, params)
			return err
		})
		if err != nil {
			return fmt.Errorf("load leads: %w", err)
		}
	}
	return nil
}

// writeSteady inserts o.rate leads/s for o.duration, one lead and its job
// per transaction, open-loop over 4 connections.
func writeSteady(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], l *bench.Leads, o options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int(o.duration.Seconds() * float64(o.rate))
	jobs := make(chan int, total)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				a := leadArgs(l, i, fmt.Sprintf("bench-user-%03d", i%o.users))
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					var id int64
					var created time.Time
					if err := tx.QueryRow(ctx, insertLead, a...).Scan(&id, &created); err != nil {
						return err
					}
					_, err := client.InsertTx(ctx, tx, newArgs(a, id, created), nil)
					return err
				})
				if err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	for sent < total && ctx.Err() == nil {
		due := min(total, int(time.Since(start).Seconds()*float64(o.rate)))
		for ; sent < due; sent++ {
			jobs <- sent
		}
		<-tick.C
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	if first != nil {
		return fmt.Errorf("write leads: %w", first)
	}
	return nil
}
