package collector

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The per-instance metrics are written in the text exposition format
// directly from the targets, instead of through a prometheus.Registry.
// At 10 000 instances a registry builds, checks and sorts 100 000 metric
// objects per scrape and holds them until they are encoded: most of the
// exporter's CPU and tens of megabytes per scrape in flight. Written
// here, a scrape streams its answer and allocates next to nothing
// (kube-state-metrics renders its metrics for the same reason). It
// writes each family as expfmt's MetricFamilyToText would, byte for byte
// (exposition_golden_test.go checks it, and promtool).

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
		"Calls to the provider API for the instance that failed, by reason; a reason appears with its first failure, so count failures with whatsapp_api_request_failures_total.", "counter"}
	failuresFamily = family{"whatsapp_api_request_failures_total",
		"Calls to the provider API for the instance that failed, whatever the reason: present, at 0 until the first failure, for as long as the instance is watched, so that rate() and increase() count every failure; by reason in whatsapp_api_request_errors_total.", "counter"}
	queueFamily = family{"whatsapp_outgoing_queue_messages",
		"Messages in the instance's outgoing queue (GREEN-API getMessagesCount, which the provider updates every 10 seconds) at its last queue request that read a count. While the provider withholds the count because the instance is starting or not authorized, the last count read: nothing is sent then, so the queue holds at least that many. Absent before the first count and while the queue request fails.", "gauge"}
	disconnectFamily = family{"whatsapp_instance_disconnect_reason",
		"Why the instance's connection last closed, while it has not been working since, as its provider told in a notification or an account's listing (Evolution API): 1, with the reason (logged_out, banned, connection_lost, qr_expired, ...). Absent when no reason is known.", "gauge"}
	notifiedFamily = family{"whatsapp_instance_state_from_notification",
		"1 when the current whatsapp_instance_state came from a notification the provider pushed, 0 when from a state request.", "gauge"}
	notificationsFamily = family{"whatsapp_webhook_notifications_total",
		"Notifications received for the instance, by outcome; an outcome appears with its first notification.", "counter"}
	canSendFamily = family{"whatsapp_meta_can_send_message",
		"Whether the business phone number can send (Meta's Cloud API health_status), as the worst can_send_message of its health entities (the number, its WABA, the business, the app) at its last state request: 1 for the current status, 0 for the others; unknown when the answer did not tell. BLOCKED: it cannot send; LIMITED: it can, within limits.", "gauge"}
	healthErrorFamily = family{"whatsapp_meta_health_error",
		"An error that keeps a health entity of the business phone number (entity_type PHONE_NUMBER, WABA, BUSINESS or APP) from AVAILABLE, by Meta's error_code, at its last state request: 1 while it lasts, absent otherwise.", "gauge"}
	qualityFamily = family{"whatsapp_meta_quality_rating",
		"Quality rating of the business phone number (quality_rating) at its last state request: 1 for the current rating, 0 for the others; unknown when the answer did not tell (Meta's UNKNOWN).", "gauge"}
	limitFamily = family{"whatsapp_meta_messaging_limit_users",
		"How many unique users the business phone number may start conversations with in 24 hours (whatsapp_business_manager_messaging_limit, shared by the business portfolio, or the deprecated per-number messaging_limit_tier): +Inf when unlimited, NaN when the answer did not tell.", "gauge"}
	phoneInfoFamily = family{"whatsapp_meta_phone_number_info",
		"Settings of the business phone number that decide whether it can send, at its last state request, as labels (throughput.level, name_status, code_verification_status, platform_type, account_mode); unknown when the answer did not tell.", "gauge"}
	unrefreshedFamily = family{"whatsapp_exporter_scrape_unrefreshed_instances",
		"Instances this scrape could not refresh before its deadline: exposed with their previous result (see whatsapp_last_update_timestamp_seconds), or not at all before their first.", "gauge"}
)

// familyWriter is an entry of the exposition's table: a per-instance
// family and how it writes the samples of a scrape's results.
type familyWriter struct {
	family
	// notifications is set for the families written only when the
	// notification receiver serves, health for those written only when
	// an instance's provider tells health (health.go).
	notifications bool
	health        bool
	write         func(tw *textWriter, results []instanceResult)
}

