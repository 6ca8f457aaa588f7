package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Attacks on the notification receiver (--webhook.listen-address), which
// faces the internet: anyone can reach it, without a credential.
//
//   - notification-flood: attackers on attackAddrs loopback addresses send
//     as fast as they can notifications naming unknown Evolution API
//     instances with 65 KB names (each a new one), GREEN-API notifications
//     with a wrong token, and bodies that never end.
//   - connection-flood: attackers open floodConns connections over
//     attackAddrs addresses, each sending one request and then holding
//     the connection idle, reconnecting as soon as it is closed; and
//     slow senders whose bodies never end.
//
// Meanwhile a genuine sender, on an address of its own, sends a
// GREEN-API notification with the instance's token five times a second
// on a new connection, and a scraper scrapes /metrics every second. The
// exporter's file descriptors are limited to exporterFDs (prlimit), the
// soft limit of many systems. The report: peak RSS against the
// Deployment's 128 MiB, open file descriptors, whether /metrics stayed
// reachable and whether the genuine notifications got through.

const (
	attackAddrs   = 50   // 127.0.3.1 to 127.0.3.50
	floodConns    = 5000 // connection-flood: connections held
	slowSenders   = 200  // bodies that never end, on attackAddrs addresses
	floodSenders  = 64   // notification-flood: senders as fast as they can
	exporterFDs   = 1024
	metrics128MiB = 128 << 20
	genuineAddr   = "127.0.1.1"
	genuineEvery  = 200 * time.Millisecond
	metricsEvery  = time.Second
	metricsWithin = 5 * time.Second
)

func attackAddr(k int) string { return fmt.Sprintf("127.0.3.%d", k%attackAddrs+1) }

// dialerFrom dials from a loopback address of its own: the receiver sees
// each as another client.
func dialerFrom(addr string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 5 * time.Second}
}

func runNotificationFlood(e *env) error {
	return e.attackListener("notification flood", func(ctx context.Context, x *exporter, counts *attackCounts) {
		var wg sync.WaitGroup
		hook := strings.TrimPrefix(x.hook, "http://")
		var seq atomic.Int64
		name := strings.Repeat("n", 65000)
		for k := range floodSenders {
			wg.Go(func() {
				client := &http.Client{
					Transport: &http.Transport{DialContext: dialerFrom(attackAddr(k)).DialContext, MaxIdleConnsPerHost: 1},
					Timeout:   15 * time.Second,
				}
				defer client.CloseIdleConnections()
				for i := 0; ctx.Err() == nil; i++ {
					var path, body, auth string
					if i%2 == 0 {
						path = "/webhook/evolution"
						body = fmt.Sprintf(`{"event":"connection.update","instance":"%s%d","data":{"state":"open"}}`, name, seq.Add(1))
					} else {
						path, auth = "/webhook/greenapi", "Bearer "+secretMarker+"wrong"
						body = fmt.Sprintf(`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":%s},"timestamp":%d,"stateInstance":"blocked"}`, instanceID(i%e.instances), time.Now().Unix())
					}
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hook+path, strings.NewReader(body))
					if auth != "" {
						req.Header.Set("Authorization", auth)
					}
					resp, err := client.Do(req)
					if err != nil {
						counts.attackErr.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					counts.attackSent.Add(1)
					if resp.StatusCode == http.StatusServiceUnavailable {
						counts.attack503.Add(1)
					} else if resp.StatusCode >= 500 {
						e.fail("unexpected HTTP %d to a flood notification", resp.StatusCode)
					}
				}
			})
		}
		for k := range slowSenders / 4 {
			wg.Go(func() { slowSender(ctx, hook, attackAddr(k), counts) })
		}
		wg.Wait()
	})
}

func runConnectionFlood(e *env) error {
	return e.attackListener("connection flood", func(ctx context.Context, x *exporter, counts *attackCounts) {
		var wg sync.WaitGroup
		hook := strings.TrimPrefix(x.hook, "http://")
		for k := range floodConns {
			wg.Go(func() { idleHolder(ctx, hook, attackAddr(k), counts) })
		}
		for k := range slowSenders {
			wg.Go(func() { slowSender(ctx, hook, attackAddr(k), counts) })
		}
		wg.Wait()
	})
}

