package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/thumbd/thumbd/storage"
)

// Video is one stored video file of a task.
type Video struct {
	Output   int // index of the output in the spec
	N        int // sequence number within the output (one per destination)
	Format   string
	UserTag  string
	Location storage.Location
	Size     int64         // bytes
	Duration time.Duration // of the file
	Bitrate  int           // kbps, of the whole file
	Meta     VideoMeta
}

// VideoMeta is what ffprobe says of a video file thumbd made.
type VideoMeta struct {
	Width, Height int
	FrameRate     Rate
	VideoBitrate  int    // kbps, of the video stream
	DAR, SAR      string // display and sample aspect ratios, "3:2"
	VideoCodec    string // as ffprobe names it: h264, vp9
	AudioCodec    string // aac, opus; "" when the file has no sound
}

// videoFile is a produced video and what ffprobe says of it.
type videoFile struct {
	contentType string
	format      string
	size        int64
	duration    time.Duration
	bitrate     int
	meta        VideoMeta
}

// meter turns the progress of a task's parts (its image grabs and each
// video encode) into one percent that only rises, between lo and hi. Each
// part weighs what it is expected to cost.
type meter struct {
	report func(pct float64)
	lo, hi float64

	mu      sync.Mutex
	weights []float64
	done    []float64
	last    float64
}

func newMeter(lo, hi float64, report func(pct float64)) *meter {
	return &meter{lo: lo, hi: hi, last: lo, report: report}
}

// add adds a part of the given weight and returns its number.
func (m *meter) add(weight float64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.weights = append(m.weights, max(weight, 1e-6))
	m.done = append(m.done, 0)
	return len(m.weights) - 1
}

// set records that part has done frac (0..1) of its work. A smaller value
// than before is ignored. The percent is reported when it has risen by at
// least a tenth of a point, or the part is done.
func (m *meter) set(part int, frac float64) {
	m.mu.Lock()
	frac = min(max(frac, 0), 1)
	if part < 0 || part >= len(m.done) || frac <= m.done[part] {
		m.mu.Unlock()
		return
	}
	m.done[part] = frac
	var total, done float64
	for i, w := range m.weights {
		total += w
		done += w * m.done[i]
	}
	pct := m.lo + (m.hi-m.lo)*done/total
	if pct < m.last+0.1 && frac < 1 || pct <= m.last {
		m.mu.Unlock()
		return
	}
	m.last = pct
	m.mu.Unlock()
	m.report(pct)
}

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

// runProgress runs ffmpeg with args that include "-progress pipe:1", and
// passes each reported output time to f. It stops ffmpeg like run does.
func (r Runner) runProgress(ctx context.Context, args []string, f func(outTime time.Duration)) error {
	cmd := exec.CommandContext(ctx, r.FFmpeg, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Env = append(os.Environ(), "SVT_LOG=1") // SVT-AV1 prints a banner to stderr otherwise
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return &ExecError{Tool: r.FFmpeg, Err: err}
	}
	ParseProgress(out, func(t time.Duration, _ bool) { f(t) })
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &ExecError{Tool: r.FFmpeg, Err: err, Tail: tail(errb.Bytes(), 3)}
	}
	return nil
}

