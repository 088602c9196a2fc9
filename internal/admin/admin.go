// Package admin serves the relay's operational HTTP endpoints on a separate
// address from anything else: Prometheus metrics, liveness and readiness.
// It reads state; it never changes the outbox.
//
//	GET /metrics  Prometheus text format (prometheus/client_golang)
//	GET /healthz  200 "ok" while the process serves HTTP (liveness)
//	GET /readyz   200 "ready" when the database answers a ping within 2s, no
//	              relay statement is failing with a permanent error (e.g.
//	              privileges revoked: pgutil.PermanentFailure) and the relay
//	              is not shutting down; 503 with the reason otherwise
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/pgutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the admin HTTP server.
type Server struct {
	pool     *pgxpool.Pool
	reg      *prometheus.Registry
	log      *slog.Logger
	stopping atomic.Bool
	srv      *http.Server
	ln       net.Listener
}

// New returns a server for pool's readiness and reg's metrics. Go runtime and
// process collectors are added to reg.
func New(pool *pgxpool.Pool, reg *prometheus.Registry, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{pool: pool, reg: reg, log: log.With(slog.String("component", "admin"))}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		http.Error(w, "database unreachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := pgutil.PermanentFailure(s.pool); err != nil {
		http.Error(w, "the database refuses the relay's statements: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Start listens on addr (host:port; port 0 picks one) and serves in the
// background. It returns the bound address.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("admin server: listen on %s (RELAY_ADMIN_ADDR): %w", addr, err)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", slog.Any("error", err))
		}
	}()
	s.log.Info("admin server listening", slog.String("addr", ln.Addr().String()))
	return ln.Addr().String(), nil
}

// SetShuttingDown makes /readyz answer 503 from now on.
func (s *Server) SetShuttingDown() { s.stopping.Store(true) }

// Stop shuts the server down, waiting for requests in progress until ctx ends.
func (s *Server) Stop(ctx context.Context) error { return s.srv.Shutdown(ctx) }
