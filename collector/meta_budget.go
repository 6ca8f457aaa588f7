package collector

import (
	"encoding/json"
	"math"
	"net/http"
	"sync"
	"time"
)

// Meta's request budget. The Cloud API's management calls (GET
// /{waba_id}, its phone_numbers, /{phone_number_id}) are allowed 200 an
// hour per app per WABA, 5 000 for an active WABA, shared with whatever
// else the business's software does with the app. Every answer tells how
// much is spent, in percent, in two headers:
//
//	X-Business-Use-Case-Usage: {"<business id>":[{"type":"whatsapp_business_management",
//	    "call_count":28,"total_cputime":2,"total_time":3,"estimated_time_to_regain_access":0}]}
//	X-App-Usage: {"call_count":12,"total_cputime":1,"total_time":1}
//
// (Meta's OpenAPI, components.headers; Graph API "Rate Limiting":
// estimated_time_to_regain_access is in minutes.) A budget keeps the
// highest usage each header told at the last answer, and stretches the
// interval between calls (Pace) well before the limit:
//
//   - below metaSlowFrom (50 %), the configured interval;
//   - from 50 % to metaHoldFrom (90 %), the interval stretched linearly up
//     to metaStretchMax (4) times;
//   - from 90 %, metaHoldFactor (15) times the interval: at the default
//     minute, one call every quarter of an hour, which still tells when
//     the usage falls;
//   - while throttled (estimated_time_to_regain_access, or a rate-limit
//     error), no call until access is regained.

const (
	metaSlowFrom   = 0.5
	metaHoldFrom   = 0.9
	metaStretchMax = 4
	metaHoldFactor = 15
	// metaMaxRegain bounds estimated_time_to_regain_access: a garbled
	// header must not silence a WABA for days. Meta's throttles last up
	// to an hour; a longer one is asked again after this.
	metaMaxRegain = time.Hour
	// metaRateLimitedHold is how long a rate-limit error that tells no
	// time holds the calls.
	metaRateLimitedHold = 5 * time.Minute
	// metaMaxUsageHeader bounds what is read of a usage header.
	metaMaxUsageHeader = 16 << 10
	// The notifications may bring calls forward (spare): at most
	// metaSpareBurst at once, one more every metaSpareEvery.
	metaSpareBurst = 3
	metaSpareEvery = 6 * time.Minute
)

// Budget types, the values of the type label.
const (
	metaUsageBUC = "business_use_case"
	metaUsageApp = "app"
)

// metaBudget is what the calls of one WABA (or one single number) spent
// of Meta's budget. Its zero value is ready: nothing spent.
type metaBudget struct {
	mu sync.Mutex
	// usage is the highest percentage of each header at the last answer
	// that carried it, as a ratio; seen says which were seen.
	buc, app         float64
	seenBUC, seenApp bool
	// throttledUntil is when access is regained; zero when not throttled.
	throttledUntil time.Time
	// spareTokens and spareAt are the allowance of calls brought forward.
	spareTokens float64
	spareAt     time.Time
}

// metaUsageEntry is one entry of X-Business-Use-Case-Usage.
type metaUsageEntry struct {
	Type       string  `json:"type"`
	CallCount  float64 `json:"call_count"`
	CPUTime    float64 `json:"total_cputime"`
	TotalTime  float64 `json:"total_time"`
	RegainMins float64 `json:"estimated_time_to_regain_access"`
}

