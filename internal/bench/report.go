package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of Run.
type Report struct {
	Machine Machine         `json:"machine"`
	Quick   bool            `json:"quick"`
	Relay   RelaySettings   `json:"relay"`
	Results []Result        `json:"results"`
	Notes   []Note          `json:"notes,omitempty"`
	Errors  []ScenarioError `json:"errors,omitempty"`
}

// Machine is where the figures come from.
type Machine struct {
	Date              string `json:"date"`
	CPUs              int    `json:"cpus"`
	GOMAXPROCS        int    `json:"gomaxprocs"`
	CPUModel          string `json:"cpu_model,omitempty"`
	OS                string `json:"os"`
	GoVersion         string `json:"go_version"`
	Postgres          string `json:"postgres"`
	SharedBuffers     string `json:"shared_buffers"`
	SynchronousCommit string `json:"synchronous_commit"`
	Fsync             string `json:"fsync"`
	Autovacuum        string `json:"autovacuum"`
	LoadAvg           string `json:"load_avg,omitempty"` // 1, 5, 15 min, at start
}

// RelaySettings are the base relay settings (scenarios may override some).
type RelaySettings struct {
	Concurrency  int     `json:"concurrency"`
	BatchSize    int     `json:"batch_size"`
	PollInterval string  `json:"poll_interval"`
	RateLimit    float64 `json:"rate_limit"`
}

// Result is one measured figure.
type Result struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Target   *Target `json:"target,omitempty"`
	Pass     *bool   `json:"pass,omitempty"`
}

// Target is a performance target a figure is held against.
type Target struct {
	Op    string  `json:"op"` // ">=" or "<="
	Value float64 `json:"value"`
}

// AtLeast and AtMost build targets.
func AtLeast(v float64) *Target { return &Target{Op: ">=", Value: v} }

// AtMost is a ceiling target.
func AtMost(v float64) *Target { return &Target{Op: "<=", Value: v} }

// Met reports whether v meets the target.
func (t *Target) Met(v float64) bool {
	if t.Op == "<=" {
		return v <= t.Value
	}
	return v >= t.Value
}

func (t *Target) String() string { return t.Op + " " + FormatValue(t.Value) }

// Note is a line of context for a scenario's figures.
type Note struct {
	Scenario string `json:"scenario"`
	Text     string `json:"text"`
}

// ScenarioError is a scenario that failed.
type ScenarioError struct {
	Scenario string `json:"scenario"`
	Error    string `json:"error"`
}

// FormatValue prints v with precision suited to its size (whole numbers
// without decimals), with no digit grouping, so the table stays
// machine-readable.
func FormatValue(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 100 || v == float64(int64(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// TableHeader is the first line of the results table.
var TableHeader = []string{"SCENARIO", "METRIC", "VALUE", "UNIT", "TARGET", "RESULT"}

// WriteText prints the machine, the results table (columns separated by at
// least two spaces; "-" for no target), then notes and errors.
func (r *Report) WriteText(w io.Writer) error {
	m := r.Machine
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "outbox-relay bench (%s), %s\n", mode, m.Date)
	fmt.Fprintf(w, "machine:  %d CPUs (%s), GOMAXPROCS %d, %s, %s; load average at start %s\n", m.CPUs, m.CPUModel, m.GOMAXPROCS, m.OS, m.GoVersion, m.LoadAvg)
	fmt.Fprintf(w, "postgres: %s (shared_buffers %s, synchronous_commit %s, fsync %s, autovacuum %s), on the same machine\n", m.Postgres, m.SharedBuffers, m.SynchronousCommit, m.Fsync, m.Autovacuum)
	if m.Autovacuum == "off" {
		fmt.Fprintln(w, "autovacuum is off on this server: every scenario VACUUM ANALYZEs the outbox after loading it, so figures are not bloat")
	}
	fmt.Fprintf(w, "relay:    concurrency %d, batch %d, poll %s, rate limit %s (unless a scenario sets them)\n\n",
		r.Relay.Concurrency, r.Relay.BatchSize, r.Relay.PollInterval, rateLimitText(r.Relay.RateLimit))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(TableHeader, "\t"))
	for _, res := range r.Results {
		target, verdict := "-", "-"
		if res.Target != nil {
			target = res.Target.String()
			verdict = "ok"
			if res.Pass != nil && !*res.Pass {
				verdict = "MISS"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", res.Scenario, res.Metric, FormatValue(res.Value), res.Unit, target, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range r.Notes {
			text := strings.ReplaceAll(n.Text, "\n", "\n    ")
			fmt.Fprintf(w, "  %s: %s\n", n.Scenario, text)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "\nFailed scenarios:")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %s: %s\n", e.Scenario, e.Error)
		}
	}
	return nil
}

func rateLimitText(v float64) string {
	if v == 0 {
		return "none"
	}
	return FormatValue(v) + "/s"
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
