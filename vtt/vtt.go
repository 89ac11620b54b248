// Package vtt writes and strictly parses WebVTT files of the kind used for
// thumbnail tracks, in the shape of encoding/csv:
//
//	w := vtt.NewWriter(out)
//	for _, c := range cues {
//		if err := w.Write(c); err != nil {
//			return err
//		}
//	}
//	return w.Flush()
//
// The Writer emits the "WEBVTT" signature, a blank line, then one block per
// cue with no cue identifier:
//
//	00:00:00.000 --> 00:00:10.000
//	thumb_0001.jpg
//
// Timestamps always carry hours (two digits at least, more past 99 h),
// because players that assume MM:SS.mmm break on videos over an hour, and
// minutes and seconds always stay below 60. Durations are rounded to the
// nearest millisecond (halves round up), and cue ordering and span checks
// are made on the rounded values, so what is checked is what is written.
//
// Parse is a strict reader for the same subset of WebVTT; tests use it as an
// independent check of files thumbd writes. The package knows nothing about
// images, sprites or tasks: a cue's text is opaque.
package vtt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Cue is one WebVTT cue: a time span and its payload text.
type Cue struct {
	Start, End time.Duration
	Text       string
}

// Errors returned by Writer.Write for cues it refuses; test with errors.Is.
var (
	ErrNegativeTime = errors.New("vtt: negative timestamp")
	ErrEmptySpan    = errors.New("vtt: cue end is not after its start")
	ErrOutOfOrder   = errors.New("vtt: cue starts before the previous cue")
	ErrBlankLine    = errors.New("vtt: cue text contains a blank line")
	ErrArrow        = errors.New(`vtt: cue text contains "-->"`)
	ErrInvalidUTF8  = errors.New("vtt: cue text is not valid UTF-8")
)

// Header is the signature line every file starts with.
const Header = "WEBVTT"

// Timestamp formats d as a WebVTT timestamp, HH:MM:SS.mmm, rounding to the
// nearest millisecond (halves round up). Hours always appear, with at least
// two digits and as many more as needed (100 h is "100:00:00.000").
// Negative durations are formatted with a leading "-", which is not valid
// WebVTT; Writer rejects them before formatting.
func Timestamp(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
		d = -d
	}
	ms := millis(d)
	h := ms / 3_600_000
	m := ms / 60_000 % 60
	s := ms / 1000 % 60
	ms %= 1000
	return fmt.Sprintf("%s%02d:%02d:%02d.%03d", sign, h, m, s, ms)
}

// millis rounds a non-negative duration to the nearest millisecond.
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond/2) / time.Millisecond)
}

// Writer writes cues to a WebVTT file. It buffers its output: call Flush
// when done.
type Writer struct {
	w         *bufio.Writer
	err       error // sticky error from the underlying writer
	started   bool  // header written
	n         int   // cues written
	prevStart int64 // rounded start of the previous cue, in ms
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w)}
}

// Write validates c and writes it, preceded by the "WEBVTT" header and a
// blank line if it is the first cue. It rejects negative times, an End not
// after Start, a Start before the previous cue's Start (all compared after
// rounding to milliseconds), and text that contains "-->", a blank line
// (including leading or trailing line breaks) or invalid UTF-8. A rejected
// cue writes nothing and leaves the Writer usable; an error from the
// underlying io.Writer is sticky and returned by every later call.
// Line breaks inside Text (CRLF, CR or LF) are written as LF.
func (w *Writer) Write(c Cue) error {
	if w.err != nil {
		return w.err
	}
	text, err := w.check(c)
	if err != nil {
		return fmt.Errorf("%w: cue %d (%s --> %s)", err, w.n, Timestamp(c.Start), Timestamp(c.End))
	}
	w.header()
	w.w.WriteString(Timestamp(c.Start))
	w.w.WriteString(" --> ")
	w.w.WriteString(Timestamp(c.End))
	w.w.WriteByte('\n')
	if text != "" {
		w.w.WriteString(text)
		w.w.WriteByte('\n')
	}
	_, err = w.w.WriteString("\n")
	if err != nil {
		w.err = err
		return err
	}
	w.n++
	w.prevStart = millis(c.Start)
	return nil
}

