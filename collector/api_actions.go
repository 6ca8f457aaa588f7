package collector

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"
)

// Act makes an action's call (a reboot, a message): an HTTP request of
// verb to rawURL with body (JSON; nil for none), whose answer decode
// reads. Like Get, it bounds the answer, hides the instance's secrets in
// it and in every error, and classifies transport failures. method names
// the call in the debug log; an action is not one of the provider's
// Methods, so its calls are not counted in the state request's metrics
// (the remediation and the alert sender count their own).
func (a *API) Act(ctx context.Context, verb, method, rawURL string, header http.Header, body []byte, decode func(Response) error) error {
	start := time.Now()
	resp, err := a.doAction(ctx, verb, rawURL, header, body)
	if err == nil {
		err = decode(resp)
	}
	if e := a.finish(ctx, method, rawURL, start, err); e != nil {
		return e
	}
	return nil
}

// doAction is do for any verb and a body.
func (a *API) doAction(ctx context.Context, verb, rawURL string, header http.Header, body []byte) (Response, error) {
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, verb, rawURL, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, verb, rawURL, nil)
	}
	if err != nil {
		return Response{}, newError(ReasonClientError, "building request: %s", unwrapURLError(err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.userAgent != "" {
		req.Header.Set("User-Agent", a.userAgent)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return Response{}, transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	switch {
	case err != nil:
		return Response{}, transportError(ctx, err)
	case len(b) > maxBodyBytes:
		return Response{}, newError(ReasonBadResponse, "HTTP %d: body larger than %d bytes", resp.StatusCode, maxBodyBytes)
	}
	if len(a.secrets) > 0 {
		b = []byte(a.Redact(string(b)))
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}
