package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/collector"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/exportertest"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/server"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/simulator"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// limitedReceiver serves e's notification receiver with limits on a
// loopback listener, as main does, and returns its address.
func limitedReceiver(t *testing.T, e *exportertest.Exporter, limits server.ReceiverLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.ReceiverWith(server.DefaultReceiverTimeouts, limits)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(e.ReceiverListener(ln, limits)) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// receiverExporter is an exporter watching one GREEN-API instance with a
// webhook token, its state polled once.
func receiverExporter(t *testing.T) *exportertest.Exporter {
	t.Helper()
	sim := simulator.New()
	sim.Set(simulator.GreenAPI, "1101000001", "token", simulator.Behaviour{State: "authorized"})
	simURL := exportertest.StartSimulator(t, sim)
	cfg := "instances:\n" + simulator.ProviderOf(simulator.GreenAPI).Config(simURL, "shop", "1101000001", "token", `webhook_token: "wh"`)
	e := exportertest.StartWith(t, exportertest.Inline(cfg), collector.Options{Concurrency: 4, MinInterval: time.Hour, Notifications: true})
	exportertest.Scrape(t, e.URL, nil)
	return e
}

// notification is a GREEN-API state notification for the instance (the
// body of API-FACTS.md's GREEN-API push notifications, without wid and
// typeInstance), in the raw form of an HTTP/1.1 request that keeps its
// connection.
func notification(state string, at int64) string {
	body := fmt.Sprintf(`{"typeWebhook":"stateInstanceChanged","instanceData":{"idInstance":1101000001},"timestamp":%d,"stateInstance":%q}`, at, state)
	return fmt.Sprintf("POST /webhook/greenapi HTTP/1.1\r\nHost: x\r\nAuthorization: wh\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// dialFrom opens a connection to addr from a loopback address of its
// own: each is a client of the receiver. A connection the receiver
// refuses may be reset before the dial returns: nil then.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// exchange sends a raw request on conn and returns the status of the
// answer, or 0 when the server closed the connection instead.
func exchange(t *testing.T, conn net.Conn, req string) int {
	t.Helper()
	if conn == nil {
		return 0
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metric is the value of a sample of the exporter's metrics, "" when
// absent.
func metric(t *testing.T, e *exportertest.Exporter, sample string) string {
	t.Helper()
	for line := range strings.Lines(exportertest.Scrape(t, e.URL, nil)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestReceiverConnectionLimits: connections kept open (idle keep-alive
// ones here) are bounded per client and in total; one beyond is closed at
// once and counted. With every place taken, a client that holds fewer
// takes a place of the client that holds the most; clients that hold as
// many as each other are refused. A place freed is taken again.
func TestReceiverConnectionLimits(t *testing.T) {
	e := receiverExporter(t)
	addr := limitedReceiver(t, e, server.NewReceiverLimits(5, 3))
	at := time.Now().Unix() + 1
	hold := func(from string) net.Conn {
		t.Helper()
		conn := dialFrom(t, from, addr)
		if status := exchange(t, conn, notification("blocked", at)); status != http.StatusOK {
			t.Fatalf("a connection from %s: %d, want 200", from, status)
		}
		return conn
	}
	var first []net.Conn
	for range 3 {
		first = append(first, hold("127.0.0.1"))
	}
	if status := exchange(t, dialFrom(t, "127.0.0.1", addr), notification("blocked", at)); status != 0 {
		t.Errorf("client 1's 4th connection (3 per client): answered %d, want closed", status)
	}
	hold("127.0.0.2")
	hold("127.0.0.2")
	// 5 in total: client 3 takes the place of one of client 1's (the
	// oldest idle one; which is idle depends on when the server marked
	// them).
	hold("127.0.0.3")
	var live []net.Conn
	for _, conn := range first {
		if exchange(t, conn, notification("blocked", at)) == http.StatusOK {
			live = append(live, conn)
		}
	}
	if len(live) != 2 {
		t.Fatalf("client 1 kept %d of its 3 connections after client 3 came, want 2", len(live))
	}
	// Clients 1 and 2 hold 2 each, client 3 one: no place for client 2.
	if status := exchange(t, dialFrom(t, "127.0.0.2", addr), notification("blocked", at)); status != 0 {
		t.Errorf("client 2's 3rd connection over 5 in total: answered %d, want closed", status)
	}
	for sample, want := range map[string]string{
		`whatsapp_exporter_webhook_connections`:                                   "5",
		`whatsapp_exporter_webhook_connections_refused_total{limit="per_client"}`: "1",
		`whatsapp_exporter_webhook_connections_refused_total{limit="total"}`:      "1",
		`whatsapp_exporter_webhook_connections_evicted_total`:                     "1",
	} {
		if got := metric(t, e, sample); got != want {
			t.Errorf("%s = %q, want %s", sample, got, want)
		}
	}
	exportertest.PromtoolCheckMetrics(t, exportertest.Scrape(t, e.URL, nil))
	// A connection closed gives its place back.
	live[0].Close()
	testtool.WaitFor(t, "the closed connection's place freed", func() bool {
		return metric(t, e, "whatsapp_exporter_webhook_connections") == "4"
	})
	hold("127.0.0.2")
}

// TestReceiverSlowSendersPerClient: slow senders of one client (their
// bodies never end) hold at most that client's share of the notifications
// handled at once: its next notification gets 503, another client's is
// accepted.
func TestReceiverSlowSendersPerClient(t *testing.T) {
	e := receiverExporter(t)
	// 8 connections per client: 4 notifications at once.
	addr := limitedReceiver(t, e, server.NewReceiverLimits(0, 8))
	at := time.Now().Unix() + 1
	for range 4 {
		conn := dialFrom(t, "127.0.0.1", addr)
		slow := notification("blocked", at)
		if _, err := io.WriteString(conn, slow[:len(slow)-10]); err != nil {
			t.Fatal(err)
		}
	}
	testtool.WaitFor(t, "4 slow notifications in the handler", func() bool {
		return metric(t, e, "whatsapp_exporter_webhook_requests_in_flight") == "4"
	})
	if status := exchange(t, dialFrom(t, "127.0.0.1", addr), notification("blocked", at)); status != http.StatusServiceUnavailable {
		t.Errorf("the slow client's 5th notification: %d, want 503", status)
	}
	if status := exchange(t, dialFrom(t, "127.0.0.2", addr), notification("yellowCard", at+1)); status != http.StatusOK {
		t.Errorf("another client's notification: %d, want 200", status)
	}
	if got := metric(t, e, `whatsapp_exporter_webhook_requests_refused_total{limit="per_client"}`); got != "1" {
		t.Errorf("refused per client: %q, want 1", got)
	}
	if text := exportertest.Scrape(t, e.URL, nil); !strings.Contains(text, `whatsapp_instance_state{provider="greenapi",name="shop",state="yellowCard"} 1`) {
		t.Errorf("the other client's notification was not applied:\n%s", exportertest.GrepLines(text, "instance_state{"))
	}
}
