package collector

import (
	"net/http"
	"testing"
	"time"
)

// TestRetryAfter: 429 answers hold an instance back for at most five
// minutes, whatever the header says.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"10", 10 * time.Second},
		{" 10 ", 10 * time.Second},
		{"300", maxRetryAfter},
		{"301", maxRetryAfter},
		{"9300000000", maxRetryAfter},              // overflowed to a negative duration
		{"18446744074", maxRetryAfter},             // wrapped to 0.29 s
		{"99999999999999999999999", maxRetryAfter}, // beyond uint64
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
	} {
		if got := retryAfter(http.Header{"Retry-After": {tc.value}}, now); got != tc.want {
			t.Errorf("Retry-After %q: %v, want %v", tc.value, got, tc.want)
		}
	}
}
