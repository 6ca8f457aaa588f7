package server

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckTelemetryPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"/metrics": true, "/": true, "/whatsapp/metrics": true,
		"": false, "metrics": false, "/config": false, "/-/healthy": false, "/-/reload": false,
		"/metrics/": false, "/a/../b": false, "/metrics/{name}": false, "/metrics?x": false, "/a b": false, "/a%2f": false, "/a\x00": false,
	} {
		if err := checkTelemetryPath(p); (err == nil) != ok {
			t.Errorf("checkTelemetryPath(%q) = %v, want ok %v", p, err, ok)
		}
	}
}

func TestAnswerWithin(t *testing.T) {
	const offset = 500 * time.Millisecond
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"10", 9500 * time.Millisecond, true},
		{" 10 ", 9500 * time.Millisecond, true},
		{"1", 500 * time.Millisecond, true},
		{"0.6", 300 * time.Millisecond, true}, // used to be 600 ms: no time left to answer
		{"0.4", 200 * time.Millisecond, true}, // used to be 400 ms
		{"0.001", 500 * time.Microsecond, true},
		{"1e300", time.Hour - offset, true},
		{"+Inf", time.Hour - offset, true},
		{"0", 0, false}, {"-1", 0, false}, {"NaN", 0, false}, {"ten", 0, false}, {"", 0, false},
	} {
		got, ok := answerWithin(tc.header, offset)
		if got != tc.want || ok != tc.ok {
			t.Errorf("answerWithin(%q) = %v %v, want %v %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
	if got, _ := answerWithin("10", 0); got != 10*time.Second {
		t.Errorf("without an offset: %v, want 10s", got)
	}
}

// FuzzAnswerWithin: for any header, the exporter answers within the
// announced timeout, never at or after it. Run longer with
// go test -run '^$' -fuzz '^FuzzAnswerWithin$' -fuzztime 5m ./internal/server
func FuzzAnswerWithin(f *testing.F) {
	for _, s := range []string{"10", "0.6", "0.4", "1e300", "NaN", "-0", "0x1p-2", "Inf"} {
		f.Add(s, int64(500*time.Millisecond))
	}
	f.Fuzz(func(t *testing.T, header string, offset int64) {
		d, ok := answerWithin(header, time.Duration(offset))
		if !ok {
			return
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(header), 64)
		if err != nil || !(secs > 0) {
			t.Fatalf("%q accepted as %v", header, d)
		}
		announced := min(secs, maxScrapeTimeout.Seconds())
		if d < 0 || d.Seconds() > announced || (offset > 0 && d.Seconds() >= announced && announced > 1e-9) {
			t.Fatalf("announced %q, offset %v: answer within %v", header, time.Duration(offset), d)
		}
	})
}
