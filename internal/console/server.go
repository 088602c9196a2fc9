// Package console is the operator console of `outbox-relay console`: a web
// UI, served by its own process, over the outbox tables. Overview (counts,
// a per-minute chart, latency, backlog by Connected User, top errors, the
// relays' heartbeats), a filterable events list with keyset pagination,
// an event's detail (payload, attempts, re-drives), and re-drive of one
// event or of a filtered set through internal/operator.Redrive, the code
// behind `outbox-relay retry`.
//
// Everything is server-rendered (html/template) from assets embedded in the
// binary; no JavaScript is needed. See Config for the security rules.
package console

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paragon-outbox/outbox-relay/internal/operator"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// BlockedKey is an ordering key whose head event is dead, holding back the
// events behind it. Shown on the overview when Options.BlockedKeys is set.
type BlockedKey struct {
	Key      string  `db:"key"`
	UserID   string  `db:"user_id"`
	HeadID   int64   `db:"head_id"`         // the dead event at the head of the key
	Waiting  int64   `db:"waiting"`         // events waiting behind it
	BlockedS float64 `db:"blocked_seconds"` // since the head's last attempt
}

// Options are what Server needs besides the pool.
type Options struct {
	Config Config
	Log    *slog.Logger // nil: discard
	// Actor names who re-drives when there is no basic auth; default
	// operator.DefaultActor (the OS user at this host, as `retry` does).
	Actor func() string
	// BlockedKeys lists ordering keys blocked by a dead event; default:
	// sql/queries/console_blocked_keys.sql, at most 20 keys (per-key
	// ordering, migration 00008). The one hook for it.
	BlockedKeys func(ctx context.Context) ([]BlockedKey, error)
}

// Server is the console's HTTP handler.
type Server struct {
	opts     Options
	cfg      Config
	st       store
	pool     *pgxpool.Pool
	log      *slog.Logger
	auth     *authenticator
	csrf     *csrfGuard
	readOnly bool
	why      string // why read-only
	pages    map[string]*template.Template
	handler  http.Handler
}

