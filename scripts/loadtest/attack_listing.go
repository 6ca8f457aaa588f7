package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// The hostile-listing scenario: an Evolution API server (simulated here,
// on a port of its own) whose listing is built to hurt the exporter that
// lists it: tiny junk rows up to the exporter's 64 MiB limit, exactly
// max_instances instances, one more, and names of a megabyte. Each case
// runs a fresh exporter for -duration, scraped every -interval, and prints
// its peak RSS and file descriptors, whether /metrics stayed reachable,
// and what the account made of the listing.

// hostileKey is the server's global key; the marker makes the suite look
// for it in the exporter's log and /metrics.
const hostileKey = secretMarker + "hostile-global-key"

// hostileMaxInstances is the exporter's default max_instances.
const hostileMaxInstances = 10_000

// hostileListBytes is what the junk listing stays under: the exporter's
// maxListBytes (64 MiB).
const hostileListBytes = 64<<20 - 4<<10

type hostileCase struct {
	name string
	body func() []byte
}

var hostileCases = []hostileCase{
	{"junk rows near the 64 MiB limit", func() []byte {
		// {} is a row without a name: malformed, counted, not kept.
		n := (hostileListBytes - 2) / 3
		return []byte("[" + strings.Repeat("{},", n-1) + "{}]")
	}},
	{fmt.Sprintf("%d instances (the default max_instances)", hostileMaxInstances), func() []byte { return hostileRows(hostileMaxInstances, 0) }},
	{fmt.Sprintf("%d instances (one over)", hostileMaxInstances+1), func() []byte { return hostileRows(hostileMaxInstances+1, 0) }},
	{"8 names of 1 MiB, 8 of 200 bytes and one instance", func() []byte { return hostileRows(1, 8) }},
}

// hostileRows is a version 2 listing of n instances, then long names of
// 1 MiB (rows over the exporter's 256 KiB per row: malformed) and as many
// of 200 bytes (rows it reads: bad_name).
func hostileRows(n, long int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n + 2*long {
		if i > 0 {
			b.WriteByte(',')
		}
		name := fmt.Sprintf("hostile-%06d", i)
		switch {
		case i >= n+long:
			name = strings.Repeat(fmt.Sprint(i%10), 200)
		case i >= n:
			name = strings.Repeat(fmt.Sprint(i%10), 1<<20)
		}
		fmt.Fprintf(&b, `{"name":%q,"connectionStatus":"open","token":"%s%d"}`, name, secretMarker, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func runHostileListing(e *env) error {
	e.header("an Evolution API server's listing against a fresh exporter per case; %s each, a scrape every %s", e.duration, e.interval)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	var body atomic.Pointer[[]byte] // the current case's listing
	mux := http.NewServeMux()
	mux.HandleFunc("GET /instance/fetchInstances", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Apikey") != hostileKey {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*body.Load())
	})
	mux.HandleFunc("GET /instance/connectionState/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"instance":{"instanceName":%q,"state":"open"}}`, r.PathValue("name"))
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	go func() { _ = srv.ListenAndServe() }()
	defer srv.Close()

	path := filepath.Join(e.dir, "config-hostile.yml")
	cfg := fmt.Sprintf("accounts:\n  - name: hostile\n    provider: evolution\n    api_url: http://%s\n    api_key: %s\n    refresh_interval: 10s\n", addr, hostileKey)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	for _, c := range hostileCases {
		if e.ctx.Err() != nil {
			break
		}
		b := c.body()
		body.Store(&b)
		fmt.Printf("\n-- %s: a listing of %s\n", c.name, sizeOf(int64(len(b))))
		if err := e.hostileCase(path); err != nil {
			return err
		}
	}
	return nil
}

// hostileCase runs one exporter against the current listing.
func (e *env) hostileCase(path string) error {
	x, err := e.startExporter(path)
	if err != nil {
		return err
	}
	defer e.finish(x)
	before := x.proc()
	stopSampling := sample(x, 50*time.Millisecond)
	s := newScraper(x, e.timeout)
	start, end := time.Now(), time.Now().Add(e.duration)
	var scrapes, answered int
	var worst time.Duration
	var last scrapeResult
	for k := 0; e.running(x, end); k++ {
		if !e.sleepUntil(start.Add(time.Duration(k) * e.interval)) {
			break
		}
		r := e.scrape(s)
		scrapes++
		if r.err == nil && r.status == http.StatusOK {
			answered++
			last = r
		}
		worst = max(worst, r.latency)
	}
	pk := stopSampling()
	after := x.proc()
	t := newTable()
	procRows(t, before, after, pk, -1)
	t.row("/metrics reachable", "%d of %d scrapes answered 200; slowest %s; last %s", answered, scrapes, dur(worst), sizeOf(last.bytes))
	if code, text := get(x.base + "/metrics"); code == http.StatusOK {
		for line := range strings.Lines(text) {
			if strings.HasPrefix(line, "whatsapp_account_instances") || strings.HasPrefix(line, "whatsapp_account_request_errors_total") ||
				(strings.HasPrefix(line, "whatsapp_account_skipped_instances") && !strings.HasSuffix(strings.TrimSpace(line), " 0")) {
				t.row("", "%s", strings.TrimSpace(line))
			}
		}
	}
	t.flush()
	return nil
}

// get fetches url, for a look at the exporter's own metrics.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, string(b)
}
