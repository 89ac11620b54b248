package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// ParseProgress reads ffmpeg's -progress output and calls f with each
// out_time it reports, and once more with the end when progress=end.
func ParseProgress(r io.Reader, f func(outTime time.Duration, end bool)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	var last time.Duration
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "out_time_us":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				last = time.Duration(n) * time.Microsecond
				f(last, false)
			}
		case "progress":
			if v == "end" {
				f(last, true)
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// RunProgress runs ffmpeg with args that include "-progress pipe:1", and
// passes each reported output time to f. It stops ffmpeg the way every run
// is stopped when ctx ends.
func (r Runner) RunProgress(ctx context.Context, args []string, f func(outTime time.Duration)) error {
	cmd := r.command(ctx, r.FFmpeg, args)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Env = append(os.Environ(), "SVT_LOG=1") // SVT-AV1 prints a banner to stderr otherwise
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return &ExecError{Tool: r.FFmpeg, Err: err}
	}
	defer r.track(r.FFmpeg)()
	ParseProgress(out, func(t time.Duration, _ bool) { f(t) })
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ExecError{Tool: r.FFmpeg, Err: err, Tail: tail(errb.Bytes(), 3)}
	}
	return nil
}