// New builds the console. It checks whether the database role may re-drive
// (read-only otherwise) and loads the basic-auth users. Errors: a bad
// htpasswd file (ErrConfig), an unreachable database.
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Server, error) {
	s := &Server{opts: opts, cfg: opts.Config, st: newStore(pool), pool: pool, log: opts.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.Actor == nil {
		s.opts.Actor = operator.DefaultActor
	}
	if s.opts.BlockedKeys == nil {
		s.opts.BlockedKeys = func(ctx context.Context) ([]BlockedKey, error) { return s.st.blockedKeys(ctx, 20) }
	}
	if s.cfg.PageSize() <= 0 {
		return nil, errors.New("console: bad page size")
	}
	var err error
	if s.auth, err = newAuthenticator(s.cfg); err != nil {
		return nil, err
	}
	s.csrf = newCSRFGuard(s.cfg.TLSCertFile != "")
	if s.cfg.ReadOnly {
		s.readOnly, s.why = true, "started read-only (-read-only / CONSOLE_READ_ONLY)"
	} else {
		can, err := s.st.canWrite(ctx)
		if err != nil {
			return nil, fmt.Errorf("console: checking the database role's privileges: %w", err)
		}
		if !can {
			s.readOnly, s.why = true, "the database role may not re-drive (e.g. outbox_operator; grant outbox_operator_write), or the database is a read-only standby"
		}
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.overview)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /events/{id}", s.event)
	mux.HandleFunc("POST /events/{id}/redrive", s.redriveOne)
	mux.HandleFunc("GET /redrive", s.bulkConfirm)
	mux.HandleFunc("POST /redrive", s.bulkRedrive)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	s.handler = s.headers(s.checkHost(s.authenticate(cop.Handler(mux))))
	return s, nil
}

// ReadOnly reports whether re-drives are hidden and refused, and why.
func (s *Server) ReadOnly() (bool, string) { return s.readOnly, s.why }

// ServeHTTP serves the console.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// PageSize is the number of events per page of the list: Config.Page, or
// PageSizeDefault.
func (c Config) PageSize() int {
	if c.Page > 0 {
		return c.Page
	}
	return PageSizeDefault
}

// ListenAndServe validates the configuration, listens on Config.Addr (TLS
// when configured) and serves until ctx ends, then shuts down within 5 s.
// ready, if not nil, receives the bound address once listening.
func (s *Server) ListenAndServe(ctx context.Context, ready func(addr net.Addr)) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("console: listen on CONSOLE_ADDR=%s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if s.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("%w: CONSOLE_TLS_CERT_FILE/CONSOLE_TLS_KEY_FILE: %v", ErrConfig, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// headers sets the security headers on every response.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		h.Set("Cache-Control", "no-store")
		if s.cfg.TLSCertFile != "" {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

type ctxKey struct{}

// checkHost refuses, with 421 Misdirected Request, a request whose Host
// header names a host the console is not known by (Config.allowedHosts):
// against DNS rebinding, where a page at evil.example whose name now
// resolves to 127.0.0.1 is same-origin with itself and would otherwise
// read events and pass CrossOriginProtection and the CSRF token. The port
// is not compared: a rebinding attack changes the name.
func (s *Server) checkHost(next http.Handler) http.Handler {
	allowed := s.cfg.allowedHosts()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[hostOnly(r.Host)] {
			s.log.Warn("console: request refused: unknown Host header (DNS rebinding?)", slog.String("host", r.Host), slog.String("remote", r.RemoteAddr))
			http.Error(w, fmt.Sprintf("misdirected request: this console is not served as %q; if that is the name you reach it by, add it to CONSOLE_ALLOWED_HOSTS", r.Host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate requires basic auth when configured and puts the operator's
// name in the request context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var user string
		if s.auth != nil {
			u, ok := s.auth.check(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Basic realm="outbox-relay console", charset="UTF-8"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
			user = u
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, user)))
	})
}

// operatorName is who a re-drive is recorded as: the basic-auth user, else
// the OS user (Options.Actor).
func (s *Server) operatorName(r *http.Request) string {
	if u, _ := r.Context().Value(ctxKey{}).(string); u != "" {
		return u
	}
	return s.opts.Actor()
}

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	ReadOnly bool
	Why      string
	Operator string
	CSRF     string
	Refresh  int // seconds; 0 none
	Flash    string
	Error    string
	Data     any
}

func (s *Server) newPage(w http.ResponseWriter, r *http.Request, title, nav string) page {
	sess := s.csrf.session(w, r)
	user, _ := r.Context().Value(ctxKey{}).(string)
	return page{Title: title, Nav: nav, ReadOnly: s.readOnly, Why: s.why, Operator: s.operatorName(r),
		CSRF: s.csrf.token(sess, user)}
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	t := s.pages[name]
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.Error("console: rendering", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if err != nil {
		s.log.Error("console: "+msg, slog.Any("error", err))
	}
	p := s.newPage(w, r, "Error", "")
	p.Error = msg
	s.render(w, status, "error", p)
}

// checkWrite refuses a state-changing request in read-only mode or without a
// valid CSRF token; it reports whether to go on.
func (s *Server) checkWrite(w http.ResponseWriter, r *http.Request) bool {
	if s.readOnly {
		s.fail(w, r, http.StatusForbidden, "This console is read-only: "+s.why+".", nil)
		return false
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "Malformed form.", nil)
		return false
	}
	user, _ := r.Context().Value(ctxKey{}).(string)
	if !s.csrf.valid(r, user) {
		s.fail(w, r, http.StatusForbidden, "Missing or invalid CSRF token: reload the page and try again.", nil)
		return false
	}
	return true
}

// ---- overview ----

type overviewData struct {
	O               overview
	DeliveredCapped bool
	Chart           chart
	ChartMinutes    int
	Backlog         []userBacklog
	Errors          []errorCount
	ErrorsSince     time.Time
	Relays          []relayRow
	BlockedKeys     []BlockedKey
	HasBlockedKeys  bool
	Paused          bool
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var d overviewData
	var err error
	if d.O, err = s.st.overview(ctx); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the outbox.", err)
		return
	}
	d.DeliveredCapped = d.O.DeliveredCapped > deliveredCountCap
	d.ChartMinutes = s.cfg.ChartMinutes
	mins, err := s.st.perMinute(ctx, s.cfg.ChartMinutes)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read deliveries per minute.", err)
		return
	}
	d.Chart = newChart(mins)
	if d.Backlog, err = s.st.backlog(ctx, 20); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the backlog.", err)
		return
	}
	if d.Errors, err = s.st.topErrors(ctx, 24*time.Hour, 10); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the errors.", err)
		return
	}
	d.ErrorsSince = d.O.Now.Add(-24 * time.Hour)
	if d.Relays, err = s.st.relays(ctx); err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the relays' heartbeats.", err)
		return
	}
	if s.opts.BlockedKeys != nil {
		d.HasBlockedKeys = true
		if d.BlockedKeys, err = s.opts.BlockedKeys(ctx); err != nil {
			s.fail(w, r, http.StatusInternalServerError, "Could not read the blocked ordering keys.", err)
			return
		}
	}
	p := s.newPage(w, r, "Overview", "overview")
	d.Paused = r.URL.Query().Get("refresh") == "off"
	if !d.Paused && s.cfg.Refresh > 0 {
		p.Refresh = max(1, int(s.cfg.Refresh/time.Second))
	}
	p.Data = d
	s.render(w, http.StatusOK, "overview", p)
}