// observe reads the usage headers of an answer received at now.
func (b *metaBudget) observe(h http.Header, now time.Time) {
	buc, regain, okBUC := parseBUCUsage(h.Get("X-Business-Use-Case-Usage"))
	app, okApp := parseAppUsage(h.Get("X-App-Usage"))
	if !okBUC && !okApp {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if okBUC {
		b.buc, b.seenBUC = buc, true
		if regain > 0 {
			b.throttle(now.Add(regain))
		}
	}
	if okApp {
		b.app, b.seenApp = app, true
	}
}

// rateLimited records a rate-limit error at now, which holds the calls
// for d, or, when neither d nor the usage header told a time,
// metaRateLimitedHold; it returns how long the calls are held.
func (b *metaBudget) rateLimited(now time.Time, d time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d <= 0 && !b.throttledUntil.After(now) {
		d = metaRateLimitedHold // the usage header told no time either
	}
	b.throttle(now.Add(d))
	return b.throttledUntil.Sub(now)
}

func (b *metaBudget) throttle(until time.Time) {
	if until.After(b.throttledUntil) {
		b.throttledUntil = until
	}
}

// usage is the higher of the two usages, as a ratio.
func (b *metaBudget) usage() float64 { return max(b.buc, b.app) }

// pace is how long the result of a call made before now stands, for a
// configured interval of every.
func (b *metaBudget) pace(now time.Time, every time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := stretch(every, b.usage())
	if wait := b.throttledUntil.Sub(now); wait > d {
		d = wait
	}
	return d
}

// stretch is the interval every at usage u (see the curve above).
func stretch(every time.Duration, u float64) time.Duration {
	switch {
	case u >= metaHoldFrom:
		return every * metaHoldFactor
	case u > metaSlowFrom:
		f := 1 + (metaStretchMax-1)*(u-metaSlowFrom)/(metaHoldFrom-metaSlowFrom)
		return time.Duration(float64(every) * f).Round(time.Second)
	}
	return every
}

// spare reports whether one more call now (one a notification asks for)
// stays within the budget, and counts it when it does: not while
// throttled or past metaSlowFrom, and at most metaSpareBurst at once, one
// more every metaSpareEvery.
func (b *metaBudget) spare(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.throttledUntil) || b.usage() > metaSlowFrom {
		return false
	}
	if b.spareAt.IsZero() {
		b.spareTokens = metaSpareBurst
	} else if now.After(b.spareAt) {
		b.spareTokens = min(metaSpareBurst, b.spareTokens+float64(now.Sub(b.spareAt))/float64(metaSpareEvery))
	}
	b.spareAt = now
	if b.spareTokens < 1 {
		return false
	}
	b.spareTokens--
	return true
}

// metaBudgetReading is a budget's metrics at one time.
type metaBudgetReading struct {
	buc, app         float64
	seenBUC, seenApp bool
	throttledUntil   time.Time
}

func (b *metaBudget) reading(now time.Time) metaBudgetReading {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := metaBudgetReading{buc: b.buc, app: b.app, seenBUC: b.seenBUC, seenApp: b.seenApp}
	if now.Before(b.throttledUntil) {
		r.throttledUntil = b.throttledUntil
	}
	return r
}

// parseBUCUsage reads X-Business-Use-Case-Usage: the highest percentage
// of the management entries (type whatsapp_business_management; of every
// entry when none is), as a ratio in [0, 1], and the longest
// estimated_time_to_regain_access. ok is false when the header is
// absent or not understood.
func parseBUCUsage(v string) (usage float64, regain time.Duration, ok bool) {
	if v == "" || len(v) > metaMaxUsageHeader {
		return 0, 0, false
	}
	var m map[string][]metaUsageEntry
	if json.Unmarshal([]byte(v), &m) != nil || len(m) == 0 {
		return 0, 0, false
	}
	management := false
	for _, entries := range m {
		for _, e := range entries {
			management = management || e.Type == "whatsapp_business_management"
		}
	}
	for _, entries := range m {
		for _, e := range entries {
			if management && e.Type != "whatsapp_business_management" {
				continue
			}
			ok = true
			usage = max(usage, percent(e.CallCount), percent(e.CPUTime), percent(e.TotalTime))
			if e.RegainMins > 0 {
				regain = max(regain, min(time.Duration(min(e.RegainMins, metaMaxRegain.Minutes())*float64(time.Minute)), metaMaxRegain))
			}
		}
	}
	return usage, regain, ok
}

// parseAppUsage reads X-App-Usage: its highest percentage, as a ratio.
func parseAppUsage(v string) (float64, bool) {
	if v == "" || len(v) > metaMaxUsageHeader {
		return 0, false
	}
	var e metaUsageEntry
	if json.Unmarshal([]byte(v), &e) != nil {
		return 0, false
	}
	return max(percent(e.CallCount), percent(e.CPUTime), percent(e.TotalTime)), true
}

// percent is a percentage as a ratio in [0, 1]: a usage past 100 % is a
// spent budget, and the metric says so with 1.
func percent(p float64) float64 {
	if math.IsNaN(p) || p <= 0 {
		return 0
	}
	return min(p/100, 1)
}
