package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// table prints aligned "key  value" rows.
type table struct{ w *tabwriter.Writer }

func newTable() *table { return &table{tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)} }

func (t *table) row(key, format string, args ...any) {
	fmt.Fprintf(t.w, "  %s\t%s\n", key, fmt.Sprintf(format, args...))
}

func (t *table) flush() { _ = t.w.Flush() }

// procRows prints the readings of /proc taken during a scenario.
func procRows(t *table, before, after procStats, pk peaks, maxGoroutines float64) {
	t.row("exporter CPU", "%.2f s (harness: %.2f s)", (after.cpu - before.cpu).Seconds(), (after.harness - before.harness).Seconds())
	t.row("RSS now / peak (VmHWM)", "%s / %s", sizeOf(after.rss), sizeOf(max(after.hwm, pk.rss)))
	t.row("open fds max", "%d", max(pk.fds, after.fds))
	if maxGoroutines >= 0 {
		t.row("goroutines max (go_goroutines in scrapes)", "%.0f  (read after that scrape's own collection: a lower bound)", maxGoroutines)
	}
}

// callRows prints how often the simulator was called and how closely.
func callRows(t *table, cs callStats, n int) {
	t.row("provider calls", "%d; per instance min %d / median %d / max %d", cs.total, cs.min, cs.median, cs.max)
	t.row("instances never called", "%d of %d %s", len(cs.never), n, examples(cs.never))
	gap := "n/a (no instance called twice)"
	if cs.instancesWithGaps > 0 {
		gap = dur(cs.minGap)
	}
	t.row("spacing violations (< 1 s)", "%d; smallest gap %s", cs.under, gap)
	if len(cs.violators) > 0 {
		t.row("instances with violations", "%d %s", len(cs.violators), examples(cs.violators))
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func sizeOf(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
