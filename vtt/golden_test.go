package vtt

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// intervalCues returns the cues of an interval thumbnail track: one span per
// interval from 0, the last one ending at the video's duration. text names
// the image for cue i (0-based).
func intervalCues(duration, interval time.Duration, text func(i int) string) []Cue {
	var cues []Cue
	for i, start := 0, time.Duration(0); start < duration; i, start = i+1, start+interval {
		end := min(start+interval, duration)
		cues = append(cues, Cue{Start: start, End: end, Text: text(i)})
	}
	return cues
}

// spriteText names tile i of sprite sheets holding perSheet tiles of w×h in
// rows of columns; coordinates restart at 0,0 on each sheet.
func spriteText(w, h, columns, perSheet int) func(int) string {
	return func(i int) string {
		sheet, tile := i/perSheet, i%perSheet
		x, y := tile%columns*w, tile/columns*h
		return fmt.Sprintf("sprite_%04d.jpg#xywh=%d,%d,%d,%d", sheet+1, x, y, w, h)
	}
}

func imageText(i int) string { return fmt.Sprintf("thumb_%04d.jpg", i+1) }

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		cues []Cue
	}{
		// 47.52 s video, one image every 10 s: the last span is short.
		{"images", intervalCues(47520*time.Millisecond, 10*time.Second, imageText)},
		// 95 s video, a 160×90 tile every 5 s, 5 columns, 10 tiles a sheet:
		// sprite_0001.jpg holds 2 full rows, sprite_0002.jpg the other 9.
		{"sprite", intervalCues(95*time.Second, 5*time.Second, spriteText(160, 90, 5, 10))},
		// 1 h 02 min 03.5 s video, one image every 5 min: crosses the hour.
		{"long", intervalCues(time.Hour+2*time.Minute+3500*time.Millisecond, 5*time.Minute, imageText)},
		// Sprite track of a 2 h 30 min video at one tile a minute, 10×10 sheets.
		{"long_sprite", intervalCues(150*time.Minute, time.Minute, spriteText(160, 90, 10, 100))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			for _, c := range tt.cues {
				if err := w.Write(c); err != nil {
					t.Fatalf("Write(%+v): %v", c, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()

			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./vtt -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run go test ./vtt -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
			}

			// The golden file must parse back to the same cues.
			parsed, err := Parse(bytes.NewReader(want))
			if err != nil {
				t.Fatalf("Parse(%s): %v", path, err)
			}
			if !reflect.DeepEqual(parsed, tt.cues) {
				t.Errorf("Parse(%s) = %+v, want %+v", path, parsed, tt.cues)
			}
		})
	}
}
