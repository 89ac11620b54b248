// Command bench measures thumbd's frame extraction against three ways of
// making the same thumbnails with ffmpeg alone, on sources it generates
// (and caches under bench/.cache), and prints a Markdown table.
//
//	go run ./bench                       # everything
//	go run ./bench -sources clip30       # one source
//	go run ./bench -methods thumbd-exact,keyframes
//
// Every method runs as a child process of this program, so that its wall
// time, its CPU time (user + system, its ffmpeg processes included) and its
// peak memory (the sum over its process tree, sampled every 10 ms for the
// first second and every 100 ms after, PSS on every fifth sample) are
// measured the same way. Every image is then checked by the frame number
// painted in its top rows: "frames off" is the largest distance, in frames,
// between the frame an image shows and the first frame at or after the time
// it stands for.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/internal/frametest"
)

// methods, in the order they run and print.
var methods = []struct {
	name, desc string
}{
	{"thumbd-exact", "thumbd's planner, exact accuracy (the default)"},
	{"thumbd-keyframe", "thumbd's planner, keyframe accuracy"},
	{"seeks", "one ffmpeg process per thumbnail, `-ss T -i src -frames:v 1`, as many at once as cores"},
	{"fps", "one pass, `-vf fps=1/interval`"},
	{"keyframes", "one pass decoding keyframes only, `-skip_frame nokey` + `select` one per interval"},
}

const thumbWidth = 320

