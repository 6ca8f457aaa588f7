package collector

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
)

// The Evolution API JWT check (webhookJWT.authorizes) against tokens that
// golang-jwt signs, as an independent signer: Evolution API signs with
// jsonwebtoken, jwt.sign({iat, exp: iat+600, app: "evolution", action:
// "webhook"}, jwt_key, {algorithm: "HS256"}) in its webhook controller
// (2.3.0 to 2.3.6), once per event.
//
// The check's rules: HS256 only; exp required, taken until jwtLeeway
// after it; nbf, when present, from jwtLeeway before it; iat not checked.
// The clock is the now passed to Authorize: the tokens are made for a
// date long past, so that a check reading the wall clock would refuse
// them all.

// jwtTestNow is the time the tokens are checked at.
var jwtTestNow = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// jwtTestKey signs the tokens; no test output may hold it, nor a token.
const jwtTestKey = "EVOLUTION-JWT-KEY-0123456789abcdef"

// evolutionClaims are the claims Evolution API signs, issued at iat.
func evolutionClaims(iat time.Time) jwtv5.MapClaims {
	return jwtv5.MapClaims{"iat": iat.Unix(), "exp": iat.Add(10 * time.Minute).Unix(), "app": "evolution", "action": "webhook"}
}

// signed signs claims with method and key by golang-jwt; header fields
// in extra replace the token's.
func signed(t *testing.T, method jwtv5.SigningMethod, key any, claims jwtv5.Claims, extra map[string]any) string {
	t.Helper()
	tok := jwtv5.NewWithClaims(method, claims)
	for k, v := range extra {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing a %s token: %v", method.Alg(), err)
	}
	return s
}

// hs256 is a token of claims signed with HS256 and key.
func hs256(t *testing.T, key string, claims jwtv5.Claims) string {
	return signed(t, jwtv5.SigningMethodHS256, []byte(key), claims, nil)
}

// withSegment replaces the i-th segment of a token.
func withSegment(token string, i int, seg string) string {
	parts := strings.Split(token, ".")
	parts[i] = seg
	return strings.Join(parts, ".")
}