// ---- events ----

type eventsData struct {
	F      formFilter
	Events []eventRow
	// Links: whole URLs, so html/template normalises them (keeping & and
	// =) rather than query-escaping them.
	Next     string // the next page, "" if none
	First    string // the first page, "" on the first page
	CanBulk  bool
	BulkLink string
}

// formFilter is the filter as typed in the form (for redisplay).
type formFilter struct {
	Status, User, Event, Lead, From, Before, Error, Key string
}

func (f formFilter) query() url.Values {
	v := url.Values{}
	for k, x := range map[string]string{"status": f.Status, "user": f.User, "event": f.Event, "lead": f.Lead,
		"from": f.From, "before": f.Before, "error": f.Error, "key": f.Key} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// statuses the list filters by; each is served by a partial index
// ('skipped', dead events an operator released from their key, by
// outbox_skipped).
var statuses = []string{"waiting", "pending", "in_flight", "delivered", "dead", "skipped"}

// keyStatuses are the statuses outbox_key_undelivered holds.
var keyStatuses = []string{"waiting", "pending", "in_flight", "dead"}

// exactID is an identifier filter (Connected User, event name, ordering
// key) as given: the SQL API accepts ids with leading or trailing spaces, so
// trimming would make their events unfindable. Blank means no filter.
func exactID(v string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	return v
}

// parseFilter reads and checks the events filter. Errors are for people.
func parseFilter(q url.Values) (formFilter, eventFilter, error) {
	ff := formFilter{Status: q.Get("status"), User: exactID(q.Get("user")), Event: exactID(q.Get("event")),
		Lead: strings.TrimSpace(q.Get("lead")), From: strings.TrimSpace(q.Get("from")), Before: strings.TrimSpace(q.Get("before")),
		Error: strings.TrimSpace(q.Get("error")), Key: exactID(q.Get("key"))}
	f := eventFilter{Status: ff.Status, UserID: ff.User, EventName: ff.Event, ErrorContains: ff.Error, OrderingKey: ff.Key}
	var errs []string
	if f.Status != "" && !contains(statuses, f.Status) {
		errs = append(errs, fmt.Sprintf("status %q is not one of waiting, pending, in_flight, delivered, dead, skipped", f.Status))
	}
	if f.OrderingKey != "" && !contains(keyStatuses, f.Status) {
		errs = append(errs, "an ordering key can only be searched together with status waiting, pending, in_flight or dead (the key's undelivered events)")
	}
	if ff.Lead != "" {
		n, err := strconv.ParseInt(ff.Lead, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Sprintf("lead id %q is not a positive whole number", ff.Lead))
		}
		f.LeadID = n
	}
	var err error
	if f.CreatedFrom, err = parseTime(ff.From); err != nil {
		errs = append(errs, "created from: "+err.Error())
	}
	if f.CreatedBefore, err = parseTime(ff.Before); err != nil {
		errs = append(errs, "created before: "+err.Error())
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedBefore.After(f.CreatedFrom) {
		errs = append(errs, "created before must be after created from")
	}
	if f.ErrorContains != "" && (f.Status != "dead" || f.CreatedFrom.IsZero()) {
		errs = append(errs, "error text can only be searched together with status dead and a created-from time (so the search reads dead events of a bounded time range, not the whole outbox)")
	}
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, "bad page cursor")
		}
		f.Before = n
	}
	if len(errs) > 0 {
		return ff, f, errors.New(strings.Join(errs, "; "))
	}
	return ff, f, nil
}

