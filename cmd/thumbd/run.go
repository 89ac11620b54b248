package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/thumbd/thumbd/api"
	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/storage"
)

// Exit codes of thumbd run.
const (
	exitCompleted = 0 // the task completed
	exitTaskError = 1 // the task ended in error (its status says why)
	exitUsage     = 2 // bad flags or query: no task ran
)

const runUsage = `Usage:
  thumbd run [flags] QUERY.json    run a Qencode query ({"query": {...}}) from a file
  thumbd run [flags] -             ... read from stdin
  thumbd run -source VIDEO [-interval 10 | -times 1,50%] [-size 320x180] [-sprite] [-format jpg]

Runs one task with thumbd's engine, without the server: the source may be a
local file path; outputs without a destination are written to -out, the
others go to their destinations (S3). Progress goes to stderr, the task's
final status (as /v1/status reports it) to stdout. Exit code 0: completed;
1: the task ended in error; 2: bad flags or query. THUMBD_* settings apply
(ffmpeg, accuracy, workers, S3 hosts over http, private networks).

`

// runFlags are thumbd run's own flags.
type runFlags struct {
	out, source, interval, times, size, format, progress string
	sprite, allowPrivate, verbose                        bool
}

// runCommand is `thumbd run`.
func runCommand(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("thumbd run", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var f runFlags
	fs.StringVar(&f.out, "out", ".", "directory for the files of outputs without a destination")
	fs.StringVar(&f.source, "source", "", "video to read (a file path, or an http(s)/s3 URL) when no query is given")
	fs.StringVar(&f.interval, "interval", "", "seconds between thumbnails: a series (thumbnails) with its VTT")
	fs.StringVar(&f.times, "times", "", "comma-separated times of single thumbnails: seconds (12.5) or percentages of the duration (50%)")
	fs.StringVar(&f.size, "size", "", "image size: WxH (320x180, aspect kept inside the box) or a width (320)")
	fs.BoolVar(&f.sprite, "sprite", false, "tile the series into sprite sheets (with -interval)")
	fs.StringVar(&f.format, "format", "", "image format: png (default), jpg or webp")
	fs.StringVar(&f.progress, "progress", "auto", "progress on stderr: bar, lines, none, or auto (a bar on a terminal, else lines)")
	fs.BoolVar(&f.allowPrivate, "allow-private", false, "let the source and destinations be on loopback or private addresses (env THUMBD_ALLOW_PRIVATE_NETWORKS)")
	fs.BoolVar(&f.verbose, "v", false, "log what thumbd does (info level) to stderr")
	fs.Usage = func() {
		fmt.Fprint(env.stderr, runUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitCompleted
		}
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "thumbd run: "+format+"\n", a...)
		return exitUsage
	}

	var raw []byte
	switch {
	case fs.NArg() > 1:
		return fail("give one query file (or - for stdin), got %q", fs.Args())
	case fs.NArg() == 1 && (f.source != "" || f.interval != "" || f.times != "" || f.size != "" || f.sprite || f.format != ""):
		return fail("give either a query or -source and its flags, not both")
	case fs.NArg() == 1:
		var err error
		if name := fs.Arg(0); name == "-" {
			raw, err = io.ReadAll(env.stdin)
		} else {
			raw, err = os.ReadFile(name)
		}
		if err != nil {
			return fail("reading the query: %v", err)
		}
	case f.source != "":
		q, err := flagQuery(f)
		if err != nil {
			return fail("%v", err)
		}
		raw = q
	default:
		fs.Usage()
		return exitUsage
	}

	cfg, err := app.LoadConfig(nil, env.getenv, io.Discard)
	if err != nil {
		return fail("%v", err)
	}
	cfg.AllowPrivateNetworks = cfg.AllowPrivateNetworks || f.allowPrivate
	raw, dirs, err := localSource(raw)
	if err != nil {
		return fail("%v", err)
	}
	cfg.SourceDirs = append(cfg.SourceDirs, dirs...)
	spec, err := api.ParseQuery(string(raw))
	if err != nil {
		return fail("query: %v", err)
	}

	work, err := os.MkdirTemp("", "thumbd-run-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(work)
	cfg.DataDir = work
	out, err := filepath.Abs(f.out)
	if err == nil {
		err = os.MkdirAll(out, 0o755)
	}
	if err != nil {
		return fail("-out: %v", err)
	}
	files, err := storage.NewLocal(out)
	if err != nil {
		return fail("-out: %v", err)
	}

	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	show := newProgress(f.progress, env.stderr)
	snap, err := app.RunTask(ctx, cfg, log, spec, app.TaskOptions{Files: untokened{files}, Progress: show.update})
	show.done(err == nil && snap.State == engine.StateCompleted)
	if err != nil {
		fmt.Fprintln(env.stderr, "thumbd run:", err)
		return exitTaskError
	}
	status, err := runStatus(snap, out)
	if err != nil {
		fmt.Fprintln(env.stderr, "thumbd run:", err)
		return exitTaskError
	}
	env.stdout.Write(status)
	if snap.State != engine.StateCompleted {
		fmt.Fprintf(env.stderr, "thumbd run: the task ended in %s: %s\n", snap.State, snap.Error)
		return exitTaskError
	}
	return exitCompleted
}

// flagQuery builds the query the flags describe.
func flagQuery(f runFlags) ([]byte, error) {
	common := map[string]any{}
	if f.size != "" {
		w, h, ok := strings.Cut(f.size, "x")
		if _, err := strconv.Atoi(w); err != nil {
			return nil, fmt.Errorf("-size: want WxH or a width, like 320x180 or 320, got %q", f.size)
		}
		if ok {
			if _, err := strconv.Atoi(h); err != nil {
				return nil, fmt.Errorf("-size: want WxH or a width, like 320x180 or 320, got %q", f.size)
			}
			common["size"] = f.size
		} else {
			common["width"] = w
		}
	}
	if f.format != "" {
		common["image_format"] = f.format
	}
	output := func(kind string, fields map[string]any) map[string]any {
		o := map[string]any{"output": kind}
		for k, v := range common {
			o[k] = v
		}
		for k, v := range fields {
			o[k] = v
		}
		return o
	}
	var formats []map[string]any
	if f.interval != "" {
		fields := map[string]any{"interval": f.interval}
		if f.sprite {
			fields["sprite"] = 1
		}
		formats = append(formats, output("thumbnails", fields))
	} else if f.sprite {
		return nil, errors.New("-sprite needs -interval")
	}
	if f.times != "" {
		for _, t := range strings.Split(f.times, ",") {
			t = strings.TrimSpace(t)
			if pct, ok := strings.CutSuffix(t, "%"); ok {
				p, err := strconv.ParseFloat(pct, 64)
				if err != nil || p < 0 || p > 100 {
					return nil, fmt.Errorf("-times: %q is not a percentage from 0%% to 100%%", t)
				}
				formats = append(formats, output("thumbnail", map[string]any{"time": strconv.FormatFloat(p/100, 'f', -1, 64), "user_tag": t}))
				continue
			}
			if s, err := strconv.ParseFloat(t, 64); err != nil || s < 0 {
				return nil, fmt.Errorf("-times: %q is neither seconds (12.5) nor a percentage (50%%)", t)
			}
			formats = append(formats, output("thumbnail", map[string]any{"start_time": t, "user_tag": t}))
		}
	}
	if len(formats) == 0 {
		formats = append(formats, output("thumbnail", nil)) // at the start, as Qencode does
	}
	return json.Marshal(map[string]any{"query": map[string]any{"source": f.source, "format": formats}})
}

// localSource turns a query's source that is a local path into a file://
// URL, and returns the directory file:// sources may then be read from.
func localSource(raw []byte) ([]byte, []string, error) {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &outer); err != nil {
		return raw, nil, nil // the query parser says what is wrong
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(outer["query"], &inner); err != nil {
		return raw, nil, nil
	}
	var src string
	if err := json.Unmarshal(inner["source"], &src); err != nil || src == "" {
		return raw, nil, nil
	}
	var file string
	if u, err := url.Parse(src); err == nil && u.Scheme == "file" {
		file = u.Path
	} else if !strings.Contains(src, "://") && !strings.HasPrefix(src, "tus:") {
		abs, err := filepath.Abs(src)
		if err != nil {
			return nil, nil, err
		}
		file = abs
	} else {
		return raw, nil, nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return nil, nil, fmt.Errorf("source: %v", err)
	}
	if fi.IsDir() {
		return nil, nil, fmt.Errorf("source: %s is a directory; give a video file", file)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(file)}
	inner["source"], _ = json.Marshal(u.String())
	if outer["query"], err = json.Marshal(inner); err != nil {
		return nil, nil, err
	}
	raw, err = json.Marshal(outer)
	return raw, []string{filepath.Dir(file)}, err
}

// untokened keeps files under their names without the task token's
// folder: -out gets thumbnail-0.png, thumbnails-1/thumb_0001.png, ...
type untokened struct{ files *storage.Local }

func (u untokened) Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error) {
	if _, rest, ok := strings.Cut(name, "/"); ok {
		name = rest
	}
	return u.files.Put(ctx, name, body, contentType)
}

