// Package ffmpeg drives ffmpeg and ffprobe: the Runner that starts and
// stops them, Probe (what a source holds), the frame index (every packet's
// timestamp, keyframe flag and byte position, from one ffprobe run), the
// extraction planner that resolves requested times to frames and groups
// them into runs, and the two-process pipeline that extracts them
// (Extractor). It knows nothing of tasks: package engine decides what to
// extract and what becomes of the images.
package ffmpeg

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Grab is one frame to render: passed through Filter and encoded to Out.
type Grab struct {
	Filter string   // ffmpeg filter chain applied after the frame is decoded
	Codec  []string // encoder options, e.g. {"-c:v", "png"}
	Out    string   // output file path
}

// LastFrameArgs builds an ffmpeg invocation that writes the last decodable
// frame of src to out: it starts a few seconds before the end and keeps
// overwriting the output with each frame.
func LastFrameArgs(src string, g Grab) []string {
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-y", "-copyts",
		"-threads", "1", "-noautorotate", "-sseof", "-3"}
	args = append(args, InputArgs(src)...)
	args = append(args, "-map", "0:v:0", "-an", "-sn", "-dn")
	chain := "showinfo@g0"
	if g.Filter != "" {
		chain += "," + g.Filter
	}
	args = append(args, "-filter:v", chain)
	args = append(args, g.Codec...)
	return append(args, "-f", "image2", "-update", "1", g.Out)
}

// RotateFilter is the filter that turns a decoded picture the way a player
// shows it, for a rotation of 0, 90, 180 or 270 degrees clockwise (what
// ffmpeg's autorotate inserts; thumbd inserts it itself because its planned
// runs decode from a NUT pipe, which carries no display matrix).
func RotateFilter(rotation int) string {
	switch rotation {
	case 90:
		return "transpose=clock"
	case 180:
		return "hflip,vflip"
	case 270:
		return "transpose=cclock"
	}
	return ""
}

// InputArgs are the options that open src as an input. An http source may
// only lead ffmpeg to more http: a playlist or a reference inside it cannot
// make ffmpeg open local files or other protocols (the source gateway
// refuses playlists besides).
func InputArgs(src string) []string {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return []string{"-protocol_whitelist", "http,https,tcp,tls", "-i", src}
	}
	return []string{"-i", src}
}

// FormatSeconds renders d as seconds with microsecond precision, the unit
// ffmpeg's time options use internally.
func FormatSeconds(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 6, 64)
}

// FrameInfo is what showinfo reported about a frame that reached an
// output.
type FrameInfo struct {
	PTS      time.Duration // presentation time, as in the source (-copyts)
	Keyframe bool
}

var (
	showinfoTB    = regexp.MustCompile(`\[showinfo@g(\d+) @ [^\]]*\] (?:\[\w+\] )?config in time_base: (\d+)/(\d+)`)
	showinfoFrame = regexp.MustCompile(`\[showinfo@g(\d+) @ [^\]]*\] (?:\[\w+\] )?n: *(\d+) pts: *(-?\d+) .*?iskey:(\d)`)
)

// seconds converts floating-point seconds to a Duration, rounded to the
// microsecond.
func seconds(s float64) time.Duration {
	return (time.Duration(s*1e6+0.5*sign(s)) * time.Microsecond)
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}

// Runner runs ffmpeg and ffprobe.
type Runner struct {
	FFmpeg  string // path or name of ffmpeg
	FFprobe string // path or name of ffprobe
	// Processes, when set, is told of each process the Runner starts and
	// of its end (for metrics).
	Processes ProcessObserver
}

// ProcessObserver is told when a Runner starts a process and when it has
// ended; tool is "ffmpeg" or "ffprobe". package internal/metrics
// implements it.
type ProcessObserver interface {
	ProcessStarted(tool string)
	ProcessEnded(tool string)
}

// track tells the observer that a process of bin started, and returns the
// function that tells it the process ended.
func (r Runner) track(bin string) func() {
	if r.Processes == nil {
		return func() {}
	}
	tool := "ffmpeg"
	if bin == r.FFprobe {
		tool = "ffprobe"
	}
	r.Processes.ProcessStarted(tool)
	return func() { r.Processes.ProcessEnded(tool) }
}

// ExecError is a failed ffmpeg or ffprobe run, with the end of its log.
type ExecError struct {
	Tool string
	Err  error
	Tail string // last lines of stderr
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("%s failed: %v", e.Tool, e.Err)
	if e.Tail != "" {
		msg += ": " + e.Tail
	}
	return msg
}

func (e *ExecError) Unwrap() error { return e.Err }

// command is tool with args, stopped gracefully when ctx ends: SIGTERM,
// then SIGKILL after a grace period. Every process the Runner starts is made
// here, and tracked (track) from its start to its end.
func (r Runner) command(ctx context.Context, tool string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	return cmd
}

// run executes tool with args, stops it gracefully when ctx ends, and
// returns its stdout and stderr.
func (r Runner) run(ctx context.Context, tool string, args []string) (stdout, stderr []byte, err error) {
	cmd := r.command(ctx, tool, args)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err = cmd.Start()
	if err == nil {
		done := r.track(tool)
		err = cmd.Wait()
		done()
	}
	if err != nil {
		if ctx.Err() != nil {
			return out.Bytes(), errb.Bytes(), ctx.Err()
		}
		return out.Bytes(), errb.Bytes(), &ExecError{Tool: tool, Err: err, Tail: tail(errb.Bytes(), 3)}
	}
	return out.Bytes(), errb.Bytes(), nil
}

// Run runs ffmpeg with args and returns its stdout and stderr; when ctx
// ends, ffmpeg is stopped gracefully and ctx's error returned.
func (r Runner) Run(ctx context.Context, args []string) (stdout, stderr []byte, err error) {
	return r.run(ctx, r.FFmpeg, args)
}

// tail returns the last n non-empty lines of log that are not showinfo or
// progress noise, joined with "; ".
func tail(log []byte, n int) string {
	var keep []string
	for _, l := range strings.Split(string(log), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, "showinfo@") || strings.HasPrefix(l, "frame=") {
			continue
		}
		keep = append(keep, l)
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}

// Check reports whether ffmpeg and ffprobe can be run.
func (r Runner) Check(ctx context.Context) error {
	for _, tool := range []string{r.FFmpeg, r.FFprobe} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: %w", tool, err)
		}
	}
	return nil
}
