package server

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The notification receiver listens apart from /metrics: providers call
// it from the internet, while the metrics usually stay on an internal
// network. It has its own TLS and basic auth settings.
//
// Anyone can reach it, so what a sender may hold is bounded: connections
// (each a file descriptor and about 20 KB) in total and per client, the
// notifications handled at once in total and per client, and how long a
// connection may stay silent, slow or idle. A client is a remote address:
// an IPv4 address, or an IPv6 /64 (the least a host is given, so one host
// cannot take the others' share by changing addresses within it).

// ReceiverTimeouts bound how long a sender may hold a connection: a slow
// or silent one is cut off.
type ReceiverTimeouts struct {
	Header, Read, Write, Idle time.Duration
}

// DefaultReceiverTimeouts are the notification receiver's timeouts. A
// provider sends a notification in one go: 5 s for the headers and 10 s
// for the whole request are plenty, and an idle keep-alive connection is
// worth keeping only for a burst.
var DefaultReceiverTimeouts = ReceiverTimeouts{Header: 5 * time.Second, Read: 10 * time.Second, Write: 10 * time.Second, Idle: 15 * time.Second}

// ReceiverLimits bound what the receiver's senders hold at once; 0 is no
// limit.
type ReceiverLimits struct {
	// Connections open at once, and from one client: a connection
	// beyond either is closed as soon as it is accepted (so that it
	// does not wait in the kernel's backlog ahead of a genuine sender's,
	// and costs no file descriptor for longer than a moment).
	Connections, ConnectionsPerClient int
	// Requests (notifications) handled at once, and from one client:
	// more get HTTP 503, which the providers retry. Each may hold
	// collector.MaxNotificationBytes. Over HTTP/1.1 a connection carries
	// one at a time; over HTTP/2 (with TLS) it may carry many.
	Requests, RequestsPerClient int
}

// DefaultReceiverLimits are the limits of --webhook.max-connections and
// --webhook.max-connections-per-client at their defaults.
var DefaultReceiverLimits = NewReceiverLimits(512, 64)

// maxWebhookRequests bounds the notifications handled at once.
const maxWebhookRequests = 256

// NewReceiverLimits returns the limits for connections in total and per
// client (0: none): a client may have half its connections' worth of
// notifications in flight, and all clients together maxWebhookRequests.
func NewReceiverLimits(connections, perClient int) ReceiverLimits {
	return ReceiverLimits{Connections: connections, ConnectionsPerClient: perClient, Requests: maxWebhookRequests, RequestsPerClient: (perClient + 1) / 2}
}

// receiverMetrics count the receiver's limits at work.
type receiverMetrics struct {
	connections     prometheus.Gauge
	connRefused     *prometheus.CounterVec
	connEvicted     prometheus.Counter
	inFlight        prometheus.Gauge
	requestsRefused *prometheus.CounterVec
}

// Values of the limit label: which bound refused.
const (
	limitTotal     = "total"
	limitPerClient = "per_client"
)

func newReceiverMetrics(reg prometheus.Registerer) *receiverMetrics {
	m := &receiverMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "whatsapp_exporter_webhook_connections",
			Help: "Connections open to the notification receiver.",
		}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_exporter_webhook_connections_refused_total",
			Help: "Connections to the notification receiver closed at once, by the limit they were over: total (--webhook.max-connections) or per_client (--webhook.max-connections-per-client).",
		}, []string{"limit"}),
		connEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "whatsapp_exporter_webhook_connections_evicted_total",
			Help: "Connections to the notification receiver closed, with every place taken, to give a client that held fewer a place of the client that held the most.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "whatsapp_exporter_webhook_requests_in_flight",
			Help: "Notifications the receiver is handling.",
		}),
		requestsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatsapp_exporter_webhook_requests_refused_total",
			Help: "Notifications answered 503 for being over a limit of notifications at once: total or per_client.",
		}, []string{"limit"}),
	}
	for _, l := range []string{limitTotal, limitPerClient} {
		m.connRefused.WithLabelValues(l)
		m.requestsRefused.WithLabelValues(l)
	}
	reg.MustRegister(m.connections, m.connRefused, m.connEvicted, m.inFlight, m.requestsRefused)
	return m
}

// receiverMetrics registers the receiver's metrics with the first
// receiver, so that they exist only when it is on.
func (e *Exporter) receiverMetrics() *receiverMetrics {
	e.receiverOnce.Do(func() { e.receiver = newReceiverMetrics(e.registry) })
	return e.receiver
}

// Receiver is the notification receiver's server with
// DefaultReceiverLimits on its requests; see ReceiverWith.
func (e *Exporter) Receiver(t ReceiverTimeouts) *http.Server {
	return e.ReceiverWith(t, DefaultReceiverLimits)
}

// ReceiverWith is the notification receiver's server
// (--webhook.listen-address), for the caller to serve on a listener from
// ReceiverListener with the same limits.
func (e *Exporter) ReceiverWith(t ReceiverTimeouts, l ReceiverLimits) *http.Server {
	rl := &requestLimiter{m: e.receiverMetrics(), c: newCounter(l.Requests, l.RequestsPerClient)}
	return &http.Server{
		Handler:           rl.wrap(e.collector.Webhooks()),
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    16 << 10,
		ConnState:         trackActive,
		// Scanners of the internet fail TLS handshakes all day: that is
		// not worth more than a debug line.
		ErrorLog: slog.NewLogLogger(e.logger.With("listener", "webhook").Handler(), slog.LevelDebug),
	}
}

