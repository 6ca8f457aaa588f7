package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// jsonExporterConfig makes json_exporter read GREEN-API's state answer
// into one gauge labelled with the state: the same work per instance as
// whatsapp_exporter's, call and exposition.
const jsonExporterConfig = `modules:
  greenapi:
    metrics:
      - name: greenapi_instance_state
        type: object
        help: State of the instance
        path: '{ $ }'
        labels:
          state: '{ .stateInstance }'
        values:
          current: 1
`

// runCompare measures the exporter's CPU per provider call and
// json_exporter's CPU per probe against the same simulated provider, in
// one run: -instances instances, each called -scrapes times by each.
func runCompare(e *env) error {
	if e.jsonExporter == "" {
		return errors.New("compare needs -json_exporter: the path of a json_exporter binary (build it from github.com/prometheus-community/json_exporter)")
	}
	n := e.instances
	u, x, err := e.setup(n)
	if err != nil {
		return err
	}
	defer u.stop()
	e.header("%d instances answering in %s; each called %d times by whatsapp_exporter (scrapes) and by json_exporter (probes, %d at once)",
		n, dur(e.latency), e.scrapes, concurrencyOf(e.exporterArgs))

	// whatsapp_exporter: whole scrapes, each after the results of the
	// previous are no longer fresh (--api.min-interval, 1 s).
	before, calls := x.proc(), u.stats().total
	s := newScraper(x, e.timeout)
	for range e.scrapes {
		time.Sleep(1100 * time.Millisecond)
		if r := e.scrape(s); r.err != nil {
			e.fail("scrape: %v", r.err)
		}
	}
	after := x.proc()
	made := u.stats().total - calls
	e.finish(x)
	ours := time.Duration(0)
	if made > 0 {
		ours = (after.cpu - before.cpu) / time.Duration(made)
	}
	fmt.Printf("  whatsapp_exporter: %.2f s CPU for %d provider calls: %s per call\n", (after.cpu - before.cpu).Seconds(), made, dur(ours))

	// json_exporter: one probe per instance and round, as many at once as
	// the exporter's concurrency.
	j, err := e.startJSONExporter()
	if err != nil {
		return err
	}
	defer func() { _ = j.cmd.Process.Kill(); <-j.done }()
	before, calls = j.proc(), u.stats().total
	var probes, failed atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for range concurrencyOf(e.exporterArgs) {
		wg.Go(func() {
			client := &http.Client{Timeout: e.timeout}
			for i := range work {
				target := u.url() + "/waInstance" + instanceID(i) + "/getStateInstance/" + instanceToken(i)
				resp, err := client.Get(j.base + "/probe?module=greenapi&target=" + url.QueryEscape(target))
				probes.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	for range e.scrapes {
		for i := range n {
			select {
			case work <- i:
			case <-e.ctx.Done():
			}
		}
	}
	close(work)
	wg.Wait()
	after = j.proc()
	theirs := time.Duration(0)
	if p := probes.Load(); p > 0 {
		theirs = (after.cpu - before.cpu) / time.Duration(p)
	}
	fmt.Printf("  json_exporter:     %.2f s CPU for %d probes (%d failed, %d provider calls): %s per probe\n",
		(after.cpu - before.cpu).Seconds(), probes.Load(), failed.Load(), u.stats().total-calls, dur(theirs))
	if theirs > 0 {
		fmt.Printf("  ratio:             whatsapp_exporter uses %.2f of json_exporter's CPU per call\n", ours.Seconds()/theirs.Seconds())
	}
	return nil
}

// startJSONExporter runs json_exporter with jsonExporterConfig.
func (e *env) startJSONExporter() (*exporter, error) {
	cfg := filepath.Join(e.dir, "json_exporter.yml")
	if err := os.WriteFile(cfg, []byte(jsonExporterConfig), 0o600); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	j := &exporter{base: "http://" + addr, logPath: filepath.Join(e.dir, "json_exporter.log"), done: make(chan struct{})}
	logFile, err := os.Create(j.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	j.cmd = exec.Command(e.jsonExporter, "--config.file="+cfg, "--web.listen-address="+addr, "--log.level=warn")
	j.cmd.Stdout, j.cmd.Stderr = logFile, logFile
	if err := j.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { j.waitErr = j.cmd.Wait(); close(j.done) }()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	for ctx.Err() == nil && j.alive() {
		if resp, err := http.Get(j.base + "/"); err == nil {
			resp.Body.Close()
			return j, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = j.cmd.Process.Kill()
	<-j.done
	return nil, fmt.Errorf("json_exporter did not start; its log:\n%s", tail(j.logPath, 20))
}
