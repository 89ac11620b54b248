package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A planned job runs as two ffmpeg processes joined by a pipe:
//
//	ffmpeg -copyts -ss S -t D -i SRC -map 0:V -c copy -bsf:v noise=drop=KEEP -f nut pipe:1
//	  | ffmpeg -copyts -f nut -i pipe:0 -filter_complex_script GRAPH -map [o0] ... out_%06d.jpg
//
// The first only demuxes (no decoding, about 1/100 of the cost of decoding
// a frame per packet) and drops, with the noise bitstream filter's drop
// expression, every packet outside the job's spans: the decoder sees only
// the runs from a keyframe to each frame asked for. The second decodes
// them, selects the frames asked for by their presentation time, scales
// them inside the decode graph and encodes each once. One source read, one
// demuxer and one decoder per job, whatever the number of frames.

// KeepExpr builds the noise bitstream filter's drop expression that keeps
// the packets of spans and drops all others. Packets arrive in decode
// order; a span opens at the keyframe whose byte position in the file is
// one of starts and closes after the packet whose position is one of ends.
// Packets are matched by position, not timestamp: ffmpeg 5.1 hands the
// filter timestamps in the muxer's time base while reporting the
// demuxer's, and a position is exact. Register 0 holds whether a span is
// open.
func KeepExpr(starts, ends []int64) string {
	s := slices.Clone(starts)
	e := slices.Clone(ends)
	slices.Sort(s)
	slices.Sort(e)
	end := inSet("pos", e)
	return fmt.Sprintf("if(ld(0),st(0,not(%s))*0,if(key*%s,st(0,not(%s))*0,1))", end, inSet("pos", s), end)
}

// inSet builds an expression that is 1 when v is one of the sorted values
// and 0 otherwise, as a balanced tree of comparisons: log2(n) of them per
// evaluation.
func inSet(v string, sorted []int64) string {
	switch len(sorted) {
	case 0:
		return "0"
	case 1:
		return fmt.Sprintf("eq(%s,%d)", v, sorted[0])
	}
	mid := len(sorted) / 2
	return fmt.Sprintf("if(lt(%s,%d),%s,%s)", v, sorted[mid], inSet(v, sorted[:mid]), inSet(v, sorted[mid:]))
}

// inWindows builds an expression that is 1 when v falls in one of the
// sorted, disjoint windows and 0 otherwise, as a balanced tree of
// comparisons: log2(n) of them per evaluation.
func inWindows(v string, ws []Window) string {
	switch len(ws) {
	case 0:
		return "0"
	case 1:
		return fmt.Sprintf("between(%s,%s,%s)", v, fsec(ws[0].Lo), fsec(ws[0].Hi))
	}
	mid := len(ws) / 2
	return fmt.Sprintf("if(lt(%s,%s),%s,%s)", v, fsec(ws[mid].Lo), inWindows(v, ws[:mid]), inWindows(v, ws[mid:]))
}

// Window is a closed interval of presentation times, in seconds.
type Window struct{ Lo, Hi float64 }

// SelectExpr builds a select filter expression that passes the frames whose
// time t falls in one of the sorted, disjoint windows.
func SelectExpr(ws []Window) string { return inWindows("t", ws) }

func fsec(f float64) string { return strconv.FormatFloat(f, 'f', 7, 64) }

// CopyArgs builds the demuxing half of a job: read src from seek (relative
// to the start of the file, with timestamps kept) for at most dur, keep
// video stream `stream` with the packets keep lets through, and write them
// as NUT to stdout. Packets before the seek point, or before the start of
// an edit list, are not dropped by ffmpeg but left to keep. Timestamps are
// written as they are, plus offset: NUT takes no negative timestamp, so a
// stream that has some (the hidden start of an edit list) is shifted by
// offset, and the decoder's side subtracts it.
func CopyArgs(src string, stream int, seek, dur, offset time.Duration, keep string) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-copyts",
		"-ss", FormatSeconds(seek), "-t", FormatSeconds(dur)}
	args = append(args, InputArgs(src)...)
	args = append(args, "-map", "0:"+strconv.Itoa(stream), "-c", "copy", "-copypriorss", "1", "-bsf:v", "noise=drop='"+keep+"'")
	if offset > 0 {
		args = append(args, "-output_ts_offset", FormatSeconds(offset))
	}
	return append(args, "-avoid_negative_ts", "disabled", "-f", "nut", "pipe:1")
}

// Render is how a decoded frame becomes an image file.
type Render struct {
	Filter string   // ffmpeg filters after decoding (scale, pad, format)
	Codec  []string // encoder options
	Ext    string   // file extension
}

func (r Render) key() string { return r.Filter + "\x00" + strings.Join(r.Codec, " ") + "\x00" + r.Ext }

// Branch is one rendering of the frames one input delivers.
type Branch struct {
	Select string // select expression; empty: every frame (an input seek's first)
	Render Render
	Frames int    // frames to write
	Out    string // a file, or an image2 pattern with %06d: one file per frame, numbered from 1
}

// Input is one input of a decoding process.
type Input struct {
	Options  []string // input options before -i
	URL      string
	Branches []Branch
}

