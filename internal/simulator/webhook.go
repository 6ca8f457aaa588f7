package simulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The simulator can push an instance's state changes to the exporter's
// notification receiver, as the providers do: each provider's
// description says how its notification looks (Notification), and its
// deliverer how it is authenticated and retried (GREEN-API: one queue per
// instance, the head resent every minute until answered 200; Evolution
// API: per notification, by its version's rules).

// WebhookAuth is how an instance's notifications are authenticated.
type WebhookAuth struct {
	// Token is sent as the Authorization header: GREEN-API's
	// webhookUrlToken, or a header set on an Evolution API webhook
	// (2.2.0 and later).
	Token string
	// JWTKey is a jwt_key header on an Evolution API webhook: 2.3.0 and
	// later send Authorization: Bearer <HS256 JWT signed with it>
	// instead, 2.2.x send the header as it is, 1.8 no header at all.
	JWTKey string
	// PathSecret is a segment of the webhook's URL after the receiver's
	// /webhook/<provider>/: what every Evolution API version sends, and
	// the one credential Evolution Go can.
	PathSecret string
	// HMACKey is the key a provider signs each body with (WAHA's hmac.key:
	// X-Webhook-Hmac; wuzapi's x-hmac-signature).
	HMACKey string
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
	if a.PathSecret != "" {
		f = append(f, fmt.Sprintf("webhook_path_secret: %q", a.PathSecret))
	}
	if a.HMACKey != "" {
		f = append(f, fmt.Sprintf("webhook_hmac_key: %q", a.HMACKey))
	}
	return f
}

// SignJWT returns an HS256 JSON Web Token of claims signed with key, as
// Evolution API makes them (jsonwebtoken's sign): signed by the library
// golang-jwt, so that the exporter's check meets a signer it did not write.
func SignJWT(key string, claims map[string]any) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(key))
	if err != nil {
		panic("simulator: signing a JWT: " + err.Error()) // claims that JSON cannot encode
	}
	return s
}

// Notification is one notification a provider pushes.
type Notification struct {
	// Path is below the receiver's /webhook/<provider>, where the
	// provider appends it (Evolution API's event name when set by
	// events).
	Path string
	Body []byte
	// State is the state it reports, for the tests' reading.
	State string
}

// NotificationFunc writes the notification a provider pushes when an
// instance starts behaving as b, on the simulator's version of it; false
// when it pushes none for that change.
type NotificationFunc func(s *Simulator, id string, b Behaviour, secret string, at time.Time) (Notification, bool)

// deliverer is how a provider delivers its notifications: the headers it
// sends and how it retries.
type deliverer interface {
	// header sets the request's headers for auth at now; body is what
	// the request carries, for the providers that sign it.
	header(h http.Header, auth WebhookAuth, body []byte, now time.Time)
	// retry says, after the attempt-th delivery failed with status (0
	// for no answer), how long to wait before the next; false to give
	// up. unit is the simulator's second (see SetRetryUnit).
	retry(attempt, status int, unit time.Duration) (time.Duration, bool)
	// queued says a failed notification holds back the instance's later
	// ones.
	queued() bool
}

// SetRetryUnit sets what the providers' retry delays count as a second,
// so that tests see minutes of retries in milliseconds; time.Second by
// default.
func (s *Simulator) SetRetryUnit(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryUnit = d
}

// Delivery is one attempt to deliver a notification.
type Delivery struct {
	State   string
	Attempt int
	// Status is the receiver's answer; 0 when there was none.
	Status int
}

// Deliveries lists the attempts to deliver an instance's notifications,
// in order.
func (s *Simulator) Deliveries(provider, id string) []Delivery {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if in, ok := s.instances[provider+"/"+id]; ok {
		return slices.Clone(in.deliveries)
	}
	return nil
}

// SetWebhook makes an instance's notifications carry auth; an instance
// without one sends none.
func (s *Simulator) SetWebhook(provider, id string, auth WebhookAuth) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.instances[provider+"/"+id]; ok {
		in.webhook = &auth
	}
}

// NotificationOf is the notification the provider pushes when an
// instance starts behaving as b; false when it pushes none.
func (s *Simulator) NotificationOf(provider, id string, b Behaviour, secret string, at time.Time) (Notification, bool) {
	p := ProviderOf(provider)
	if p.Notification == nil {
		return Notification{}, false
	}
	return p.Notification(s, id, b, secret, at)
}

