package collector

import (
	"context"
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
	resp, err := a.do(ctx, verb, rawURL, header, body, maxBodyBytes)
	if err == nil {
		err = decode(resp)
	}
	if e := a.finish(ctx, method, rawURL, start, err); e != nil {
		return e
	}
	return nil
}