// signText signs the text of a token, its first two segments as they are,
// with HS256 and jwtTestKey.
func signText(t *testing.T, text string) string {
	t.Helper()
	sig, err := jwtv5.SigningMethodHS256.Sign(text, []byte(jwtTestKey))
	if err != nil {
		t.Fatal(err)
	}
	return text + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

var authorizationNames = map[Authorization]string{
	Authorized: "Authorized", Refused: "Refused", NoCredentials: "NoCredentials", KeyInHeader: "KeyInHeader",
}

func TestEvolutionJWT(t *testing.T) {
	t.Parallel()
	now := jwtTestNow
	good := hs256(t, jwtTestKey, evolutionClaims(now))
	exp := func(at time.Time) jwtv5.MapClaims { return jwtv5.MapClaims{"exp": at.Unix()} }
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB of claims: the receiver's server reads no header past 16 KiB,
	// the check itself has no bound.
	hugeClaims := evolutionClaims(now)
	hugeClaims["pad"] = strings.Repeat("x", 1<<20)

	cases := []struct {
		name string
		// auth is the Authorization header; header more headers.
		auth   string
		header http.Header
		// key is the instance's jwt_key; "-" for none configured.
		key  string
		want Authorization
	}{
		{name: "as Evolution API signs it", auth: "Bearer " + good, want: Authorized},
		{name: "by the simulator", auth: "Bearer " + simulator.SignJWT(jwtTestKey, evolutionClaims(now)), want: Authorized},
		{name: "bearer in lower case", auth: "bearer " + good, want: Authorized},
		{name: "issued ten minutes ago, at its exp", auth: "Bearer " + hs256(t, jwtTestKey, evolutionClaims(now.Add(-10*time.Minute))), want: Authorized},

		// The key and the signature.
		{name: "wrong key", auth: "Bearer " + hs256(t, "ANOTHER-KEY-0123456789abcdef", evolutionClaims(now)), want: Refused},
		{name: "empty key", auth: "Bearer " + hs256(t, "", evolutionClaims(now)), want: Refused},
		{name: "key with one more byte", auth: "Bearer " + hs256(t, jwtTestKey+"x", evolutionClaims(now)), want: Refused},
		{name: "claims changed after signing", auth: "Bearer " + withSegment(good, 1, b64(`{"exp":9999999999}`)), want: Refused},
		{name: "signature of another token", auth: "Bearer " + withSegment(good, 2, strings.Split(hs256(t, jwtTestKey, exp(now.Add(time.Hour))), ".")[2]), want: Refused},
		{name: "no signature", auth: "Bearer " + withSegment(good, 2, ""), want: Refused},
		{name: "signature cut short", auth: "Bearer " + good[:len(good)-2], want: Refused},

		// The algorithm.
		{name: "alg none, unsigned", auth: "Bearer " + signed(t, jwtv5.SigningMethodNone, jwtv5.UnsafeAllowNoneSignatureType, evolutionClaims(now), nil), want: Refused},
		{name: "alg none, HS256 signature", auth: "Bearer " + signed(t, jwtv5.SigningMethodHS256, []byte(jwtTestKey), evolutionClaims(now), map[string]any{"alg": "none"}), want: Refused},
		{name: "alg HS512 with the key", auth: "Bearer " + signed(t, jwtv5.SigningMethodHS512, []byte(jwtTestKey), evolutionClaims(now), nil), want: Refused},
		{name: "alg HS384 with the key", auth: "Bearer " + signed(t, jwtv5.SigningMethodHS384, []byte(jwtTestKey), evolutionClaims(now), nil), want: Refused},
		{name: "alg RS256 header, HMAC-SHA256 signature with the key", auth: "Bearer " + signed(t, jwtv5.SigningMethodHS256, []byte(jwtTestKey), evolutionClaims(now), map[string]any{"alg": "RS256"}), want: Refused},
		{name: "alg RS256, signed with an RSA key", auth: "Bearer " + signed(t, jwtv5.SigningMethodRS256, rsaKey, evolutionClaims(now), nil), want: Refused},
		{name: "alg hs256 in lower case", auth: "Bearer " + signed(t, jwtv5.SigningMethodHS256, []byte(jwtTestKey), evolutionClaims(now), map[string]any{"alg": "hs256"}), want: Refused},
		{name: "no alg", auth: "Bearer " + withSegment(good, 0, b64(`{"typ":"JWT"}`)), want: Refused},
		{name: "typ other than JWT", auth: "Bearer " + signed(t, jwtv5.SigningMethodHS256, []byte(jwtTestKey), evolutionClaims(now), map[string]any{"typ": "at+jwt"}), want: Authorized},

		// exp, with jwtLeeway after it.
		{name: "no exp", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"iat": now.Unix(), "app": "evolution", "action": "webhook"}), want: Refused},
		{name: "exp null", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": nil}), want: Refused},
		{name: "exp not a number", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": "soon"}), want: Refused},
		{name: "exp a number in a string", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": strconv.FormatInt(now.Add(time.Minute).Unix(), 10)}), want: Authorized},
		{name: "exp with a fraction", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": float64(now.Unix()) + 0.5}), want: Authorized},
		{name: "exp in an hour", auth: "Bearer " + hs256(t, jwtTestKey, exp(now.Add(time.Hour))), want: Authorized},
		{name: "exp now", auth: "Bearer " + hs256(t, jwtTestKey, exp(now)), want: Authorized},
		{name: "expired within the leeway", auth: "Bearer " + hs256(t, jwtTestKey, exp(now.Add(-jwtLeeway+time.Second))), want: Authorized},
		// golang-jwt takes a token while now is before exp+leeway (the
		// hand-written check before it also took that one instant).
		{name: "expired by the leeway exactly", auth: "Bearer " + hs256(t, jwtTestKey, exp(now.Add(-jwtLeeway))), want: Refused},
		{name: "expired beyond the leeway", auth: "Bearer " + hs256(t, jwtTestKey, exp(now.Add(-jwtLeeway-time.Second))), want: Refused},
		{name: "issued 11 minutes and a second ago", auth: "Bearer " + hs256(t, jwtTestKey, evolutionClaims(now.Add(-11*time.Minute-time.Second))), want: Refused},
		{name: "expired long ago", auth: "Bearer " + hs256(t, jwtTestKey, exp(time.Unix(0, 0))), want: Refused},

		// nbf, when present, with jwtLeeway before it.
		{name: "nbf now", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Unix()}), want: Authorized},
		{name: "nbf within the leeway", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(jwtLeeway).Unix()}), want: Authorized},
		{name: "nbf beyond the leeway", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(jwtLeeway + time.Second).Unix()}), want: Refused},
		{name: "nbf not a number", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": now.Add(time.Hour).Unix(), "nbf": "later"}), want: Refused},

		// iat is not checked: the clocks of Evolution API's server may be
		// ahead; exp bounds the token's life.
		{name: "iat an hour ahead", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": now.Add(time.Minute).Unix(), "iat": now.Add(time.Hour).Unix()}), want: Authorized},
		{name: "iat not a number", auth: "Bearer " + hs256(t, jwtTestKey, jwtv5.MapClaims{"exp": now.Add(time.Minute).Unix(), "iat": "x"}), want: Authorized},

		// Malformed tokens.
		{name: "empty token", auth: "Bearer ", want: Refused},
		{name: "one segment", auth: "Bearer " + strings.Split(good, ".")[0], want: Refused},
		{name: "two segments", auth: "Bearer " + strings.Join(strings.Split(good, ".")[:2], "."), want: Refused},
		{name: "four segments", auth: "Bearer " + good + ".", want: Refused},
		{name: "dots only", auth: "Bearer ..", want: Refused},
		{name: "header not base64url", auth: "Bearer " + withSegment(good, 0, "!!!"), want: Refused},
		{name: "segments padded, signed so", auth: "Bearer " + signText(t, base64.URLEncoding.EncodeToString([]byte(`{"alg":"HS256"}  `))+"."+
			base64.URLEncoding.EncodeToString(fmt.Appendf(nil, `{"exp":%d} `, now.Unix()))), want: Refused},
		{name: "segments unpadded, signed so", auth: "Bearer " + signText(t, b64(`{"alg":"HS256"}  `)+"."+b64(fmt.Sprintf(`{"exp":%d} `, now.Unix()))), want: Authorized},
		{name: "header not JSON", auth: "Bearer " + withSegment(good, 0, b64("alg=HS256")), want: Refused},
		{name: "claims not JSON", auth: "Bearer " + withSegment(good, 1, b64("exp")), want: Refused},
		{name: "claims a JSON array", auth: "Bearer " + withSegment(good, 1, b64("[1]")), want: Refused},
		{name: "signature not base64url", auth: "Bearer " + withSegment(good, 2, "+/="), want: Refused},
		{name: "space before the token", auth: "Bearer  " + good, want: Refused},
		{name: "token without Bearer", auth: good, want: Refused},
		{name: "token as Basic", auth: "Basic " + good, want: Refused},
		{name: "no Authorization", want: Refused},

		// Huge tokens.
		{name: "huge, signed with the key", auth: "Bearer " + hs256(t, jwtTestKey, hugeClaims), want: Authorized},
		{name: "huge, wrong key", auth: "Bearer " + hs256(t, "ANOTHER-KEY-0123456789abcdef", hugeClaims), want: Refused},
		{name: "huge, dots only", auth: "Bearer " + strings.Repeat(".", 1<<20), want: Refused},
		{name: "huge, one segment", auth: "Bearer " + strings.Repeat("A", 1<<20), want: Refused},

		// Beside the other credentials.
		{name: "no jwt_key configured", auth: "Bearer " + good, key: "-", want: NoCredentials},
		{name: "the key itself in a header", auth: "Bearer " + good, header: http.Header{"Jwt_key": {jwtTestKey}}, want: KeyInHeader},
		{name: "the key itself as the bearer token", auth: "Bearer " + jwtTestKey, want: Refused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := &EvolutionSpec{webhookJWT: webhookJWT{key: jwtTestKey}}
			if tc.key == "-" {
				spec.webhookJWT.key = ""
			}
			h := http.Header{}
			for k, vs := range tc.header {
				h[k] = vs
			}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			got := evolutionWebhook.Authorize(spec, Credentials{Header: h}, now)
			// Neither the key nor the token is printed.
			if got != tc.want {
				t.Errorf("Authorize = %s, want %s", authorizationNames[got], authorizationNames[tc.want])
			}
		})
	}
}