// instanceFamilies are the per-instance families, in the order WriteTo
// writes them; whatsapp_exporter_scrape_unrefreshed_instances follows.
// Each sample is written from strings made once per target or provider:
// no allocation per sample.
var instanceFamilies = []familyWriter{
	{family: stateFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			r := &results[i]
			if r.updated.IsZero() {
				continue // no result yet: nothing to say
			}
			p := r.t.provider
			for j, st := range p.States {
				tw.sample("", boolValue(r.o.state == st), r.t.labels, p.stateLabels[j])
			}
			tw.sample("", boolValue(r.o.state == StateUnknown), r.t.labels, p.stateLabels[len(p.States)])
		}
	}},
	{family: upFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; !r.updated.IsZero() {
				tw.sample("", boolValue(r.o.up), r.t.labels)
			}
		}
	}},
	{family: sinceFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; !r.updated.IsZero() {
				tw.sample("", float64(r.since.UnixMilli())/1e3, r.t.labels)
			}
		}
	}},
	{family: updatedFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; !r.updated.IsZero() {
				tw.sample("", float64(r.updated.UnixMilli())/1e3, r.t.labels)
			}
		}
	}},
	{family: disconnectFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			r := &results[i]
			if label, ok := r.t.provider.disconnectLabels[r.disconnect]; ok && !r.updated.IsZero() && !r.o.working {
				tw.sample("", 1, r.t.labels, label)
			}
		}
	}},
	{family: durationFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			r := &results[i]
			st := r.t.stats
			for j := range st.calls {
				m := &st.calls[j]
				tw.sample("_sum", math.Float64frombits(m.sumBits.Load()), r.t.labels, st.methodLabels[j])
				tw.sample("_count", float64(m.count.Load()), r.t.labels, st.methodLabels[j])
			}
		}
	}},
	{family: errorsFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			r := &results[i]
			st := r.t.stats
			for j := range st.calls {
				m := &st.calls[j]
				for k := range Reasons {
					if n := m.errors[k].Load(); n > 0 {
						tw.sample("", float64(n), r.t.labels, st.methodLabels[j], reasonLabels[k])
					}
				}
			}
		}
	}},
	// Always written, at 0 before the first failure: a counter that
	// Prometheus first sees at 1 has no increase, so a failure counted
	// only in the lazy by-reason series above would be lost to rate()
	// and increase() whenever it is its reason's first. One series per
	// method rather than every reason at 0: nine series per method
	// would about double an instance's size. The sum is taken at
	// scrape time: no memory per instance.
	{family: failuresFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			r := &results[i]
			st := r.t.stats
			for j := range st.calls {
				tw.sample("", float64(st.calls[j].failures()), r.t.labels, st.methodLabels[j])
			}
		}
	}},
	{family: queueFamily, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; r.t.queue != nil && r.queue.known {
				tw.sample("", float64(r.queue.messages), r.t.labels)
			}
		}
	}},
	{family: canSendFamily, health: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; r.o.health != nil {
				writeOneHot(tw, r.t.labels, canSendLabels, r.o.health.CanSend)
			}
		}
	}},
	{family: healthErrorFamily, health: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; r.o.health != nil {
				for _, l := range r.o.health.errLabels {
					tw.sample("", 1, r.t.labels, l)
				}
			}
		}
	}},
	{family: qualityFamily, health: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; r.o.health != nil {
				writeOneHot(tw, r.t.labels, qualityLabels, r.o.health.Quality)
			}
		}
	}},
	{family: limitFamily, health: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; r.o.health != nil {
				tw.sample("", r.o.health.MessagingLimit, r.t.labels)
			}
		}
	}},
	{family: phoneInfoFamily, health: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; r.o.health != nil {
				tw.sample("", 1, r.t.labels, r.o.health.infoLabels)
			}
		}
	}},
	{family: notifiedFamily, notifications: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			if r := &results[i]; !r.updated.IsZero() && r.t.provider.Webhook != nil {
				tw.sample("", boolValue(r.notified), r.t.labels)
			}
		}
	}},
	{family: notificationsFamily, notifications: true, write: func(tw *textWriter, results []instanceResult) {
		for i := range results {
			r := &results[i]
			for k := range Outcomes {
				if n := r.t.stats.byOutcome[k].Load(); n > 0 {
					tw.sample("", float64(n), r.t.labels, outcomeLabels[k])
				}
			}
		}
	}},
}

// textWriter writes the families' headers and samples; the first error
// sticks in w.
type textWriter struct {
	w    *bufio.Writer
	buf  []byte
	name string // of the family whose header was written last
}

