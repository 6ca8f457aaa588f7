// Package grafana does in the tests what Grafana does with the dashboards:
// it turns a panel's target into the query Grafana's Prometheus data source
// sends (step, $__interval, $__rate_interval, $__range), and runs the
// Prometheus results through Grafana's own frontend code (the data source's
// result transformer and the panel's transformations, from npm).
package grafana

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// DataSource is what a Prometheus data source's settings change in its
// queries.
type DataSource struct {
	// ScrapeInterval is the "Scrape interval" setting (jsonData.timeInterval);
	// zero leaves it unset, as Grafana does unless the user sets it.
	ScrapeInterval time.Duration
}

// View is what a panel is shown for: the dashboard's time range and the
// panel's width in data points (Grafana's maxDataPoints is the panel's
// width in pixels unless the panel sets it).
type View struct {
	From, To      time.Time
	MaxDataPoints int
}

// Query is a target as the data source sends it to Prometheus.
type Query struct {
	Expr         string
	Instant      bool
	Start, End   time.Time // End only, for an instant query
	Step         time.Duration
	Interval     time.Duration // $__interval
	RateInterval time.Duration // $__rate_interval
	RangeSeconds int64         // $__range
}

// defaultScrapeInterval is the data source's scrape interval when unset.
const defaultScrapeInterval = 15 * time.Second

// safeResolution bounds the number of points of a range query.
const safeResolution = 11000

// Resolve computes the query Grafana (10.3 to 13) sends for a target:
//   - the panel's interval, in the frontend: the range over maxDataPoints,
//     rounded, at least the data source's scrape interval when set;
//   - the step, in the backend: the same, at least the target's "Min step"
//     (its interval) when set, else the interval above;
//   - $__rate_interval = max(interval + S, 4 × S), S the target's Min step
//     when set, else the data source's scrape interval, 15 s when unset.
func Resolve(tg testtool.Target, ds DataSource, v View) (Query, error) {
	rangeDur := v.To.Sub(v.From)
	// Frontend: PanelQueryRunner and rangeUtil.calculateInterval.
	interval := roundInterval(rangeDur / time.Duration(v.MaxDataPoints))
	if ds.ScrapeInterval > interval {
		interval = ds.ScrapeInterval
	}
	// Backend: calculatePrometheusInterval.
	minInterval := interval
	minStep := time.Duration(0)
	if tg.Interval != "" && tg.Interval != "0s" {
		d, err := parseInterval(tg.Interval)
		if err != nil {
			return Query{}, err
		}
		minStep, minInterval = d, d
	}
	step := rangeDur / time.Duration(v.MaxDataPoints)
	if step < minInterval {
		step = minInterval
	}
	step = roundInterval(step)
	if safe := roundInterval(rangeDur / safeResolution); safe > step {
		step = safe
	}
	// Backend: InterpolateVariables.
	s := ds.ScrapeInterval
	if minStep > 0 {
		s = minStep
	}
	if s == 0 {
		s = defaultScrapeInterval
	}
	rate := max(interval+s, 4*s)
	rangeSeconds := int64(rangeDur.Round(time.Second) / time.Second)

	expr := tg.Expr
	expr = strings.ReplaceAll(expr, "$__rate_interval", model.Duration(rate).String())
	expr = strings.ReplaceAll(expr, "$__interval", model.Duration(step).String())
	expr = strings.ReplaceAll(expr, "$__range", strconv.FormatInt(rangeSeconds, 10)+"s")
	q := Query{
		Expr: expr, Instant: tg.Instant, Step: step, RateInterval: rate,
		RangeSeconds: rangeSeconds,
	}
	if tg.Instant {
		q.End = v.To
		return q, nil
	}
	// The range is aligned to the step, start and end rounded down.
	q.Start = v.From.Truncate(step)
	q.End = v.To.Truncate(step)
	return q, nil
}

func parseInterval(s string) (time.Duration, error) {
	if _, err := strconv.Atoi(s); err == nil {
		s += "s" // a bare number is seconds
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}

// roundInterval is Grafana's rounding of an interval to a readable one.
func roundInterval(d time.Duration) time.Duration {
	ms := time.Millisecond
	steps := []struct{ below, to time.Duration }{
		{10 * ms, 1 * ms}, {15 * ms, 10 * ms}, {35 * ms, 20 * ms}, {75 * ms, 50 * ms},
		{150 * ms, 100 * ms}, {350 * ms, 200 * ms}, {750 * ms, 500 * ms}, {1500 * ms, time.Second},
		{3500 * ms, 2 * time.Second}, {7500 * ms, 5 * time.Second}, {12500 * ms, 10 * time.Second},
		{17500 * ms, 15 * time.Second}, {25 * time.Second, 20 * time.Second}, {45 * time.Second, 30 * time.Second},
		{90 * time.Second, time.Minute}, {210 * time.Second, 2 * time.Minute}, {450 * time.Second, 5 * time.Minute},
		{750 * time.Second, 10 * time.Minute}, {1050 * time.Second, 15 * time.Minute}, {1500 * time.Second, 20 * time.Minute},
		{2700 * time.Second, 30 * time.Minute}, {5400 * time.Second, time.Hour}, {9000 * time.Second, 2 * time.Hour},
		{16200 * time.Second, 3 * time.Hour}, {32400 * time.Second, 6 * time.Hour}, {24 * time.Hour, 12 * time.Hour},
		{7 * 24 * time.Hour, 24 * time.Hour}, {21 * 24 * time.Hour, 7 * 24 * time.Hour}, {42 * 24 * time.Hour, 30 * 24 * time.Hour},
	}
	for _, s := range steps {
		if d < s.below {
			return s.to
		}
	}
	return 365 * 24 * time.Hour
}
