package grafana

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

func TestResolve(t *testing.T) {
	to := time.Unix(1_800_000_000, 0)
	hour := View{From: to.Add(-time.Hour), To: to, MaxDataPoints: 1000}
	week := View{From: to.Add(-7 * 24 * time.Hour), To: to, MaxDataPoints: 1000}
	rate := testtool.Target{Expr: "rate(x[$__rate_interval])"}
	withMinStep := testtool.Target{Expr: "rate(x[$__rate_interval])", Interval: "1m"}
	for _, c := range []struct {
		name     string
		tg       testtool.Target
		ds       DataSource
		v        View
		step     time.Duration
		rate     time.Duration
		wantExpr string
	}{
		// The data source's defaults: a one-minute window, one sample at
		// a 60 s scrape.
		{"defaults", rate, DataSource{}, hour, 5 * time.Second, time.Minute, "rate(x[1m])"},
		{"scrape interval set", rate, DataSource{ScrapeInterval: time.Minute}, hour, time.Minute, 4 * time.Minute, "rate(x[4m])"},
		{"min step", withMinStep, DataSource{}, hour, time.Minute, 4 * time.Minute, "rate(x[4m])"},
		{"min step, scrape interval set", withMinStep, DataSource{ScrapeInterval: time.Minute}, hour, time.Minute, 4 * time.Minute, "rate(x[4m])"},
		{"a week", withMinStep, DataSource{}, week, 10 * time.Minute, 11 * time.Minute, "rate(x[11m])"},
		{"range", testtool.Target{Expr: "increase(x[$__range])", Instant: true}, DataSource{}, hour, 5 * time.Second, time.Minute, "increase(x[3600s])"},
	} {
		q, err := Resolve(c.tg, c.ds, c.v)
		if err != nil {
			t.Fatal(err)
		}
		if q.Step != c.step || q.RateInterval != c.rate || q.Expr != c.wantExpr {
			t.Errorf("%s: step %v rate interval %v expr %s, want %v %v %s", c.name, q.Step, q.RateInterval, q.Expr, c.step, c.rate, c.wantExpr)
		}
		if !c.tg.Instant && (q.Start.UnixNano()%int64(q.Step) != 0 || q.End.After(c.v.To)) {
			t.Errorf("%s: range %v..%v not aligned to the step %v", c.name, q.Start, q.End, q.Step)
		}
	}
}

func TestRoundInterval(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		3600 * time.Millisecond:   5 * time.Second,
		14 * time.Second:          15 * time.Second,
		60 * time.Second:          time.Minute,
		604800 * time.Millisecond: 10 * time.Minute,
		100 * 24 * time.Hour:      365 * 24 * time.Hour,
	} {
		if got := roundInterval(in); got != want {
			t.Errorf("roundInterval(%v) = %v, want %v", in, got, want)
		}
	}
}

// TestMergeJoinsOnEveryCommonField runs Grafana's code on the case that
// made a table list every instance twice: series keeping __name__ do not
// merge into one row.
func TestMergeJoinsOnEveryCommonField(t *testing.T) {
	var p testtool.Panel
	if err := json.Unmarshal([]byte(`{"title": "t", "targets": [
		{"refId": "A", "format": "table", "instant": true},
		{"refId": "B", "format": "table", "instant": true}],
		"transformations": [{"id": "merge", "options": {}}]}`), &p); err != nil {
		t.Fatal(err)
	}
	sample := func(labels ...string) Sample {
		s := Sample{Metric: map[string]string{}, Value: [2]any{1.8e9, "1"}}
		for i := 0; i < len(labels); i += 2 {
			s.Metric[labels[i]] = labels[i+1]
		}
		return s
	}
	for _, c := range []struct {
		name string
		a, b Sample
		rows int
	}{
		{"with __name__", sample("__name__", "whatsapp_instance_state", "name", "shop", "state", "authorized"), sample("__name__", "whatsapp_up", "name", "shop"), 2},
		{"aggregated", sample("name", "shop", "state", "authorized"), sample("name", "shop"), 1},
	} {
		frames := Transform(t, PanelData{p, map[string][]Sample{"A": {c.a}, "B": {c.b}}})[0]
		if len(frames) != 1 {
			t.Fatalf("%s: %d frames, want 1: %+v", c.name, len(frames), frames)
		}
		rows := frames[0].Rows()
		if len(rows) != c.rows {
			t.Errorf("%s: %d rows, want %d: %v", c.name, len(rows), c.rows, rows)
		}
		if c.rows == 1 && (rows[0]["Value #A"] != 1.0 || rows[0]["Value #B"] != 1.0 || rows[0]["state"] != "authorized") {
			t.Errorf("%s: row %v", c.name, rows[0])
		}
	}
}
