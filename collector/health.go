package collector

import (
	"context"
	"math"
	"time"
)

// Health is what a provider tells of an instance beyond its state: the
// quality, sending health and limits of a business phone number of
// Meta's WhatsApp Cloud API (and of the providers that pass its fields
// through). A number's state says whether it is registered and not
// banned; whether it can send is decided elsewhere, by every node above
// it (its WABA, the business, the app), which its health tells. Nil for
// the providers that tell none.
//
// A Health is immutable once sealed: outcomes and scrapes share it.
type Health struct {
	// CanSend is the worst can_send_message of the health entities (the
	// top-level value also turns BLOCKED for calling problems alone):
	// one of CanSendValues, or "" when the answer did not tell.
	CanSend string
	// Errors are the codes that keep an entity from AVAILABLE, at most
	// MaxHealthErrors, each once.
	Errors []HealthError
	// Quality is the quality rating: one of QualityValues, or "" when
	// not told.
	Quality string
	// MessagingLimit is how many unique users the number may open
	// conversations with in 24 hours: +Inf for unlimited, NaN when not
	// told.
	MessagingLimit float64
	// Info are the values of the number's other settings that decide
	// whether it can send, each one of the field's known values, or
	// "unknown" (see InfoValues).
	Info HealthInfo

	// Sealed by Seal: the label pairs of the exposition.
	infoLabels string
	errLabels  []string
}

// HealthError is a code that keeps a health entity from AVAILABLE.
type HealthError struct {
	// Entity is the entity's type: one of HealthEntities, or "other".
	Entity string
	// Code is the error code: a number of at most HealthCodeDigits
	// digits, or "other".
	Code string
}

// HealthInfo are settings of a number that decide whether it can send.
type HealthInfo struct {
	Throughput       string // throughput.level
	NameStatus       string // name_status
	CodeVerification string // code_verification_status
	PlatformType     string // platform_type
	AccountMode      string // account_mode
}

// Bounds of the label values of a health.
const (
	// MaxHealthErrors bounds the error series of an instance.
	MaxHealthErrors = 8
	// HealthCodeDigits bounds an error code label: Meta's are six digits.
	HealthCodeDigits = 7
	// HealthOther is the value of an entity type or code outside the
	// bounds, and of a setting's value the exporter does not know.
	HealthOther = "other"
)

// The values of the one-hot health families, in display order; the
// last, "unknown", is 1 when the answer did not tell.
var (
	CanSendValues  = []string{"AVAILABLE", "LIMITED", "BLOCKED"}
	QualityValues  = []string{"GREEN", "YELLOW", "RED", "NA"}
	HealthEntities = []string{"PHONE_NUMBER", "WABA", "BUSINESS", "APP"}
)

// Seal makes the label pairs the exposition writes, once; the parsers
// call it on the Health they return, which nothing changes after.
func (h *Health) Seal() *Health {
	if h == nil {
		return nil
	}
	info := func(name, v string) string {
		if v == "" {
			v = StateUnknown
		}
		return name + `="` + escapeLabel(v) + `"`
	}
	h.infoLabels = info("throughput_level", h.Info.Throughput) + "," +
		info("name_status", h.Info.NameStatus) + "," +
		info("code_verification_status", h.Info.CodeVerification) + "," +
		info("platform_type", h.Info.PlatformType) + "," +
		info("account_mode", h.Info.AccountMode)
	h.errLabels = h.errLabels[:0]
	for _, e := range h.Errors {
		h.errLabels = append(h.errLabels, `entity_type="`+escapeLabel(e.Entity)+`",error_code="`+escapeLabel(e.Code)+`"`)
	}
	return h
}

// AccountHealth is what a provider tells of an account itself (a WABA):
// its sending health and review.
type AccountHealth struct {
	// CanSend and Errors as in Health, over the account's own entities
	// (WABA, BUSINESS, APP).
	CanSend string
	Errors  []HealthError
	// Review is account_review_status: one of ReviewValues, or "" when
	// not told.
	Review string
}

// ReviewValues are the values of a WABA's account_review_status.
var ReviewValues = []string{"APPROVED", "PENDING", "REJECTED", "RESTRICTED", "DEFERRED"}

// healthClient is a Client whose state request also tells the
// instance's health (Meta's Cloud API). The collector calls
// StateHealth instead of State; a nil Health with no error is a health
// that told nothing.
type healthClient interface {
	Client
	StateHealth(ctx context.Context) (string, *Health, error)
}

// pacer is a Client or Lister that spends a request budget of the
// provider's (Meta's management calls per hour): after each call, Pace
// says how long the result is to stand at least, beyond --api.min-interval
// or the account's refresh_interval. 0 for no more.
type pacer interface {
	Pace() time.Duration
}

// orUnknown is h, or a Health that tells nothing when h is nil: an
// instance of a provider that tells health has every health family.
func orUnknown(h *Health) *Health {
	if h == nil {
		return unknownHealth
	}
	return h
}

// unknownHealth is a Health that tells nothing: every value unknown.
var unknownHealth = (&Health{MessagingLimit: math.NaN()}).Seal()
