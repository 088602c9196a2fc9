package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// chart is the overview's per-minute chart, drawn on the server as SVG
// rectangles (no JavaScript, nothing fetched).
type chart struct {
	Width, Height  int
	Bars           []bar
	Max            int64
	From, To       time.Time
	TotalDelivered int64
	TotalFailed    int64
	PeakDelivered  int64
	PeakFailed     int64
	Gridlines      []gridline
}

type bar struct {
	X, W, FailedX          float64
	DeliveredY, DeliveredH float64
	FailedY, FailedH       float64
	Title                  string
}

type gridline struct {
	Y     float64
	Label string
}

const chartPlotHeight = 160

func newChart(mins []minuteCount) chart {
	c := chart{Width: 720, Height: chartPlotHeight}
	if len(mins) == 0 {
		return c
	}
	c.From, c.To = mins[0].Minute, mins[len(mins)-1].Minute.Add(time.Minute)
	for _, m := range mins {
		c.TotalDelivered += m.Delivered
		c.TotalFailed += m.Failed
		c.PeakDelivered = max(c.PeakDelivered, m.Delivered)
		c.PeakFailed = max(c.PeakFailed, m.Failed)
	}
	c.Max = niceCeil(max(c.PeakDelivered, c.PeakFailed, 1))
	w := float64(c.Width) / float64(len(mins))
	h := float64(chartPlotHeight)
	for i, m := range mins {
		dh := h * float64(m.Delivered) / float64(c.Max)
		fh := h * float64(m.Failed) / float64(c.Max)
		c.Bars = append(c.Bars, bar{
			// Deliveries on the left half of the minute, failures on the right.
			X: float64(i) * w, W: math.Max(w/2-0.25, 0.4), FailedX: float64(i)*w + w/2,
			DeliveredY: h - dh, DeliveredH: dh, FailedY: h - fh, FailedH: fh,
			Title: fmt.Sprintf("%s UTC: %d delivered, %d failed attempts", m.Minute.UTC().Format("15:04"), m.Delivered, m.Failed),
		})
	}
	for _, f := range []float64{0.5, 1} {
		c.Gridlines = append(c.Gridlines, gridline{Y: h - h*f, Label: fmt.Sprint(int64(float64(c.Max) * f))})
	}
	return c
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten.
func niceCeil(n int64) int64 {
	p := int64(1)
	for {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
		p *= 10
	}
}

var funcs = template.FuncMap{
	"utc": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return fmt.Sprint(t)
	},
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"formtime": func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04") },
	"secs":     humanSeconds,
	"secsp": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return humanSeconds(*f)
	},
	"since": func(now time.Time, t *time.Time) string {
		if t == nil {
			return "—"
		}
		return humanSeconds(now.Sub(*t).Seconds())
	},
	"i32": func(p *int32) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprint(*p)
	},
	"i64": func(p *int64) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprint(*p)
	},
	"str": func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	},
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"label": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
}

// humanSeconds renders a duration in seconds: 850ms, 4.2s, 3m10s, 2h05m, 3d4h.
func humanSeconds(s float64) string {
	switch {
	case s < 0:
		return "0s"
	case s < 1:
		return fmt.Sprintf("%dms", int(s*1000))
	case s < 60:
		return fmt.Sprintf("%.1fs", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", int(s)/3600, int(s)%3600/60)
	}
	return fmt.Sprintf("%dd%dh", int(s)/86400, int(s)%86400/3600)
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range []string{"overview", "events", "event", "redrive", "error"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}