// check validates c against the previous cue and returns its text with
// normalized line breaks.
func (w *Writer) check(c Cue) (string, error) {
	if c.Start < 0 || c.End < 0 {
		return "", ErrNegativeTime
	}
	start, end := millis(c.Start), millis(c.End)
	if end <= start {
		return "", ErrEmptySpan
	}
	if w.n > 0 && start < w.prevStart {
		return "", ErrOutOfOrder
	}
	if !utf8.ValidString(c.Text) {
		return "", ErrInvalidUTF8
	}
	if strings.Contains(c.Text, "-->") {
		return "", ErrArrow
	}
	if c.Text == "" {
		return "", nil
	}
	lines := splitLines(c.Text)
	for _, l := range lines {
		if l == "" {
			return "", ErrBlankLine
		}
	}
	return strings.Join(lines, "\n"), nil
}

func (w *Writer) header() {
	if !w.started {
		w.started = true
		w.w.WriteString(Header + "\n\n")
	}
}

// Flush writes any buffered data to the underlying io.Writer and returns
// the first error met so far. If no cue was written, Flush still writes the
// header, so an empty track is a valid WebVTT file rather than an empty one.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	w.header()
	if err := w.w.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// Error reports any error that has occurred during a previous Write or
// Flush on the underlying io.Writer. Rejected cues are not recorded here.
func (w *Writer) Error() error {
	return w.err
}

// splitLines splits s at WebVTT line terminators: CRLF, LF or CR.
func splitLines(s string) []string {
	var lines []string
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return append(lines, s)
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
}

// Parse reads a WebVTT file and returns its cues, rejecting anything the
// WebVTT authoring rules do not allow. It accepts: an optional UTF-8 BOM; a
// first line that is "WEBVTT" alone or followed by a space or tab and any
// text; then, after a blank line, blocks separated by blank lines. A block
// is a NOTE comment, a STYLE or REGION block before the first cue (both
// skipped), or a cue: an optional identifier line, a timing line
// "start --> end" with at least one space or tab around the arrow and
// optional cue settings after the end time (ignored), then payload lines.
// Timestamps must be HH:MM:SS.mmm (hours two or more digits) or MM:SS.mmm,
// with minutes and seconds below 60 and exactly three millisecond digits.
// Each cue's end must be after its start, and starts must not decrease.
// Lines may end in CRLF, LF or CR; cue text is returned joined with LF.
func Parse(r io.Reader) ([]Cue, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		return nil, errors.New("vtt: file is not valid UTF-8")
	}
	s := strings.TrimPrefix(string(data), "\uFEFF")
	if strings.ContainsRune(s, 0) {
		return nil, errors.New("vtt: file contains NUL")
	}
	lines := splitLines(s)
	// A final line terminator does not start another (empty) line.
	if n := len(lines); n > 1 && lines[n-1] == "" {
		lines = lines[:n-1]
	}

	sig := lines[0]
	if sig != Header && !strings.HasPrefix(sig, Header+" ") && !strings.HasPrefix(sig, Header+"\t") {
		return nil, fmt.Errorf("vtt: line 1: missing %q header, got %q", Header, sig)
	}
	if len(lines) > 1 && lines[1] != "" {
		return nil, fmt.Errorf("vtt: line 2: header must be followed by a blank line, got %q", lines[1])
	}

	var cues []Cue
	for i := 1; i < len(lines); {
		if lines[i] == "" {
			i++
			continue
		}
		// Collect one block: lines[i:j].
		j := i
		for j < len(lines) && lines[j] != "" {
			j++
		}
		block := lines[i:j]
		lineNo := i + 1
		i = j

		first := block[0]
		if isKeywordLine(first, "NOTE") || (len(cues) == 0 && (isKeywordLine(first, "STYLE") || isKeywordLine(first, "REGION"))) {
			for k, l := range block {
				if strings.Contains(l, "-->") {
					return nil, fmt.Errorf("vtt: line %d: %q in a %s block", lineNo+k, "-->", strings.Fields(first)[0])
				}
			}
			continue
		}

		timing := 0
		if !strings.Contains(first, "-->") {
			timing = 1 // an identifier line
			if len(block) < 2 {
				return nil, fmt.Errorf("vtt: line %d: block without a cue timing line: %q", lineNo, first)
			}
		}
		start, end, err := parseTiming(block[timing])
		if err != nil {
			return nil, fmt.Errorf("vtt: line %d: %w", lineNo+timing, err)
		}
		if end <= start {
			return nil, fmt.Errorf("vtt: line %d: cue end %s is not after its start %s", lineNo+timing, Timestamp(end), Timestamp(start))
		}
		if n := len(cues); n > 0 && start < cues[n-1].Start {
			return nil, fmt.Errorf("vtt: line %d: cue starts at %s, before the previous cue's %s", lineNo+timing, Timestamp(start), Timestamp(cues[n-1].Start))
		}
		payload := block[timing+1:]
		for k, l := range payload {
			if strings.Contains(l, "-->") {
				return nil, fmt.Errorf("vtt: line %d: %q in cue text", lineNo+timing+1+k, "-->")
			}
		}
		cues = append(cues, Cue{Start: start, End: end, Text: strings.Join(payload, "\n")})
	}
	return cues, nil
}

