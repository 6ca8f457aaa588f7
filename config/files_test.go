package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
	"github.com/whatsapp-exporter/whatsapp_exporter/internal/testtool"
)

// loadGuarded loads path, failing the test if loading does not return:
// a FIFO used to block the loader forever. The guard is a hang detector,
// far above any real loading time.
func loadGuarded(t *testing.T, path string, opts config.Options) (*config.Config, error) {
	t.Helper()
	type result struct {
		cfg *config.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := testtool.LoadFile(path, opts)
		done <- result{cfg, err}
	}()
	select {
	case r := <-done:
		return r.cfg, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("loading %s did not return", path)
		return nil, nil
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
}

// TestTokenFileMustBeASmallRegularFile: a mistaken api_token_file must not
// fill memory (/dev/zero) or block the reload (a FIFO nobody writes).
func TestTokenFileMustBeASmallRegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "fifo"))
	testtool.WriteFiles(t, dir, map[string]string{
		"big":          strings.Repeat("x", 64<<10+1),
		"limit":        strings.Repeat("y", 64<<10),
		"real/token":   "linked-token\n",
		"secrets/dir/": "",
	})
	if err := os.Symlink(filepath.Join(dir, "real/token"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file    string
		wantErr []string
		want    string
	}{
		{file: "/dev/zero", wantErr: []string{"/dev/zero", "not a regular file", "character device"}},
		{file: "/dev/null", wantErr: []string{"not a regular file"}},
		{file: filepath.Join(dir, "fifo"), wantErr: []string{"fifo", "not a regular file", "named pipe"}},
		{file: filepath.Join(dir, "secrets"), wantErr: []string{"not a regular file", "directory"}},
		{file: filepath.Join(dir, "big"), wantErr: []string{"big", "larger than 65536 bytes"}},
		{file: filepath.Join(dir, "limit"), want: strings.Repeat("y", 64<<10)},
		// Kubernetes mounts secrets as symbolic links.
		{file: filepath.Join(dir, "link"), want: "linked-token"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yml")
			content := fmt.Sprintf("instances:\n  - {provider: fake, name: special, ref: r, password_file: %q}\n", tc.file)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadGuarded(t, path, config.Options{})
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				checkError(t, err, path, append([]string{`"special"`, "password_file"}, tc.wantErr...))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Instances[0].Spec.Base().Secret(); got != tc.want {
				t.Errorf("token of %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

func TestConfigFileMustBeARegularFile(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "config.yml")
	mkfifo(t, fifo)
	for _, path := range []string{"/dev/zero", fifo, t.TempDir()} {
		_, err := loadGuarded(t, path, config.Options{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("LoadFile(%s): %v, want an error naming it as not a regular file", path, err)
		}
	}
}

// TestNameMustBeALabelValue: the name becomes a label value; invalid
// UTF-8 (from an environment variable, say) used to crash the exporter
// at start and on reload.
func TestNameMustBeALabelValue(t *testing.T) {
	t.Parallel()
	env := map[string]string{"BAD_UTF8": "shop-\xff\xfe", "NEWLINE": "shop\nsales", "GOOD": "магазин 商店"}
	opts := config.Options{ExpandEnv: true, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	for _, tc := range []struct {
		name    string
		wantErr []string
	}{
		{name: `"${BAD_UTF8}"`, wantErr: []string{"instances[0]", "field name", "not valid UTF-8"}},
		{name: `"${NEWLINE}"`, wantErr: []string{"instances[0]", "field name", "control character"}},
		{name: `"tab\there"`, wantErr: []string{"field name", "control character"}},
		{name: `"${GOOD}"`},
	} {
		content := fmt.Sprintf("instances:\n  - {provider: fake, name: %s, ref: r, password: %s}\n", tc.name, secretValue)
		cfg, path, err := testtool.LoadYAML(t, content, nil, opts)
		if tc.wantErr == nil {
			if err != nil {
				t.Errorf("name %s: %v", tc.name, err)
			} else if got := cfg.Instances[0].Name(); got != env["GOOD"] {
				t.Errorf("name %q, want %q", got, env["GOOD"])
			}
			continue
		}
		if err == nil {
			t.Errorf("name %s: no error", tc.name)
			continue
		}
		checkError(t, err, path, tc.wantErr)
	}
}

// TestHTTPSettingFilesMustBeSmallRegularFiles: prometheus/common reads
// these files whole, some at every request: a FIFO would block calls
// forever, /dev/zero would fill memory.
func TestHTTPSettingFilesMustBeSmallRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkfifo(t, filepath.Join(dir, "fifo"))
	testtool.WriteFiles(t, dir, map[string]string{"ok.txt": "x", "big.pem": strings.Repeat("x", 4<<20+1)})
	for _, tc := range []struct {
		settings string
		field    string
		want     string
	}{
		{"tls_config: {ca_file: /dev/zero}", "tls_config.ca_file", "character device"},
		{"tls_config: {ca_file: big.pem}", "tls_config.ca_file", "larger than"},
		{"basic_auth: {username: u, password_file: fifo}", "basic_auth.password_file", "named pipe"},
		{"authorization: {credentials_file: /dev/stdin}", "authorization.credentials_file", "not a regular file"},
		{"oauth2: {client_id: i, client_secret_file: " + dir + ", token_url: \"http://t\"}", "oauth2.client_secret_file", "directory"},
		{"http_headers: {X-Key: {files: [ok.txt, fifo]}}", "http_headers.X-Key.files[1]", "named pipe"},
	} {
		path := filepath.Join(dir, "config.yml")
		content := fmt.Sprintf("instances:\n  - {provider: fake, name: files, ref: r, password: %s, %s}\n", secretValue, tc.settings)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadGuarded(t, path, config.Options{})
		if err == nil {
			t.Errorf("%s: no error", tc.settings)
			continue
		}
		checkError(t, err, path, []string{`"files"`, "field " + tc.field, tc.want})
	}
	// Relative paths are taken from the configuration's directory.
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte("instances:\n  - {provider: fake, name: files, ref: r, password: p, basic_auth: {username: u, password_file: ok.txt}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadGuarded(t, path, config.Options{}); err != nil {
		t.Errorf("a regular password file: %v", err)
	}
}

// TestSecretFile: a secret's file is read from the configuration's
// directory, or where its absolute path says, trimmed of the white space
// around it.
func TestSecretFile(t *testing.T) {
	t.Parallel()
	abs := filepath.Join(t.TempDir(), "abs.pw")
	testtool.WriteFiles(t, filepath.Dir(abs), map[string]string{"abs.pw": "abs-pw"})
	for _, tc := range []struct {
		name, file string
		files      map[string]string
		want       string
		wantErr    []string
	}{
		{name: "same directory", file: "pw", files: map[string]string{"pw": "plain"}, want: "plain"},
		{name: "sub directory", file: "secrets/fake", files: map[string]string{"secrets/fake": "sub"}, want: "sub"},
		{name: "dot slash", file: "./pw", files: map[string]string{"pw": "dot"}, want: "dot"},
		{name: "absolute", file: abs, want: "abs-pw"},
		{name: "trimmed", file: "pw", files: map[string]string{"pw": " \t trimmed-pw \r\n\n"}, want: "trimmed-pw"},
		{name: "inner space kept", file: "pw", files: map[string]string{"pw": "a b\n"}, want: "a b"},
		{name: "empty", file: "pw", files: map[string]string{"pw": ""}, wantErr: []string{"field password_file", "pw is empty"}},
		{name: "only white space", file: "pw", files: map[string]string{"pw": " \n\t\n"}, wantErr: []string{"field password_file", "is empty"}},
		{name: "missing", file: "nope.pw", wantErr: []string{"field password_file", "nope.pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			content := fmt.Sprintf("instances:\n  - {provider: fake, name: filepw, ref: r, password_file: %q}\n", tc.file)
			if tc.wantErr != nil {
				checkLoadError(t, content, tc.files, config.Options{}, append([]string{`"filepw"`}, tc.wantErr...))
				return
			}
			cfg, _ := mustLoad(t, content, tc.files, config.Options{})
			s := fake(t, cfg.Instances[0])
			if got := s.Secret(); got != tc.want {
				t.Errorf("password %q, want %q", got, tc.want)
			}
			if s.Password != "" {
				t.Errorf("password field %q, want it left empty", s.Password)
			}
		})
	}
	// Load takes the files from the directory it is given.
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{"sub/pw": "from-dir"})
	cfg, err := config.Load([]byte("instances:\n  - {provider: fake, ref: r, password_file: sub/pw}\n"), dir, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Instances[0].Spec.Base().Secret(); got != "from-dir" {
		t.Errorf("password %q, want from-dir", got)
	}
}

func TestLoadFileMissing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "absent.yml")
	_, err := config.LoadFile(path, config.Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want an error naming %s", err, path)
	}
}

// TestLoadFileRelativePath: a configuration named by a relative path
// takes its files from its own directory, not from the working one.
func TestLoadFileRelativePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testtool.WriteFiles(t, dir, map[string]string{
		"config.yml":   "instances:\n  - {provider: fake, ref: r, password_file: secrets/pw, tls_config: {ca_file: certs/ca.pem}}\n",
		"secrets/pw":   "relative-pw\n",
		"certs/ca.pem": "ca",
	})
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil || filepath.IsAbs(rel) {
		t.Skipf("no relative path from %s to %s: %v", wd, dir, err)
	}
	cfg, err := config.LoadFile(filepath.Join(rel, "config.yml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Instances[0].Spec.Base()
	if got := b.Secret(); got != "relative-pw" {
		t.Errorf("password %q, want relative-pw", got)
	}
	if got, want := b.HTTPClientConfig.TLSConfig.CAFile, filepath.Join(rel, "certs", "ca.pem"); got != want {
		t.Errorf("tls_config.ca_file %q, want %q", got, want)
	}
	if _, err := os.Stat(b.HTTPClientConfig.TLSConfig.CAFile); err != nil {
		t.Errorf("the resolved ca_file is not there: %v", err)
	}
}
