package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/vtt"
)

// Presigner turns an s3:// URL into an https URL that ffmpeg can read.
// storage.S3 implements it.
type Presigner interface {
	Presign(ctx context.Context, rawURL, key, secret string, ttl time.Duration) (string, error)
}

// runTask runs one task to its end. A task stopped by shutdown returns an
// error wrapping ErrInterrupted and stays queued; every other outcome ends
// the task, completed or in error, and returns nil.
func (e *Engine) runTask(ctx context.Context, token string) error {
	rec, err := e.store.Task(ctx, token)
	if err != nil {
		e.log.Error("queued task not found", "task", Redact(token), "err", err)
		return nil
	}
	if rec.Spec == nil || rec.Snap.State.Done() {
		return nil // not started, or already ended (a duplicate delivery)
	}
	spec := *rec.Spec

	log := e.log.With("task", Redact(token))
	began := time.Now()
	dir := filepath.Join(e.cfg.WorkDir, token)
	err = os.MkdirAll(dir, 0o755)
	if err == nil {
		err = e.execute(ctx, token, spec, dir)
	}
	os.RemoveAll(dir)
	if ctx.Err() != nil {
		log.Warn("task interrupted by shutdown; it stays queued")
		e.update(ctx, token, func(s *Snapshot) { s.State = StateQueued })
		return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
	}
	var snap Snapshot
	_ = e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		if err != nil {
			r.Snap.State = StateError
			r.Snap.Error = err.Error()
		} else {
			r.Snap.State = StateCompleted
			r.Snap.Percent = 100
		}
		snap = r.Snap
		return nil
	})
	if err != nil {
		log.Warn("task failed", "err", err, "took", time.Since(began))
		e.notify(ctx, token, EventError, snap, spec)
	} else {
		log.Info("task completed", "took", time.Since(began))
	}
	e.notify(ctx, token, EventSaved, snap, spec)
	return nil
}

// progress raises a task's percent and sets its state; percent never goes
// down. Entering a new state first passes the Gate, which may hold the
// task or fail it.
func (e *Engine) progress(ctx context.Context, token string, st State, pct float64) error {
	if e.cfg.Gate != nil {
		cur, err := e.store.Task(ctx, token)
		if err == nil && cur.Snap.State != st {
			if err := e.cfg.Gate.Enter(ctx, token, st); err != nil {
				return err
			}
		}
	}
	e.update(ctx, token, func(s *Snapshot) {
		s.State = st
		if pct > s.Percent {
			s.Percent = min(pct, 99.9)
		}
	})
	return nil
}

// plannedFrame is one frame an output needs.
type plannedFrame struct {
	requested time.Duration // from the start of the video
	seek      time.Duration // -ss position, from the start of the file
	file      string
	info      FrameInfo
}

// outputPlan is the work for one output.
type outputPlan struct {
	index  int
	out    Output
	geo    Geometry
	format ImageFormat
	frames []*plannedFrame
	files  []producedFile
}

// producedFile is a file ready to be stored.
type producedFile struct {
	name          string // file name within the output's folder
	path          string
	kind          ImageKind
	format        string
	width, height int
	frames        []Frame
}

func (e *Engine) execute(ctx context.Context, token string, spec Spec, dir string) error {
	if err := e.progress(ctx, token, StateDownloading, 1); err != nil {
		return err
	}
	src, err := e.openSource(ctx, spec.Source)
	if err != nil {
		return err
	}
	media, err := e.cfg.Runner.Probe(ctx, src)
	if err != nil {
		return err
	}
	e.update(ctx, token, func(s *Snapshot) {
		s.Duration = media.Duration()
		s.SourceSize = media.Size
	})
	if err := e.progress(ctx, token, StateEncoding, 5); err != nil {
		return err
	}

	plans := make([]*outputPlan, len(spec.Outputs))
	var all []*plannedFrame
	for i, o := range spec.Outputs {
		p, err := planOutput(i, o, media, dir)
		if err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		plans[i] = p
		all = append(all, p.frames...)
	}
	if err := e.grabAll(ctx, token, src, media, plans, all); err != nil {
		return err
	}
	for _, p := range plans {
		if err := e.finishOutput(ctx, p, media.Duration()); err != nil {
			return fmt.Errorf("format[%d]: %w", p.index, err)
		}
	}
	return e.save(ctx, token, plans)
}