// DecodeArgs builds a decoding process and its filter graph (to be written
// to the file graphPath, so that long select expressions do not meet the
// command-line length limit). Branch n, counted across inputs, reports the
// frames it passes through a showinfo filter named showinfo@bn.
func DecodeArgs(inputs []Input, graphPath string) (args []string, graph string) {
	args = []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-y", "-copyts"}
	for _, in := range inputs {
		args = append(args, in.Options...)
		args = append(args, InputArgs(in.URL)...)
	}
	args = append(args, "-filter_complex_script", graphPath)
	var g strings.Builder
	n := 0
	for i, in := range inputs {
		src := fmt.Sprintf("[%d:v:0]", i)
		labels := make([]string, len(in.Branches))
		if len(in.Branches) > 1 {
			g.WriteString(src)
			fmt.Fprintf(&g, "split=%d", len(in.Branches))
			for b := range in.Branches {
				labels[b] = fmt.Sprintf("[i%db%d]", i, b)
				g.WriteString(labels[b])
			}
			g.WriteString(";\n")
		} else {
			labels[0] = src
		}
		for b, br := range in.Branches {
			g.WriteString(labels[b])
			if br.Select != "" {
				fmt.Fprintf(&g, "select='%s',", br.Select)
			}
			fmt.Fprintf(&g, "showinfo@b%d", n)
			if br.Render.Filter != "" {
				g.WriteString("," + br.Render.Filter)
			}
			fmt.Fprintf(&g, "[o%d];\n", n)
			args = append(args, "-map", fmt.Sprintf("[o%d]", n), "-fps_mode", "passthrough",
				"-frames:v", strconv.Itoa(br.Frames))
			args = append(args, br.Render.Codec...)
			if strings.Contains(br.Out, "%") {
				args = append(args, "-f", "image2", "-start_number", "1", br.Out)
			} else {
				args = append(args, "-f", "image2", "-update", "1", br.Out)
			}
			n++
		}
	}
	return args, strings.TrimSuffix(g.String(), ";\n") + "\n"
}

var (
	showinfoBTB    = regexp.MustCompile(`\[showinfo@b(\d+) @ [^\]]*\] (?:\[\w+\] )?config in time_base: (\d+)/(\d+)`)
	showinfoBFrame = regexp.MustCompile(`\[showinfo@b(\d+) @ [^\]]*\] (?:\[\w+\] )?n: *(\d+) pts: *(-?\d+) .*?iskey:(\d)`)
)

// ParseBranches reads a decoding process's log and returns, per branch,
// the frames its showinfo filter saw, in order.
func ParseBranches(log []byte) map[int][]FrameInfo {
	tbs := map[int][2]int64{}
	out := map[int][]FrameInfo{}
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := showinfoBTB.FindStringSubmatch(line); m != nil {
			i, _ := strconv.Atoi(m[1])
			num, _ := strconv.ParseInt(m[2], 10, 64)
			den, _ := strconv.ParseInt(m[3], 10, 64)
			tbs[i] = [2]int64{num, den}
			continue
		}
		m := showinfoBFrame.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		tb, ok := tbs[i]
		if !ok || tb[1] == 0 {
			continue
		}
		pts, _ := strconv.ParseInt(m[3], 10, 64)
		x := FrameIndex{TBNum: tb[0], TBDen: tb[1]}
		out[i] = append(out[i], FrameInfo{PTS: x.ticksToTime(pts), Keyframe: m[4] == "1"})
	}
	return out
}

// runPipeline runs the demuxing process into the decoding one. The
// decoder's log is returned; onLine sees each of its lines as they come.
// The decoder may stop first, once it has written every frame: the
// demuxer's broken pipe is then not an error.
func (r Runner) runPipeline(ctx context.Context, copyArgs, decodeArgs []string, onLine func(string)) ([]byte, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	copier := r.command(ctx, r.FFmpeg, copyArgs)
	var copyErr bytes.Buffer
	copier.Stdout = pw
	copier.Stderr = &copyErr

	dec := r.command(ctx, r.FFmpeg, decodeArgs)
	dec.Stdin = pr
	stderr, err := dec.StderrPipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	if err := copier.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, &ExecError{Tool: r.FFmpeg, Err: err}
	}
	defer r.track(r.FFmpeg)()
	pw.Close()
	if err := dec.Start(); err != nil {
		pr.Close()
		_ = copier.Process.Kill()
		_ = copier.Wait()
		return nil, &ExecError{Tool: r.FFmpeg, Err: err}
	}
	defer r.track(r.FFmpeg)()
	pr.Close()
	var log bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() {
		br := bufio.NewReaderSize(stderr, 64*1024)
		for {
			line, err := br.ReadString('\n')
			log.WriteString(line)
			if onLine != nil && strings.HasSuffix(line, "\n") {
				onLine(line)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					io.Copy(&log, br)
				}
				return
			}
		}
	})
	wg.Wait()
	decErr := dec.Wait()
	// The decoder is done; the demuxer may still be reading past the last
	// span's end (its -t bound) with nothing left to write.
	_ = copier.Process.Signal(syscall.SIGTERM)
	_ = copier.Wait()
	if ctx.Err() != nil {
		return log.Bytes(), ctx.Err()
	}
	if decErr != nil {
		t := tail(log.Bytes(), 3)
		if c := strings.TrimSpace(copyErr.String()); c != "" {
			t = c + "; " + t
		}
		return log.Bytes(), &ExecError{Tool: r.FFmpeg, Err: decErr, Tail: t}
	}
	return log.Bytes(), nil
}
