package config

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Setting describes one declared setting, one field of a settings struct
// (SettingsOf lists them). A settings struct declares each setting once, as one field with struct
// tags; the environment variable, flag, default, group and documentation
// all come from them:
//
//	BatchSize int `env:"RELAY_BATCH_SIZE" envDefault:"500" group:"relay" help:"most rows per claim"`
//
// Tags:
//   - env: the environment variable (required; caarlos0/env/v11 reads it).
//   - envDefault: the default, in the same syntax as the variable
//     (caarlos0/env/v11 applies it). Absent: the zero value.
//   - help: one line of documentation, used for the flag's usage text and
//     the README table. 'word' is rendered as code in the README.
//   - group: which group of settings it belongs to, so that each command
//     takes only the groups it uses (see CommandGroups). Free text for other
//     packages' structs.
//   - flag: the flag name when it is not derived from env (the variable
//     without its RELAY_, PARAGON_ or CONSOLE_ prefix, lower case, '_' →
//     '-'), or "-" for no flag at all (a secret passed on the command line
//     would show in process listings).
//   - secret:"true": the value never appears in an error, a log or usage.
//   - redact:"url": the value is shown through RedactURL (a connection
//     string that may hold a password).
//   - defaultDoc: the README's default column when the default is not a
//     literal, e.g. "(required)" or "host-pid-random".
//   - deprecatedEnv / deprecatedFlag: an older variable or flag name that is
//     still accepted, with a warning.
//
// Field types: string, bool, int, float64 and time.Duration (see parsers).
type Setting struct {
	Field          string // Go field name, e.g. "BatchSize"
	Env            string // environment variable, e.g. "RELAY_BATCH_SIZE"
	Flag           string // flag name without the dash, e.g. "batch-size"; "" = no flag
	Default        string // envDefault text; "" = the zero value
	DefaultDoc     string // README default when not a literal
	Help           string // one line of documentation
	Group          string // e.g. "relay"
	Secret         bool   // never displayed
	RedactURL      bool   // displayed through RedactURL
	DeprecatedEnv  string // older variable still read (with a warning)
	DeprecatedFlag string // older flag still accepted (with a warning)
	Type           reflect.Type
	index          int
}

// prefixes are stripped from a variable to make its flag name.
var flagPrefixes = []string{"RELAY_", "PARAGON_", "CONSOLE_"}

// FlagName derives a flag name from an environment variable:
// RELAY_BATCH_SIZE → batch-size, DATABASE_URL → database-url.
func FlagName(envVar string) string {
	for _, p := range flagPrefixes {
		if rest, ok := strings.CutPrefix(envVar, p); ok && rest != "" {
			envVar = rest
			break
		}
	}
	return strings.ReplaceAll(strings.ToLower(envVar), "_", "-")
}

// SettingsOf lists the settings declared by the struct type of v (a struct
// or a pointer to one), in field order. It panics on a malformed
// declaration (a field without env tag, an unsupported type): those are
// programming errors that every test of the package catches.
func SettingsOf(v any) []Setting {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("config: SettingsOf(%T): not a struct", v))
	}
	out := make([]Setting, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			panic(fmt.Sprintf("config: field %s.%s has no env tag", t.Name(), f.Name))
		}
		if _, ok := parsers[f.Type]; !ok && f.Type.Kind() != reflect.String {
			panic(fmt.Sprintf("config: field %s.%s has unsupported type %s", t.Name(), f.Name, f.Type))
		}
		s := Setting{
			Field:          f.Name,
			Env:            name,
			Flag:           FlagName(name),
			Default:        f.Tag.Get("envDefault"),
			DefaultDoc:     f.Tag.Get("defaultDoc"),
			Help:           f.Tag.Get("help"),
			Group:          f.Tag.Get("group"),
			Secret:         f.Tag.Get("secret") == "true",
			RedactURL:      f.Tag.Get("redact") == "url",
			DeprecatedEnv:  f.Tag.Get("deprecatedEnv"),
			DeprecatedFlag: f.Tag.Get("deprecatedFlag"),
			Type:           f.Type,
			index:          i,
		}
		if fl, ok := f.Tag.Lookup("flag"); ok {
			s.Flag = fl
			if fl == "-" {
				s.Flag = ""
			}
		}
		out = append(out, s)
	}
	return out
}

