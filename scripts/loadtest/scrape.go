package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// scraper scrapes /metrics over a connection of its own, announcing a
// scrape timeout as Prometheus does.
type scraper struct {
	client  *http.Client
	url     string
	timeout time.Duration
}

func newScraper(x *exporter, timeout time.Duration) *scraper {
	return &scraper{
		// A late answer is measured rather than cut at the timeout.
		client:  &http.Client{Transport: &http.Transport{}, Timeout: 3*timeout + 10*time.Second},
		url:     x.base + "/metrics",
		timeout: timeout,
	}
}

// scrapeResult is one scrape and what its body said.
type scrapeResult struct {
	latency     time.Duration // until the whole body was read
	headers     time.Duration // until the response headers: the exporter has gathered
	status      int           // 0 without an answer
	err         error
	bytes       int64              // of the uncompressed body
	series      int                // lines not starting with #
	up          map[string]float64 // whatsapp_up by name
	names       map[string]bool    // name labels of all whatsapp_* series
	reasons     map[string]float64 // whatsapp_api_request_errors_total by reason
	goroutines  float64            // go_goroutines; -1 when absent
	heap, stack float64            // go_memstats_{heap,stack}_inuse_bytes
	reloadOK    float64            // whatsapp_exporter_config_last_reload_successful; -1 when absent
	notified    map[string]float64 // whatsapp_exporter_webhook_notifications_total by outcome
	// metaUsage is whatsapp_meta_api_usage_ratio by budget, the higher of
	// its types; metaUsageType the highest of each type.
	metaUsage     map[string]float64
	metaUsageType map[string]float64
	leak          string // a line holding a token
}

// scrape scrapes once and records hard errors: a leaked token, a 5xx
// other than the 503 of the exporter's --web.max-requests.
func (e *env) scrape(s *scraper) scrapeResult {
	r := s.scrape(e.ctx)
	if r.leak != "" {
		e.fail("LEAK: a token in /metrics: %s", shorten(r.leak, 300))
	}
	if r.status >= 500 && !r.overLimit() {
		e.fail("unexpected HTTP %d from /metrics", r.status)
	}
	return r
}

// overLimit reports a scrape refused by --web.max-requests. A scraper that
// gets it waits a second, as Prometheus would wait for its next scrape.
func (r scrapeResult) overLimit() bool { return r.status == http.StatusServiceUnavailable }

func (s *scraper) scrape(ctx context.Context) scrapeResult {
	r := scrapeResult{
		up: map[string]float64{}, names: map[string]bool{}, reasons: map[string]float64{},
		notified: map[string]float64{}, metaUsage: map[string]float64{}, metaUsageType: map[string]float64{},
		goroutines: -1, reloadOK: -1,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(s.timeout.Seconds(), 'f', -1, 64))
	start := time.Now()
	resp, err := s.client.Do(req)
	r.headers = time.Since(start)
	if err == nil {
		r.status = resp.StatusCode
		err = r.parse(resp.Body)
		resp.Body.Close()
	}
	r.latency, r.err = time.Since(start), err
	return r
}

var (
	whatsappPrefix = []byte("whatsapp_")
	goPrefix       = []byte("go_")
)

// parse streams the exposition text, counting it, checking every line for
// a token and reading the few metrics the scenarios need.
func (r *scrapeResult) parse(body io.Reader) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		r.bytes += int64(len(line)) + 1
		if r.leak == "" && bytes.Contains(line, []byte(secretMarker)) {
			r.leak = string(line)
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		r.series++
		if !bytes.HasPrefix(line, whatsappPrefix) && !bytes.HasPrefix(line, goPrefix) {
			continue
		}
		name, labels, value, ok := splitSample(string(line))
		if !ok {
			continue
		}
		switch name {
		case "go_goroutines":
			r.goroutines = value
		case "go_memstats_heap_inuse_bytes":
			r.heap = value
		case "go_memstats_stack_inuse_bytes":
			r.stack = value
		case "whatsapp_exporter_config_last_reload_successful":
			r.reloadOK = value
		case "whatsapp_up":
			r.up[labelValue(labels, "name")] = value
		case "whatsapp_api_request_errors_total":
			r.reasons[labelValue(labels, "reason")] += value
		case "whatsapp_exporter_webhook_notifications_total":
			r.notified[labelValue(labels, "outcome")] += value
		case "whatsapp_meta_api_usage_ratio":
			b, typ := labelValue(labels, "budget"), labelValue(labels, "type")
			r.metaUsage[b] = max(r.metaUsage[b], value)
			r.metaUsageType[typ] = max(r.metaUsageType[typ], value)
		}
		if n := labelValue(labels, "name"); n != "" {
			r.names[n] = true
		}
	}
	return sc.Err()
}