type fileProbeJSON struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		SAR       string `json:"sample_aspect_ratio"`
		DAR       string `json:"display_aspect_ratio"`
		AvgRate   string `json:"avg_frame_rate"`
		RRate     string `json:"r_frame_rate"`
		BitRate   string `json:"bit_rate"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
		Size     string `json:"size"`
		BitRate  string `json:"bit_rate"`
	} `json:"format"`
}

// ProbeFileArgs builds the ffprobe invocation that describes a video file
// thumbd made.
func ProbeFileArgs(path string) []string {
	return []string{"-hide_banner", "-v", "error", "-of", "json",
		"-show_entries", "format=duration,size,bit_rate:stream=codec_type,codec_name,width,height,sample_aspect_ratio,display_aspect_ratio,avg_frame_rate,r_frame_rate,bit_rate",
		path}
}

// probeVideoFile describes a video file thumbd made: what the status
// reports is measured, not what was asked for.
func (r Runner) probeVideoFile(ctx context.Context, path string) (videoFile, error) {
	out, _, err := r.run(ctx, r.FFprobe, ProbeFileArgs(path))
	if err != nil {
		return videoFile{}, err
	}
	var pj fileProbeJSON
	if err := json.Unmarshal(out, &pj); err != nil {
		return videoFile{}, fmt.Errorf("reading ffprobe's description of the output: %w", err)
	}
	var vf videoFile
	vf.size, _ = strconv.ParseInt(pj.Format.Size, 10, 64)
	if fi, err := os.Stat(path); err == nil {
		vf.size = fi.Size()
	}
	vf.duration = parseSeconds(pj.Format.Duration)
	if vf.duration > 0 {
		vf.bitrate = int(float64(vf.size) * 8 / vf.duration.Seconds() / 1000)
	}
	video := false
	for _, s := range pj.Streams {
		switch s.CodecType {
		case "video":
			if video {
				continue
			}
			video = true
			m := &vf.meta
			m.VideoCodec, m.Width, m.Height = s.CodecName, s.Width, s.Height
			m.FrameRate = probeRate(s.AvgRate)
			if m.FrameRate.IsZero() {
				m.FrameRate = probeRate(s.RRate)
			}
			if n, err := strconv.Atoi(s.BitRate); err == nil {
				m.VideoBitrate = n / 1000
			}
			m.SAR = s.SAR
			if n, d, ok := ratio(s.SAR, ":"); !ok || n <= 0 || d <= 0 {
				m.SAR = "1:1"
			}
			m.DAR = s.DAR
			if n, d, ok := ratio(s.DAR, ":"); !ok || n <= 0 || d <= 0 {
				sn, sd, _ := ratio(m.SAR, ":")
				w, h := m.Width*sn, m.Height*sd
				if g := gcd(w, h); g > 0 {
					m.DAR = fmt.Sprintf("%d:%d", w/g, h/g)
				}
			}
		case "audio":
			if vf.meta.AudioCodec == "" {
				vf.meta.AudioCodec = s.CodecName
			}
		}
	}
	if !video {
		return vf, errors.New("the output has no video stream")
	}
	if vf.meta.VideoBitrate == 0 && vf.duration > 0 {
		// WebM keeps no per-stream bitrate: add up the video packets.
		out, _, err := r.run(ctx, r.FFprobe, []string{"-hide_banner", "-v", "error", "-select_streams", "v:0",
			"-show_entries", "packet=size", "-of", "csv=p=0", path})
		if err == nil {
			var total int64
			for _, l := range strings.Fields(string(out)) {
				n, _ := strconv.ParseInt(strings.TrimSuffix(l, ","), 10, 64)
				total += n
			}
			vf.meta.VideoBitrate = int(float64(total) * 8 / vf.duration.Seconds() / 1000)
		}
	}
	return vf, nil
}

func probeRate(s string) Rate {
	n, d, ok := ratio(s, "/")
	if !ok || n <= 0 || d <= 0 {
		return Rate{}
	}
	g := gcd(n, d)
	return Rate{n / g, d / g}
}

// encodeVideo runs one video output's encode in a worker slot, reporting
// its progress to m, and describes the file it made.
func (e *Engine) encodeVideo(ctx context.Context, src string, p *videoPlan, m *meter) error {
	if err := e.procs.Acquire(ctx); err != nil {
		return err
	}
	args := EncodeArgs(src, p.enc)
	err := e.cfg.Runner.runProgress(ctx, args, func(t time.Duration) {
		if p.clip > 0 {
			m.set(p.part, 0.98*t.Seconds()/p.clip.Seconds())
		}
	})
	e.procs.Release()
	if err != nil {
		return err
	}
	if !nonEmpty(p.enc.Out) {
		return errors.New("ffmpeg wrote nothing")
	}
	vf, err := e.cfg.Runner.probeVideoFile(ctx, p.enc.Out)
	if err != nil {
		return err
	}
	c := containers[p.out.Kind]
	vf.contentType, vf.format = c.contentType, string(p.out.Kind)
	p.file = producedFile{
		name:   fmt.Sprintf("video-%d.%s", p.index, p.set.FileExtension),
		path:   p.enc.Out,
		format: string(p.out.Kind),
		width:  vf.meta.Width,
		height: vf.meta.Height,
		video:  &vf,
	}
	m.set(p.part, 1)
	return nil
}

// makeOutputs makes every output of a task at once: the image grabs (and
// then sprite sheets) in one line of work, each video encode in its own,
// all within the engine's worker slots. The first failure stops the rest
// and is returned, naming its output.
func (e *Engine) makeOutputs(ctx context.Context, token, src string, media Media, index *FrameIndex, plans []*outputPlan, videos []*videoPlan, dir string) error {
	m := newMeter(5, 90, func(pct float64) {
		e.update(ctx, token, func(s *Snapshot) { s.Percent = max(s.Percent, pct) })
	})
	grabs, frames := -1, 0
	for _, p := range plans {
		frames += len(p.frames)
	}
	if frames > 0 {
		grabs = m.add(0.3 * float64(frames))
	}
	for _, v := range videos {
		v.part = m.add(v.weight)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	if len(plans) > 0 {
		wg.Go(func() {
			err := e.extractAll(ctx, src, media, index, plans, dir, func(done, total int) {
				m.set(grabs, float64(done)/float64(total))
			})
			if err != nil {
				fail(err)
				return
			}
			for _, p := range plans {
				if err := e.finishOutput(ctx, p, media, index); err != nil {
					fail(fmt.Errorf("format[%d]: %w", p.index, err))
					return
				}
			}
		})
	}
	for _, v := range videos {
		wg.Go(func() {
			if err := e.encodeVideo(ctx, src, v, m); err != nil {
				fail(fmt.Errorf("format[%d] (%s): %w", v.index, v.out.Kind, err))
			}
		})
	}
	wg.Wait()
	return firstErr
}
