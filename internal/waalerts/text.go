package waalerts

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/amwebhook"
)

// The text of a message. GREEN-API takes at most 20 000 characters
// (sendMessage on the waInstance path the collector calls,
// https://green-api.com/en/docs/api/sending/SendMessage/; the /v3 path's
// page says 4 000, a path the exporter does not use); a phone screen
// shows far fewer. Each field is clipped
// and at most maxListed alerts are listed, so that the longest text
// Format can write stays under maxText whatever the notification holds.
const (
	maxListed = 10
	maxText   = 10000

	maxAlertName = 80
	maxName      = 80
	maxProvider  = 32
	maxState     = 40
	maxSummary   = 240
	maxRunbook   = 300
)

// Format writes the notification m as one WhatsApp text at now: its
// status, then per alert (firing ones first) the alert's name, its
// instance (the labels name and provider), the instance's state (the label
// state), for how long it has fired (from startsAt) or how long it lasted,
// its summary and its runbook link (the annotation runbook_url, an http or
// https URL). Nothing else of the alert is written: descriptions and other
// annotations may be long or hold what a rule's author did not mean for a
// phone; the summary is the one line our rules write for people.
func Format(m *amwebhook.Message, now time.Time) string {
	var firing, resolved []*amwebhook.Alert
	for k := range m.Alerts {
		a := &m.Alerts[k]
		if a.Status == amwebhook.Firing {
			firing = append(firing, a)
		} else {
			resolved = append(resolved, a)
		}
	}
	total := len(m.Alerts) + int(min(m.TruncatedAlerts, 1<<31))
	var b strings.Builder
	status := "RESOLVED"
	if len(firing) > 0 || (len(m.Alerts) == 0 && m.Status == amwebhook.Firing) {
		status = "FIRING"
	}
	noun := "alerts"
	if total == 1 {
		noun = "alert"
	}
	fmt.Fprintf(&b, "*%s* (%d %s)", status, total, noun)
	listed := 0
	for _, a := range append(firing, resolved...) {
		if listed == maxListed {
			break
		}
		listed++
		b.WriteString("\n\n")
		writeAlert(&b, listed, a, now)
	}
	if more := total - listed; more > 0 {
		fmt.Fprintf(&b, "\n\nand %d more", more)
		f, r := len(firing)-min(len(firing), listed), len(resolved)-max(0, listed-len(firing))
		if m.TruncatedAlerts == 0 {
			fmt.Fprintf(&b, " (%d firing, %d resolved)", f, r)
		}
	}
	s := b.String()
	if utf8.RuneCountInString(s) > maxText { // not with the bounds above; a guard
		s = clip(s, maxText)
	}
	return s
}

// writeAlert writes one alert: a line of what and where, then its summary
// and runbook link on lines of their own.
func writeAlert(b *strings.Builder, n int, a *amwebhook.Alert, now time.Time) {
	name := field(a.Labels["alertname"], maxAlertName)
	if name == "" {
		name = "alert"
	}
	fmt.Fprintf(b, "%d. %s", n, name)
	if inst := field(a.Labels["name"], maxName); inst != "" {
		b.WriteString(": " + inst)
		if p := field(a.Labels["provider"], maxProvider); p != "" {
			b.WriteString(" (" + p + ")")
		}
	}
	if st := field(a.Labels["state"], maxState); st != "" {
		b.WriteString(", state " + st)
	}
	if a.Status == amwebhook.Firing {
		if d, ok := since(a.StartsAt, now); ok {
			b.WriteString(", firing for " + d)
		} else {
			b.WriteString(", firing")
		}
	} else {
		if d, ok := since(a.StartsAt, a.EndsAt); ok {
			b.WriteString(", resolved after " + d)
		} else {
			b.WriteString(", resolved")
		}
	}
	if s := field(a.Annotations["summary"], maxSummary); s != "" {
		b.WriteString("\n" + s)
	}
	if u := runbook(a.Annotations["runbook_url"]); u != "" {
		b.WriteString("\n" + u)
	}
}

// since is the duration from start to end, rounded for people; false when
// either is unknown or end is not after start.
func since(start, end time.Time) (string, bool) {
	if start.IsZero() || end.IsZero() || !end.After(start) {
		return "", false
	}
	return duration(end.Sub(start)), true
}

// duration writes d as a person reads it: 45s, 12m, 3h5m, 2d4h.
func duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}

// runbook is u when it is an absolute http or https URL short enough to
// write whole (a clipped link would lead elsewhere); empty otherwise.
func runbook(u string) string {
	u = strings.TrimSpace(u)
	if u == "" || len(u) > maxRunbook || strings.ContainsFunc(u, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
		return ""
	}
	return u
}

// field is v on one line (control characters, line breaks among them,
// become spaces, so that a label cannot forge the lines of another alert)
// and clipped to n runes.
func field(v string, n int) string {
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(v, "\uFFFD"))
	return clip(strings.TrimSpace(v), n)
}

// clip cuts s to at most n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
