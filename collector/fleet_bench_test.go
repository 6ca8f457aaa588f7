package collector

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// BenchmarkFleet measures a scrape of a fleet of GREEN-API instances that
// answer at once, calls and exposition together, in one process with the
// simulator: run with -cpuprofile or -memprofile to see where the
// exporter's share goes. The sizing figures of docs/fleets.md come from
// scripts/loadtest, which runs the exporter in a process of its own.
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			sim := simulator.New()
			srv := httptest.NewServer(sim)
			defer srv.Close()
			var yml strings.Builder
			yml.WriteString("instances:\n")
			p := simulator.ProviderOf(simulator.GreenAPI)
			for i := range n {
				id := fmt.Sprint(1101000000 + i)
				sim.Set(simulator.GreenAPI, id, "tok-"+id, simulator.Behaviour{State: "authorized"})
				yml.WriteString(p.Config(srv.URL, fmt.Sprintf("instance-%05d", i), id, "tok-"+id))
			}
			cfg, err := config.Load([]byte(yml.String()), b.TempDir(), config.Options{})
			if err != nil {
				b.Fatal(err)
			}
			c := New(discardLogger(), Options{Concurrency: 64})
			defer c.Close()
			if err := c.Update(cfg); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				s := c.Refresh(context.Background())
				if _, err := s.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// What stays between scrapes, the simulator's part included.
			cfg, yml = nil, strings.Builder{}
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/float64(n), "live-B/instance")
			if f := os.Getenv("FLEET_HEAP_PROFILE"); f != "" {
				out, err := os.Create(f)
				if err != nil {
					b.Fatal(err)
				}
				_ = pprof.WriteHeapProfile(out)
				out.Close()
			}
		})
	}
}
