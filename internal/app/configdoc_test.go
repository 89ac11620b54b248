package app

import (
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// configDoc is the manual's page of settings, relative to this package.
const configDoc = "../../docs/configuration.md"

// computedDefaults are the defaults the manual describes in words because
// they depend on the machine: flag → the words in its default column.
var computedDefaults = map[string]string{"workers": "number of CPUs"}

// TestConfigDoc checks docs/configuration.md against settings(): every
// THUMBD_* variable the loader reads has a row with its flag and default,
// and the page names no variable the loader does not read.
func TestConfigDoc(t *testing.T) {
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	type row struct{ flag, def string }
	rows := map[string]row{}
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`THUMBD_") {
			continue
		}
		env := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if _, dup := rows[env]; dup {
			t.Errorf("%s: more than one row", env)
		}
		rows[env] = row{flag: strings.TrimSpace(cells[2]), def: strings.TrimSpace(cells[3])}
	}

	known := map[string]bool{}
	for _, s := range settings() {
		known[s.env] = true
		r, ok := rows[s.env]
		if !ok {
			t.Errorf("%s (-%s) has no row in %s", s.env, s.flag, configDoc)
			continue
		}
		if want := "`-" + s.flag + "`"; r.flag != want {
			t.Errorf("%s: flag %s in the doc, want %s", s.env, r.flag, want)
		}
		switch words, computed := computedDefaults[s.flag]; {
		case computed:
			if r.def != words {
				t.Errorf("%s: default %q in the doc, want %q", s.env, r.def, words)
			}
		case s.def == "":
			if !strings.HasPrefix(r.def, "(none") {
				t.Errorf("%s: default %q in the doc, but it has none: say (none...)", s.env, r.def)
			}
		default:
			if r.def != "`"+s.def+"`" {
				t.Errorf("%s: default %s in the doc, want `%s`", s.env, r.def, s.def)
			}
		}
	}
	// The words stand for a computed value; make sure it is still the one they describe.
	for _, s := range settings() {
		if s.flag == "workers" && s.def != strconv.Itoa(runtime.NumCPU()) {
			t.Errorf("-workers defaults to %q, not the number of CPUs the doc says", s.def)
		}
	}
	for _, env := range regexp.MustCompile(`THUMBD_[A-Z0-9_]+`).FindAllString(doc, -1) {
		if !known[env] {
			t.Errorf("%s names %s, which thumbd does not read", configDoc, env)
			known[env] = true // once
		}
	}
}
