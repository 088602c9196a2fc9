package console

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config.
const (
	AddrDefault         = "127.0.0.1:8080"
	RefreshDefault      = 10 * time.Second
	ChartMinutesDefault = 180
	PageSizeDefault     = 50
)

// Config is the console's configuration, read from CONSOLE_* variables by
// ConfigFromEnv (flags of `outbox-relay console` override some). It moves
// onto internal/config's declare-once settings when those land (issue 8).
type Config struct {
	// Addr is the listen address (CONSOLE_ADDR, default 127.0.0.1:8080).
	Addr string
	// BasicAuth is "user:password" (CONSOLE_BASIC_AUTH). Never logged.
	BasicAuth string
	// BasicAuthFile is an htpasswd file of bcrypt lines (CONSOLE_BASIC_AUTH_FILE),
	// e.g. made with `htpasswd -B -c console.htpasswd alice`.
	BasicAuthFile string
	// TLSCertFile and TLSKeyFile serve HTTPS (CONSOLE_TLS_CERT_FILE,
	// CONSOLE_TLS_KEY_FILE); both or neither.
	TLSCertFile, TLSKeyFile string
	// InsecureHTTP allows plain HTTP on a non-loopback address
	// (CONSOLE_INSECURE_HTTP=true): a TLS proxy is in front.
	InsecureHTTP bool
	// ReadOnly hides and refuses re-drives (CONSOLE_READ_ONLY=true). The
	// console is also read-only when its database role cannot re-drive.
	ReadOnly bool
	// HidePayloads never reads or shows event payloads (CONSOLE_HIDE_PAYLOADS=true).
	HidePayloads bool
	// Refresh is how often the overview reloads itself (CONSOLE_REFRESH,
	// default 10s; 0 turns it off).
	Refresh time.Duration
	// ChartMinutes is how many minutes the overview's chart covers
	// (CONSOLE_CHART_MINUTES, default 180, at most 1440).
	ChartMinutes int
	// Page is the events list's page size; 0 means PageSizeDefault (50).
	Page int
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("console configuration")

// ConfigFromEnv reads CONSOLE_* variables through getenv (os.Getenv),
// starting from the defaults. Errors name the variable; values of secret
// variables are never repeated.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{Addr: AddrDefault, Refresh: RefreshDefault, ChartMinutes: ChartMinutesDefault}
	var errs []error
	if v := strings.TrimSpace(getenv("CONSOLE_ADDR")); v != "" {
		c.Addr = v
	}
	c.BasicAuth = getenv("CONSOLE_BASIC_AUTH")
	c.BasicAuthFile = strings.TrimSpace(getenv("CONSOLE_BASIC_AUTH_FILE"))
	c.TLSCertFile = strings.TrimSpace(getenv("CONSOLE_TLS_CERT_FILE"))
	c.TLSKeyFile = strings.TrimSpace(getenv("CONSOLE_TLS_KEY_FILE"))
	boolVar := func(name string, dst *bool) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not true or false", name, v))
				return
			}
			*dst = b
		}
	}
	boolVar("CONSOLE_INSECURE_HTTP", &c.InsecureHTTP)
	boolVar("CONSOLE_READ_ONLY", &c.ReadOnly)
	boolVar("CONSOLE_HIDE_PAYLOADS", &c.HidePayloads)
	if v := strings.TrimSpace(getenv("CONSOLE_REFRESH")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("CONSOLE_REFRESH=%q is not a duration (10s, 1m, 0 for off)", v))
		} else {
			c.Refresh = d
		}
	}
	if v := strings.TrimSpace(getenv("CONSOLE_CHART_MINUTES")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1440 {
			errs = append(errs, fmt.Errorf("CONSOLE_CHART_MINUTES=%q is not a whole number from 1 to 1440", v))
		} else {
			c.ChartMinutes = n
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return c, nil
}

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
