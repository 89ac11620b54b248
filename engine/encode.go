package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
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

// videoFileOf is what the status reports of a video file ffprobe
// described.
func videoFileOf(f ffmpeg.File) videoFile {
	return videoFile{size: f.Size, duration: f.Duration, bitrate: f.Bitrate, meta: VideoMeta{
		Width: f.Width, Height: f.Height, FrameRate: Rate{f.FrameRateNum, f.FrameRateDen},
		VideoBitrate: f.VideoBitrate, DAR: f.DAR, SAR: f.SAR, VideoCodec: f.VideoCodec, AudioCodec: f.AudioCodec}}
}

// encodeVideo runs one video output's encode in a worker slot, reporting
// its progress to m, and describes the file it made.
func (e *Engine) encodeVideo(ctx context.Context, src string, p *videoPlan, m *meter) error {
	if err := e.procs.Acquire(ctx); err != nil {
		return err
	}
	args := encodeArgs(src, p.enc)
	err := e.cfg.Runner.RunProgress(ctx, args, func(t time.Duration) {
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
	f, err := e.cfg.Runner.ProbeFile(ctx, p.enc.Out)
	if err != nil {
		return err
	}
	vf := videoFileOf(f)
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
func (e *Engine) makeOutputs(ctx context.Context, token, src string, media ffmpeg.Media, index *ffmpeg.FrameIndex, plans []*outputPlan, videos []*videoPlan, dir string) error {
	m := newMeter(5, 90, func(pct float64) {
		if partOf(ctx) != nil {
			return // a part's progress is its task's when it ends
		}
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
	began := time.Now()
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
				e.cfg.Observer.OutputMade(p.out.Kind, time.Since(began))
			}
		})
	}
	for _, v := range videos {
		wg.Go(func() {
			if err := e.encodeVideo(ctx, src, v, m); err != nil {
				fail(fmt.Errorf("format[%d] (%s): %w", v.index, v.out.Kind, err))
				return
			}
			e.cfg.Observer.OutputMade(v.out.Kind, time.Since(began))
		})
	}
	wg.Wait()
	return firstErr
}

// nonEmpty reports whether path is a regular file with something in it.
func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}