// Notify sends the instance's current state to the receiver at baseURL
// now, once, and returns the receiver's status.
func (s *Simulator) Notify(ctx context.Context, client *http.Client, baseURL, provider, id string) (int, error) {
	p := ProviderOf(provider)
	s.mu.RLock()
	in, ok := s.instances[provider+"/"+id]
	var b Behaviour
	var auth WebhookAuth
	var secret string
	if ok {
		b, secret = current(in.schedule, s.elapsed(in)), in.secret
		if in.webhook != nil {
			auth = *in.webhook
		}
	}
	s.mu.RUnlock()
	switch {
	case !ok:
		return 0, fmt.Errorf("simulator: no %s instance %q", provider, id)
	case p.Notification == nil:
		return 0, fmt.Errorf("simulator: %s sends no notifications", provider)
	}
	now := time.Now()
	n, push := p.Notification(s, id, b, secret, now)
	if !push {
		return 0, fmt.Errorf("simulator: %s instance %q has no state to notify", provider, id)
	}
	return send(ctx, &http.Client{Timeout: 5 * time.Second}, baseURL, p, p.deliverer(s), n, auth, now)
}

func send(ctx context.Context, client *http.Client, baseURL string, p *Provider, d deliverer, n Notification, auth WebhookAuth, now time.Time) (int, error) {
	url := strings.TrimSuffix(baseURL, "/") + "/webhook/" + p.Name
	if auth.PathSecret != "" {
		url += "/" + auth.PathSecret
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+n.Path, bytes.NewReader(n.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	d.header(req.Header, auth, n.Body, now)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, nil
}

// pending is a notification waiting for its next delivery.
type pending struct {
	Notification
	auth    WebhookAuth
	attempt int
	next    time.Time
}

// SendNotifications watches the instances that have a webhook and pushes
// their changes to the receiver at baseURL as their providers do, with
// their retries, until ctx ends. A delivery that is not answered 200 is
// passed to report, which may be nil.
func (s *Simulator) SendNotifications(ctx context.Context, baseURL string, report func(error)) {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, p := range Providers() {
		if p.pusher != nil {
			go p.pusher(s, ctx, baseURL, report)
		}
	}
	last := map[string]Behaviour{}
	queues := map[string][]*pending{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		s.mu.RLock()
		unit := s.retryUnit
		type change struct {
			key, id, secret string
			b               Behaviour
			auth            WebhookAuth
		}
		var changes []change
		for key, in := range s.instances {
			if in.webhook == nil {
				continue
			}
			b := current(in.schedule, s.elapsed(in))
			if prev, seen := last[key]; seen && (prev.State != b.State || prev.Fault != b.Fault || prev.Reason != b.Reason) {
				_, id, _ := strings.Cut(key, "/")
				changes = append(changes, change{key, id, in.secret, b, *in.webhook})
			}
			last[key] = b
		}
		s.mu.RUnlock()
		for _, c := range changes {
			p := ProviderOf(strings.SplitN(c.key, "/", 2)[0])
			if p.Notification == nil || c.b.Fault != FaultNone {
				continue // a failure of the API is nothing the provider pushes
			}
			if n, push := p.Notification(s, c.id, c.b, c.secret, now); push {
				queues[c.key] = append(queues[c.key], &pending{Notification: n, auth: c.auth, next: now})
			}
		}
		for key, q := range queues {
			p := ProviderOf(strings.SplitN(key, "/", 2)[0])
			d := p.deliverer(s)
			_, id, _ := strings.Cut(key, "/")
			// A queued provider tries its head only; the rest wait.
			due := q
			if d.queued() {
				due = q[:min(1, len(q))]
			}
			var keep []*pending
			for _, n := range due {
				if n.next.After(now) {
					keep = append(keep, n)
					continue
				}
				n.attempt++
				status, err := send(ctx, client, baseURL, p, d, n.Notification, n.auth, time.Now())
				s.recordDelivery(key, Delivery{State: n.State, Attempt: n.attempt, Status: status})
				if err == nil && status == http.StatusOK {
					continue
				}
				if err == nil {
					err = fmt.Errorf("notification for %s instance %q: HTTP %d", p.Name, id, status)
				}
				if report != nil && ctx.Err() == nil {
					report(err)
				}
				if wait, again := d.retry(n.attempt, status, unit); again {
					n.next = time.Now().Add(wait)
					keep = append(keep, n)
				}
			}
			queues[key] = append(keep, q[len(due):]...)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Simulator) recordDelivery(key string, d Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.instances[key]; ok {
		in.deliveries = append(in.deliveries, d)
	}
}
