package collector

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// slowLister answers an empty listing after a second of the bubble's
// clock, and counts its calls.
type slowLister struct{ calls atomic.Int32 }

func (l *slowLister) List(context.Context) (Listing, error) {
	time.Sleep(time.Second)
	l.calls.Add(1)
	return Listing{}, nil
}

// TestAccountRefreshesEveryInterval: an account lists every
// refresh_interval, not every second one. (The refresh ran on a ticker;
// a listing ends after the tick that asked for it, so its result still
// stood at the next tick, which asked for nothing: a 5 min refresh
// listed every 10 min.) The times are the fake clock's of a synctest
// bubble; each listing takes 1 s.
func TestAccountRefreshesEveryInterval(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Load([]byte("accounts:\n  - {name: partner, provider: greenapi, api_url: \"http://127.0.0.1:1\", partner_token: x, refresh_interval: 5m}\n"), t.TempDir(), config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c := New(discardLogger(), Options{Concurrency: 2, MinInterval: time.Minute})
		defer c.Close()
		lister := &slowLister{}
		// Update, with the account's lister replaced before its refresh
		// starts.
		c.applyMu.Lock()
		cur := c.current()
		pool := cur.clients.renew()
		accounts, err := c.planAccounts(cur, cfg.Accounts, pool)
		if err != nil {
			t.Fatal(err)
		}
		accounts[0].lister = lister
		next, err := c.plan(cur, nil, accounts, pool)
		if err != nil {
			t.Fatal(err)
		}
		c.commit(next, pool)
		c.applyMu.Unlock()

		time.Sleep(3*5*time.Minute + 30*time.Second)
		synctest.Wait()
		// At 0, 5 min 1 s, 10 min 2 s and 15 min 3 s.
		if n := lister.calls.Load(); n != 4 {
			t.Errorf("%d listings in 15 min 30 s with refresh_interval 5m, want 4", n)
		}
	})
}

// TestListingMemoryIsBoundedByRowsKept: a listing of tiny junk rows near
// the size limit costs what the rows kept cost, not what the answer
// weighs. (The answer was read whole, copied to be redacted and split
// into rows: 8 MiB of them took over 100 MB at once, 4 MiB of rows that
// were instances passed the Deployment's 128 MiB.) Not parallel: it
// measures the heap, sampled while the listing is read.
func TestListingMemoryIsBoundedByRowsKept(t *testing.T) {
	for provider, body := range map[string][]byte{
		"greenapi":  []byte("[" + strings.Repeat(`{"x":1},`, 8<<20/8) + "{}]"),
		"evolution": []byte("[" + strings.Repeat("1,", 8<<20/2) + "1]"),
		"wachat":    []byte(`{"success":true,"instances":[` + strings.Repeat("[],", 8<<20/3) + "[]]}"),
	} {
		t.Run(provider, func(t *testing.T) {
			url, _ := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
				_, _ = w.Write(body)
			})
			l, _ := newTestLister(t, listingTargets[provider], url)
			// Collect often, so that the heap follows what is live.
			defer debug.SetGCPercent(debug.SetGCPercent(5))
			runtime.GC()
			base, peak := heapObjectBytes(), uint64(0)
			stop, sampled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					peak = max(peak, heapObjectBytes())
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Microsecond):
					}
				}
			}()
			got, err := l.List(t.Context())
			close(stop)
			<-sampled
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Instances) != 0 || got.Malformed < 1<<20 {
				t.Errorf("%d instances, %d malformed rows", len(got.Instances), got.Malformed)
			}
			// The garbage of the rows read comes and goes with the
			// collector's pacing, which the bound leaves room for.
			if grew := int64(peak) - int64(base); grew > 16<<20 {
				t.Errorf("listing %d bytes of junk rows: the heap grew by %d bytes", len(body), grew)
			} else {
				t.Logf("listing %d bytes of junk rows: the heap grew by %d bytes at most", len(body), grew)
			}
		})
	}
}

