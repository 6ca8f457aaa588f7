package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/whatsapp-exporter/whatsapp_exporter/config"
)

// The documentation's checks live here, in package collector, so that the
// providers are registered when a configuration is loaded. Paths are
// relative to this directory.

// docFiles are the project's Markdown documents whose links are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../README.md", "../CONFIGURATION.md", "../CONTRIBUTING.md", "../CHANGELOG.md", "../SECURITY.md", "../alerts/RUNBOOK.md"}
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no documents in ../docs: %v", err)
	}
	return append(files, docs...)
}

// TestExampleConfig loads examples/whatsapp_exporter.yml as
// --config.check --config.expand-environment-variables does, with every
// variable it names set, and checks what it holds: an instance of every
// provider, and an account of each provider that has accounts.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	const file = "../examples/whatsapp_exporter.yml"
	env := map[string]string{
		"SUPPORT_API_TOKEN":              "fake-support-token",
		"EVOLUTION_API_KEY":              "fake-evolution-key",
		"PARTNER_WEBHOOK_KEY":            "fake-partner-webhook-key-0123456789",
		"LEGACY_BOT_WEBHOOK_PATH_SECRET": "fake-path-secret-0123456789",
	}
	var asked []string
	cfg, err := config.LoadFile(file, config.Options{ExpandEnv: true, LookupEnv: func(name string) (string, bool) {
		asked = append(asked, name)
		v, ok := env[name]
		return v, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	for name := range env {
		if !slices.Contains(asked, name) {
			t.Errorf("%s: the test sets %s, which the file does not use", file, name)
		}
	}

	var instances, providers []string
	for _, in := range cfg.Instances {
		instances = append(instances, in.Provider()+"/"+in.Name())
		if !slices.Contains(providers, in.Provider()) {
			providers = append(providers, in.Provider())
		}
	}
	want := []string{"greenapi/shop", "greenapi/support", "wachat/jakarta-store", "evolution/sales-bot", "evolution/legacy-bot",
		"meta/support-line", "meta/d360-line", "waha/front-desk", "whatsmeow/go-bot", "whatsmeow/wuzapi-shop", "whatsmeow/gowa-store"}
	if !slices.Equal(instances, want) {
		t.Errorf("%s: %d instances %v, want %d %v", file, len(instances), instances, len(want), want)
	}
	sort.Strings(providers)
	if !slices.Equal(providers, config.Providers()) {
		t.Errorf("%s: instances of %v, want one of every provider %v", file, providers, config.Providers())
	}

	var accounts []string
	for _, a := range cfg.Accounts {
		accounts = append(accounts, a.Provider()+"/"+a.Name())
	}
	want = []string{"greenapi/partner", "wachat/agency", "evolution/server", "meta/acme-waba", "waha/waha", "whatsmeow/wuzapi-server"}
	if !slices.Equal(accounts, want) {
		t.Errorf("%s: %d accounts %v, want %d %v", file, len(accounts), accounts, len(want), want)
	}
}

var (
	yamlBlock = regexp.MustCompile("(?ms)^ *```ya?ml\n(.*?)^ *```")
	// fileField is a field naming a file, with its value.
	fileField = regexp.MustCompile(`(?m)^(\s*(?:-\s+)?[a-z_]+_file:[ \t]*)("[^"]*"|'[^']*'|[^\s#]+)`)
)

// TestDocConfigBlocks loads every YAML block of the documentation that is
// an exporter configuration (its first field is instances: or accounts:).
// The files it names are replaced by one holding a fake secret, and every
// ${VAR} is set, since the documents name files of the reader's machine.
func TestDocConfigBlocks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	// Good for any secret: a token, an id_instance, a path secret.
	const fake = "1234567890123456"
	if err := os.WriteFile(secret, []byte(fake+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := config.Options{ExpandEnv: true, LookupEnv: func(string) (string, bool) { return fake, true }}
	loaded := 0
	for _, file := range docFiles(t) {
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range yamlBlock.FindAllSubmatchIndex(content, -1) {
			block := string(content[m[2]:m[3]])
			if !isExporterConfig(block) {
				continue
			}
			line := 1 + strings.Count(string(content[:m[2]]), "\n")
			block = fileField.ReplaceAllString(block, "${1}"+strconv.Quote(secret))
			if _, err := config.Load([]byte(block), dir, opts); err != nil {
				t.Errorf("%s:%d: the configuration does not load: %v", file, line, err)
			}
			loaded++
		}
	}
	t.Logf("%d configurations in the documents loaded", loaded)
	if loaded < 5 {
		t.Errorf("%d configurations found in the documents, want 5 or more", loaded)
	}
}

// isExporterConfig says whether a YAML block's first field is instances:
// or accounts:.
func isExporterConfig(block string) bool {
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		return strings.HasPrefix(line, "instances:") || strings.HasPrefix(line, "accounts:")
	}
	return false
}

var (
	fence      = regexp.MustCompile("(?ms)^ *```.*?^ *```[^\n]*$")
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*(\S+)`)
	heading    = regexp.MustCompile(`(?m)^#{1,6}\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	linkText   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// TestDocLinks checks every relative link of the documents: its file
// exists and, in a Markdown file, its #anchor is one of its headings as
// GitHub names them.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	anchors := map[string][]string{}
	anchorsOf := func(file string) ([]string, error) {
		if a, ok := anchors[file]; ok {
			return a, nil
		}
		content, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		a := markdownAnchors(string(content))
		anchors[file] = a
		return a, nil
	}
	for _, file := range docFiles(t) {
		content, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := codeSpan.ReplaceAllString(fence.ReplaceAllString(string(content), ""), "")
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, m := range refLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: %v", file, target, err)
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			a, err := anchorsOf(dest)
			if err != nil {
				t.Errorf("%s: link %s: %v", file, target, err)
				continue
			}
			if !slices.Contains(a, anchor) {
				t.Errorf("%s: link %s: no heading %q in %s", file, target, anchor, dest)
			}
		}
	}
}

// markdownAnchors lists the anchors of a Markdown document's headings as
// GitHub makes them: the heading's text in lower case, without
// punctuation, spaces as hyphens, a repeated one numbered.
func markdownAnchors(content string) []string {
	content = fence.ReplaceAllString(content, "")
	var anchors []string
	seen := map[string]int{}
	for _, m := range heading.FindAllStringSubmatch(content, -1) {
		text := strings.ReplaceAll(linkText.ReplaceAllString(m[1], "$1"), "`", "")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors = append(anchors, fmt.Sprintf("%s-%d", a, n))
		} else {
			anchors = append(anchors, a)
		}
		seen[a]++
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(content, -1) {
		anchors = append(anchors, m[1])
	}
	return anchors
}

// TestDocFlags checks that CONFIGURATION.md gives every flag of main.go
// with its help text as --help prints it.
func TestDocFlags(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	flags := regexp.MustCompile(`app\.Flag\("([^"]+)",\s*("(?:[^"\\]|\\.)*")\)`).FindAllSubmatch(src, -1)
	if len(flags) < 10 {
		t.Fatalf("main.go: %d flags found, want 10 or more", len(flags))
	}
	for _, f := range flags {
		name := string(f[1])
		help, err := strconv.Unquote(string(f[2]))
		if err != nil {
			t.Fatalf("main.go: --%s: %v", name, err)
		}
		if !strings.Contains(string(doc), "`--"+name+"`") {
			t.Errorf("CONFIGURATION.md: no `--%s`", name)
		}
		if !strings.Contains(string(doc), help) {
			t.Errorf("CONFIGURATION.md: --%s: help text %q not found", name, help)
		}
	}
}

// TestDocMetrics checks that docs/metrics.md names every metric the
// exporter's code names.
func TestDocMetrics(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, pattern := range []string{"*.go", "../*.go"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, files...)
	}
	name := regexp.MustCompile(`"(whatsapp_[a-z_]*[a-z])"`)
	found := map[string]bool{}
	for _, file := range sources {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllSubmatch(src, -1) {
			if n := string(m[1]); n != "whatsapp_exporter" {
				found[n] = true
			}
		}
	}
	if len(found) < 20 {
		t.Fatalf("%d metric names found in the code, want 20 or more: %v", len(found), found)
	}
	for n := range found {
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("docs/metrics.md: no `%s`", n)
		}
	}
}
