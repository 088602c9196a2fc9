package console

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/paragon-outbox/outbox-relay/internal/config"
)

// Defaults of Config (also in its envDefault tags).
const (
	AddrDefault         = "127.0.0.1:8080"
	RefreshDefault      = 10 * time.Second
	ChartMinutesDefault = 180
	PageSizeDefault     = 50
)

// Config is the console's configuration, each setting declared once by its
// tags (internal/config: variable, default, help; the flag is derived, e.g.
// CONSOLE_READ_ONLY → -read-only). ConfigFromEnv reads it; the table in
// docs/CONSOLE.md is generated from it (TestSettingsTableIsCurrent).
type Config struct {
	// Addr is the listen address.
	Addr string `env:"CONSOLE_ADDR" envDefault:"127.0.0.1:8080" help:"listen address; any other than loopback needs basic auth and TLS"`
	// AllowedHosts lists, comma-separated, the extra host names (a port
	// is ignored) that requests may name in their Host header, besides
	// localhost, 127.0.0.1, [::1] and Addr's host: the name a proxy or
	// operators reach the console by. Any other Host is refused with 421
	// (DNS rebinding).
	AllowedHosts string `env:"CONSOLE_ALLOWED_HOSTS" help:"comma-separated host names the console may be reached by (Host header), besides localhost, 127.0.0.1, [::1] and CONSOLE_ADDR's host; others get 421"`
	// BasicAuth is "user:password". Never logged; no flag (process listings).
	BasicAuth string `env:"CONSOLE_BASIC_AUTH" secret:"true" flag:"-" help:"'user:password' for HTTP basic auth; no flag"`
	// BasicAuthFile is an htpasswd file of bcrypt lines
	// (htpasswd -B -c console.htpasswd alice).
	BasicAuthFile string `env:"CONSOLE_BASIC_AUTH_FILE" help:"htpasswd file of bcrypt lines ('htpasswd -B'), instead of CONSOLE_BASIC_AUTH"`
	// TLSCertFile and TLSKeyFile serve HTTPS; both or neither.
	TLSCertFile string `env:"CONSOLE_TLS_CERT_FILE" help:"TLS certificate (PEM) to serve HTTPS; with CONSOLE_TLS_KEY_FILE"`
	TLSKeyFile  string `env:"CONSOLE_TLS_KEY_FILE" help:"TLS private key (PEM); with CONSOLE_TLS_CERT_FILE"`
	// InsecureHTTP allows plain HTTP on a non-loopback address: a TLS
	// proxy is in front.
	InsecureHTTP bool `env:"CONSOLE_INSECURE_HTTP" help:"allow plain HTTP on a non-loopback address (a TLS proxy is in front)"`
	// ReadOnly hides and refuses re-drives. The console is also read-only
	// when its database role cannot re-drive.
	ReadOnly bool `env:"CONSOLE_READ_ONLY" help:"hide and refuse re-drives (also automatic when the database role cannot re-drive)"`
	// HidePayloads never reads or shows event payloads.
	HidePayloads bool `env:"CONSOLE_HIDE_PAYLOADS" help:"never read event payloads from the database nor show them"`
	// Refresh is how often the overview reloads itself; 0 turns it off.
	Refresh time.Duration `env:"CONSOLE_REFRESH" envDefault:"10s" help:"how often the overview reloads itself; 0 turns it off"`
	// ChartMinutes is how many minutes the overview's chart covers (1..1440).
	ChartMinutes int `env:"CONSOLE_CHART_MINUTES" envDefault:"180" help:"minutes in the overview chart (1..1440)"`
	// Page is the events list's page size (1..500); 0 means PageSizeDefault.
	Page int `env:"CONSOLE_PAGE_SIZE" envDefault:"50" help:"events per page of the list (1..500)"`
}

// ErrConfig wraps the errors of Validate and of the basic-auth file.
var ErrConfig = errors.New("console configuration")

// ConfigFromEnv reads the CONSOLE_* variables through getenv (os.Getenv)
// over the defaults. Errors are joined *config.FieldError values naming the
// variable (never the value of CONSOLE_BASIC_AUTH); warnings are for
// deprecated names.
func ConfigFromEnv(getenv func(string) string) (Config, []string, error) {
	c := config.DefaultsOf[Config]()
	warns, err := config.ParseEnv(&c, getenv)
	return c, warns, err
}

