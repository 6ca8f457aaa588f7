// Command chartfiles writes the chart's copies of the rules, the
// dashboards and the Alertmanager routes (package chartfiles). Run by
// `go generate ./...` in deploy, from whose directory the repository's
// root is "..".
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/whatsapp-exporter/whatsapp_exporter/deploy/internal/chartfiles"
)

func main() {
	root := flag.String("root", "..", "the repository's root")
	flag.Parse()
	files, err := chartfiles.Generate(*root)
	if err == nil {
		err = chartfiles.Write(*root, files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartfiles:", err)
		os.Exit(1)
	}
}