// openSource returns what ffmpeg should read for a source URL.
func (e *Engine) openSource(ctx context.Context, src string) (string, error) {
	if strings.HasPrefix(src, "s3://") {
		p, ok := e.cfg.Objects.(Presigner)
		if !ok {
			return "", &SourceError{Reason: "s3:// sources are not available on this server"}
		}
		u, err := p.Presign(ctx, src, "", "", 6*time.Hour)
		if err != nil {
			return "", &SourceError{Reason: "the s3:// source could not be signed", Err: err}
		}
		return u, nil
	}
	return src, nil
}

// Default size of a sprite tile when an output gives no size.
const defaultTileWidth = 160

// planOutput decides which frames an output needs and how each is drawn.
func planOutput(idx int, o Output, m Media, dir string) (*outputPlan, error) {
	f := o.Format
	if f == "" {
		f = PNG
	}
	dw, dh := m.DisplaySize()
	sized := o
	if o.Sprite && o.Kind == KindThumbnails && o.Width == 0 && o.Height == 0 && o.Resolution == 0 {
		sized.Width = defaultTileWidth
	}
	geo, err := Fit(dw, dh, sized)
	if err != nil {
		return nil, err
	}
	p := &outputPlan{index: idx, out: o, geo: geo, format: f}
	dur := m.Duration()
	var times []time.Duration
	switch o.Kind {
	case KindThumbnail:
		var at time.Duration
		switch {
		case o.FrameNumber != nil:
			at = time.Duration(*o.FrameNumber) * m.FrameDur
		case o.StartTime != nil:
			at = *o.StartTime
		case o.Time != nil:
			at = time.Duration(*o.Time * float64(dur))
		}
		times = []time.Duration{at}
	case KindThumbnails:
		for t := time.Duration(0); t < dur && len(times) < MaxThumbnails; t += o.Interval {
			times = append(times, t)
		}
	}
	last := m.LastFrame - m.VideoStart
	eps := min(m.FrameDur/4, time.Millisecond)
	ext := string(f)
	if o.Sprite && o.Kind == KindThumbnails {
		ext = "png" // tiles are lossless until the sheet is encoded
	}
	for i, at := range times {
		seekRel := at
		if o.FrameNumber != nil {
			seekRel -= m.FrameDur / 3 // land on the frame, not after it
		}
		if seekRel > last-eps {
			seekRel = last - eps
		}
		seekRel = max(seekRel, 0)
		p.frames = append(p.frames, &plannedFrame{
			requested: at,
			seek:      m.VideoStart - m.Start + seekRel,
			file:      filepath.Join(dir, fmt.Sprintf("o%d_f%05d.%s", idx, i+1, ext)),
		})
	}
	return p, nil
}

// maxGrabsPerProcess bounds the inputs one ffmpeg process opens, and so its
// memory.
const maxGrabsPerProcess = 16