// display is how a value of s may appear in an error or usage text.
func (s Setting) display(raw string) string {
	switch {
	case s.Secret:
		return ""
	case s.RedactURL:
		return RedactURL(raw)
	}
	return raw
}

// parsers read the variables of each supported type. Spaces around numbers
// and durations are ignored (a trailing space in a .env file is common).
var parsers = map[reflect.Type]env.ParserFunc{
	reflect.TypeFor[int](): func(v string) (any, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, &FieldError{Value: v, Reason: "is not a whole number", Err: err}
		}
		return n, nil
	},
	reflect.TypeFor[float64](): func(v string) (any, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, &FieldError{Value: v, Reason: "is not a number", Err: err}
		}
		return f, nil
	},
	reflect.TypeFor[bool](): func(v string) (any, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return nil, &FieldError{Value: v, Reason: "is not a boolean (true or false)", Err: err}
		}
		return b, nil
	},
	reflect.TypeFor[time.Duration](): func(v string) (any, error) {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, &FieldError{Value: v, Reason: "is not a duration (examples: 500ms, 30s, 2m)", Err: err}
		}
		return d, nil
	},
}

// ParseEnv sets the fields of the settings struct *dst from the environment
// (getenv is os.Getenv in production), each field that is not set taking its
// envDefault. An empty variable counts as unset. A variable that does not
// parse leaves its field as it was and is reported as a *FieldError naming
// the variable; all such errors are returned together (errors.Join). A
// deprecated variable is read when its successor is unset, with a warning in
// the returned list. Ranges are the struct's own Validate's job.
func ParseEnv(dst any, getenv func(string) string) (warnings []string, err error) {
	settings := SettingsOf(dst)
	m := map[string]string{}
	for _, s := range settings {
		if v := getenv(s.Env); v != "" {
			m[s.Env] = v
		} else if s.DeprecatedEnv != "" {
			if v := getenv(s.DeprecatedEnv); v != "" {
				m[s.Env] = v
				warnings = append(warnings, fmt.Sprintf("%s is deprecated; set %s instead", s.DeprecatedEnv, s.Env))
			}
		}
	}
	perr := env.ParseWithOptions(dst, env.Options{Environment: m, FuncMap: parsers})
	if perr == nil {
		return warnings, nil
	}
	byField := map[string]Setting{}
	for _, s := range settings {
		byField[s.Field] = s
	}
	var agg env.AggregateError
	if !errors.As(perr, &agg) {
		return warnings, perr
	}
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			errs = append(errs, e)
			continue
		}
		s := byField[pe.Name]
		fe := &FieldError{Var: s.Env, Reason: "does not parse", Err: pe.Err}
		var inner *FieldError
		if errors.As(pe.Err, &inner) {
			fe.Reason, fe.Err = inner.Reason, inner.Err
		}
		fe.Value, fe.secret, fe.raw, fe.url = s.display(m[s.Env]), s.Secret, true, s.RedactURL
		if s.Secret {
			fe.Err = ErrInvalid
		}
		errs = append(errs, fe)
	}
	return warnings, errors.Join(errs...)
}

// DefaultsOf returns the settings struct T with every envDefault applied.
// It panics if a default does not parse (a declaration error).
func DefaultsOf[T any]() T {
	var t T
	if _, err := ParseEnv(&t, func(string) string { return "" }); err != nil {
		panic(fmt.Sprintf("config: a default of %T does not parse: %v", t, err))
	}
	return t
}

// flagValue is a flag.Value over one field: it parses with the same parser
// as the environment and displays (in usage) through the setting's
// redaction, so a password or key never appears in usage text.
type flagValue struct {
	s Setting
	v reflect.Value // the field, settable
}

func (f flagValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	if f.s.Secret {
		return ""
	}
	switch x := f.v.Interface().(type) {
	case string:
		return f.s.display(x)
	case time.Duration:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

func (f flagValue) Set(raw string) error {
	if f.v.Kind() == reflect.String {
		f.v.SetString(raw)
		return nil
	}
	x, err := parsers[f.v.Type()](raw)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return errors.New(fe.Reason)
		}
		return err
	}
	f.v.Set(reflect.ValueOf(x))
	return nil
}

