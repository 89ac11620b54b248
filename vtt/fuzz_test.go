package vtt

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParse feeds Parse arbitrary files. It must never panic, and what it
// accepts must survive a round trip through the Writer unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("WEBVTT\n\n00:00:00.000 --> 00:00:10.000\nthumb_0001.jpg\n"))
	f.Add([]byte("\uFEFFWEBVTT - thumbs\r\n\r\nNOTE made by thumbd\r\n\r\n1\r\n00:00.000 --> 00:01.500\r\nsprite.jpg#xywh=0,0,160,90\r\n"))
	f.Add([]byte("WEBVTT\n\nSTYLE\n::cue {}\n\n100:59:59.999 --> 101:00:00.000\na\nb\n"))
	f.Add([]byte("WEBVTT\n\n00:00:01.000 --> 00:00:00.000\nx\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cues, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		for _, c := range cues {
			if err := w.Write(c); err != nil {
				// The Writer is stricter than Parse about text (blank or
				// trailing-space lines it would not write); that is not
				// a bug of the parser.
				return
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		again, err := Parse(&out)
		if err != nil {
			t.Fatalf("Parse of what the Writer wrote from %q: %v\n%s", data, err, out.String())
		}
		if len(cues) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(cues, again) {
			t.Fatalf("round trip changed the cues:\n%q\n%q", cues, again)
		}
	})
}
