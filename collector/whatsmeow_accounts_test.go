package collector

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
)

// whatsmeowListingTargets are a server of each kind as an account; wuzapi's
// is the provider's entry in listingTargets.
var whatsmeowListingTargets = map[string]listingTarget{
	"evolution-go": {
		provider: "whatsmeow",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: server, provider: whatsmeow, server: evolution-go, api_url: %q, api_key: %q}\n", u, listingSecrets[0])
		},
		path:        "/instance/all",
		checkHeader: func(h http.Header) bool { return h.Get("Apikey") == listingSecrets[0] },
		tokens:      true,
	},
	"wuzapi": {
		provider: "whatsmeow",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: server, provider: whatsmeow, server: wuzapi, api_url: %q, api_key: %q}\n", u, listingSecrets[0])
		},
		path:        "/admin/users",
		checkHeader: func(h http.Header) bool { return h.Get("Authorization") == listingSecrets[0] },
		tokens:      true,
	},
	"gowa": {
		provider: "whatsmeow",
		yaml: func(u string) string {
			return fmt.Sprintf("  - {name: server, provider: whatsmeow, server: gowa, api_url: %q, api_key: %q}\n", u, listingSecrets[0])
		},
		path: "/devices",
		checkHeader: func(h http.Header) bool {
			return h.Get("Authorization") == "Basic "+base64.StdEncoding.EncodeToString([]byte(listingSecrets[0]))
		},
	},
}

var whatsmeowListingCases = map[string][]listingCase{
	// wuzapi's rows hold the live pair: the listing is the state request.
	"wuzapi": {
		{fixture: "wuzapi_users.json", status: 200, want: []string{
			"shop shop  logged_in", "cafe cafe  disconnected", "new new  pairing", "gone gone  logged_out"}},
		{fixture: "wuzapi_no_pair.json", status: 200, want: []string{"shop shop  "}},
		{fixture: "wuzapi_unauthorized.json", status: 401, wantErr: ReasonUnauthorized},
		{body: `{"code":500,"error":"Problem accessing DB","success":false}`, status: 500, wantErr: ReasonServerError},
		{body: `{"code":200,"success":true}`, status: 200, wantErr: ReasonBadResponse},
		{body: `[]`, status: 200, wantErr: ReasonBadResponse},
		{body: "Too Many Requests", status: 429, header: []string{"Retry-After", "30"}, wantErr: ReasonRateLimited},
	},
	// Evolution Go's rows find the instances, with their tokens.
	"evolution-go": {
		{fixture: "evogo_all.json", status: 200, want: []string{"sales-bot sales-bot  ", "support-bot support-bot  "}},
		{fixture: "evogo_malformed_row.json", status: 200, want: []string{"sales-bot sales-bot  ", "support-bot support-bot  "}, malformed: 5},
		{fixture: "evogo_unauthorized.json", status: 401, wantErr: ReasonUnauthorized},
		{body: `{"message":"success","data":null}`, status: 200},
		{body: "{", status: 200, wantErr: ReasonBadResponse},
	},
	// GOWA's devices share the server's basic auth; no devices, no results.
	"gowa": {
		{fixture: "gowa_devices.json", status: 200, want: []string{"store-1 store-1  ", "store-2 store-2  "}},
		{body: `{"code":"SUCCESS","message":"List devices"}`, status: 200},
		{body: `{"code":"ERROR","message":"boom"}`, status: 200, wantErr: ReasonBadResponse},
		{body: "Unauthorized", status: 401, wantErr: ReasonUnauthorized},
	},
}

// TestWhatsmeowListings: each server's listing, over real HTTP (wuzapi's
// also runs in TestListings).
func TestWhatsmeowListings(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"evolution-go", "gowa"} {
		runListingCases(t, "whatsmeow "+server, whatsmeowListingTargets[server], whatsmeowListingCases[server])
	}
}