func main() {
	child := flag.String("child", "", "internal: run one method")
	src := flag.String("src", "", "internal: source file")
	out := flag.String("out", "", "internal: output folder")
	interval := flag.Float64("interval", 0, "internal: seconds between thumbnails")
	dur := flag.Float64("dur", 0, "internal: duration of the source")
	cache := flag.String("cache", "bench/.cache", "where generated sources are kept")
	only := flag.String("sources", "", "comma-separated sources to run (default all: "+names()+")")
	onlyMethods := flag.String("methods", "", "comma-separated methods to run (default all)")
	md := flag.String("md", "", "also write the table to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *child != "" {
		if err := runChild(ctx, *child, *src, *out, *interval, *dur); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, *cache, *only, *onlyMethods, *md); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func names() string {
	var n []string
	for _, s := range sources {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

// result is one method's measurement on one source.
type result struct {
	method      string
	wall, cpu   time.Duration
	rss, pss    int64 // peak bytes, summed over the process tree
	images      int
	want        int
	framesOff   int           // largest distance from the exact frame
	misreported int           // thumbd only: images whose reported time is not the frame they show
	pollCPU     time.Duration // what measuring memory cost this process meanwhile
	err         error
}

func run(ctx context.Context, cache, only, onlyMethods, md string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var report strings.Builder
	fmt.Fprintf(&report, "Machine: %s, %d cores, %s; %s; load average before the run: %s.\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), ffmpegVersion(), loadAvg())
	for _, s := range sources {
		if only != "" && !slices.Contains(strings.Split(only, ","), s.name) {
			continue
		}
		file, err := s.ensure(ctx, cache)
		if err != nil {
			return err
		}
		n := int(math.Ceil(s.dur/s.interval - 1e-9))
		fmt.Fprintf(&report, "**%s**: %s; %d thumbnails, one every %g s, %d px wide JPEG.\n\n",
			s.name, s.desc, n, s.interval, thumbWidth)
		fmt.Fprintf(&report, "| method | wall | CPU | peak RSS | peak PSS | baseline ÷ thumbd exact | baseline ÷ thumbd keyframe | frames off (max) | images |\n")
		fmt.Fprintf(&report, "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		var rs []result
		for _, m := range methods {
			if onlyMethods != "" && !slices.Contains(strings.Split(onlyMethods, ","), m.name) {
				continue
			}
			fmt.Fprintf(os.Stderr, "%s: %s ...\n", s.name, m.name)
			r := measure(ctx, self, m.name, s, file)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", s.name, m.name, r.err)
			}
			fmt.Fprintf(os.Stderr, "  wall %.2fs cpu %.2fs rss %dMB pss %dMB images %d/%d frames off %d (sampling cost %.2fs cpu)\n",
				r.wall.Seconds(), r.cpu.Seconds(), r.rss>>20, r.pss>>20, r.images, r.want, r.framesOff, r.pollCPU.Seconds())
			rs = append(rs, r)
		}
		byName := map[string]result{}
		for _, r := range rs {
			byName[r.method] = r
		}
		ratio := func(r result, base string) string {
			b, ok := byName[base]
			if !ok || b.err != nil || r.err != nil || strings.HasPrefix(r.method, "thumbd") {
				return ""
			}
			return fmt.Sprintf("%.1f×", r.wall.Seconds()/b.wall.Seconds())
		}
		for _, r := range rs {
			off := strconv.Itoa(r.framesOff)
			if r.misreported > 0 {
				off += fmt.Sprintf(" (%d misreported)", r.misreported)
			}
			if r.err != nil {
				off = "failed: " + r.err.Error()
			}
			fmt.Fprintf(&report, "| %s | %.2f s | %.2f s | %d MB | %d MB | %s | %s | %s | %d/%d |\n",
				r.method, r.wall.Seconds(), r.cpu.Seconds(), r.rss>>20, r.pss>>20,
				ratio(r, "thumbd-exact"), ratio(r, "thumbd-keyframe"), off, r.images, r.want)
		}
		report.WriteString("\n")
		report.WriteString(targets(byName))
		report.WriteString("\n")
	}
	fmt.Print(report.String())
	if md != "" {
		return os.WriteFile(md, []byte(report.String()), 0o644)
	}
	return nil
}

// targets checks the targets on one source's results.
func targets(r map[string]result) string {
	var b strings.Builder
	check := func(name string, ok bool, got string) {
		mark := "met"
		if !ok {
			mark = "**missed**"
		}
		fmt.Fprintf(&b, "- %s: %s (%s)\n", name, mark, got)
	}
	ex, okEx := r["thumbd-exact"]
	kf, okKf := r["thumbd-keyframe"]
	if fps, ok := r["fps"]; ok && okEx {
		x := fps.wall.Seconds() / ex.wall.Seconds()
		check("exact ≥ 8× faster than the one-pass fps filter", x >= 8, fmt.Sprintf("%.1f×", x))
	}
	if sk, ok := r["seeks"]; ok && okEx {
		x := sk.wall.Seconds() / ex.wall.Seconds()
		check("exact ≥ 10× faster than per-process seeks", x >= 10, fmt.Sprintf("%.1f×", x))
	}
	if k, ok := r["keyframes"]; ok && okKf {
		x := kf.wall.Seconds() / k.wall.Seconds()
		check("keyframe mode within 1.5× of the keyframe-only decode", x <= 1.5, fmt.Sprintf("%.2f× its time", x))
	}
	var peak int64
	for _, name := range []string{"thumbd-exact", "thumbd-keyframe"} {
		if x, ok := r[name]; ok {
			peak = max(peak, x.rss)
		}
	}
	if okEx || okKf {
		check("thumbd's peak memory under 300 MB (RSS summed over its processes)", peak < 300<<20, fmt.Sprintf("%d MB", peak>>20))
	}
	if okEx {
		check("exact mode delivers the exact frame", ex.framesOff == 0 && ex.misreported == 0 && ex.images == ex.want,
			fmt.Sprintf("%d frames off at most, %d misreported, %d/%d images", ex.framesOff, ex.misreported, ex.images, ex.want))
	}
	return b.String()
}

// measure runs one method in a child process and checks its images.
func measure(ctx context.Context, self, method string, s source, file string) result {
	r := result{method: method, want: int(math.Ceil(s.dur/s.interval - 1e-9))}
	out, err := os.MkdirTemp("", "thumbd-bench-")
	if err != nil {
		r.err = err
		return r
	}
	defer os.RemoveAll(out)
	cmd := exec.CommandContext(ctx, self, "-child", method, "-src", file, "-out", out,
		"-interval", strconv.FormatFloat(s.interval, 'f', -1, 64), "-dur", strconv.FormatFloat(s.dur, 'f', -1, 64))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	var self0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		r.err = err
		return r
	}
	stopPoll := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		// Every 10 ms for the first second (short runs), then every 100 ms.
		for n := 0; ; n++ {
			rss, pss := treeMemory(cmd.Process.Pid, n%5 == 0)
			r.rss, r.pss = max(r.rss, rss), max(r.pss, pss)
			wait := 100 * time.Millisecond
			if time.Since(began) < time.Second {
				wait = 10 * time.Millisecond
			}
			select {
			case <-stopPoll:
				return
			case <-time.After(wait):
			}
		}
	})
	err = cmd.Wait()
	r.wall = time.Since(began)
	close(stopPoll)
	wg.Wait()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.rss = max(r.rss, ru.Maxrss<<10) // the largest single process, if sampling missed it
	}
	var self1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	r.pollCPU = time.Duration(self1.Utime.Nano() - self0.Utime.Nano() + self1.Stime.Nano() - self0.Stime.Nano())
	if err != nil {
		r.err = err
		return r
	}
	r.err = check(&r, s, out)
	return r
}

