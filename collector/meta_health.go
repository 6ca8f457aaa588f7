package collector

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
)

// The health of a business phone number of Meta's Cloud API, read from
// the fields of its node (GET /{phone_number_id}?fields=…, or a row of
// its WABA's phone_numbers): health_status, quality_rating, the
// messaging limit and the settings that decide whether it can send. Every
// value the exporter writes in a label is one of a known set, "other" or
// unknown, whatever the answer holds.

// metaStates are the documented values of a phone number's status
// (PROVIDERS-NEXT.md 3.1.1). Meta's UNKNOWN is the exporter's unknown.
var metaStates = []string{"PENDING", "DELETED", "MIGRATED", "BANNED", "RESTRICTED", "RATE_LIMITED", "FLAGGED", "CONNECTED", "DISCONNECTED", "UNVERIFIED"}

// metaState is a status as the exporter reads it: one of metaStates or
// StateUnknown. The collector would log each value it does not know at
// every call; a listing of thousands of numbers must not.
func metaState(status string) string {
	if slices.Contains(metaStates, status) {
		return status
	}
	return StateUnknown
}

// metaNode is the part of a phone number's node the exporter reads.
type metaNode struct {
	ID           string          `json:"id"`
	Status       string          `json:"status"`
	Quality      string          `json:"quality_rating"`
	HealthStatus *metaHealthJSON `json:"health_status"`
	// The portfolio's limit (current), then the number's tier
	// (deprecated, returned by older versions).
	Limit      string `json:"whatsapp_business_manager_messaging_limit"`
	LimitTier  string `json:"messaging_limit_tier"`
	Throughput *struct {
		Level string `json:"level"`
	} `json:"throughput"`
	NameStatus       string `json:"name_status"`
	CodeVerification string `json:"code_verification_status"`
	PlatformType     string `json:"platform_type"`
	AccountMode      string `json:"account_mode"`
}

// metaHealthJSON is a node's health_status.
type metaHealthJSON struct {
	CanSend  string       `json:"can_send_message"`
	Entities []metaEntity `json:"entities"`
}

type metaEntity struct {
	Type    string `json:"entity_type"`
	CanSend string `json:"can_send_message"`
	Errors  []struct {
		// A number in Meta's answers; a string is read too.
		Code json.RawMessage `json:"error_code"`
	} `json:"errors"`
}

// metaNodeFields are the fields the state request and the listing ask
// for: both limit fields, since which one an API version returns
// changed (v23 documents messaging_limit_tier, later ones
// whatsapp_business_manager_messaging_limit).
const metaNodeFields = "id,status,quality_rating,health_status,whatsapp_business_manager_messaging_limit,messaging_limit_tier,throughput,name_status,code_verification_status,platform_type,account_mode"

// The documented values of the settings of HealthInfo.
var (
	metaThroughputs  = []string{"STANDARD", "HIGH", "NOT_APPLICABLE"}
	metaNameStatuses = []string{"APPROVED", "AVAILABLE_WITHOUT_REVIEW", "DECLINED", "EXPIRED", "PENDING_REVIEW", "NONE", "NON_EXISTS"}
	metaCodeStatuses = []string{"VERIFIED", "NOT_VERIFIED", "UNVERIFIED", "EXPIRED"}
	metaPlatforms    = []string{"CLOUD_API", "ON_PREMISE", "NOT_APPLICABLE"}
	metaAccountModes = []string{"LIVE", "SANDBOX"}
)

// metaLimits are the messaging limits by tier: the portfolio's
// (TIER_250 … TIER_UNLIMITED) and the deprecated per-number tiers
// (TIER_50, TIER_1K).
var metaLimits = map[string]float64{
	"TIER_50": 50, "TIER_250": 250, "TIER_1K": 1000, "TIER_2K": 2000, "TIER_10K": 10_000,
	"TIER_100K": 100_000, "TIER_UNLIMITED": math.Inf(1), "UNLIMITED": math.Inf(1),
}

// canSendRank orders the values of can_send_message, worst last.
func canSendRank(v string) int { return slices.Index(CanSendValues, v) }

// health reads a node's health, sealed.
func (n *metaNode) health() *Health {
	h := &Health{MessagingLimit: math.NaN()}
	h.CanSend, h.Errors = n.HealthStatus.sending()
	if slices.Contains(QualityValues, n.Quality) {
		h.Quality = n.Quality // UNKNOWN and anything else: unknown
	}
	limit := n.Limit
	if limit == "" {
		limit = n.LimitTier
	}
	if v, ok := metaLimits[limit]; ok {
		h.MessagingLimit = v
	}
	if n.Throughput != nil {
		h.Info.Throughput = bounded(n.Throughput.Level, metaThroughputs)
	}
	h.Info.NameStatus = bounded(n.NameStatus, metaNameStatuses)
	h.Info.CodeVerification = bounded(n.CodeVerification, metaCodeStatuses)
	h.Info.PlatformType = bounded(n.PlatformType, metaPlatforms)
	h.Info.AccountMode = bounded(n.AccountMode, metaAccountModes)
	return h.Seal()
}

// bounded is v when it is one of known, "" (unknown) when it is empty,
// HealthOther otherwise.
func bounded(v string, known []string) string {
	if v == "" {
		return ""
	}
	return boundedValue(v, known)
}

// boundedValue is v when it is one of known, else HealthOther.
func boundedValue(v string, known []string) string {
	if slices.Contains(known, v) {
		return v
	}
	return HealthOther
}

// sending reads a health_status: the worst can_send_message of its
// entities and the errors of those that are not AVAILABLE.
//
// Not the top-level value: it also turns BLOCKED for calling problems
// alone (can_receive_call_sip; Meta's own example shows every entity
// AVAILABLE for messages under a BLOCKED top level). Without an entity
// that tells, only a top-level AVAILABLE is believed, since nothing can
// be worse then; any other top level is unknown.
func (hs *metaHealthJSON) sending() (string, []HealthError) {
	if hs == nil {
		return "", nil
	}
	worst := -1
	var errs []HealthError
	for _, e := range hs.Entities {
		r := canSendRank(e.CanSend)
		worst = max(worst, r)
		if r <= 0 { // AVAILABLE or a value the exporter does not know
			continue
		}
		entity := boundedValue(e.Type, HealthEntities)
		for _, x := range e.Errors {
			he := HealthError{Entity: entity, Code: metaErrorCode(x.Code)}
			if len(errs) < MaxHealthErrors && !slices.Contains(errs, he) {
				errs = append(errs, he)
			}
		}
	}
	switch {
	case worst >= 0:
		return CanSendValues[worst], errs
	case hs.CanSend == "AVAILABLE":
		return "AVAILABLE", nil
	}
	return "", nil
}

// metaErrorCode is an error_code as a label value: its digits, at most
// HealthCodeDigits of them, else HealthOther.
func metaErrorCode(raw json.RawMessage) string {
	s := strings.Trim(string(raw), `"`)
	if s == "" || len(s) > HealthCodeDigits {
		return HealthOther
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return HealthOther
		}
	}
	return s
}

// metaAccountHealth reads a WABA node's own health and review.
func metaAccountHealth(hs *metaHealthJSON, review string) *AccountHealth {
	a := &AccountHealth{}
	a.CanSend, a.Errors = hs.sending()
	if slices.Contains(ReviewValues, review) {
		a.Review = review
	}
	return a
}