// parseTime reads the form's datetime-local value (UTC) or RFC3339.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-05-01T12:00, UTC, or RFC3339)", s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ff, f, err := parseFilter(r.URL.Query())
	p := s.newPage(w, r, "Events", "events")
	d := eventsData{F: ff}
	if err != nil {
		p.Error = err.Error()
		p.Data = d
		s.render(w, http.StatusBadRequest, "events", p)
		return
	}
	limit := s.cfg.PageSize()
	rows, err := s.st.listEvents(r.Context(), f, limit+1)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not list events.", err)
		return
	}
	if len(rows) > limit {
		rows = rows[:limit]
		q := ff.query()
		q.Set("cursor", strconv.FormatInt(rows[len(rows)-1].ID, 10))
		d.Next = "/events?" + q.Encode()
	}
	d.Events = rows
	if f.Before != 0 {
		d.First = "/events?" + ff.query().Encode()
	}
	if !s.readOnly && ff.Status == "dead" && (ff.User != "" || ff.Event != "" || ff.Lead != "" || ff.From != "" || ff.Before != "" || ff.Error != "") && ff.Key == "" {
		d.CanBulk = true
		d.BulkLink = "/redrive?" + ff.query().Encode()
	}
	p.Data = d
	s.render(w, http.StatusOK, "events", p)
}

// ---- event detail ----

type eventData struct {
	E            eventDetail
	Attempts     []attemptRow
	Redrives     []redriveRow
	HidePayloads bool
}

// AttemptsNote is what the event page adds after the attempt count: ""
// for an event never re-driven, else "N since the last re-drive" (attempts
// now minus attempts when last re-driven; a skip is no re-drive).
func (d eventData) AttemptsNote() string {
	for i := len(d.Redrives) - 1; i >= 0; i-- {
		if rd := d.Redrives[i]; rd.Action == "redrive" {
			return fmt.Sprintf("%d since the last re-drive", d.E.Attempts-rd.PreviousAttempts)
		}
	}
	return ""
}

func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not an outbox id.", r.PathValue("id")), nil)
		return
	}
	ev, att, rd, err := s.st.event(r.Context(), id, s.cfg.HidePayloads)
	if errors.Is(err, errNotFound) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("No event with outbox id %d (purged, or never existed).", id), nil)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Could not read the event.", err)
		return
	}
	p := s.newPage(w, r, fmt.Sprintf("Event %d", id), "events")
	switch q := r.URL.Query(); {
	case q.Get("redriven") == "1":
		p.Flash = "Re-driven: the event is pending and due now; a running relay will send it."
	case q.Get("redriven") == "0":
		p.Flash = "Nothing re-driven: the event is not dead (any more)."
	}
	p.Data = eventData{E: ev, Attempts: att, Redrives: rd, HidePayloads: s.cfg.HidePayloads}
	s.render(w, http.StatusOK, "event", p)
}