// TestEvolutionJWTClock: the check reads the time passed to Authorize, not
// the wall clock.
func TestEvolutionJWTClock(t *testing.T) {
	t.Parallel()
	spec := &EvolutionSpec{webhookJWT: webhookJWT{key: jwtTestKey}}
	wall := time.Now()
	for _, tc := range []struct {
		name       string
		issued, at time.Time
		want       Authorization
	}{
		{"issued now, checked now", wall, wall, Authorized},
		{"issued now, checked in an hour", wall, wall.Add(time.Hour), Refused},
		{"issued in 2021, checked then", jwtTestNow, jwtTestNow, Authorized},
		{"issued in 2021, checked a minute before", jwtTestNow, jwtTestNow.Add(-time.Minute), Authorized},
	} {
		h := http.Header{"Authorization": {"Bearer " + hs256(t, jwtTestKey, evolutionClaims(tc.issued))}}
		if got := evolutionWebhook.Authorize(spec, Credentials{Header: h}, tc.at); got != tc.want {
			t.Errorf("%s: Authorize = %s, want %s", tc.name, authorizationNames[got], authorizationNames[tc.want])
		}
	}
}

// TestSimulatorSignsAsEvolutionAPI: the simulator's tokens carry the
// header and claims Evolution API's do, and verify with the key by
// golang-jwt.
func TestSimulatorSignsAsEvolutionAPI(t *testing.T) {
	t.Parallel()
	now := time.Now()
	token := simulator.SignJWT(jwtTestKey, map[string]any{
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "app": "evolution", "action": "webhook",
	})
	claims := jwtv5.MapClaims{}
	parsed, err := jwtv5.NewParser(jwtv5.WithValidMethods([]string{"HS256"}), jwtv5.WithExpirationRequired()).
		ParseWithClaims(token, claims, func(*jwtv5.Token) (any, error) { return []byte(jwtTestKey), nil })
	if err != nil {
		t.Fatalf("the simulator's token does not verify: %v", err)
	}
	if len(parsed.Header) != 2 || parsed.Header["alg"] != "HS256" || parsed.Header["typ"] != "JWT" {
		t.Errorf("header %v, want alg HS256 and typ JWT only", parsed.Header)
	}
	if claims["app"] != "evolution" || claims["action"] != "webhook" || claims["exp"].(float64)-claims["iat"].(float64) != 600 {
		t.Errorf("claims %v, want Evolution API's", claims)
	}
}
