package exportertest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testlog"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// mainPackage is the exporter's command, built by Binary from whichever
// package's directory the test runs in.
const mainPackage = "github.com/whatsapp-exporter/whatsapp_exporter"

// buildBinary compiles the exporter once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "whatsapp_exporter-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "whatsapp_exporter")
	out, err := exec.Command("go", "build", "-o", bin, mainPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// Binary is the path of the exporter's binary, built at the first call;
// the test is skipped with -short.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// StartBinary runs the exporter's binary with args on a free loopback
// address until the test ends, and waits until it serves. It returns the
// process, the base URL and the output.
func StartBinary(t testing.TB, args ...string) (*exec.Cmd, string, *testlog.Buffer) {
	t.Helper()
	return StartBinaryEnv(t, nil, args...)
}

// StartBinaryEnv is StartBinary with an environment (nil: the test's).
func StartBinaryEnv(t testing.TB, env []string, args ...string) (*exec.Cmd, string, *testlog.Buffer) {
	t.Helper()
	addr := testtool.FreeAddr(t)
	logs := &testlog.Buffer{}
	cmd := exec.Command(Binary(t), append(args, "--web.listen-address="+addr)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/-/healthy"); err == nil {
			resp.Body.Close()
			return cmd, base, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter did not start:\n%s", logs)
		}
	}
}