// isKeywordLine reports whether line is kw alone or kw followed by a space
// or tab.
func isKeywordLine(line, kw string) bool {
	return line == kw || strings.HasPrefix(line, kw+" ") || strings.HasPrefix(line, kw+"\t")
}

// parseTiming parses "start --> end[ settings]".
func parseTiming(line string) (start, end time.Duration, err error) {
	before, after, ok := strings.Cut(line, "-->")
	if !ok {
		return 0, 0, fmt.Errorf("no %q in timing line %q", "-->", line)
	}
	if !endsWithBlank(before) || !startsWithBlank(after) {
		return 0, 0, fmt.Errorf("timing line %q needs a space or tab on each side of %q", line, "-->")
	}
	startText := strings.TrimRight(before, " \t")
	if startText != strings.TrimLeft(startText, " \t") {
		return 0, 0, fmt.Errorf("timing line %q starts with white space", line)
	}
	rest := strings.TrimLeft(after, " \t")
	endText, settings, _ := strings.Cut(strings.ReplaceAll(rest, "\t", " "), " ")
	if strings.Contains(settings, "-->") {
		return 0, 0, fmt.Errorf("timing line %q has more than one %q", line, "-->")
	}
	if start, err = parseTimestamp(startText); err != nil {
		return 0, 0, err
	}
	if end, err = parseTimestamp(endText); err != nil {
		return 0, 0, err
	}
	return start, end, nil
}

func endsWithBlank(s string) bool   { return s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') }
func startsWithBlank(s string) bool { return s != "" && (s[0] == ' ' || s[0] == '\t') }

// parseTimestamp parses HH:MM:SS.mmm (HH two or more digits) or MM:SS.mmm.
func parseTimestamp(s string) (time.Duration, error) {
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("bad timestamp %q: %s", s, why)
	}
	clock, frac, ok := strings.Cut(s, ".")
	if !ok {
		return bad("want a '.' before exactly three millisecond digits")
	}
	if len(frac) != 3 || !allDigits(frac) {
		return bad("want exactly three millisecond digits after '.'")
	}
	parts := strings.Split(clock, ":")
	var hours string
	switch len(parts) {
	case 2:
		hours = "0"
	case 3:
		hours = parts[0]
		parts = parts[1:]
		if len(hours) < 2 || !allDigits(hours) {
			return bad("hours must be two or more digits")
		}
	default:
		return bad("want HH:MM:SS.mmm or MM:SS.mmm")
	}
	if len(parts[0]) != 2 || !allDigits(parts[0]) || len(parts[1]) != 2 || !allDigits(parts[1]) {
		return bad("minutes and seconds must be two digits each")
	}
	h, err := strconv.ParseInt(hours, 10, 64)
	if err != nil || h > int64(time.Duration(1<<63-1)/time.Hour)-1 {
		return bad("hours out of range")
	}
	m, _ := strconv.Atoi(parts[0])
	sec, _ := strconv.Atoi(parts[1])
	ms, _ := strconv.Atoi(frac)
	if m > 59 || sec > 59 {
		return bad("minutes and seconds must be below 60")
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
