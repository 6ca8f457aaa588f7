package collector

import (
	"bufio"
	"io"
	"math"
	"strconv"
)

// The per-instance metrics are written in the text exposition format
// directly from the targets, instead of through a prometheus.Registry.
// At 10 000 instances a registry builds, checks and sorts 100 000 metric
// objects per scrape and holds them until they are encoded: most of the
// exporter's CPU and tens of megabytes per scrape in flight. Written
// here, a scrape streams its answer and allocates next to nothing
// (kube-state-metrics renders its metrics for the same reason). The
// tests parse the output with expfmt and check it with promtool.

// family is a metric family's header.
type family struct{ name, help, typ string }

var (
	stateFamily = family{"whatsapp_instance_state",
		"State of the WhatsApp instance as reported by its provider, in the answer to the last state request or a later notification: 1 for the current state, 0 for the others; unknown when the last request produced no state the exporter knows.", "gauge"}
	upFamily = family{"whatsapp_up",
		"Whether the last state request to the provider produced a state.", "gauge"}
	sinceFamily = family{"whatsapp_instance_state_since_timestamp_seconds",
		"Since when the instance has had its current state and whatsapp_up, as the exporter saw them (at most since the exporter started), in seconds since the Unix epoch.", "gauge"}
	updatedFamily = family{"whatsapp_last_update_timestamp_seconds",
		"When whatsapp_instance_state and whatsapp_up of the instance were last updated (the end of its last state request), in seconds since the Unix epoch.", "gauge"}
	durationFamily = family{"whatsapp_api_request_duration_seconds",
		"Duration of the exporter's calls to the provider API for the instance (count and sum; quantiles per provider in whatsapp_provider_request_duration_seconds).", "summary"}
	errorsFamily = family{"whatsapp_api_request_errors_total",
		"Calls to the provider API for the instance that failed, by reason; a reason appears with its first failure.", "counter"}
	queueFamily = family{"whatsapp_outgoing_queue_messages",
		"Messages in the instance's outgoing queue (GREEN-API getMessagesCount, which the provider updates every 10 seconds) at its last queue request that read a count. While the provider withholds the count because the instance is starting or not authorized, the last count read: nothing is sent then, so the queue holds at least that many. Absent before the first count and while the queue request fails.", "gauge"}
	disconnectFamily = family{"whatsapp_instance_disconnect_reason",
		"Why the instance's connection last closed, while it has not been working since, as its provider told in a notification or an account's listing (Evolution API): 1, with the reason (logged_out, banned, connection_lost, qr_expired, ...). Absent when no reason is known.", "gauge"}
	notifiedFamily = family{"whatsapp_instance_state_from_notification",
		"1 when the current whatsapp_instance_state came from a notification the provider pushed, 0 when from a state request.", "gauge"}
	notificationsFamily = family{"whatsapp_webhook_notifications_total",
		"Notifications received for the instance, by outcome; an outcome appears with its first notification.", "counter"}
	unrefreshedFamily = family{"whatsapp_exporter_scrape_unrefreshed_instances",
		"Instances this scrape could not refresh before its deadline: exposed with their previous result (see whatsapp_last_update_timestamp_seconds), or not at all before their first.", "gauge"}
)

// textWriter writes samples; the first error sticks.
type textWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (tw *textWriter) header(f family) {
	tw.buf = append(tw.buf[:0], "# HELP "...)
	tw.buf = append(tw.buf, f.name...)
	tw.buf = append(tw.buf, ' ')
	tw.buf = append(tw.buf, f.help...)
	tw.buf = append(tw.buf, "\n# TYPE "...)
	tw.buf = append(tw.buf, f.name...)
	tw.buf = append(tw.buf, ' ')
	tw.buf = append(tw.buf, f.typ...)
	tw.buf = append(tw.buf, '\n')
	_, _ = tw.w.Write(tw.buf)
}