// heapObjectBytes is the memory of the heap's objects, live or not yet
// collected.
func heapObjectBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestListingMaxInstances: a listing of more instances than the
// account's max_instances fails, saying so, and the last good list stays.
func TestListingMaxInstances(t *testing.T) {
	t.Parallel()
	env := newAccountEnv(t)
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "a"}, simulator.Member{ID: "b"})
	if err := env.load(t, "", env.account(simulator.Evolution, "server", "global-key", "max_instances: 2")); err != nil {
		t.Fatal(err)
	}
	env.list(t)
	env.sim.SetAccount(simulator.Evolution, "global-key", simulator.Member{ID: "a"}, simulator.Member{ID: "b"}, simulator.Member{ID: "c"})
	env.list(t)
	if got := env.watched(); !slices.Equal(got, []string{"server/a", "server/b"}) {
		t.Errorf("watched %v after a listing over max_instances, want the last good list", got)
	}
	if out := env.logs.String(); !strings.Contains(out, "more than 2 instances (max_instances)") {
		t.Errorf("the failure does not name max_instances:\n%s", out)
	}
	if text := gatherAccountMetrics(t, env.c); !strings.Contains(text, `whatsapp_account_request_errors_total{account="server",method="fetchInstances",provider="evolution",reason="bad_response"} 1`) {
		t.Errorf("the listing over max_instances is not counted as failing:\n%s", text)
	}
}

// TestListingBadNames: found names that cannot be names (too long with
// the prefix, not UTF-8, with control characters) are skipped, counted
// as bad_name and logged once, cut; the others are watched.
func TestListingBadNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", config.MaxNameBytes-len("s-")+1)
	fits := strings.Repeat("y", config.MaxNameBytes-len("s-"))
	body := fmt.Sprintf(`[{"name":%q,"connectionStatus":"open"},{"name":"tab\there","connectionStatus":"open"},`+
		`{"name":"bell\u0007","connectionStatus":"open"},{"name":%q,"connectionStatus":"open"},{"name":"ok","connectionStatus":"open"}]`, long, fits)
	url, _ := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		if r.URL.Path == "/instance/fetchInstances" {
			_, _ = w.Write([]byte(body))
			return
		}
		http.NotFound(w, r)
	})
	cfg, err := config.Load(fmt.Appendf(nil, "accounts:\n  - {name: server, provider: evolution, api_url: %q, api_key: server-key-0123, name_prefix: s-, refresh_interval: 1h}\n", url), t.TempDir(), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, logs := newTestCollector(t, cfg)
	a := accountNamed(t, c, "server")
	waitFor(t, "the first listing", func() bool { return listingDone(c, a) && len(c.current().targets) == 2 })
	var names []string
	for _, tg := range c.current().targets {
		names = append(names, tg.name)
	}
	if slices.Sort(names); !slices.Equal(names, []string{"s-ok", "s-" + fits}) {
		t.Errorf("watched %q", names)
	}
	if text := gatherAccountMetrics(t, c); !strings.Contains(text, `whatsapp_account_skipped_instances{account="server",provider="evolution",reason="bad_name"} 3`) {
		t.Errorf("bad names not counted:\n%s", text)
	}
	out := logs.String()
	if strings.Count(out, "names that cannot be names") != 1 || strings.Contains(out, long) || !strings.Contains(out, "instances=3") {
		t.Errorf("bad names not logged once, cut:\n%s", out)
	}
}

// TestListingErrorAnswerIsSmall: an error answer is read no further than
// a state's (64 KiB), not up to the 64 MiB a listing may weigh.
func TestListingErrorAnswerIsSmall(t *testing.T) {
	t.Parallel()
	url, _ := startRecordingServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	l, _ := newTestLister(t, listingTargets["evolution"], url)
	_, err := l.List(t.Context())
	if e := checkReason(t, err, ReasonBadResponse); !strings.Contains(e.Error(), fmt.Sprintf("body larger than %d bytes", maxBodyBytes)) {
		t.Errorf("error %q, want the answer refused past %d bytes", e, maxBodyBytes)
	}
}
