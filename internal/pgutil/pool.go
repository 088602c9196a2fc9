package pgutil

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	sqlfiles "github.com/paragon-outbox/outbox-relay/sql"
)

// PoolOptions shape a pool made by NewPool.
type PoolOptions struct {
	// MaxConns caps the pool; 0 keeps pgxpool's default (or pool_max_conns
	// from the connection string).
	MaxConns int32
	// Writable rejects sessions on read-only nodes at connect time, as
	// target_session_attrs=read-write does: with a multi-host DATABASE_URL
	// the next host is tried. A connection string that sets
	// target_session_attrs itself wins.
	Writable bool
	// LockTimeout is SET as lock_timeout on every connection: a relay
	// statement waiting longer than this for a lock fails (SQLSTATE 55P03)
	// and is retried, instead of queueing a migration, and the app's inserts
	// behind it. 0 leaves the server's setting. A connection string that
	// sets lock_timeout itself wins.
	LockTimeout time.Duration
	// NoJIT SETs jit = off unless the connection string sets jit.
	NoJIT bool
	// NoSeqScan SETs enable_seqscan = off unless the connection string sets
	// enable_seqscan: see sqlfiles.SetSeqScanOff.
	NoSeqScan bool
}

// NewPool creates a pool on connString that survives failover:
//   - a statement refused with 25006 (the session is on a read-only node)
//     resets the pool, so that no pooled connection to that node is used
//     again and new ones go to whichever node accepts writes (at most one
//     reset per second);
//   - connections that died (server shutdown, crash, terminated backend)
//     are already dropped by pgxpool when released;
//   - Writable, LockTimeout, NoJIT and NoSeqScan as documented on PoolOptions.
//
// It does not connect; ping the pool to check the database.
func NewPool(ctx context.Context, connString string, o PoolOptions) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	if o.MaxConns > 0 {
		pc.MaxConns = o.MaxConns
	}
	if o.Writable && pc.ConnConfig.ValidateConnect == nil {
		if _, set := pc.ConnConfig.RuntimeParams["target_session_attrs"]; !set {
			pc.ConnConfig.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsReadWrite
		}
	}
	var sets []string
	if _, set := pc.ConnConfig.RuntimeParams["jit"]; o.NoJIT && !set {
		sets = append(sets, sqlfiles.SetJITOff)
	}
	if _, set := pc.ConnConfig.RuntimeParams["enable_seqscan"]; o.NoSeqScan && !set {
		sets = append(sets, sqlfiles.SetSeqScanOff)
	}
	if _, set := pc.ConnConfig.RuntimeParams["lock_timeout"]; o.LockTimeout > 0 && !set {
		sets = append(sets, sqlfiles.SetLockTimeout(o.LockTimeout))
	}
	// SET after connecting rather than startup parameters, which PgBouncer
	// would refuse.
	if len(sets) > 0 {
		prev := pc.AfterConnect
		pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			for _, s := range sets {
				if _, err := c.Exec(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			if prev != nil {
				return prev(ctx, c)
			}
			return nil
		}
	}
	g := &failoverGuard{next: pc.ConnConfig.Tracer}
	pc.ConnConfig.Tracer = g
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	g.pool.Store(pool)
	return pool, nil
}

// failoverGuard watches every statement's error; on 25006 it resets the
// pool (in the background, at most once a second). It remembers, per
// statement text, a permanent error until that statement next succeeds.
type failoverGuard struct {
	pool      atomic.Pointer[pgxpool.Pool]
	lastReset atomic.Int64 // unix nanoseconds
	resets    atomic.Int64
	next      pgx.QueryTracer

	nFailing atomic.Int32 // len(failing), read without the lock
	mu       sync.Mutex
	failing  map[string]error // statement text -> its last (permanent) error
}

// PermanentFailure returns the permanent error (see Classify) that a
// statement run through pool (made by NewPool) failed with last time it
// ran, wrapped with what to do (Explain), or nil when every statement's
// latest run succeeded or failed only transiently. A statement's entry
// clears when it next succeeds, so the state follows the operator's fix.
func PermanentFailure(pool *pgxpool.Pool) error {
	g, ok := pool.Config().ConnConfig.Tracer.(*failoverGuard)
	if !ok || g.nFailing.Load() == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, err := range g.failing {
		return Explain(err)
	}
	return nil
}

func (g *failoverGuard) outcome(sql string, err error) {
	switch {
	case err != nil && IsPermanent(err):
		g.mu.Lock()
		if g.failing == nil {
			g.failing = map[string]error{}
		}
		g.failing[sql] = err
		g.nFailing.Store(int32(len(g.failing)))
		g.mu.Unlock()
	case err == nil && g.nFailing.Load() > 0:
		g.mu.Lock()
		delete(g.failing, sql)
		g.nFailing.Store(int32(len(g.failing)))
		g.mu.Unlock()
	}
}

func (g *failoverGuard) observe(err error) {
	if err == nil || !IsReadOnly(err) {
		return
	}
	now := time.Now().UnixNano()
	last := g.lastReset.Load()
	if now-last < int64(time.Second) || !g.lastReset.CompareAndSwap(last, now) {
		return
	}
	if p := g.pool.Load(); p != nil {
		g.resets.Add(1)
		go p.Reset()
	}
}

type sqlKey struct{}

type optionalKey struct{}

// Optional marks the statements run with the returned context as not the
// relay's job (a metric, a report): a permanent error they meet is not
// reported by PermanentFailure.
func Optional(ctx context.Context) context.Context {
	return context.WithValue(ctx, optionalKey{}, true)
}

func (g *failoverGuard) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	ctx = context.WithValue(ctx, sqlKey{}, d.SQL)
	if g.next != nil {
		return g.next.TraceQueryStart(ctx, c, d)
	}
	return ctx
}

func (g *failoverGuard) TraceQueryEnd(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryEndData) {
	g.observe(d.Err)
	if sql, ok := ctx.Value(sqlKey{}).(string); ok && ctx.Value(optionalKey{}) == nil {
		g.outcome(sql, d.Err)
	}
	if g.next != nil {
		g.next.TraceQueryEnd(ctx, c, d)
	}
}

func (g *failoverGuard) TraceBatchStart(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	if bt, ok := g.next.(pgx.BatchTracer); ok {
		return bt.TraceBatchStart(ctx, c, d)
	}
	return ctx
}

func (g *failoverGuard) TraceBatchQuery(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchQueryData) {
	g.observe(d.Err)
	if ctx.Value(optionalKey{}) == nil {
		g.outcome(d.SQL, d.Err)
	}
	if bt, ok := g.next.(pgx.BatchTracer); ok {
		bt.TraceBatchQuery(ctx, c, d)
	}
}

func (g *failoverGuard) TraceBatchEnd(ctx context.Context, c *pgx.Conn, d pgx.TraceBatchEndData) {
	g.observe(d.Err)
	if bt, ok := g.next.(pgx.BatchTracer); ok {
		bt.TraceBatchEnd(ctx, c, d)
	}
}
