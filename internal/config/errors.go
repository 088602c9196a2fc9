package config

import (
	"errors"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel causes of a *FieldError, for errors.Is.
var (
	// ErrRequired: the setting is missing.
	ErrRequired = errors.New("required")
	// ErrOutOfRange: the value parses but is outside the accepted range.
	ErrOutOfRange = errors.New("out of range")
	// ErrInvalid: the value parses but is not acceptable (a bad shape, or a
	// conflict with another setting).
	ErrInvalid = errors.New("invalid")
)

// FieldError is one problem with one setting, returned (joined with the
// others by errors.Join) by FromEnv, ParseEnv and Validate. Its message
// names the variable, shows the value unless it is secret (a connection
// string shows with its password masked) and says what is wrong:
//
//	RELAY_LEASE=1m must exceed RELAY_SEND_TIMEOUT=55s by at least 10s, ...
//	PARAGON_PROJECT_ID is required (your Paragon project id, from the dashboard)
//
// Use errors.As to get at it and errors.Is with ErrRequired, ErrOutOfRange,
// ErrInvalid or the underlying parse error (*strconv.NumError, ...).
type FieldError struct {
	Var    string // environment variable, e.g. "RELAY_LEASE"
	Value  string // the value as displayed: "" when secret or empty; passwords masked
	Reason string // what is wrong, e.g. "is out of range 1s..24h"
	Err    error  // the cause: a sentinel above or a parse error; may be nil

	secret bool // never show Value
	raw    bool // Value is text as the user wrote it: always quoted
	url    bool // Value is a (redacted) URL: shown after the reason
}

// Error renders VAR=value reason; a value as written (one that did not
// parse) is quoted; a connection string or URL comes last, in parentheses:
//
//	RELAY_LEASE="two minutes" is not a duration (examples: 500ms, 30s, 2m)
//	RELAY_CONCURRENCY=0 is out of range 1..10000
//	DATABASE_URL does not parse: invalid port (postgres://u:xxxxx@db:x/app)
func (e *FieldError) Error() string {
	switch {
	case e.Value == "" || e.secret:
		return e.Var + " " + e.Reason
	case e.url:
		return e.Var + " " + e.Reason + " (" + e.Value + ")"
	case e.raw:
		return e.Var + "=" + strconv.Quote(e.Value) + " " + e.Reason
	}
	return e.Var + "=" + quoteIfNeeded(e.Value) + " " + e.Reason
}

// Unwrap returns the cause. (A secret setting's cause is never a parse
// error, whose text could quote the value: ParseEnv replaces it by
// ErrInvalid.)
func (e *FieldError) Unwrap() error { return e.Err }

// quoteIfNeeded quotes values with spaces, quotes or control characters so
// the reader sees where they end.
func quoteIfNeeded(v string) string {
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == '"' || r == '\'' || r == 0x7f }) {
		return strconv.Quote(v)
	}
	return v
}

// fieldErr builds a FieldError for the setting of Config named by its
// variable, displaying raw through the setting's redaction.
func fieldErr(envVar, raw, reason string, cause error) *FieldError {
	fe := &FieldError{Var: envVar, Reason: reason, Err: cause}
	for _, s := range configSettings() {
		if s.Env == envVar {
			fe.Value, fe.secret, fe.url = s.display(raw), s.Secret, s.RedactURL
			return fe
		}
	}
	fe.Value = raw
	return fe
}

// DatabaseURLError explains why a connection string does not parse, naming
// the part that is wrong (pgx's reason, e.g. "invalid port" or "sslmode is
// invalid") with every password masked: the connection string itself never
// appears, only RedactURL of it.
func DatabaseURLError(connString string, err error) *FieldError {
	reason := "does not parse as a Postgres connection string (a postgres:// URL or the key=value form)"
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// pgx's text is "cannot parse `<redacted>`: <what> (<cause>)":
		// keep what follows the connection string. The prefix is rebuilt
		// with pgx's own redaction so that it matches exactly.
		prefix := pgconn.NewParseConfigError(pce.ConnString, "", nil).Error()
		detail := strings.TrimPrefix(pce.Error(), prefix)
		if detail != pce.Error() && detail != "" {
			detail = scrubPasswords(detail, connString)
			if strings.Contains(detail, "sslmode") {
				if m := sslmodeRE.FindStringSubmatch(connString); m != nil {
					detail += ": sslmode=" + quoteIfNeeded(m[1]) + " is not one of disable, allow, prefer, require, verify-ca, verify-full"
				}
			}
			reason = "does not parse: " + detail
		}
	}
	return &FieldError{Var: "DATABASE_URL", Value: RedactURL(connString), Reason: reason, Err: ErrInvalid, url: true}
}

var sslmodeRE = regexp.MustCompile(`(?i)\bsslmode\s*=\s*([^&\s]*)`)

// scrubPasswords is RedactText.
func scrubPasswords(text, connString string) string { return RedactText(text, connString) }

// RedactText masks in text (an error message or log line) everything of
// connString's passwords that it may quote: the connection string itself
// (shown as RedactURL of it), each password as written, percent-decoded,
// unescaped (key=value backslashes) and Go-quoted, and each piece of it
// between '@', ':', '/', whitespace or backslash that is at least 3
// characters long, each replaced by "xxxxx". The pieces are there because
// the driver's own messages can quote a fragment: with an unescaped '@' in
// the password, pgx reads the rest as the host and says "lookup
// Secret@127.0.0.1: no such host". It errs on the side of hiding too much.
func RedactText(text, connString string) string {
	if connString == "" {
		return text
	}
	text = strings.ReplaceAll(text, connString, RedactURL(connString))
	for _, f := range passwordFragments(connString) {
		text = strings.ReplaceAll(text, f, "xxxxx")
	}
	return text
}

// RedactError is err with its message through RedactText, for errors that
// may quote connString (a driver's connect error, wrapped or not). errors.Is
// and errors.As still see err. nil stays nil; an error without a password
// fragment is returned as it is.
func RedactError(err error, connString string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := RedactText(msg, connString); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// passwordFragments returns what RedactText masks, longest first.
func passwordFragments(connString string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if f != "" && !seen[f] && f != "xxxxx" {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, pw := range passwordsIn(connString) {
		for _, form := range []string{pw, kvUnescape(pw)} {
			add(form)
			add(strconv.Quote(form)[1 : len(strconv.Quote(form))-1])
			for _, piece := range strings.FieldsFunc(form, func(r rune) bool {
				return r == '@' || r == ':' || r == '/' || r == '\\' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
			}) {
				if len(piece) >= 3 {
					add(piece)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// kvUnescape drops the backslash of each backslash escape (libpq's
// key=value quoting).
func kvUnescape(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// passwordsIn returns the substrings RedactURL masks in s (without the
// quotes of a quoted key=value password), and their percent-decoded forms.
func passwordsIn(s string) []string {
	var out []string
	for _, sp := range passwordSpans(s) {
		pw := s[sp[0]:sp[1]]
		if len(pw) >= 2 && pw[0] == '\'' && pw[len(pw)-1] == '\'' {
			pw = pw[1 : len(pw)-1]
		} else {
			pw = strings.TrimPrefix(pw, "'")
		}
		out = append(out, pw)
		if d, err := url.PathUnescape(pw); err == nil && d != pw {
			out = append(out, d)
		}
		if d, err := url.QueryUnescape(pw); err == nil && d != pw {
			out = append(out, d)
		}
	}
	return out
}
