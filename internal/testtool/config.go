package testtool

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// WriteFiles writes files, named relative to dir, creating directories.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// LoadYAML writes content to config.yml in a fresh directory together
// with files and loads it with config.LoadFile, a panic of the loader
// turned into an error so that one bad case does not hide the others. It
// returns the config file's path.
func LoadYAML(t testing.TB, content string, files map[string]string, opts config.Options) (*config.Config, string, error) {
	t.Helper()
	dir := t.TempDir()
	WriteFiles(t, dir, files)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadFile(path, opts)
	return cfg, path, err
}

// LoadFile is config.LoadFile with a panic turned into an error.
func LoadFile(path string, opts config.Options) (cfg *config.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("LoadFile panicked: %v", r)
		}
	}()
	return config.LoadFile(path, opts)
}

// CheckError checks that a configuration error names the file path (when
// not empty), contains every string of all and, when anyOf is not empty,
// at least one of anyOf, and holds none of secrets. The path is left out
// of the other checks: it holds the test's name.
func CheckError(t testing.TB, err error, path string, all, anyOf []string, secrets ...string) {
	t.Helper()
	msg := err.Error()
	if path != "" {
		if !strings.Contains(msg, path) {
			t.Errorf("error does not name the file %s:\n%s", path, msg)
		}
		msg = strings.ReplaceAll(msg, path, "<file>")
	}
	for _, s := range all {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not contain %q:\n%s", s, msg)
		}
	}
	if len(anyOf) > 0 && !slices.ContainsFunc(anyOf, func(s string) bool { return strings.Contains(msg, s) }) {
		t.Errorf("error contains none of %q:\n%s", anyOf, msg)
	}
	for _, secret := range secrets {
		if strings.Contains(msg, secret) {
			t.Errorf("error contains the secret %q:\n%s", secret, msg)
		}
	}
}