// check reads every image's painted frame number.
func check(r *result, s source, out string) error {
	files, err := filepath.Glob(filepath.Join(out, "*.jpg"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	r.images = len(files)
	var reported []float64
	if b, err := os.ReadFile(filepath.Join(out, "results.json")); err == nil {
		if err := json.Unmarshal(b, &reported); err != nil {
			return err
		}
	}
	fps := s.fps()
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		img, _, err := frametest.Decode(b)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		band := frametest.Band{Rect: img.Bounds(), SrcH: s.h, BandH: s.band, Bits: s.bits}
		n, err := band.FrameNumber(img)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		at := float64(i) * s.interval
		want := int(math.Ceil(at*fps - 1e-6))
		r.framesOff = max(r.framesOff, abs(n-want))
		if i < len(reported) && math.Abs(reported[i]-float64(n)/fps) > 0.0015 {
			r.misreported++
		}
	}
	return nil
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// runChild runs one method, writing thumb_NNNN.jpg into out.
func runChild(ctx context.Context, method, src, out string, interval, dur float64) error {
	var times []time.Duration
	for t := 0.0; t < dur-1e-9; t += interval {
		times = append(times, time.Duration(math.Round(t*1e6))*time.Microsecond)
	}
	runner := ffmpeg.Runner{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	m, err := runner.Probe(ctx, src)
	if err != nil {
		return err
	}
	dw, dh := m.DisplaySize()
	geo, err := engine.Fit(dw, dh, engine.Output{Width: thumbWidth})
	if err != nil {
		return err
	}
	rd := ffmpeg.Render{Filter: engine.FilterChain(geo, engine.JPEG, false), Codec: engine.CodecArgs(engine.JPEG, 0), Ext: "jpg"}
	name := func(i int) string { return filepath.Join(out, fmt.Sprintf("thumb_%04d.jpg", i+1)) }
	base := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}
	switch method {
	case "thumbd-exact", "thumbd-keyframe":
		acc := ffmpeg.AccuracyExact
		if method == "thumbd-keyframe" {
			acc = ffmpeg.AccuracyKeyframe
		}
		x, err := runner.Index(ctx, src, m, runtime.NumCPU())
		if err != nil {
			return err
		}
		scratch := filepath.Join(out, "scratch")
		if err := os.MkdirAll(scratch, 0o755); err != nil {
			return err
		}
		reqs := make([]ffmpeg.FrameRequest, len(times))
		for i, t := range times {
			reqs[i] = ffmpeg.FrameRequest{Want: ffmpeg.Want{At: m.VideoStart + t, Accuracy: acc}, Render: rd, Out: name(i)}
		}
		ex := &ffmpeg.Extractor{Runner: runner, Workers: runtime.NumCPU(), Dir: scratch}
		res, plan, err := ex.Extract(ctx, src, m, x, reqs)
		if err != nil {
			return err
		}
		counts := map[ffmpeg.Strategy]int{}
		reported := make([]float64, len(res))
		for i, r := range res {
			counts[r.Strategy]++
			reported[i] = (r.Frame.PTS - m.VideoStart).Seconds()
		}
		fmt.Fprintf(os.Stderr, "  %d frames, %d keyframes indexed; %d jobs; strategies %v\n", x.Frames(), x.Keyframes(), len(plan.Jobs), counts)
		b, _ := json.Marshal(reported)
		return os.WriteFile(filepath.Join(out, "results.json"), b, 0o644)
	case "seeks":
		sem := make(chan struct{}, runtime.NumCPU())
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for i, t := range times {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				args := append(slices.Clone(base), "-ss", secs(t), "-i", src, "-map", "0:v:0", "-frames:v", "1", "-vf", rd.Filter)
				args = append(append(args, rd.Codec...), name(i))
				if err := exec.CommandContext(ctx, "ffmpeg", args...).Run(); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("seek %s: %w", secs(t), err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return firstErr
	case "fps":
		args := append(slices.Clone(base), "-i", src, "-map", "0:v:0", "-vf", fmt.Sprintf("fps=1/%g,%s", interval, rd.Filter))
		args = append(append(args, rd.Codec...), filepath.Join(out, "thumb_%04d.jpg"))
		return runQuiet(ctx, args)
	case "keyframes":
		args := append(slices.Clone(base), "-skip_frame", "nokey", "-i", src, "-map", "0:v:0",
			"-vf", fmt.Sprintf("select='isnan(prev_selected_t)+gte(t-prev_selected_t,%g)',%s", interval, rd.Filter), "-fps_mode", "vfr")
		args = append(append(args, rd.Codec...), filepath.Join(out, "thumb_%04d.jpg"))
		return runQuiet(ctx, args)
	}
	return fmt.Errorf("unknown method %q", method)
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }

func runQuiet(ctx context.Context, args []string) error {
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// treeMemory sums the resident set sizes of pid and its descendants, found
// through /proc/PID/task/TID/children, and (withPSS: it costs more to read)
// their proportional set sizes.
func treeMemory(pid int, withPSS bool) (rss, pss int64) {
	stack := []int{pid}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		dir := "/proc/" + strconv.Itoa(p)
		tasks, _ := os.ReadDir(dir + "/task")
		for _, t := range tasks {
			b, _ := os.ReadFile(dir + "/task/" + t.Name() + "/children")
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					stack = append(stack, c)
				}
			}
		}
		rss += kbField(dir+"/status", "VmRSS:")
		if withPSS {
			pss += kbField(dir+"/smaps_rollup", "Pss:")
		}
	}
	return rss, pss
}

func kbField(file, field string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l[len(field):])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v << 10
			}
		}
	}
	return 0
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	return fmt.Sprintf("%d GiB RAM", kbField("/proc/meminfo", "MemTotal:")>>30)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func ffmpegVersion() string {
	out, err := exec.Command("ffmpeg", "-version").Output()
	if err != nil {
		return "ffmpeg ?"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	if i := strings.Index(l, " Copyright"); i > 0 {
		l = l[:i]
	}
	return l
}