// header writes a family's HELP and TYPE lines; its samples follow.
func (tw *textWriter) header(f family) {
	tw.name = f.name
	tw.buf = append(tw.buf[:0], "# HELP "...)
	tw.buf = append(tw.buf, f.name...)
	tw.buf = append(tw.buf, ' ')
	tw.buf = appendEscapedHelp(tw.buf, f.help)
	tw.buf = append(tw.buf, "\n# TYPE "...)
	tw.buf = append(tw.buf, f.name...)
	tw.buf = append(tw.buf, ' ')
	tw.buf = append(tw.buf, f.typ...)
	tw.buf = append(tw.buf, '\n')
	_, _ = tw.w.Write(tw.buf)
}

// appendEscapedHelp appends a HELP text escaped as expfmt does: a
// backslash as \\, a newline as \n.
func appendEscapedHelp(b []byte, help string) []byte {
	if !strings.ContainsAny(help, "\\\n") {
		return append(b, help...)
	}
	for i := 0; i < len(help); i++ {
		switch c := help[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

// sample writes a sample of the family: its name with suffix, the label
// pairs (escaped, each "name=\"value\"") in braces unless there are none,
// and v.
func (tw *textWriter) sample(suffix string, v float64, labels ...string) {
	b := append(tw.buf[:0], tw.name...)
	b = append(b, suffix...)
	for i, l := range labels {
		if i == 0 {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = append(b, l...)
	}
	if len(labels) > 0 {
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	tw.buf = b
	_, _ = tw.w.Write(b)
}

// appendFloat formats v as expfmt does (writeFloat): the shortest 'g'
// form, so 1e+06 and 1.76e+09 rather than 1000000 and 1760000000, NaN,
// +Inf and -Inf, and 0 for -0.
func appendFloat(b []byte, v float64) []byte {
	switch v {
	case 0:
		return append(b, '0')
	case 1:
		return append(b, '1')
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// instanceResult is a target's last result, read once per scrape.
type instanceResult struct {
	t *target
	result
}

// WriteTo writes the scrape's instances' metrics in the text exposition
// format (version 0.0.4): the families of instanceFamilies, then
// whatsapp_exporter_scrape_unrefreshed_instances.
func (s *Scrape) WriteTo(w io.Writer) (int64, error) {
	results := make([]instanceResult, 0, len(s.targets))
	for _, t := range s.targets {
		results = append(results, instanceResult{t, t.mem.result()})
	}
	return s.writeFamilies(w, results)
}

// writeFamilies writes the families of WriteTo from results.
func (s *Scrape) writeFamilies(w io.Writer, results []instanceResult) (int64, error) {
	cw := &countingWriter{w: w}
	tw := &textWriter{w: bufio.NewWriterSize(cw, 64<<10)}
	// The health families are written when an instance's provider tells
	// health, even before its first result.
	health := slices.ContainsFunc(results, func(r instanceResult) bool { return r.t.provider.Health })
	for i := range instanceFamilies {
		f := &instanceFamilies[i]
		if f.notifications && !s.notifications || f.health && !health {
			continue
		}
		tw.header(f.family)
		f.write(tw, results)
	}
	tw.header(unrefreshedFamily)
	tw.sample("", float64(s.Unrefreshed))

	err := tw.w.Flush()
	return cw.n, err
}

// oneHotLabels are the label pairs of a one-hot family: one per value,
// then "unknown".
type oneHotLabels struct {
	values []string
	labels []string
}

func newOneHotLabels(name string, values []string) oneHotLabels {
	l := oneHotLabels{values: values}
	for _, v := range append(values, StateUnknown) {
		l.labels = append(l.labels, name+`="`+escapeLabel(v)+`"`)
	}
	return l
}

var (
	canSendLabels = newOneHotLabels("status", CanSendValues)
	qualityLabels = newOneHotLabels("rating", QualityValues)
)

// writeOneHot writes a sample per value of l, 1 for v (or for unknown
// when v is none of them).
func writeOneHot(tw *textWriter, instance string, l oneHotLabels, v string) {
	known := false
	for j, x := range l.values {
		tw.sample("", boolValue(v == x), instance, l.labels[j])
		known = known || v == x
	}
	tw.sample("", boolValue(!known), instance, l.labels[len(l.values)])
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
