// Command valuestable writes the values table of the Helm chart into README.md, from the
// "# --" comments of charts/spanflow/values.yaml, between the markers
// <!-- values-table:start --> and <!-- values-table:end -->. With -check it only reports
// whether README.md is up to date (make verify-gen uses that).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
)

const (
	startMarker = "<!-- values-table:start -->"
	endMarker   = "<!-- values-table:end -->"
)

func main() {
	values := flag.String("values", "charts/spanflow/values.yaml", "the chart's values file")
	readme := flag.String("readme", "README.md", "the file holding the markers")
	check := flag.Bool("check", false, "only check that the table is current")
	flag.Parse()
	if err := run(*values, *readme, *check); err != nil {
		fmt.Fprintln(os.Stderr, "valuestable:", err)
		os.Exit(1)
	}
}

func run(valuesPath, readmePath string, check bool) error {
	data, err := os.ReadFile(valuesPath)
	if err != nil {
		return err
	}
	table := render(parse(data))
	doc, err := os.ReadFile(readmePath)
	if err != nil {
		return err
	}
	start, end := bytes.Index(doc, []byte(startMarker)), bytes.Index(doc, []byte(endMarker))
	if start < 0 || end < start {
		return fmt.Errorf("%s lacks the markers %s … %s", readmePath, startMarker, endMarker)
	}
	updated := append(append(append([]byte{}, doc[:start+len(startMarker)]...), "\n"+table...), doc[end:]...)
	if bytes.Equal(updated, doc) {
		return nil
	}
	if check {
		return fmt.Errorf("the values table in %s is stale: run make manifests", readmePath)
	}
	return os.WriteFile(readmePath, updated, 0o644)
}

type row struct{ key, def, doc string }

// parse reads values.yaml line by line: a "# --" comment documents the next key, whose
// path comes from indentation.
func parse(data []byte) []row {
	var rows []row
	var path []string
	var indents []int
	var doc []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "# --"):
			doc = []string{strings.TrimSpace(strings.TrimPrefix(trimmed, "# --"))}
			continue
		case strings.HasPrefix(trimmed, "#") && doc != nil:
			doc = append(doc, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		case trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "-"):
			continue
		}
		key, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		for len(indents) > 0 && indents[len(indents)-1] >= indent {
			indents, path = indents[:len(indents)-1], path[:len(path)-1]
		}
		indents, path = append(indents, indent), append(path, key)
		value = strings.TrimSpace(value)
		if doc != nil {
			def := value
			if def == "" {
				def = "(see values.yaml)"
			}
			rows = append(rows, row{key: strings.Join(path, "."), def: def, doc: strings.Join(doc, " ")})
			doc = nil
		}
	}
	return rows
}

func render(rows []row) string {
	var b strings.Builder
	b.WriteString("| key | default | description |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", r.key, strings.ReplaceAll(r.def, "|", "\\|"), r.doc)
	}
	return b.String()
}
