package collector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// Redaction of every secret the exporter knows. An API hides its own
// call's secrets (API.Redact), but an upstream text can quote others: a
// partner listing that fails with an error page holding its instances'
// tokens, a proxy that echoes a header, an Evolution server's error about
// another instance. So every error text an API makes, and every line the
// collector logs, also passes through the redactor of the current
// snapshot, which knows the secrets of everything the snapshot watches.
//
// The redactor is built when the first text needs it (an error, or a log
// line), once per snapshot: a reload or a listing that changes the
// instances makes a new snapshot, so that a secret added by a reload is
// hidden from the next error on, including one of a call that began
// before the reload. Log lines are few (transitions, rate-limited kinds),
// and a snapshot that logs nothing and sees no error builds none.

// secretMark replaces a secret.
const secretMark = "<secret>"

// addSecretForms calls add with sec and the forms it can take in a URL,
// in a JSON body that echoes it (as Go writes JSON, and with "/" escaped,
// as PHP does), and in an HTML page.
func addSecretForms(sec string, add func(string)) {
	if sec == "" {
		return
	}
	quoted, _ := json.Marshal(sec)
	js := string(quoted[1 : len(quoted)-1])
	for _, form := range [...]string{sec, url.PathEscape(sec), url.QueryEscape(sec), js,
		strings.ReplaceAll(js, "/", `\/`), strings.ReplaceAll(sec, "&", "&amp;")} {
		add(form)
	}
}

// redactProbe is how many bytes of a text the redactor looks up at each
// position: the forms at least this long are found with one map lookup
// per byte of the text, and one more per length of the forms that begin
// with those bytes, however many forms there are and however alike
// (tokens that share a prefix).
const redactProbe = 8

// redactor hides a fixed set of secrets. Its zero value and nil hide
// nothing.
type redactor struct {
	// forms are the forms of redactProbe bytes or more; lengths, by
	// their first redactProbe bytes, the lengths of those forms, longest
	// first. short are the shorter forms, longest first.
	forms   map[string]struct{}
	lengths map[string][]int
	short   []string
}

func newRedactor() *redactor {
	return &redactor{forms: map[string]struct{}{}, lengths: map[string][]int{}}
}

// add makes r hide form.
func (r *redactor) add(form string) {
	switch {
	case form == "":
		return
	case len(form) < redactProbe:
		if !slices.Contains(r.short, form) {
			r.short = append(r.short, form)
		}
		return
	}
	if _, ok := r.forms[form]; ok {
		return
	}
	r.forms[form] = struct{}{}
	k := form[:redactProbe]
	if ls := r.lengths[k]; !slices.Contains(ls, len(form)) {
		r.lengths[k] = append(ls, len(form))
	}
}

// addSecret makes r hide every form of sec.
func (r *redactor) addSecret(sec string) { addSecretForms(sec, r.add) }

// done orders the forms so that a secret that holds another is hidden
// whole.
func (r *redactor) done() {
	for _, ls := range r.lengths {
		slices.SortFunc(ls, func(a, b int) int { return b - a })
	}
	slices.SortFunc(r.short, func(a, b string) int { return len(b) - len(a) })
}

// redact replaces every form of every secret in s with secretMark.
func (r *redactor) redact(s string) string { return r.redactHead(s, -1) }

// redactHead is redact for a text that will be cut to maxRunes runes
// (none when negative): only as much of s is searched and returned as
// the cut can keep, so that an error quoting a whole 64 KiB page costs
// as much as one quoting a line. A secret that begins before the cut is
// hidden whole; what is returned runs on past the cut, so that the cut
// still shows the text went on.
func (r *redactor) redactHead(s string, maxRunes int) string {
	if r == nil {
		return s
	}
	if len(r.forms) > 0 && len(s) >= redactProbe {
		// The long forms first, so that a short one inside a long one
		// does not break it. Matches are tried against the whole of s,
		// never a piece of it, so none is cut in two. Past the cut, the
		// search goes on for redactProbe runes more: a short form that
		// begins before the cut ends before the search does.
		var b strings.Builder
		written, runes := 0, 0 // s[:written] is in b; runes, of what is taken
		i := 0
		for i < len(s) && (maxRunes < 0 || runes <= maxRunes+redactProbe) {
			if n := r.match(s, i); n > 0 {
				if written == 0 {
					b.Grow(len(s))
				}
				b.WriteString(s[written:i])
				b.WriteString(secretMark)
				i += n
				written = i
				runes += len(secretMark)
				continue
			}
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			runes++
		}
		if written == 0 {
			s = s[:i]
		} else {
			b.WriteString(s[written:i])
			s = b.String()
		}
	}
	for _, form := range r.short {
		s = strings.ReplaceAll(s, form, secretMark)
	}
	return s
}

