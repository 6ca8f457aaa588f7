package simulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The simulator can push an instance's state changes to the exporter's
// notification receiver, as the providers do: each provider's
// description says how its notification looks (Notification) and how it
// is authenticated (WebhookAuth).

// WebhookAuth is how an instance's notifications are authenticated.
type WebhookAuth struct {
	// Token is sent as the Authorization header: GREEN-API's
	// webhookUrlToken, or a header set on an Evolution API webhook.
	Token string
	// JWTKey makes Evolution API send Authorization: Bearer <HS256 JWT
	// signed with it> instead.
	JWTKey string
}

// Config is the fields of the exporter's configuration that match: to
// append to the instance's.
func (a WebhookAuth) Config() []string {
	var f []string
	if a.Token != "" {
		f = append(f, fmt.Sprintf("webhook_token: %q", a.Token))
	}
	if a.JWTKey != "" {
		f = append(f, fmt.Sprintf("webhook_jwt_key: %q", a.JWTKey))
	}
	return f
}

// header sets the Authorization header of a notification sent at now.
func (a WebhookAuth) header(h http.Header, now time.Time) {
	switch {
	case a.JWTKey != "":
		h.Set("Authorization", "Bearer "+SignJWT(a.JWTKey, map[string]any{
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "app": "evolution", "action": "webhook",
		}))
	case a.Token != "":
		h.Set("Authorization", "Bearer "+a.Token)
	}
}

// SignJWT returns an HS256 JSON Web Token of claims signed with key, as
// Evolution API makes them.
func SignJWT(key string, claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// NotificationFunc writes a provider's state notification for an
// instance: the path below the receiver's URL and the body.
type NotificationFunc func(id, state, secret string, at time.Time) (path string, body []byte)

// SetWebhook makes an instance's notifications carry auth; an instance
// without one sends none.
func (s *Simulator) SetWebhook(provider, id string, auth WebhookAuth) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.instances[provider+"/"+id]; ok {
		in.webhook = &auth
	}
}

// Notify sends the instance's current state to the receiver at baseURL
// now, and returns the receiver's status.
func (s *Simulator) Notify(ctx context.Context, client *http.Client, baseURL, provider, id string) (int, error) {
	p := ProviderOf(provider)
	s.mu.RLock()
	in, ok := s.instances[provider+"/"+id]
	var b Behaviour
	var auth WebhookAuth
	var secret string
	if ok {
		b, secret = current(in.schedule, time.Since(s.start)), in.secret
		if in.webhook != nil {
			auth = *in.webhook
		}
	}
	s.mu.RUnlock()
	state, up := p.Reads(b)
	switch {
	case !ok:
		return 0, fmt.Errorf("simulator: no %s instance %q", provider, id)
	case p.Notification == nil:
		return 0, fmt.Errorf("simulator: %s sends no notifications", provider)
	case !up || state == "unknown":
		return 0, fmt.Errorf("simulator: %s instance %q has no state to notify", provider, id)
	}
	return send(ctx, client, baseURL, p, id, state, secret, auth)
}

func send(ctx context.Context, client *http.Client, baseURL string, p *Provider, id, state, secret string, auth WebhookAuth) (int, error) {
	now := time.Now()
	path, body := p.Notification(id, state, secret, now)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	auth.header(req.Header, now)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, nil
}

// SendNotifications watches the instances that have a webhook and sends
// each change of their state to the receiver at baseURL, until ctx ends.
// Failures are passed to report, which may be nil.
func (s *Simulator) SendNotifications(ctx context.Context, baseURL string, report func(error)) {
	client := &http.Client{Timeout: 5 * time.Second}
	last := map[string]string{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		type change struct {
			p                      *Provider
			key, id, state, secret string
			auth                   WebhookAuth
		}
		var changes []change
		s.mu.RLock()
		for key, in := range s.instances {
			if in.webhook == nil {
				continue
			}
			provider, id, _ := strings.Cut(key, "/")
			p := ProviderOf(provider)
			state, up := p.Reads(current(in.schedule, time.Since(s.start)))
			if !up || state == "unknown" || p.Notification == nil {
				continue // a failure or no state: nothing the provider would push
			}
			if prev, seen := last[key]; seen && prev != state {
				changes = append(changes, change{p, key, id, state, in.secret, *in.webhook})
			}
			last[key] = state
		}
		s.mu.RUnlock()
		for _, c := range changes {
			status, err := send(ctx, client, baseURL, c.p, c.id, c.state, c.secret, c.auth)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("notification for %s instance %q: HTTP %d", c.p.Name, c.id, status)
			}
			if err != nil && report != nil && ctx.Err() == nil {
				report(err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