// sample writes name{labels,extra} value; labels and extra are escaped
// label pairs, extra may be empty.
func (tw *textWriter) sample(name, suffix, labels, extra string, v float64) {
	b := append(tw.buf[:0], name...)
	b = append(b, suffix...)
	b = append(b, '{')
	b = append(b, labels...)
	if extra != "" {
		b = append(b, ',')
		b = append(b, extra...)
	}
	b = append(b, '}', ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	tw.buf = b
	_, _ = tw.w.Write(b)
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// instanceResult is a target's last result, read once per scrape.
type instanceResult struct {
	t *target
	result
}

// WriteTo writes the scrape's instances' metrics in the text exposition
// format (version 0.0.4).
func (s *Scrape) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := &textWriter{w: bufio.NewWriterSize(cw, 64<<10)}
	results := make([]instanceResult, 0, len(s.targets))
	for _, t := range s.targets {
		results = append(results, instanceResult{t, t.mem.result()})
	}

	tw.header(stateFamily)
	for _, r := range results {
		if r.updated.IsZero() {
			continue // no result yet: nothing to say
		}
		p := r.t.provider
		for i, st := range p.States {
			tw.sample(stateFamily.name, "", r.t.labels, p.stateLabels[i], boolValue(r.o.state == st))
		}
		tw.sample(stateFamily.name, "", r.t.labels, p.stateLabels[len(p.States)], boolValue(r.o.state == StateUnknown))
	}
	tw.header(upFamily)
	for _, r := range results {
		if !r.updated.IsZero() {
			tw.sample(upFamily.name, "", r.t.labels, "", boolValue(r.o.up))
		}
	}
	tw.header(sinceFamily)
	for _, r := range results {
		if !r.updated.IsZero() {
			tw.sample(sinceFamily.name, "", r.t.labels, "", float64(r.since.UnixMilli())/1e3)
		}
	}
	tw.header(updatedFamily)
	for _, r := range results {
		if !r.updated.IsZero() {
			tw.sample(updatedFamily.name, "", r.t.labels, "", float64(r.updated.UnixMilli())/1e3)
		}
	}
	tw.header(disconnectFamily)
	for _, r := range results {
		if label, ok := r.t.provider.disconnectLabels[r.disconnect]; ok && !r.updated.IsZero() && !r.o.working {
			tw.sample(disconnectFamily.name, "", r.t.labels, label, 1)
		}
	}
	tw.header(durationFamily)
	for _, r := range results {
		st := r.t.stats
		for i := range st.calls {
			m := &st.calls[i]
			tw.sample(durationFamily.name, "_sum", r.t.labels, st.methodLabels[i], math.Float64frombits(m.sumBits.Load()))
			tw.sample(durationFamily.name, "_count", r.t.labels, st.methodLabels[i], float64(m.count.Load()))
		}
	}
	tw.header(errorsFamily)
	for _, r := range results {
		st := r.t.stats
		for i := range st.calls {
			m := &st.calls[i]
			for k := range Reasons {
				if n := m.errors[k].Load(); n > 0 {
					tw.sample(errorsFamily.name, "", r.t.labels, st.methodLabels[i]+`,`+reasonLabels[k], float64(n))
				}
			}
		}
	}
	tw.header(queueFamily)
	for _, r := range results {
		if r.t.queue != nil && r.queue.known {
			tw.sample(queueFamily.name, "", r.t.labels, "", float64(r.queue.messages))
		}
	}
	if s.notifications {
		tw.header(notifiedFamily)
		for _, r := range results {
			if !r.updated.IsZero() && r.t.provider.Webhook != nil {
				tw.sample(notifiedFamily.name, "", r.t.labels, "", boolValue(r.notified))
			}
		}
		tw.header(notificationsFamily)
		for _, r := range results {
			for k := range Outcomes {
				if n := r.t.stats.byOutcome[k].Load(); n > 0 {
					tw.sample(notificationsFamily.name, "", r.t.labels, outcomeLabels[k], float64(n))
				}
			}
		}
	}
	tw.header(unrefreshedFamily)
	tw.buf = append(tw.buf[:0], unrefreshedFamily.name...)
	tw.buf = append(tw.buf, ' ')
	tw.buf = strconv.AppendInt(tw.buf, int64(s.Unrefreshed), 10)
	tw.buf = append(tw.buf, '\n')
	_, _ = tw.w.Write(tw.buf)

	err := tw.w.Flush()
	return cw.n, err
}

// reasonLabels are the reason label pairs, by index in Reasons.
var reasonLabels = func() (l [len(Reasons)]string) {
	for i, r := range Reasons {
		l[i] = `reason="` + r + `"`
	}
	return l
}()

// outcomeLabels are the outcome label pairs, by index in Outcomes.
var outcomeLabels = func() (l [len(Outcomes)]string) {
	for i, o := range Outcomes {
		l[i] = `outcome="` + o + `"`
	}
	return l
}()

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