func (s *Server) redriveOne(w http.ResponseWriter, r *http.Request) {
	if !s.checkWrite(w, r) {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, r, http.StatusBadRequest, "Bad outbox id.", nil)
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		s.fail(w, r, http.StatusBadRequest, "A reason is required for a re-drive: say why it should succeed now.", nil)
		return
	}
	by := s.operatorName(r)
	res, err := operator.Redrive(r.Context(), s.pool, operator.Filter{IDs: []int64{id}}, by, reason, false)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "The re-drive failed.", err)
		return
	}
	s.log.Info("console re-drive", slog.Int64("outbox_id", id), slog.String("by", by), slog.Int64("moved", res.Moved))
	http.Redirect(w, r, fmt.Sprintf("/events/%d?redriven=%d", id, res.Moved), http.StatusSeeOther)
}

// ---- bulk re-drive ----

type bulkData struct {
	F      formFilter
	Back   string // the list with the same filter
	Result operator.Result
	Done   bool
	Reason string
}

func toOperatorFilter(f eventFilter) operator.Filter {
	return operator.Filter{UserID: f.UserID, EventName: f.EventName, LeadID: f.LeadID,
		CreatedFrom: f.CreatedFrom, CreatedBefore: f.CreatedBefore, ErrorContains: f.ErrorContains}
}

func (s *Server) bulkFilter(w http.ResponseWriter, r *http.Request, q url.Values) (formFilter, operator.Filter, bool) {
	ff, f, err := parseFilter(q)
	if err == nil && f.Status != "dead" {
		err = errors.New("bulk re-drive is for dead events: filter the list by status dead first")
	}
	if err == nil && f.OrderingKey != "" {
		err = errors.New("bulk re-drive by ordering key is not offered (re-drive takes no key filter): open the key's dead head event and re-drive it there")
	}
	of := toOperatorFilter(f)
	if err == nil && of.Empty() {
		err = errors.New("give at least one filter besides status (a Connected User, event name, lead, time range or error text); re-driving every dead event is `outbox-relay retry -all`")
	}
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return ff, of, false
	}
	return ff, of, true
}

func (s *Server) bulkConfirm(w http.ResponseWriter, r *http.Request) {
	if s.readOnly {
		s.fail(w, r, http.StatusForbidden, "This console is read-only: "+s.why+".", nil)
		return
	}
	ff, of, ok := s.bulkFilter(w, r, r.URL.Query())
	if !ok {
		return
	}
	res, err := operator.Redrive(r.Context(), s.pool, of, "", "", true)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "The dry run failed.", err)
		return
	}
	p := s.newPage(w, r, "Re-drive dead events", "events")
	p.Data = bulkData{F: ff, Back: "/events?" + ff.query().Encode(), Result: res}
	s.render(w, http.StatusOK, "redrive", p)
}

func (s *Server) bulkRedrive(w http.ResponseWriter, r *http.Request) {
	if !s.checkWrite(w, r) {
		return
	}
	ff, of, ok := s.bulkFilter(w, r, r.PostForm)
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		s.fail(w, r, http.StatusBadRequest, "A reason is required for a re-drive: say why these should succeed now.", nil)
		return
	}
	by := s.operatorName(r)
	res, err := operator.Redrive(r.Context(), s.pool, of, by, reason, false)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "The re-drive failed.", err)
		return
	}
	s.log.Info("console bulk re-drive", slog.String("by", by), slog.Int64("moved", res.Moved))
	p := s.newPage(w, r, "Re-drive dead events", "events")
	p.Data = bulkData{F: ff, Back: "/events?" + ff.query().Encode(), Result: res, Done: true, Reason: reason}
	s.render(w, http.StatusOK, "redrive", p)
}