// BindFlags registers a flag for each setting of c that has one on fs,
// writing into c (flags override the environment when parsed after it).
func (c *Config) BindFlags(fs *flag.FlagSet) *config.FlagParser {
	p := config.NewFlagParser(fs)
	p.Bind(c, nil, "outbox-relay console")
	return p
}

// SettingsTable is the Markdown table of the console's settings
// (docs/CONSOLE.md).
func SettingsTable() string { return config.MarkdownTable(config.SettingsOf(Config{})) }

// Validate checks the security rules before anything listens:
//   - a BasicAuth without a colon, or both BasicAuth and BasicAuthFile;
//   - only one of the TLS files;
//   - a non-loopback Addr without basic auth (anyone who reaches it could
//     read events and re-drive them);
//   - a non-loopback Addr without TLS, unless InsecureHTTP (passwords and
//     payloads would cross the network in clear).
//
// Errors wrap ErrConfig and never contain the password.
func (c Config) Validate() error {
	var errs []error
	if c.ChartMinutes < 1 || c.ChartMinutes > 1440 {
		errs = append(errs, &config.FieldError{Var: "CONSOLE_CHART_MINUTES", Value: strconv.Itoa(c.ChartMinutes), Reason: "is out of range 1..1440", Err: config.ErrOutOfRange})
	}
	if c.Page < 0 || c.Page > 500 {
		errs = append(errs, &config.FieldError{Var: "CONSOLE_PAGE_SIZE", Value: strconv.Itoa(c.Page), Reason: "is out of range 1..500", Err: config.ErrOutOfRange})
	}
	if c.Refresh < 0 {
		errs = append(errs, &config.FieldError{Var: "CONSOLE_REFRESH", Value: c.Refresh.String(), Reason: "is negative (0 turns the refresh off)", Err: config.ErrOutOfRange})
	}
	if c.BasicAuth != "" {
		if u, p, ok := strings.Cut(c.BasicAuth, ":"); !ok || u == "" || p == "" {
			errs = append(errs, errors.New("CONSOLE_BASIC_AUTH must be user:password (both non-empty)"))
		}
		if c.BasicAuthFile != "" {
			errs = append(errs, errors.New("set CONSOLE_BASIC_AUTH or CONSOLE_BASIC_AUTH_FILE, not both"))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("CONSOLE_TLS_CERT_FILE and CONSOLE_TLS_KEY_FILE go together: set both or neither"))
	}
	loopback, err := IsLoopback(c.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("CONSOLE_ADDR=%q: %v", c.Addr, err))
	} else if !loopback {
		if c.BasicAuth == "" && c.BasicAuthFile == "" {
			errs = append(errs, fmt.Errorf("refusing to listen on %s without authentication: it is not a loopback address, and anyone who can reach it could read events and re-drive them; set CONSOLE_BASIC_AUTH=user:password or CONSOLE_BASIC_AUTH_FILE (htpasswd -B), or listen on 127.0.0.1", c.Addr))
		}
		if c.TLSCertFile == "" && !c.InsecureHTTP {
			errs = append(errs, fmt.Errorf("refusing to serve plain HTTP on %s: it is not a loopback address, so passwords and payloads would cross the network in clear; set CONSOLE_TLS_CERT_FILE and CONSOLE_TLS_KEY_FILE, or CONSOLE_INSECURE_HTTP=true if a TLS proxy is in front", c.Addr))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// allowedHosts returns the host names (lower case, no port, IPv6 without
// brackets) a request's Host header may name: the loopback names,
// Addr's host unless it is empty or unspecified (0.0.0.0, ::), and
// AllowedHosts.
func (c Config) allowedHosts() map[string]bool {
	ok := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	if h, _, err := net.SplitHostPort(c.Addr); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			ok[strings.ToLower(h)] = true
		}
	}
	for _, h := range strings.Split(c.AllowedHosts, ",") {
		if h = hostOnly(strings.TrimSpace(h)); h != "" {
			ok[h] = true
		}
	}
	return ok
}

// hostOnly is the host of a Host header or CONSOLE_ALLOWED_HOSTS entry
// ("name", "name:port", "[::1]:port", "[::1]"), lower case, without the
// trailing dot of a fully qualified name and without IPv6 brackets.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// IsLoopback reports whether addr (host:port) listens only on loopback:
// "localhost" or a loopback IP. An empty host (":8080") means every
// interface, so it is not loopback.
func IsLoopback(addr string) (bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
