package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Fuzzers of Meta's parsers: a number's node (health), a WABA's listing
// page and the usage headers. Whatever the input, nothing panics and
// every value that becomes a label is within its bounds.

func addMetaSeeds(f *testing.F, dir string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "meta", dir, "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkHealthBounds fails unless every label value of h is bounded.
func checkHealthBounds(t *testing.T, h *Health) {
	t.Helper()
	if h.CanSend != "" && !slices.Contains(CanSendValues, h.CanSend) {
		t.Errorf("can_send %q", h.CanSend)
	}
	if h.Quality != "" && !slices.Contains(QualityValues, h.Quality) {
		t.Errorf("quality %q", h.Quality)
	}
	if len(h.Errors) > MaxHealthErrors || len(h.errLabels) != len(h.Errors) {
		t.Errorf("%d errors, %d sealed", len(h.Errors), len(h.errLabels))
	}
	for _, e := range h.Errors {
		if !slices.Contains(HealthEntities, e.Entity) && e.Entity != HealthOther {
			t.Errorf("entity %q", e.Entity)
		}
		if e.Code != HealthOther && (len(e.Code) > HealthCodeDigits || strings.Trim(e.Code, "0123456789") != "" || e.Code == "") {
			t.Errorf("code %q", e.Code)
		}
	}
	for _, v := range []struct {
		v     string
		known []string
	}{{h.Info.Throughput, metaThroughputs}, {h.Info.NameStatus, metaNameStatuses}, {h.Info.CodeVerification, metaCodeStatuses},
		{h.Info.PlatformType, metaPlatforms}, {h.Info.AccountMode, metaAccountModes}} {
		if v.v != "" && v.v != HealthOther && !slices.Contains(v.known, v.v) {
			t.Errorf("info value %q", v.v)
		}
	}
	if l := h.MessagingLimit; !math.IsNaN(l) && !math.IsInf(l, 1) && !slices.Contains([]float64{50, 250, 1000, 2000, 10_000, 100_000}, l) {
		t.Errorf("limit %v", l)
	}
}

// FuzzMetaHealth feeds any body to the reading of a number's node.
func FuzzMetaHealth(f *testing.F) {
	addMetaSeeds(f, "")
	f.Add([]byte(`{"health_status":{"entities":[{"entity_type":"\u0000","can_send_message":"BLOCKED","errors":[{"error_code":1e400},{"error_code":"١٢٣"},{"error_code":[1]}]}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var n metaNode
		if json.Unmarshal(body, &n) != nil {
			return
		}
		checkHealthBounds(t, n.health())
		if st := metaState(n.Status); st != StateUnknown && !slices.Contains(metaStates, st) {
			t.Errorf("state %q", st)
		}
	})
}

// FuzzMetaListing feeds any body to the decoding of a listing page: every
// number kept is named by an ID of digits, within max_instances, with a
// bounded health and state.
func FuzzMetaListing(f *testing.F) {
	addMetaSeeds(f, "accounts")
	f.Add([]byte(`{"phone_numbers":{"data":[{"id":"1"}],"paging":{"next":"x"}},"paging":{"next":1}}`))
	f.Add([]byte(`{"data":[{"id":"1","health_status":"x"},{"id":"2"},{"id":"3"},{"id":"4"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := newJSONStream(bytes.NewReader(body), listLimits{max: 3}, func(s string) string { return s })
		var acc Listing
		_, err := decodeMetaPage(Response{Status: 200}, s, &acc, true)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			return
		}
		if len(acc.Instances) > 3 {
			t.Errorf("%d instances kept, max 3", len(acc.Instances))
		}
		for _, in := range acc.Instances {
			if checkMetaID("id", in.ID) != nil || in.Name != in.ID {
				t.Errorf("instance %q %q", in.Name, in.ID)
			}
			if in.State != StateUnknown && !slices.Contains(metaStates, in.State) {
				t.Errorf("state %q", in.State)
			}
			checkHealthBounds(t, in.Health)
		}
		if a := acc.Account; a != nil {
			if a.Review != "" && !slices.Contains(ReviewValues, a.Review) || len(a.Errors) > MaxHealthErrors {
				t.Errorf("account %+v", a)
			}
		}
	})
}

// FuzzMetaUsage feeds any usage headers to a budget: the usage stays in
// [0, 1], and the interval between calls between the configured one and
// the longest hold.
func FuzzMetaUsage(f *testing.F) {
	f.Add(`{"102290129340398":[{"type":"whatsapp_business_management","call_count":1,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}`, `{"call_count":0,"total_cputime":0,"total_time":0}`)
	f.Add(`{"1":[{"type":"x","call_count":1e308,"estimated_time_to_regain_access":-5}]}`, `{"call_count":"NaN"}`)
	f.Add(`{"1":[{"estimated_time_to_regain_access":1e18}]}`, `null`)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, buc, app string) {
		var b metaBudget
		b.observe(http.Header{"X-Business-Use-Case-Usage": {buc}, "X-App-Usage": {app}}, now)
		r := b.reading(now)
		for _, u := range []float64{r.buc, r.app} {
			if math.IsNaN(u) || u < 0 || u > 1 {
				t.Errorf("usage %v", u)
			}
		}
		longest := max(metaHoldFactor*time.Minute, metaMaxRegain)
		if d := b.pace(now, time.Minute); d < time.Minute || d > longest {
			t.Errorf("pace %v, want within [1m, %v]", d, longest)
		}
	})
}