// attackCounts are what the attackers and the genuine sender saw.
type attackCounts struct {
	attackSent, attack503, attackErr atomic.Int64
	connsOpened, connsHeld           atomic.Int64 // held: open at the moment
	connsCut                         atomic.Int64 // closed by the receiver at once (no answer)

	mu                       sync.Mutex
	genuine                  map[string]int // outcome or error
	genuineTimes             []time.Duration
	metricsOK, metricsFailed int
	metricsTimes             []time.Duration
}

// idleHolder holds a connection: one request, then idle until the
// receiver closes it; then again.
func idleHolder(ctx context.Context, hook, from string, counts *attackCounts) {
	req := "POST /webhook/greenapi HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	for ctx.Err() == nil {
		conn, err := dialerFrom(from).DialContext(ctx, "tcp", hook)
		if err != nil {
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		counts.connsOpened.Add(1)
		counts.connsHeld.Add(1)
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		answered := false
		if _, err := io.WriteString(conn, req); err == nil {
			if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
				resp.Body.Close()
				answered = true
				// Idle until the receiver closes the connection.
				_, _ = conn.Read(make([]byte, 1))
			}
		}
		if !answered {
			counts.connsCut.Add(1)
		}
		stop()
		conn.Close()
		counts.connsHeld.Add(-1)
		if !answered && !sleepCtx(ctx, 50*time.Millisecond) {
			return
		}
	}
}

// slowSender sends a notification's headers and half its body, then
// nothing, until the receiver cuts it off; then again.
func slowSender(ctx context.Context, hook, from string, counts *attackCounts) {
	body := `{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000000},"timestamp":1,"stateInstance":"blocked"}`
	req := fmt.Sprintf("POST /webhook/greenapi HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:len(body)/2])
	for ctx.Err() == nil {
		conn, err := dialerFrom(from).DialContext(ctx, "tcp", hook)
		if err != nil {
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		if _, err := io.WriteString(conn, req); err == nil {
			_, _ = io.Copy(io.Discard, conn)
		}
		stop()
		conn.Close()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// attackListener runs an attack on the receiver of an exporter watching
// -instances GREEN-API instances with webhook tokens for -duration, with
// the genuine sender and the scraper, and prints the report.
func (e *env) attackListener(what string, attack func(context.Context, *exporter, *attackCounts)) error {
	u, err := newUpstream(e.instances, e.latency)
	if err != nil {
		return err
	}
	defer u.stop()
	path := filepath.Join(e.dir, "config-attack.yml")
	if _, err := u.writeConfig(path, configSpec{webhooks: true}); err != nil {
		return err
	}
	x, err := e.startExporterWith(path, true)
	if err != nil {
		return err
	}
	defer e.finish(x)
	fdLimit := "unchanged (no prlimit)"
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(x.cmd.Process.Pid), fmt.Sprintf("--nofile=%d:%d", exporterFDs, exporterFDs)).CombinedOutput(); err == nil {
		fdLimit = strconv.Itoa(exporterFDs)
	} else {
		fdLimit += ": " + strings.TrimSpace(string(out))
	}
	e.header("%s for %s on the receiver of an exporter watching %d instances (fd limit %s); a genuine notification every %s from %s, a scrape every %s",
		what, e.duration, e.instances, fdLimit, genuineEvery, genuineAddr, metricsEvery)

	counts := &attackCounts{genuine: map[string]int{}}
	before := x.proc()
	stopSampling := sample(x, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(e.ctx, e.duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { attack(ctx, x, counts) })
	wg.Go(func() { e.genuineSender(ctx, x, u, counts) })
	wg.Go(func() { e.metricsWatcher(ctx, x, counts) })
	var maxHeld int64
	wg.Go(func() {
		for sleepCtx(ctx, 100*time.Millisecond) {
			maxHeld = max(maxHeld, counts.connsHeld.Load())
		}
	})
	wg.Wait()
	pk := stopSampling()
	after := x.proc()

	// What the exporter counted, read after the attack.
	s := newScraper(x, e.timeout)
	var exporterLines []string
	if req, err := http.NewRequest(http.MethodGet, s.url, nil); err == nil {
		if resp, err := s.client.Do(req); err == nil {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "whatsapp_exporter_webhook_") {
					exporterLines = append(exporterLines, line)
				}
			}
			resp.Body.Close()
		}
	}

	t := newTable()
	procRows(t, before, after, pk, -1)
	peak := max(after.hwm, pk.rss)
	t.row("peak RSS against the Deployment's 128 MiB", "%s (%.0f%%)", sizeOf(peak), 100*float64(peak)/metrics128MiB)
	t.row("open fds max against the limit", "%d of %s", max(pk.fds, after.fds), fdLimit)
	if n := counts.attackSent.Load() + counts.attackErr.Load(); n > 0 {
		t.row("flood notifications", "%d answered (%d of them 503), %d without an answer", counts.attackSent.Load(), counts.attack503.Load(), counts.attackErr.Load())
	}
	if n := counts.connsOpened.Load(); n > 0 {
		t.row("flood connections", "%d opened; at most %d open at once; %d closed by the receiver without an answer", n, maxHeld, counts.connsCut.Load())
	}
	counts.mu.Lock()
	total := counts.metricsOK + counts.metricsFailed
	t.row("/metrics reachable", "%d of %d scrapes answered 200 within %s; latency p50 / max %s / %s",
		counts.metricsOK, total, metricsWithin, dur(percentile(counts.metricsTimes, 0.5)), dur(percentile(counts.metricsTimes, 1)))
	through, sent := 0, 0
	var got []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range counts.genuine {
			if !yield(k) {
				return
			}
		}
	}) {
		sent += counts.genuine[k]
		if k == "accepted" || k == "stale" {
			through += counts.genuine[k]
		}
		got = append(got, fmt.Sprintf("%s %d", k, counts.genuine[k]))
	}
	t.row("genuine notifications through", "%d of %d (%s); time p50 / max %s / %s", through, sent, orNone(strings.Join(got, ", ")),
		dur(percentile(counts.genuineTimes, 0.5)), dur(percentile(counts.genuineTimes, 1)))
	counts.mu.Unlock()
	for _, l := range exporterLines {
		t.row("  exporter", "%s", l)
	}
	t.flush()
	return nil
}