// register defines the flag on fs as the flag package's own type (so usage
// shows "string", "duration", ... as usual). The default shown in usage is
// redacted for URLs and blank for secrets.
func (f flagValue) register(fs *flag.FlagSet, name, usage string) {
	switch p := f.v.Addr().Interface().(type) {
	case *string:
		fs.StringVar(p, name, *p, usage)
	case *int:
		fs.IntVar(p, name, *p, usage)
	case *float64:
		fs.Float64Var(p, name, *p, usage)
	case *bool:
		fs.BoolVar(p, name, *p, usage)
	case *time.Duration:
		fs.DurationVar(p, name, *p, usage)
	default:
		fs.Var(f, name, usage)
		return
	}
	switch {
	case f.s.Secret:
		fs.Lookup(name).DefValue = fmt.Sprint(reflect.Zero(f.v.Type()).Interface())
	case f.s.RedactURL:
		fs.Lookup(name).DefValue = f.String()
	}
}

// IsBoolFlag lets a bool setting be given as -name alone.
func (f flagValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

// usage is the flag usage text: the help line with 'quotes' kept, and the
// variable it overrides.
func (s Setting) usage() string {
	return fmt.Sprintf("%s (env %s)", s.Help, s.Env)
}

// BindFlags registers on fs one flag per setting of *dst that has a flag and
// for which keep returns true (nil keeps all), with the field's current
// value as the default, so flags parsed afterwards override the
// environment. Deprecated flag names are not registered (FlagParser.Bind
// accepts them). It returns the settings bound.
func BindFlags(fs *flag.FlagSet, dst any, keep func(Setting) bool) []Setting {
	var bound []Setting
	for _, s := range SettingsOf(dst) {
		if s.Flag == "" || (keep != nil && !keep(s)) {
			continue
		}
		fieldValue(dst, s).register(fs, s.Flag, s.usage())
		bound = append(bound, s)
	}
	return bound
}

func fieldValue(dst any, s Setting) flagValue {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config: %T is not a pointer to a settings struct", dst))
	}
	return flagValue{s, rv.Elem().Field(s.index)}
}

// FlagParser parses a command's flags: the flags registered on Visible (its
// own, listed by -h) and hidden ones still accepted for compatibility, each
// use of which warns.
type FlagParser struct {
	Visible *flag.FlagSet
	hidden  *flag.FlagSet
	why     map[string]string // warning per hidden flag
}

// NewFlagParser returns a parser over the visible flag set fs. Register the
// command's own flags on fs as usual.
func NewFlagParser(fs *flag.FlagSet) *FlagParser {
	return &FlagParser{Visible: fs, hidden: flag.NewFlagSet(fs.Name(), flag.ContinueOnError), why: map[string]string{}}
}

// Hide registers a flag that works but is never listed in usage; using it
// adds warning to Parse's warnings.
func (p *FlagParser) Hide(name string, value flag.Value, warning string) {
	p.hidden.Var(value, name, warning)
	p.why[name] = warning
}

// Bind registers the settings of *dst: those keep accepts (nil: all) as
// visible flags; the others, for compatibility, as hidden flags that still
// set their field and warn that command does not take them; and every
// deprecatedFlag alias as a hidden flag that warns.
func (p *FlagParser) Bind(dst any, keep func(Setting) bool, command string) {
	for _, s := range SettingsOf(dst) {
		if s.Flag == "" {
			continue
		}
		v := fieldValue(dst, s)
		if keep == nil || keep(s) {
			v.register(p.Visible, s.Flag, s.usage())
		} else {
			p.Hide(s.Flag, v, fmt.Sprintf("flag -%s (%s) is not a setting of %s: it is accepted for compatibility and will be refused in a future release; remove it", s.Flag, s.Env, command))
		}
		if s.DeprecatedFlag != "" {
			p.Hide(s.DeprecatedFlag, v, fmt.Sprintf("flag -%s is deprecated; use -%s", s.DeprecatedFlag, s.Flag))
		}
	}
}