// splitSample splits `name{labels} value [timestamp]`.
func splitSample(line string) (name, labels string, value float64, ok bool) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", "", 0, false
	}
	name, rest := line[:i], line[i:]
	if rest[0] == '{' {
		end := closingBrace(rest)
		if end < 0 {
			return "", "", 0, false
		}
		labels, rest = rest[1:end], rest[end+1:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return name, labels, v, err == nil
}

// closingBrace is the index of the } that ends the label set starting at
// s[0], skipping quoted values.
func closingBrace(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == '}':
			return i
		}
	}
	return -1
}

// labelValue returns the value of key in `a="x",b="y"`; escapes are
// dropped, not decoded (\n reads as n).
func labelValue(labels, key string) string {
	for labels != "" {
		eq := strings.IndexByte(labels, '=')
		if eq < 0 || eq+1 >= len(labels) || labels[eq+1] != '"' {
			return ""
		}
		k := strings.TrimSpace(labels[:eq])
		var v strings.Builder
		j := eq + 2
		for ; j < len(labels) && labels[j] != '"'; j++ {
			if labels[j] == '\\' && j+1 < len(labels) {
				j++
			}
			v.WriteByte(labels[j])
		}
		if k == key {
			return v.String()
		}
		if j+1 >= len(labels) {
			return ""
		}
		labels = strings.TrimPrefix(labels[j+1:], ",")
	}
	return ""
}

// upDown counts the instances with whatsapp_up 1 and 0.
func (r scrapeResult) upDown() (up, down int) {
	for _, v := range r.up {
		if v == 1 {
			up++
		} else {
			down++
		}
	}
	return up, down
}

// outcome is the HTTP status, or the kind of error.
func (r scrapeResult) outcome() string {
	if r.err == nil {
		return strconv.Itoa(r.status)
	}
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(r.err, &ne) && ne.Timeout():
		return "error: no answer within the client timeout"
	case errors.Is(r.err, syscall.ECONNREFUSED):
		return "error: connection refused"
	case errors.Is(r.err, syscall.ECONNRESET):
		return "error: connection reset"
	case errors.Is(r.err, io.EOF), errors.Is(r.err, io.ErrUnexpectedEOF):
		return "error: connection closed"
	case errors.Is(r.err, context.Canceled):
		return "error: interrupted"
	case errors.As(r.err, &ue):
		return "error: " + ue.Err.Error()
	}
	return "error: " + r.err.Error()
}

// scrapeStats aggregates scrapes; safe for concurrent use.
type scrapeStats struct {
	timeout time.Duration

	mu            sync.Mutex
	latencies     []time.Duration
	headers       []time.Duration
	late          int // answered after the announced timeout, or not at all
	outcomes      map[string]int
	maxGoroutines float64
	maxHeap       float64
	maxStack      float64
	upShares      []float64
	last          scrapeResult
}

func newScrapeStats(timeout time.Duration) *scrapeStats {
	return &scrapeStats{timeout: timeout, outcomes: map[string]int{}, maxGoroutines: -1}
}

func (s *scrapeStats) add(r scrapeResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies = append(s.latencies, r.latency)
	s.headers = append(s.headers, r.headers)
	if r.err != nil || r.latency > s.timeout {
		s.late++
	}
	s.outcomes[r.outcome()]++
	s.maxGoroutines = max(s.maxGoroutines, r.goroutines)
	s.maxHeap, s.maxStack = max(s.maxHeap, r.heap), max(s.maxStack, r.stack)
	if r.err == nil {
		up, down := r.upDown()
		if up+down > 0 {
			s.upShares = append(s.upShares, float64(up)/float64(up+down))
		}
		s.last = r
	}
}

// rows prints the scrape count, latencies, statuses and shares up.
func (s *scrapeStats) rows(t *table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.row("scrapes", "%d", len(s.latencies))
	if len(s.latencies) == 0 {
		return
	}
	t.row("latency p50 / p95 / max", "%s / %s / %s  (announced timeout %s)",
		dur(percentile(s.latencies, 0.5)), dur(percentile(s.latencies, 0.95)), dur(percentile(s.latencies, 1)), s.timeout)
	t.row("  of which until headers", "%s / %s / %s  (the rest is the body)",
		dur(percentile(s.headers, 0.5)), dur(percentile(s.headers, 0.95)), dur(percentile(s.headers, 1)))
	t.row("after the timeout or unanswered", "%d of %d", s.late, len(s.latencies))
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.outcomes)) {
		out = append(out, fmt.Sprintf("%s: %d", k, s.outcomes[k]))
	}
	t.row("HTTP status", "%s", strings.Join(out, ", "))
	if s.maxHeap > 0 {
		t.row("heap / stacks in use, max", "%s / %s  (go_memstats_*_inuse_bytes in scrapes)", sizeOf(int64(s.maxHeap)), sizeOf(int64(s.maxStack)))
	}
	if len(s.upShares) > 0 {
		t.row("share of instances up", "mean %s, min %s, last %s",
			pct(mean(s.upShares)), pct(slices.Min(s.upShares)), pct(s.upShares[len(s.upShares)-1]))
	}
}