// grabAll takes every planned frame, in as few ffmpeg processes as the
// parallelism allows, and fills in the frame each one got.
func (e *Engine) grabAll(ctx context.Context, token, src string, m Media, plans []*outputPlan, all []*plannedFrame) error {
	type job struct {
		frame *plannedFrame
		grab  Grab
	}
	var jobs []job
	for _, p := range plans {
		filter := FilterChain(p.geo, p.format, m.HDR())
		codec := CodecArgs(p.format, p.out.Quality)
		if p.out.Sprite && p.out.Kind == KindThumbnails {
			filter = FilterChain(p.geo, PNG, m.HDR())
			codec = CodecArgs(PNG, 0)
		}
		for _, f := range p.frames {
			jobs = append(jobs, job{f, Grab{At: f.seek, Filter: filter, Codec: codec, Out: f.file}})
		}
	}
	size := (len(jobs) + e.cfg.Workers - 1) / e.cfg.Workers
	size = max(1, min(size, maxGrabsPerProcess))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		done     int
		firstErr error
	)
	for start := 0; start < len(jobs); start += size {
		chunk := jobs[start:min(start+size, len(jobs))]
		wg.Go(func() {
			if err := e.acquire(ctx); err != nil {
				return
			}
			defer e.release()
			grabs := make([]Grab, len(chunk))
			for i, j := range chunk {
				grabs[i] = j.grab
			}
			_, stderr, err := e.cfg.Runner.run(ctx, e.cfg.Runner.FFmpeg, GrabArgs(src, grabs))
			infos := ParseShowinfo(stderr)
			for i, j := range chunk {
				info, ok := infos[i]
				if ok && nonEmpty(j.grab.Out) {
					j.frame.info = info
					continue
				}
				if ctx.Err() != nil {
					break
				}
				// No frame at the seek position: past the end of a
				// stream shorter than it claims, or a damaged tail. Take
				// the last frame the decoder can give.
				_, stderr2, err2 := e.cfg.Runner.run(ctx, e.cfg.Runner.FFmpeg, LastFrameArgs(src, j.grab))
				info2, ok2 := lastShowinfo(stderr2)
				if err2 == nil && ok2 && nonEmpty(j.grab.Out) {
					j.frame.info = info2
					continue
				}
				mu.Lock()
				if firstErr == nil {
					cause := err
					if cause == nil {
						cause = err2
					}
					firstErr = &SourceError{Reason: fmt.Sprintf("no video frame could be decoded at %.3fs", j.frame.requested.Seconds()), Err: cause}
				}
				mu.Unlock()
			}
			mu.Lock()
			done += len(chunk)
			pct := 5 + 80*float64(done)/float64(len(jobs))
			mu.Unlock()
			e.update(ctx, token, func(s *Snapshot) { s.Percent = max(s.Percent, pct) })
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if firstErr != nil {
		return firstErr
	}
	for _, f := range all {
		f.info.PTS -= m.VideoStart
	}
	return nil
}

// lastShowinfo returns the last frame showinfo reported: with -update 1 the
// output file holds that frame.
func lastShowinfo(log []byte) (FrameInfo, bool) {
	var last FrameInfo
	found := false
	var tb [2]int64
	for _, line := range strings.Split(string(log), "\n") {
		if m := showinfoTB.FindStringSubmatch(line); m != nil {
			fmt.Sscan(m[2], &tb[0])
			fmt.Sscan(m[3], &tb[1])
			continue
		}
		if m := showinfoFrame.FindStringSubmatch(line); m != nil && tb[1] != 0 {
			var pts int64
			fmt.Sscan(m[3], &pts)
			last = FrameInfo{PTS: seconds(float64(pts) * float64(tb[0]) / float64(tb[1])), Keyframe: m[4] == "1"}
			found = true
		}
	}
	return last, found
}

func (e *Engine) acquire(ctx context.Context) error {
	select {
	case e.procs <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) release() { <-e.procs }

func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// finishOutput turns an output's frames into the files to store: images as
// they are, or sprite sheets, and the WebVTT file of a series.
func (e *Engine) finishOutput(ctx context.Context, p *outputPlan, dur time.Duration) error {
	frameOf := func(f *plannedFrame) Frame {
		return Frame{Requested: f.requested, Actual: f.info.PTS, Keyframe: f.info.Keyframe}
	}
	ext := string(p.format)
	if p.out.Kind == KindThumbnail {
		f := p.frames[0]
		p.files = []producedFile{{name: fmt.Sprintf("thumbnail-%d.%s", p.index, ext), path: f.file, kind: KindImage,
			format: ext, width: p.geo.W, height: p.geo.H, frames: []Frame{frameOf(f)}}}
		return nil
	}
	var cues []vtt.Cue
	cue := func(i int, text string) vtt.Cue {
		start := time.Duration(i) * p.out.Interval
		end := min(start+p.out.Interval, dur)
		if i == len(p.frames)-1 {
			end = dur
		}
		return vtt.Cue{Start: start, End: end, Text: text}
	}
	if !p.out.Sprite {
		for i, f := range p.frames {
			name := fmt.Sprintf("thumb_%04d.%s", i+1, ext)
			p.files = append(p.files, producedFile{name: name, path: f.file, kind: KindImage, format: ext,
				width: p.geo.W, height: p.geo.H, frames: []Frame{frameOf(f)}})
			cues = append(cues, cue(i, name))
		}
	} else {
		cols := p.out.Columns
		if cols <= 0 {
			cols = DefaultColumns
		}
		rows := p.out.Rows
		if rows <= 0 {
			rows = DefaultRows
		}
		cols = min(cols, len(p.frames))
		perSheet := cols * rows
		for s := 0; s*perSheet < len(p.frames); s++ {
			tiles := p.frames[s*perSheet : min((s+1)*perSheet, len(p.frames))]
			r := (len(tiles) + cols - 1) / cols
			name := fmt.Sprintf("sprite_%04d.%s", s+1, ext)
			out := filepath.Join(filepath.Dir(tiles[0].file), fmt.Sprintf("o%d_sprite_%04d.%s", p.index, s+1, ext))
			args := SpriteArgs(tiles[0].file, s*perSheet+1, cols, r, len(tiles), CodecArgs(p.format, p.out.Quality), pixelFormat(p.format), out)
			if err := e.acquire(ctx); err != nil {
				return err
			}
			_, _, err := e.cfg.Runner.run(ctx, e.cfg.Runner.FFmpeg, args)
			e.release()
			if err != nil {
				return fmt.Errorf("building sprite sheet %d: %w", s+1, err)
			}
			if !nonEmpty(out) {
				return fmt.Errorf("building sprite sheet %d: ffmpeg wrote nothing", s+1)
			}
			pf := producedFile{name: name, path: out, kind: KindSprite, format: ext,
				width: cols * p.geo.W, height: r * p.geo.H}
			for i, f := range tiles {
				pf.frames = append(pf.frames, frameOf(f))
				x, y := (i%cols)*p.geo.W, (i/cols)*p.geo.H
				cues = append(cues, cue(s*perSheet+i, fmt.Sprintf("%s#xywh=%d,%d,%d,%d", name, x, y, p.geo.W, p.geo.H)))
			}
			p.files = append(p.files, pf)
		}
	}
	vttPath := filepath.Join(filepath.Dir(p.frames[0].file), fmt.Sprintf("o%d_thumbnails.vtt", p.index))
	if err := writeVTT(vttPath, cues); err != nil {
		return err
	}
	p.files = append(p.files, producedFile{name: "thumbnails.vtt", path: vttPath, kind: KindVTT, format: "vtt"})
	return nil
}

// SpriteArgs builds the ffmpeg invocation that tiles n numbered tile images,
// starting at number start of the sequence that first belongs to, into one
// sheet of cols×rows tiles.
func SpriteArgs(first string, start, cols, rows, n int, codec []string, pixfmt, out string) []string {
	pattern := spritePattern(first)
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
		"-f", "image2", "-framerate", "1", "-start_number", fmt.Sprint(start), "-i", pattern,
		"-frames:v", "1", "-vf", fmt.Sprintf("trim=end_frame=%d,tile=%dx%d,format=%s", n, cols, rows, pixfmt)}
	args = append(args, codec...)
	return append(args, "-f", "image2", "-update", "1", out)
}

// spritePattern turns ".../o1_f00001.png" into ".../o1_f%05d.png".
func spritePattern(first string) string {
	dir, base := filepath.Split(first)
	i := strings.LastIndex(base, "_f")
	return dir + base[:i+2] + "%05d" + path.Ext(base)
}

func writeVTT(path string, cues []vtt.Cue) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := vtt.NewWriter(f)
	for _, c := range cues {
		if err := w.Write(c); err != nil {
			f.Close()
			return fmt.Errorf("writing WebVTT: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// store puts every produced file in its destinations, or keeps it, and
// records an image entry for each.
func (e *Engine) save(ctx context.Context, token string, plans []*outputPlan) error {
	if err := e.progress(ctx, token, StateSaving, 90); err != nil {
		return err
	}
	total := 0
	for _, p := range plans {
		total += len(p.files) * max(1, len(p.out.Destinations))
	}
	stored := 0
	for _, p := range plans {
		n := 0
		for _, pf := range p.files {
			ct := ImageFormat(pf.format).ContentType()
			if pf.kind == KindVTT {
				ct = "text/vtt"
			}
			var locs []storage.Location
			if len(p.out.Destinations) == 0 {
				name := token + "/" + pf.name
				if p.out.Kind == KindThumbnails {
					name = fmt.Sprintf("%s/thumbnails-%d/%s", token, p.index, pf.name)
				}
				loc, err := e.putLocal(ctx, name, pf.path, ct)
				if err != nil {
					return fmt.Errorf("keeping %s: %w", pf.name, err)
				}
				locs = append(locs, loc)
			}
			for _, d := range p.out.Destinations {
				d.URL = ObjectURL(d.URL, p.out.Kind, p.index, pf.name)
				loc, err := e.putObject(ctx, d, pf.path, ct)
				if err != nil {
					return err
				}
				locs = append(locs, loc)
			}
			for _, loc := range locs {
				e.update(ctx, token, func(s *Snapshot) {
					s.Images = append(s.Images, Image{Output: p.index, N: n, Kind: pf.kind, Format: pf.format,
						UserTag: p.out.UserTag, Location: loc, Width: pf.width, Height: pf.height, Frames: pf.frames})
				})
				n++
				stored++
				pct := 90 + 9*float64(stored)/float64(total)
				e.update(ctx, token, func(s *Snapshot) { s.Percent = max(s.Percent, pct) })
			}
		}
	}
	return nil
}

func (e *Engine) putLocal(ctx context.Context, name, file, ct string) (storage.Location, error) {
	if e.cfg.Files == nil {
		return storage.Location{}, errors.New("no local storage configured")
	}
	f, err := os.Open(file)
	if err != nil {
		return storage.Location{}, err
	}
	defer f.Close()
	return e.cfg.Files.Put(ctx, name, f, ct)
}

func (e *Engine) putObject(ctx context.Context, d storage.Destination, file, ct string) (storage.Location, error) {
	if e.cfg.Objects == nil {
		return storage.Location{}, errors.New("no object storage configured")
	}
	f, err := os.Open(file)
	if err != nil {
		return storage.Location{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return storage.Location{}, err
	}
	return e.cfg.Objects.Put(ctx, d, f, fi.Size(), ct)
}

// ObjectURL is the URL a file of an output is uploaded to. A thumbnail's
// destination URL names the object itself, unless it ends in "/"; a series'
// URL names a folder, with or without the trailing "/" (a URL whose last
// segment has an image or .vtt extension counts as a file in that folder).
func ObjectURL(dest string, kind OutputKind, index int, name string) string {
	if kind == KindThumbnail {
		if strings.HasSuffix(dest, "/") {
			return dest + name
		}
		return dest
	}
	if i := strings.LastIndex(dest, "/"); i >= 0 {
		switch strings.ToLower(path.Ext(dest[i+1:])) {
		case ".png", ".jpg", ".jpeg", ".webp", ".vtt":
			dest = dest[:i]
		}
	}
	return strings.TrimSuffix(dest, "/") + "/" + name
}