// Parse parses args over the visible and hidden flags. Usage (on -h or an
// error) is Visible's: hidden flags are never listed. Afterwards
// Visible.Args() and Visible.NArg() hold the arguments after the flags. It
// returns one warning per hidden flag used, and the flag package's error.
func (p *FlagParser) Parse(args []string) (warnings []string, err error) {
	vis := p.Visible
	// One flag set knows every flag, visible and hidden; its values only
	// record what was given, in order. The records are then applied with
	// Visible.Set (so Visible.Visit and Lookup see what was set, as after
	// Visible.Parse) or to the hidden flag.
	all := flag.NewFlagSet(vis.Name(), flag.ContinueOnError)
	all.SetOutput(vis.Output())
	usage := func() {
		if vis.Usage != nil {
			vis.Usage()
			return
		}
		fmt.Fprintf(vis.Output(), "Usage of %s:\n", vis.Name())
		vis.PrintDefaults()
	}
	all.Usage = usage
	var given []recorded
	vis.VisitAll(func(f *flag.Flag) { all.Var(&recorder{f.Value, f.Name, &given}, f.Name, f.Usage) })
	p.hidden.VisitAll(func(f *flag.Flag) {
		if vis.Lookup(f.Name) == nil {
			all.Var(&recorder{f.Value, f.Name, &given}, f.Name, f.Usage)
		}
	})
	if err := all.Parse(args); err != nil {
		return nil, err
	}
	warned := map[string]bool{}
	for _, g := range given {
		var err error
		if vis.Lookup(g.name) != nil {
			err = vis.Set(g.name, g.value)
		} else {
			err = p.hidden.Lookup(g.name).Value.Set(g.value)
			if w, ok := p.why[g.name]; ok && !warned[g.name] {
				warned[g.name] = true
				warnings = append(warnings, w)
			}
		}
		if err != nil {
			err = fmt.Errorf("invalid value %q for flag -%s: %v", g.value, g.name, err)
			fmt.Fprintln(vis.Output(), err)
			usage()
			return warnings, err
		}
	}
	// Hand the remaining arguments to Visible ("--" so that none of them
	// is read as a flag again).
	if err := vis.Parse(append([]string{"--"}, all.Args()...)); err != nil {
		return warnings, err
	}
	return warnings, nil
}

type recorded struct{ name, value string }

// recorder is a flag.Value that records each value given for flag name.
type recorder struct {
	v     flag.Value
	name  string
	given *[]recorded
}

func (r *recorder) String() string {
	if r == nil || r.v == nil {
		return ""
	}
	return r.v.String()
}

func (r *recorder) Set(s string) error {
	*r.given = append(*r.given, recorded{r.name, s})
	return nil
}

func (r *recorder) IsBoolFlag() bool {
	b, ok := r.v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// MarkdownTable renders settings as the README's configuration table:
// variable, default, flag and meaning. 'word' in help becomes code, and so
// does every variable name of the table.
func MarkdownTable(settings []Setting) string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Flag | Meaning |\n|---|---|---|---|\n")
	names := make([]string, 0, len(settings))
	for _, s := range settings {
		names = append(names, regexp.QuoteMeta(s.Env))
	}
	varRE := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	for _, s := range settings {
		def := s.DefaultDoc
		if s.Default != "" {
			def = "`" + s.Default + "`"
		} else if def == "" && s.Type.Kind() != reflect.String {
			def = "`" + fmt.Sprint(reflect.Zero(s.Type).Interface()) + "`"
		}
		fl := ""
		if s.Flag != "" {
			fl = "`-" + s.Flag + "`"
		}
		help := quotedWord.ReplaceAllString(s.Help, "$1`$2`")
		help = varRE.ReplaceAllStringFunc(help, func(v string) string { return "`" + v + "`" })
		help = strings.ReplaceAll(help, "``", "`") // a variable already quoted
		help = strings.ReplaceAll(help, "|", `\|`)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Env, def, fl, help)
	}
	return b.String()
}

// quotedWord is 'word' (after a space, an opening parenthesis or the start).
var quotedWord = regexp.MustCompile(`(^|[\s(])'([^'\s][^']*?)'`)