// genuineSender sends authenticated notifications of the configured
// instances, each on a new connection from genuineAddr.
func (e *env) genuineSender(ctx context.Context, x *exporter, u *upstream, counts *attackCounts) {
	client := &http.Client{
		Transport: &http.Transport{DialContext: dialerFrom(genuineAddr).DialContext, DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
	states := []string{"authorized", "blocked"}
	for k := 0; sleepCtx(ctx, genuineEvery); k++ {
		i := k % u.n
		body := fmt.Sprintf(`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":%s},"timestamp":%d,"stateInstance":%q}`,
			instanceID(i), time.Now().Unix(), states[k/u.n%2])
		req, _ := http.NewRequest(http.MethodPost, x.hook+"/webhook/greenapi", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+webhookToken(i))
		start := time.Now()
		resp, err := client.Do(req)
		outcome := ""
		if err != nil {
			outcome = "no answer"
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			outcome = strings.TrimSpace(string(b))
			if resp.StatusCode != http.StatusOK {
				outcome = fmt.Sprintf("HTTP %d", resp.StatusCode)
			}
			if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
				e.fail("unexpected HTTP %d to a genuine notification", resp.StatusCode)
			}
		}
		counts.mu.Lock()
		counts.genuine[outcome]++
		counts.genuineTimes = append(counts.genuineTimes, time.Since(start))
		counts.mu.Unlock()
	}
}

// metricsWatcher scrapes /metrics every metricsEvery on a new connection,
// and counts whether it answered within metricsWithin.
func (e *env) metricsWatcher(ctx context.Context, x *exporter, counts *attackCounts) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: metricsWithin}
	for sleepCtx(ctx, metricsEvery) {
		start := time.Now()
		resp, err := client.Get(x.base + "/metrics")
		ok := false
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ok = err == nil && resp.StatusCode == http.StatusOK
		}
		counts.mu.Lock()
		if ok {
			counts.metricsOK++
			counts.metricsTimes = append(counts.metricsTimes, time.Since(start))
		} else {
			counts.metricsFailed++
		}
		counts.mu.Unlock()
	}
}
