package simulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Meta's webhooks: the envelope of a WhatsApp Business Account's changes
// (webhooks reference: account_update, phone_number_quality_update,
// account_review_update, business_capability_update), POSTed with
// X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body keyed with the
// app secret>, after a GET handshake (hub.mode=subscribe,
// hub.verify_token, hub.challenge echoed).

// MetaChange is one change of a notification: its field and value.
type MetaChange struct {
	Field string
	Value map[string]any
}

// MetaBanChange is account_update's DISABLED_UPDATE (the reference's
// example: {"event":"DISABLED_UPDATE","ban_info":{"waba_ban_state":
// "REINSTATE","waba_ban_date":"April 17, 2025"}}); state is DISABLE,
// REINSTATE or SCHEDULE_FOR_DISABLE.
func MetaBanChange(state, date string) MetaChange {
	return MetaChange{"account_update", map[string]any{"event": "DISABLED_UPDATE",
		"ban_info": map[string]any{"waba_ban_state": state, "waba_ban_date": date}}}
}

// MetaRestrictionChange is account_update's ACCOUNT_RESTRICTION: each
// restriction_type expiring at expiry (restriction_info[].expiration, a
// Unix time).
func MetaRestrictionChange(expiry time.Time, types ...string) MetaChange {
	var info []any
	for _, t := range types {
		info = append(info, map[string]any{"restriction_type": t, "expiration": expiry.Unix()})
	}
	return MetaChange{"account_update", map[string]any{"event": "ACCOUNT_RESTRICTION", "restriction_info": info}}
}

// MetaQualityChange is phone_number_quality_update: event is ONBOARDING
// or THROUGHPUT_UPGRADE (the reference), or FLAGGED, UNFLAGGED, UPGRADE,
// DOWNGRADE (older payloads); tier is both current_limit and
// max_daily_conversations_per_business.
func MetaQualityChange(displayPhoneNumber, event, tier string) MetaChange {
	return MetaChange{"phone_number_quality_update", map[string]any{"display_phone_number": displayPhoneNumber,
		"event": event, "current_limit": tier, "max_daily_conversations_per_business": tier}}
}

// MetaReviewChange is account_review_update: decision APPROVED,
// REJECTED, PENDING or DEFERRED.
func MetaReviewChange(decision string) MetaChange {
	return MetaChange{"account_review_update", map[string]any{"decision": decision}}
}

// MetaCapabilityChange is business_capability_update: the portfolio's
// messaging limit (TIER_250 … TIER_UNLIMITED) and the legacy per-phone
// one (250, 2000, 10000, 100000 or -1 for unlimited).
func MetaCapabilityChange(tier string, perPhone int) MetaChange {
	return MetaChange{"business_capability_update", map[string]any{"max_daily_conversations_per_business": tier,
		"max_daily_conversation_per_phone": perPhone, "max_phone_numbers_per_business": 20, "max_phone_numbers_per_waba": 20}}
}

// MetaEnvelope is the body of a notification of a WABA's changes at at.
func MetaEnvelope(wabaID string, at time.Time, changes ...MetaChange) []byte {
	var cs []any
	for _, c := range changes {
		cs = append(cs, map[string]any{"field": c.Field, "value": c.Value})
	}
	body, _ := json.Marshal(map[string]any{"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": wabaID, "time": at.Unix(), "changes": cs}}})
	return body
}

// MetaSignature is the X-Hub-Signature-256 of body for appSecret.
func MetaSignature(appSecret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// SendMetaWebhook POSTs a notification of a WABA's changes to url, signed
// with appSecret, as Meta does; it returns the receiver's status. A
// client nil is http.DefaultClient.
func SendMetaWebhook(ctx context.Context, client *http.Client, url, appSecret, wabaID string, changes ...MetaChange) (int, error) {
	body := MetaEnvelope(wabaID, time.Now(), changes...)
	return PostMetaWebhook(ctx, client, url, MetaSignature(appSecret, body), body)
}

// PostMetaWebhook POSTs body with a signature as it is (a forged or
// missing one, for tests; "" sends no header).
func PostMetaWebhook(ctx context.Context, client *http.Client, url, signature string, body []byte) (int, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}

// MetaVerify makes the subscription handshake Meta makes when a webhook
// is set: GET url?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…;
// the receiver is to answer 200 with the challenge alone. It returns the
// status and (at most 64 KiB of) the body.
func MetaVerify(ctx context.Context, client *http.Client, target, verifyToken, challenge string) (int, string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {challenge}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("User-Agent", "facebookplatform/1.0 (+http://developers.facebook.com)")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), err
}
