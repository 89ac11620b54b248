package vtt

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimestamp(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero", 0, "00:00:00.000"},
		{"one millisecond", time.Millisecond, "00:00:00.001"},
		{"just under half a millisecond rounds down", 499 * time.Microsecond, "00:00:00.000"},
		{"half a millisecond rounds up", 500 * time.Microsecond, "00:00:00.001"},
		{"sub-millisecond noise", 10*time.Second + 1, "00:00:10.000"},
		{"59s", 59 * time.Second, "00:00:59.000"},
		{"59.9994999s rounds down", 59*time.Second + 999*time.Millisecond + 499_900*time.Nanosecond, "00:00:59.999"},
		{"59.9995s carries into the minute", 59*time.Second + 999_500*time.Microsecond, "00:01:00.000"},
		{"one minute", time.Minute, "00:01:00.000"},
		{"just under an hour", time.Hour - time.Millisecond, "00:59:59.999"},
		{"3599.9996s carries into the hour", time.Hour - 400*time.Microsecond, "01:00:00.000"},
		{"one hour", time.Hour, "01:00:00.000"},
		{"1h02m03.456s", time.Hour + 2*time.Minute + 3456*time.Millisecond, "01:02:03.456"},
		{"ten hours", 10 * time.Hour, "10:00:00.000"},
		{"99h59m59.999s", 100*time.Hour - time.Millisecond, "99:59:59.999"},
		{"100 hours keeps all hour digits", 100 * time.Hour, "100:00:00.000"},
		{"123h45m06.789s", 123*time.Hour + 45*time.Minute + 6789*time.Millisecond, "123:45:06.789"},
		{"negative (invalid WebVTT, shown for diagnostics)", -1500 * time.Millisecond, "-00:00:01.500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Timestamp(tt.d); got != tt.want {
				t.Errorf("Timestamp(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	cues := []Cue{
		{0, 10 * time.Second, "thumb_0001.jpg"},
		{10 * time.Second, 20 * time.Second, "line one\r\nline two\rline three"},
		{10 * time.Second, 15 * time.Second, "same start is allowed"},
		{20 * time.Second, 20*time.Second + 1500*time.Microsecond, ""},
	}
	for _, c := range cues {
		if err := w.Write(c); err != nil {
			t.Fatalf("Write(%+v): %v", c, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "WEBVTT\n\n" +
		"00:00:00.000 --> 00:00:10.000\nthumb_0001.jpg\n\n" +
		"00:00:10.000 --> 00:00:20.000\nline one\nline two\nline three\n\n" +
		"00:00:10.000 --> 00:00:15.000\nsame start is allowed\n\n" +
		"00:00:20.000 --> 00:00:20.002\n\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if err := w.Error(); err != nil {
		t.Errorf("Error() = %v", err)
	}
}

func TestFlushWithoutCuesWritesHeader(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "WEBVTT\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	cues, err := Parse(&buf)
	if err != nil || len(cues) != 0 {
		t.Errorf("Parse = %v, %v; want no cues", cues, err)
	}
}

func TestWriteErrors(t *testing.T) {
	ok := Cue{10 * time.Second, 20 * time.Second, "ok.jpg"}
	tests := []struct {
		name   string
		before []Cue // written first, must succeed
		cue    Cue
		want   error
	}{
		{"negative start", nil, Cue{-time.Second, time.Second, "a"}, ErrNegativeTime},
		{"negative end", nil, Cue{0, -time.Second, "a"}, ErrNegativeTime},
		{"tiny negative start", nil, Cue{-1, time.Second, "a"}, ErrNegativeTime},
		{"end equals start", nil, Cue{time.Second, time.Second, "a"}, ErrEmptySpan},
		{"end before start", nil, Cue{2 * time.Second, time.Second, "a"}, ErrEmptySpan},
		{"equal after rounding", nil, Cue{time.Second + 100*time.Microsecond, time.Second + 400*time.Microsecond, "a"}, ErrEmptySpan},
		{"zero-length at zero", nil, Cue{0, 0, "a"}, ErrEmptySpan},
		{"goes backwards", []Cue{ok}, Cue{5 * time.Second, 15 * time.Second, "a"}, ErrOutOfOrder},
		{"backwards by one millisecond", []Cue{ok}, Cue{10*time.Second - time.Millisecond, 15 * time.Second, "a"}, ErrOutOfOrder},
		{"blank line LF", nil, Cue{0, time.Second, "a\n\nb"}, ErrBlankLine},
		{"blank line CRLF", nil, Cue{0, time.Second, "a\r\n\r\nb"}, ErrBlankLine},
		{"blank line CR", nil, Cue{0, time.Second, "a\r\rb"}, ErrBlankLine},
		{"blank line LF CR", nil, Cue{0, time.Second, "a\n\rb"}, ErrBlankLine},
		{"trailing newline", nil, Cue{0, time.Second, "a.jpg\n"}, ErrBlankLine},
		{"leading newline", nil, Cue{0, time.Second, "\na.jpg"}, ErrBlankLine},
		{"arrow", nil, Cue{0, time.Second, "a --> b"}, ErrArrow},
		{"arrow without spaces", nil, Cue{0, time.Second, "a-->b"}, ErrArrow},
		{"invalid UTF-8", nil, Cue{0, time.Second, "a\xffb"}, ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			for _, c := range tt.before {
				if err := w.Write(c); err != nil {
					t.Fatalf("Write(%+v): %v", c, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			before := buf.String()
			err := w.Write(tt.cue)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Write(%+v) = %v, want %v", tt.cue, err, tt.want)
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("Flush after a rejected cue: %v", err)
			}
			if buf.String() != before {
				t.Errorf("rejected cue changed the output:\n%q\nbefore:\n%q", buf.String(), before)
			}
			if w.Error() != nil {
				t.Errorf("a rejected cue must not be sticky; Error() = %v", w.Error())
			}
			// The writer stays usable.
			next := Cue{time.Minute, time.Minute + time.Second, "next.jpg"}
			if err := w.Write(next); err != nil {
				t.Errorf("Write after a rejected cue: %v", err)
			}
		})
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterStickyError(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriter(failWriter{boom})
	if err := w.Write(Cue{0, time.Second, "a"}); err != nil {
		t.Fatalf("buffered Write = %v, want nil", err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if err := w.Error(); !errors.Is(err, boom) {
		t.Errorf("Error() = %v, want %v", err, boom)
	}
	if err := w.Write(Cue{time.Second, 2 * time.Second, "b"}); !errors.Is(err, boom) {
		t.Errorf("Write after failure = %v, want %v", err, boom)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Cue
	}{
		{"header only, no newline", "WEBVTT", nil},
		{"header and blank line", "WEBVTT\n\n", nil},
		{"header text after space", "WEBVTT - thumbnails\n\n00:00.000 --> 00:01.000\na\n", []Cue{{0, time.Second, "a"}}},
		{"header text after tab", "WEBVTT\tx\n\n00:00.000 --> 00:01.000\na", []Cue{{0, time.Second, "a"}}},
		{"BOM", "\uFEFFWEBVTT\n\n00:00.000 --> 00:01.000\na\n", []Cue{{0, time.Second, "a"}}},
		{"CRLF", "WEBVTT\r\n\r\n00:00:01.000 --> 00:00:02.500\r\na\r\nb\r\n\r\n", []Cue{{time.Second, 2500 * time.Millisecond, "a\nb"}}},
		{"CR", "WEBVTT\r\r00:00:01.000 --> 00:00:02.500\ra\r", []Cue{{time.Second, 2500 * time.Millisecond, "a"}}},
		{"identifier", "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\na\n\nsecond cue\n00:00:02.000 --> 00:00:03.000\nb\n",
			[]Cue{{time.Second, 2 * time.Second, "a"}, {2 * time.Second, 3 * time.Second, "b"}}},
		{"settings ignored", "WEBVTT\n\n00:00.000 --> 00:01.000 align:start position:10%\na\n", []Cue{{0, time.Second, "a"}}},
		{"tabs around arrow", "WEBVTT\n\n00:00.000\t-->\t00:01.000\ta:b\na\n", []Cue{{0, time.Second, "a"}}},
		{"several spaces", "WEBVTT\n\n00:00.000   -->  00:01.000\na\n", []Cue{{0, time.Second, "a"}}},
		{"empty payload", "WEBVTT\n\n00:00.000 --> 00:01.000\n\n00:01.000 --> 00:02.000\nb\n",
			[]Cue{{0, time.Second, ""}, {time.Second, 2 * time.Second, "b"}}},
		{"NOTE and STYLE blocks", "WEBVTT\n\nSTYLE\n::cue { color: red }\n\nNOTE a comment\nspanning lines\n\n00:00.000 --> 00:01.000\na\n\nNOTE\nlater\n",
			[]Cue{{0, time.Second, "a"}}},
		{"many blank lines", "WEBVTT\n\n\n\n00:00.000 --> 00:01.000\na\n\n\n", []Cue{{0, time.Second, "a"}}},
		{"100 hours", "WEBVTT\n\n100:00:00.000 --> 100:00:10.000\nsprite_0001.jpg#xywh=320,0,160,90\n",
			[]Cue{{100 * time.Hour, 100*time.Hour + 10*time.Second, "sprite_0001.jpg#xywh=320,0,160,90"}}},
		{"59:59.999", "WEBVTT\n\n59:59.000 --> 59:59.999\na\n", []Cue{{time.Hour - time.Second, time.Hour - time.Millisecond, "a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	cue := func(timing string) string { return "WEBVTT\n\n" + timing + "\nx.jpg\n" }
	tests := []struct {
		name string
		in   string
	}{
		{"empty input", ""},
		{"missing header", "00:00:00.000 --> 00:00:01.000\nx.jpg\n"},
		{"lower-case header", "webvtt\n\n"},
		{"header with suffix", "WEBVTTX\n\n"},
		{"BOM twice", "\uFEFF\uFEFFWEBVTT\n\n"},
		{"header not followed by blank line", "WEBVTT\n00:00.000 --> 00:01.000\nx.jpg\n"},
		{"minutes 60 without hours", cue("00:00.000 --> 60:00.000")},
		{"seconds 60", cue("00:00.000 --> 00:60.000")},
		{"minutes 60 with hours", cue("00:00:00.000 --> 00:60:00.000")},
		{"seconds 60 with hours", cue("00:00:00.000 --> 00:00:60.000")},
		{"comma decimal separator", cue("00:00:00,000 --> 00:00:05,000")},
		{"comma in end only", cue("00:00:00.000 --> 00:00:05,000")},
		{"one-digit hours", cue("0:00:00.000 --> 0:00:01.000")},
		{"one-digit minutes", cue("0:00.000 --> 0:01.000")},
		{"one-digit seconds", cue("00:0.000 --> 00:1.000")},
		{"two millisecond digits", cue("00:00.00 --> 00:01.00")},
		{"four millisecond digits", cue("00:00.0000 --> 00:01.0000")},
		{"no milliseconds", cue("00:00 --> 00:01")},
		{"seconds only", cue("00.000 --> 01.000")},
		{"too many fields", cue("00:00:00:00.000 --> 00:00:00:01.000")},
		{"sign", cue("-00:01.000 --> 00:02.000")},
		{"no space before arrow", cue("00:00.000--> 00:01.000")},
		{"no space after arrow", cue("00:00.000 -->00:01.000")},
		{"leading space", cue(" 00:00.000 --> 00:01.000")},
		{"two arrows", cue("00:00.000 --> 00:01.000 --> 00:02.000")},
		{"end equals start", cue("00:01.000 --> 00:01.000")},
		{"end before start", cue("00:02.000 --> 00:01.000")},
		{"all zero", cue("00:00:00.000 --> 00:00:00.000")},
		{"cues go backwards", "WEBVTT\n\n00:10.000 --> 00:20.000\na\n\n00:05.000 --> 00:15.000\nb\n"},
		{"arrow in payload", "WEBVTT\n\n00:00.000 --> 00:01.000\na\nb --> c\n"},
		{"identifier without timing", "WEBVTT\n\nid\n"},
		{"text without timing", "WEBVTT\n\nid\nnot a timing line\n"},
		{"STYLE after a cue", "WEBVTT\n\n00:00.000 --> 00:01.000\na\n\nSTYLE\n::cue {}\n"},
		{"arrow in NOTE", "WEBVTT\n\nNOTE 00:00.000 --> 00:01.000\n"},
		{"invalid UTF-8", "WEBVTT\n\n00:00.000 --> 00:01.000\n\xff\n"},
		{"NUL", "WEBVTT\n\n00:00.000 --> 00:01.000\na\x00\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cues, err := Parse(strings.NewReader(tt.in))
			if err == nil {
				t.Errorf("Parse(%q) = %+v, want an error", tt.in, cues)
			}
		})
	}
}

// TestRoundTrip checks that Parse reads back what Writer writes, including
// multi-line text and huge hour counts.
func TestRoundTrip(t *testing.T) {
	in := []Cue{
		{0, 1500 * time.Millisecond, "a.jpg"},
		{1500 * time.Millisecond, time.Hour, "two\nlines"},
		{time.Hour, 150*time.Hour + 59*time.Minute + 59*time.Second + 999*time.Millisecond, "sprite_0001.jpg#xywh=0,0,160,90"},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, c := range in {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}
