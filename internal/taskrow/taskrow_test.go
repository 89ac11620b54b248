package taskrow

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/engine"
)

var update = flag.Bool("update", false, "rewrite testdata/row.json from Encode")

// goldenRow is a row as a file: the spec and status documents inline.
type goldenRow struct {
	Token   string          `json:"token"`
	Created int64           `json:"created"`
	Ended   *int64          `json:"ended"`
	Owner   string          `json:"owner"`
	Spec    json.RawMessage `json:"spec"`
	Snap    json.RawMessage `json:"snap"`
}

func readGolden(t *testing.T, name string) Row {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenRow
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	r := Row{Token: g.Token, Created: g.Created, Ended: g.Ended, Owner: g.Owner, Snap: compact(t, g.Snap)}
	if g.Spec != nil {
		s := compact(t, g.Spec)
		r.Spec = &s
	}
	return r
}

func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestGoldenRow checks that Encode writes today's stored form
// (testdata/row.json, refreshed with -update) and that it decodes to the
// record it was made from.
func TestGoldenRow(t *testing.T) {
	want := sample()
	row, err := Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		g := goldenRow{Token: row.Token, Created: row.Created, Ended: row.Ended, Owner: row.Owner, Spec: json.RawMessage(*row.Spec), Snap: json.RawMessage(row.Snap)}
		b, err := json.MarshalIndent(g, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/row.json", append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden := readGolden(t, "row.json")
	if !reflect.DeepEqual(row, golden) {
		t.Errorf("Encode wrote\n%s\n%s\nwant (testdata/row.json; -update if the change is meant, with a new Version)\n%s\n%s", *row.Spec, row.Snap, *golden.Spec, golden.Snap)
	}
	got, err := golden.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
	}
}

// TestUnversionedRow decodes a row written before rows had a version
// (testdata/row-unversioned.json, never rewritten): it reads as version 1,
// and today's form is that row's, key for key, plus the version.
func TestUnversionedRow(t *testing.T) {
	old := readGolden(t, "row-unversioned.json")
	got, err := old.Decode()
	if err != nil {
		t.Fatal(err)
	}
	// It was written before tasks kept their owner, query, warnings and
	// lists of times and sizes.
	want := sampleBefore()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
	}
	row, err := Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []struct{ name, old, now string }{{"spec", *old.Spec, *row.Spec}, {"status", old.Snap, row.Snap}} {
		var was, now map[string]any
		if err := json.Unmarshal([]byte(doc.old), &was); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(doc.now), &now); err != nil {
			t.Fatal(err)
		}
		if now["Version"] != float64(Version) {
			t.Errorf("%s: Version %v, want %d", doc.name, now["Version"], Version)
		}
		delete(now, "Version")
		if !reflect.DeepEqual(now, was) {
			t.Errorf("%s: today's form\n%s\ndiffers from the unversioned one\n%s", doc.name, doc.now, doc.old)
		}
	}
}

func TestRowVersions(t *testing.T) {
	row, err := Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	withVersion := func(doc, v string) string {
		return strings.Replace(doc, `"Version":1,`, `"Version":`+v+`,`, 1)
	}
	tests := []struct {
		name       string
		spec, snap string
		wantErr    string
	}{
		{"today's", *row.Spec, row.Snap, ""},
		{"a newer spec", withVersion(*row.Spec, "2"), row.Snap, "decoding its spec: it was written by a newer thumbd (row version 2; this one reads versions 1 to 1)"},
		{"a newer status", *row.Spec, withVersion(row.Snap, "7"), "decoding its status: it was written by a newer thumbd (row version 7;"},
		{"a newer status of another shape", *row.Spec, `{"Version":2,"State":{"name":"completed"}}`, "newer thumbd (row version 2;"},
		{"a negative version", *row.Spec, withVersion(row.Snap, "-1"), "row version -1 is not one thumbd writes"},
		{"not JSON", *row.Spec, "{", "decoding its status: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := row
			r.Spec, r.Snap = &tt.spec, tt.snap
			_, err := r.Decode()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRowRoundTrip checks records with nothing set: a task created, not
// started, and one whose lists are empty rather than absent.
func TestRowRoundTrip(t *testing.T) {
	tests := []engine.TaskRecord{
		{Token: "created", Created: FromNanos(1), Snap: engine.Snapshot{State: engine.StateCreated}},
		{Token: "empty", Created: FromNanos(2), Ended: FromNanos(3), Spec: &engine.Spec{Outputs: []engine.Output{}},
			Snap: engine.Snapshot{State: engine.StateError, Error: "the source could not be read", Images: []engine.Image{}, Videos: []engine.Video{}, Warnings: []engine.Warning{}}},
	}
	for _, rec := range tests {
		t.Run(rec.Token, func(t *testing.T) {
			row, err := Encode(rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := row.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Errorf("got\n%+v\nwant\n%+v", got, rec)
			}
		})
	}
}
