// Package testtool runs the external programs the tests use (promtool,
// prometheus, alertmanager, amtool) and holds what tests in several
// packages share around them.
package testtool

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
)

// RequireEnv, when set (as .ci/run does), turns a skip for a missing
// program into a failure.
const RequireEnv = "WHATSAPP_EXPORTER_REQUIRE_TOOLS"

// Require returns the path of an external program the test needs. It
// skips when the program is missing, unless RequireEnv is set.
func Require(t testing.TB, name string) string {
	t.Helper()
	return RequireAny(t, name)
}

// RequireAny is Require for a program known under several names (Debian
// calls Alertmanager prometheus-alertmanager).
func RequireAny(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is required (%s is set) but not found", strings.Join(names, " or "), RequireEnv)
	}
	t.Skipf("%s not found; see CONTRIBUTING.md to install it", strings.Join(names, " or "))
	return ""
}

// Run runs a program to its end and returns its output, failing the test
// when it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// FreeAddr returns a loopback address nobody listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartProcess runs a server program until the test ends and waits until
// http://addr+readyPath answers 200.
func StartProcess(t testing.TB, addr, readyPath, name string, args ...string) *testlog.Buffer {
	t.Helper()
	logs := &testlog.Buffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + readyPath); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become ready:\n%s", filepath.Base(name), logs)
		}
	}
}

// Notify POSTs a notification body to url with auth as its Authorization
// header (none when empty) through client (http.DefaultClient when nil),
// and returns the answer.
func Notify(t testing.TB, client *http.Client, url, auth string, body []byte) (status int, header http.Header, answer string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// auth is the Authorization header's value, or a whole header
	// "Name: value".
	if name, value, ok := strings.Cut(auth, ": "); ok {
		req.Header.Set(name, value)
	} else if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// WaitFor polls cond until it holds, failing after a limit far above any
// expected wait: the machines that run the tests are shared and slow.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