// ReceiverListener bounds the connections ln hands out by l.
func (e *Exporter) ReceiverListener(ln net.Listener, l ReceiverLimits) net.Listener {
	return &limitListener{Listener: ln, m: e.receiverMetrics(), max: l.Connections, perClient: l.ConnectionsPerClient, byClient: map[netip.Addr][]*limitedConn{}}
}

// clientOf is the client a remote address belongs to: the IPv4 address,
// or the IPv6 address's /64. An address that is not IP (a Unix socket)
// is one client.
func clientOf(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

func clientOfNetAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return clientOf(ip)
		}
	}
	return netip.Addr{}
}

// counter counts the requests each client has in flight, within a total
// and a per-client bound. Its map holds only the clients holding something, so it is
// bounded by the total.
type counter struct {
	max, perClient int

	mu       sync.Mutex
	n        int
	byClient map[netip.Addr]int
}

func newCounter(max, perClient int) counter {
	return counter{max: max, perClient: perClient, byClient: map[netip.Addr]int{}}
}

// take takes one for client, or returns the limit it is over.
func (c *counter) take(client netip.Addr) (over string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.max > 0 && c.n >= c.max:
		return limitTotal
	case c.perClient > 0 && c.byClient[client] >= c.perClient:
		return limitPerClient
	}
	c.n++
	c.byClient[client]++
	return ""
}

func (c *counter) release(client netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.byClient[client]--; c.byClient[client] <= 0 {
		delete(c.byClient, client)
	}
}

// limitListener closes the connections over its limits as soon as it
// accepts them. When all places are taken, a client that holds fewer
// than the client holding the most takes a place of that one's: the
// oldest of its connections not in the middle of a request (new, idle,
// or still in its TLS handshake), else its oldest. So a few clients
// cannot keep the others out by holding every place; clients holding as
// many as each other share what there is.
type limitListener struct {
	net.Listener
	m              *receiverMetrics
	max, perClient int

	mu       sync.Mutex
	open     int
	byClient map[netip.Addr][]*limitedConn // oldest first
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: conn, client: clientOfNetAddr(conn.RemoteAddr()), l: l}
		over := l.take(lc)
		if over == limitTotal {
			if victim := l.victimFor(lc.client); victim != nil {
				l.m.connEvicted.Inc()
				_ = victim.Close() // gives its place back at once
				over = l.take(lc)
			}
		}
		if over != "" {
			l.m.connRefused.WithLabelValues(over).Inc()
			if tc, ok := conn.(*net.TCPConn); ok {
				// A reset frees the socket at once, without TIME_WAIT.
				_ = tc.SetLinger(0)
			}
			_ = conn.Close()
			continue
		}
		l.m.connections.Inc()
		return lc, nil
	}
}

// take gives lc a place, or returns the limit it is over.
func (l *limitListener) take(lc *limitedConn) (over string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.byClient[lc.client]
	switch {
	case l.perClient > 0 && len(held) >= l.perClient:
		return limitPerClient
	case l.max > 0 && l.open >= l.max:
		return limitTotal
	}
	l.open++
	l.byClient[lc.client] = append(held, lc)
	return ""
}

// victimFor is the connection a new one of client may take the place
// of, nil for none.
func (l *limitListener) victimFor(client netip.Addr) *limitedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	var most []*limitedConn
	for _, held := range l.byClient {
		if len(held) > len(most) {
			most = held
		}
	}
	if len(most) <= len(l.byClient[client])+1 {
		return nil
	}
	for _, c := range most {
		if !c.active.Load() {
			return c
		}
	}
	return most[0]
}

func (l *limitListener) release(lc *limitedConn) {
	l.mu.Lock()
	l.open--
	held := slices.DeleteFunc(l.byClient[lc.client], func(c *limitedConn) bool { return c == lc })
	if len(held) == 0 {
		delete(l.byClient, lc.client)
	} else {
		l.byClient[lc.client] = held
	}
	l.mu.Unlock()
	l.m.connections.Dec()
}

// limitedConn gives its place back when closed, once.
type limitedConn struct {
	net.Conn
	client netip.Addr
	l      *limitListener
	// active is set while the server handles a request on it.
	active atomic.Bool
	once   sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

// trackActive is the receiver's http.Server.ConnState: it marks the
// limited connections that are in the middle of a request.
func trackActive(conn net.Conn, state http.ConnState) {
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = tc.NetConn() // under TLS
	}
	if lc, ok := conn.(*limitedConn); ok {
		lc.active.Store(state == http.StateActive)
	}
}

// requestLimiter answers 503 beyond its limits of requests in flight.
type requestLimiter struct {
	m *receiverMetrics
	c counter
}

func (rl *requestLimiter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var client netip.Addr
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			client = clientOf(ap.Addr())
		}
		if over := rl.c.take(client); over != "" {
			rl.m.requestsRefused.WithLabelValues(over).Inc()
			http.Error(w, "too many notifications at once; retry later", http.StatusServiceUnavailable)
			return
		}
		rl.m.inFlight.Inc()
		defer func() {
			rl.m.inFlight.Dec()
			rl.c.release(client)
		}()
		h.ServeHTTP(w, r)
	})
}