// match returns the length of the longest form of redactProbe bytes or
// more that s holds at i, 0 for none.
func (r *redactor) match(s string, i int) int {
	if len(s)-i < redactProbe {
		return 0
	}
	for _, l := range r.lengths[s[i:i+redactProbe]] {
		if i+l <= len(s) {
			if _, ok := r.forms[s[i:i+l]]; ok {
				return l
			}
		}
	}
	return 0
}

// secretsOf adds to r the secrets of an instance's or an account's
// configuration: its credential, its optional credentials (webhook
// tokens, keys, path secrets) and those of its HTTP settings, whose
// files are read, once, into files.
func secretsOf(r *redactor, c *config.Common, fields config.Fields, files map[string]string) {
	r.addSecret(c.Secret())
	for _, o := range fields.Optional {
		if o.Resolved != nil {
			r.addSecret(*o.Resolved)
		}
	}
	hc := &c.HTTPClientConfig
	file := func(path string) {
		if path == "" {
			return
		}
		s, ok := files[path]
		if !ok {
			s = readSecretFile(path)
			files[path] = s
		}
		r.addSecret(s)
	}
	if ba := hc.BasicAuth; ba != nil {
		r.addSecret(string(ba.Password))
		file(ba.PasswordFile)
		if ba.Password != "" {
			// As an echoed Authorization header shows it.
			r.addSecret(base64.StdEncoding.EncodeToString([]byte(ba.Username + ":" + string(ba.Password))))
		}
	}
	if au := hc.Authorization; au != nil {
		r.addSecret(string(au.Credentials))
		file(au.CredentialsFile)
	}
	if o := hc.OAuth2; o != nil {
		r.addSecret(string(o.ClientSecret))
		file(o.ClientSecretFile)
	}
	r.addSecret(string(hc.BearerToken))
	file(hc.BearerTokenFile)
	if hh := hc.HTTPHeaders; hh != nil {
		for _, h := range hh.Headers {
			for _, s := range h.Secrets {
				r.addSecret(string(s))
			}
			for _, f := range h.Files {
				file(f)
			}
		}
	}
	for _, values := range hc.ProxyConnectHeader {
		for _, s := range values {
			r.addSecret(string(s))
		}
	}
}

// maxSecretFileBytes bounds what is read of an HTTP setting's secret
// file, as the configuration bounds its own secret files.
const maxSecretFileBytes = 64 << 10

// readSecretFile reads a secret file of the HTTP settings as the HTTP
// client does, trimmed; "" when it cannot be read (the calls then fail
// on their own).
func readSecretFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// knownSecrets is a snapshot's redactor, built when first needed.
type knownSecrets struct {
	once sync.Once
	r    *redactor
}

// redactor returns the redactor of every secret s knows: those of its
// instances, configured and found, of its accounts, and the tokens of
// every row of the accounts' last listings, the instances not watched
// included.
func (s *snapshot) redactor() *redactor {
	s.known.once.Do(func() { s.known.r = buildRedactor(s) })
	return s.known.r
}

// buildRedactor builds the redactor of s.
func buildRedactor(s *snapshot) *redactor {
	r := newRedactor()
	files := map[string]string{}
	for _, t := range s.targets {
		secretsOf(r, t.spec.Base(), t.spec.Fields(), files)
	}
	for _, a := range s.accounts {
		secretsOf(r, &a.spec.Account().Common, a.spec.Fields(), files)
		a.state.mu.Lock()
		if last := a.state.last; last != nil {
			for _, in := range last.Instances {
				r.addSecret(in.Token)
			}
		}
		a.state.mu.Unlock()
	}
	r.done()
	return r
}

// knownSecrets is the redactor of the current snapshot.
func (c *Collector) knownSecrets() *redactor {
	if s := c.current(); s != nil {
		return s.redactor()
	}
	return nil // before New stores the first snapshot
}

// redactingHandler hides the known secrets in every line the collector
// writes, in its attributes' text (the messages are the code's own). It is the net under the
// redaction of error texts, for the lines that quote upstream text
// otherwise (a state the exporter does not know, a name a listing
// gave).
type redactingHandler struct {
	inner slog.Handler
	known func() *redactor
}

func (h *redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	r := h.known()
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(r, a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	r := h.known()
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(r, a)
	}
	return &redactingHandler{inner: h.inner.WithAttrs(red), known: h.known}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{inner: h.inner.WithGroup(name), known: h.known}
}

// redactAttr hides the secrets in a's text: strings, and anything else
// written as text (errors, byte slices, values of any type), in groups
// too. Numbers, times and durations hold no text.
func redactAttr(r *redactor, a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		red := make([]slog.Attr, len(group))
		for i, g := range group {
			red[i] = redactAttr(r, g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		if b, ok := v.Any().([]byte); ok {
			return slog.String(a.Key, r.redact(string(b)))
		}
		return slog.String(a.Key, r.redact(fmt.Sprint(v.Any())))
	}
	return slog.Attr{Key: a.Key, Value: v}
}