// runStatus renders the task's status as /v1/status does, with each kept
// file's url a file:// URL in out, and no status_url (there is no server
// to ask).
func runStatus(snap engine.Snapshot, out string) ([]byte, error) {
	const base = "http://thumbd.invalid"
	raw, err := json.Marshal(wire.TaskStatus(snap, base))
	if err != nil {
		return nil, err
	}
	dir := (&url.URL{Scheme: "file", Path: filepath.ToSlash(out) + "/"}).String()
	raw = bytes.ReplaceAll(raw, []byte(`"`+base+`/storage/`), []byte(`"`+dir))
	raw = regexp.MustCompile(`"status_url":"[^"]*",?`).ReplaceAll(raw, nil)
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// progress shows a task's progress on stderr.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer // the bar's
	lines io.Writer
	last  engine.State
	start time.Time
}

// newProgress shows progress as mode says: bar, lines, none or auto.
func newProgress(mode string, w io.Writer) *progress {
	if mode == "auto" {
		mode = "lines"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	p := &progress{start: time.Now(), w: w}
	switch mode {
	case "bar":
		p.bar = progressbar.NewOptions(100,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("queued"),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(50*time.Millisecond),
		)
	case "lines":
		p.lines = w
	}
	return p
}

func (p *progress) update(s engine.Snapshot) {
	switch {
	case p.bar != nil:
		if s.State != p.last {
			p.bar.Describe(fmt.Sprintf("%-11s", s.State))
		}
		_ = p.bar.Set(int(s.Percent))
	case p.lines != nil && s.State != p.last:
		fmt.Fprintf(p.lines, "thumbd run: %-11s %3.0f%%  %5.1fs\n", s.State, s.Percent, time.Since(p.start).Seconds())
	}
	p.last = s.State
}

// done ends the bar: full if the task completed, where it stopped if not.
func (p *progress) done(completed bool) {
	if p.bar == nil {
		return
	}
	if completed {
		_ = p.bar.Finish()
	} else {
		_ = p.bar.Exit()
	}
	fmt.Fprintln(p.w)
}
