package collector

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxRedirects is Go's own default limit.
const maxRedirects = 10

// redirectError is a redirect the exporter refused to follow.
type redirectError struct {
	to  string // the target's origin, never its path or query
	why string
}

func (e *redirectError) Error() string {
	if e.to == "" {
		return "redirect refused: " + e.why
	}
	return fmt.Sprintf("redirect to %s refused: %s", e.to, e.why)
}

// checkRedirect is the redirect policy of every client that follows
// redirects. Every request carries a secret: GREEN-API's token in the
// path (and so in the Referer Go adds on a redirect), Wachat's and
// Evolution API's keys in headers Go copies to any host but for
// Authorization. So a redirect is followed only within the origin of the
// first request (same scheme, host and port, hence never from https to
// http), and without a Referer.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return &redirectError{why: fmt.Sprintf("more than %d redirects", maxRedirects)}
	}
	first := via[0].URL
	if to := origin(req.URL); to != origin(first) {
		why := "it leads to another port or scheme"
		switch {
		case !strings.EqualFold(first.Hostname(), req.URL.Hostname()):
			why = "it leads to another host"
		case first.Scheme == "https" && req.URL.Scheme != "https":
			why = "it leads from https to plain http"
		}
		return &redirectError{to: to, why: why + ", and the request carries a secret"}
	}
	req.Header.Del("Referer")
	return nil
}

// origin is scheme://host:port with the default port made explicit and
// the host in lower case.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
