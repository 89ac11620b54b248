package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/storage"
)

// runTask runs one task to its end. A task stopped by shutdown returns an
// error wrapping ErrInterrupted and stays queued; a task that ran past its
// time limit ends in error; a task forgotten while it ran (Reset) stops
// quietly; every other outcome ends the task, completed or in error, and
// returns nil. An error reading or writing the store is returned, so that
// the queue can try again later.
func (e *Engine) runTask(ctx context.Context, token string) error {
	rec, err := e.claim(ctx, token)
	if rec == nil {
		return err
	}
	parts, opened := e.spreads(ctx, token, *rec.Spec)
	if opened != nil {
		defer opened.Close()
	}
	if parts != nil {
		return e.spread(ctx, token, parts)
	}
	ctx, untrack := e.track(ctx, token)
	defer untrack()
	began := time.Now()
	err = e.attempt(ctx, token, rec, opened)
	switch {
	case errors.Is(context.Cause(ctx), errForgotten):
		e.log.Info("task forgotten while it ran", "task", Redact(token))
		return nil
	case err != nil && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return e.interrupted(ctx, token)
	}
	return e.end(ctx, token, *rec.Spec, err, time.Since(began))
}

// claim reads a task the queue delivered. It returns nil when there is
// nothing to run: a task forgotten, never started, or already ended (a
// duplicate delivery).
func (e *Engine) claim(ctx context.Context, token string) (*TaskRecord, error) {
	rec, err := e.store.Task(ctx, token)
	switch {
	case errors.Is(err, ErrTokenNotFound):
		e.log.Warn("queued task not found; it was forgotten", "task", Redact(token))
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading task %s: %w", Redact(token), err)
	case rec.Spec == nil || rec.Snap.State.Done():
		return nil, nil
	}
	return &rec, nil
}

// attempt runs a task once under its time limit: its work in a scratch
// directory, then the Gate's hold on the state it ends in. A task that ran
// past Config.TaskTimeout, or past the queue's deadline, fails with a
// *timeLimitError.
func (e *Engine) attempt(ctx context.Context, token string, rec *TaskRecord, opened OpenSource) error {
	if rec.Snap.State != StateQueued || len(rec.Snap.Images) > 0 {
		// It ran before and was cut short (a crash): what it stored then
		// is not reported; it is all made again.
		e.log.Info("running an interrupted task again", "task", Redact(token), "was", rec.Snap.State)
	}
	e.update(ctx, token, func(s *Snapshot) {
		s.State = StateQueued
		s.Images = nil
		s.Error = ""
	})
	tctx, cancel := ctx, context.CancelFunc(func() {})
	if e.cfg.TaskTimeout > 0 {
		tctx, cancel = context.WithTimeoutCause(ctx, e.cfg.TaskTimeout, errTaskTimeout)
	}
	defer cancel()
	err := e.work(tctx, token, *rec.Spec, opened)
	if ctx.Err() == nil {
		err = e.enterFinal(tctx, token, err)
	}
	if err != nil && (errors.Is(context.Cause(tctx), errTaskTimeout) || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		return &timeLimitError{Limit: e.cfg.TaskTimeout}
	}
	return err
}

// work makes a task's outputs in a scratch directory of its own, removed
// afterwards, reading the source opened when there is one.
func (e *Engine) work(ctx context.Context, token string, spec Spec, opened OpenSource) error {
	dir := filepath.Join(e.cfg.WorkDir, token)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return e.execute(ctx, token, spec, dir, opened)
}

// enterFinal passes the Gate for the state a task ends in, given the
// error it ended with; the Gate may hold it, or fail a task that
// succeeded.
func (e *Engine) enterFinal(ctx context.Context, token string, err error) error {
	if e.cfg.Gate == nil {
		return err
	}
	final := StateCompleted
	if err != nil {
		final = StateError
	}
	if gerr := e.cfg.Gate.Enter(ctx, token, final); gerr != nil && err == nil && ctx.Err() == nil {
		return gerr
	}
	return err
}

// interrupted puts back a task that shutdown stopped: it stays queued,
// and runs again from the start.
func (e *Engine) interrupted(ctx context.Context, token string) error {
	e.log.Warn("task interrupted by shutdown; it stays queued", "task", Redact(token))
	e.update(ctx, token, func(s *Snapshot) {
		s.State = StateQueued
		s.Images = nil
	})
	return fmt.Errorf("%w: %v", ErrInterrupted, ctx.Err())
}

// end records how a task ended (completed, or in error with err), lets
// its source go, and tells the notifier. A task that has ended already
// is left as it is, and its owner is not told again.
func (e *Engine) end(ctx context.Context, token string, spec Spec, err error, took time.Duration) error {
	var snap Snapshot
	uerr := e.store.UpdateTask(context.WithoutCancel(ctx), token, func(r *TaskRecord) error {
		if r.Snap.State.Done() {
			return errEnded // ended already (by another part of it, or another run)
		}
		if err != nil {
			r.Snap.State = StateError
			r.Snap.Error = err.Error()
		} else {
			r.Snap.State = StateCompleted
			r.Snap.Percent = 100
		}
		r.Ended = e.cfg.Now()
		snap = r.Snap
		return nil
	})
	if r, ok := e.cfg.Sources.(TaskReleaser); ok {
		r.ReleaseTask(context.WithoutCancel(ctx), token)
	}
	if errors.Is(uerr, ErrTokenNotFound) || errors.Is(uerr, errEnded) {
		return nil
	}
	if uerr != nil {
		return fmt.Errorf("recording the end of task %s: %w", Redact(token), uerr)
	}
	e.cfg.Observer.TaskEnded(snap.State, took)
	if err != nil {
		e.log.Warn("task failed", "task", Redact(token), "err", err, "took", took)
		e.notify(ctx, token, EventError, snap, spec)
	} else {
		e.log.Info("task completed", "task", Redact(token), "took", took)
	}
	e.notify(ctx, token, EventSaved, snap, spec)
	return nil
}

// progress raises a task's percent and sets its state; percent never goes
// down. Entering a new state first passes the Gate, which may hold the
// task or fail it.
func (e *Engine) progress(ctx context.Context, token string, st State, pct float64) error {
	if partOf(ctx) != nil {
		return nil // a part's progress is its task's when it ends (runPart)
	}
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
	want      ffmpeg.Want   // what the planner gets: the time on the source's clock, the accuracy
	file      string
	info      ffmpeg.FrameInfo // the frame delivered; PTS from the start of the video
	strategy  ffmpeg.Strategy
	took      time.Duration
	geo       Geometry // the image's box
	suffix    string   // what the image's name adds for its time and size, in a combination
}

// outputPlan is the work for one output.
type outputPlan struct {
	index    int
	out      Output
	accuracy ffmpeg.Accuracy
	geo      Geometry
	format   ImageFormat
	frames   []*plannedFrame
	files    []producedFile
	took     time.Duration // from the start of extraction to this output's last frame

	// A chunk of a series (a part of a spread task) plans the series whole
	// and keeps only its own frames, total - from of them at most: it makes
	// the images from+1 to from+len(frames), or their sprite sheets, under
	// the names and numbers the whole series gives them.
	total int  // images of the whole output
	from  int  // index in the whole output of frames[0]
	chunk bool // frames are a chunk of the output's
}

// narrow makes p the plan of a chunk of its series: its images from to
// to-1 (0-based). A chunk of a sprite series begins a sheet.
func (p *outputPlan) narrow(from, to int) error {
	if p.out.Kind != KindThumbnails || from < 0 || to > p.total || from >= to {
		return fmt.Errorf("images %d to %d are not a chunk of this output's %d", from, to-1, p.total)
	}
	if _, _, perSheet := p.sheet(); p.out.Sprite && from%perSheet != 0 {
		return fmt.Errorf("images %d to %d do not begin a sprite sheet of %d tiles", from, to-1, perSheet)
	}
	p.frames, p.from, p.chunk = p.frames[from:to], from, true
	return nil
}

// firstFile is the number (0-based) of the first file p makes among its
// output's image files: 0, or where its chunk begins.
func (p *outputPlan) firstFile() int {
	if !p.chunk {
		return 0
	}
	if p.out.Sprite {
		_, _, perSheet := p.sheet()
		return p.from / perSheet
	}
	return p.from
}

// producedFile is a file ready to be stored.
type producedFile struct {
	name          string // file name within the output's folder
	suffix        string // a combination's image: inserted before a destination file name's extension
	path          string
	kind          ImageKind
	format        string
	width, height int
	frames        []Frame
	video         *videoFile // set for an mp4 or webm output
}

// execute makes a task's outputs (or a part's) in dir and saves them. It
// reads the source opened (left open) when there is one, else opens it.
func (e *Engine) execute(ctx context.Context, token string, spec Spec, dir string, opened OpenSource) error {
	if err := e.progress(ctx, token, StateDownloading, 1); err != nil {
		return err
	}
	var err error
	source := opened
	if source == nil {
		if source, err = e.openSource(ctx, token, spec.Source); err != nil {
			return err
		}
		defer source.Close()
	}
	src := source.URL()
	if onlyMetadata(spec) {
		// ffprobe's description is all that is asked for: no video stream
		// needed, no frames planned.
		return e.describeOnly(ctx, token, spec, source, dir)
	}
	key := contentKey(source)
	media, index, known := e.probes.Get(key)
	if !known {
		media, err = e.cfg.Runner.Probe(ctx, src)
		if err == nil {
			err = source.Failure() // ffprobe may take a cut-off read for the end
		}
		if err != nil {
			return explainRead(err, source)
		}
		e.probes.Put(key, media, nil)
	}
	if max := e.cfg.MaxPixels; max > 0 && int64(media.Width)*int64(media.Height) > max {
		return &sourceError{Reason: fmt.Sprintf("the source's video is %dx%d, %s a frame, more than this server's limit of %s (THUMBD_MAX_SOURCE_PIXELS): %s",
			media.Width, media.Height, megapixels(int64(media.Width)*int64(media.Height)), megapixels(max), source.Name())}
	}
	e.update(ctx, token, func(s *Snapshot) {
		s.Duration = media.Duration()
		s.SourceSize = media.Size
		if n := source.Size(); n > 0 {
			s.SourceSize = n
		}
	})
	switch {
	case countFrames(spec, media) < 2:
		// One frame: an input seek, in one process, is the cheapest way,
		// index or not.
		index = nil
	case index == nil && wantIndex(spec, media, isLocal(source)):
		index = e.indexOnce(ctx, token, key, src, media)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := e.progress(ctx, token, StateEncoding, 5); err != nil {
		return err
	}

	var plans, described []*outputPlan
	var videos []*videoPlan
	others := 0 // images of the outputs other parts of the task make
	part := partOf(ctx)
	for i, o := range spec.Outputs {
		if part != nil && !part.has(i) {
			if o.Kind == KindThumbnail || o.Kind == KindThumbnails {
				if p, err := planOutput(i, o, e.cfg.Accuracy, media, nil, dir); err == nil {
					others += len(p.frames)
				}
			}
			continue
		}
		if o.Kind == KindMetadata {
			p, _, err := e.describe(ctx, i, o, source, dir)
			if err != nil {
				return explainRead(err, source)
			}
			described = append(described, p)
			continue
		}
		if o.Kind.Video() {
			if w := e.substituteCodecs(ctx, i, &o); w != nil {
				e.update(ctx, token, func(s *Snapshot) {
					if !slices.Contains(s.Warnings, *w) { // once, even when an interrupted task runs again
						s.Warnings = append(s.Warnings, *w)
					}
				})
			}
			v, err := planVideo(i, o, media, dir, e.videoThreads())
			if err != nil {
				return fmt.Errorf("format[%d]: %w", i, err)
			}
			videos = append(videos, v)
			continue
		}
		p, err := planOutput(i, o, e.cfg.Accuracy, media, index, dir)
		if err == nil && part != nil && part.To > 0 {
			err = p.narrow(part.From, part.To)
		}
		if err != nil {
			return fmt.Errorf("format[%d]: %w", i, err)
		}
		plans = append(plans, p)
	}
	if part != nil {
		part.media, part.index = media, index // for assemble
	}
	if max := e.cfg.MaxImages; max > 0 {
		n := others
		for _, p := range plans {
			n += p.total
		}
		if n > max {
			return fmt.Errorf("the task asks for %d images (sprite tiles included) of its %.1fs source, more than this server's limit of %d a task (THUMBD_MAX_IMAGES); use a longer interval or split the outputs over several tasks", n, media.Duration().Seconds(), max)
		}
	}
	err = e.makeOutputs(ctx, token, src, media, index, plans, videos, dir)
	if err == nil {
		err = source.Failure()
	}
	if err != nil {
		return explainRead(err, source)
	}
	for _, v := range videos {
		plans = append(plans, &outputPlan{index: v.index, out: v.out, files: []producedFile{v.file}})
	}
	plans = append(plans, described...)
	slices.SortFunc(plans, func(a, b *outputPlan) int { return a.index - b.index })
	return e.save(ctx, token, plans)
}

// megapixels renders a pixel count: 33.2 megapixels.
func megapixels(n int64) string {
	return fmt.Sprintf("%.1f megapixels", float64(n)/1e6)
}

// indexOnce is index for a source whose content is named key, at most one
// run at a time per key: a task that needs the index of a source another
// task (or another part of the same task) is reading waits for that run
// and shares its index, rather than read the whole source again. The
// index is kept in the probe cache.
func (e *Engine) indexOnce(ctx context.Context, token, key, src string, m ffmpeg.Media) *ffmpeg.FrameIndex {
	if key == "" {
		return e.index(ctx, token, src, m)
	}
	ch := e.indexing.DoChan(key, func() (any, error) {
		if _, x, ok := e.probes.Get(key); ok && x != nil {
			return x, nil // indexed while this task was probing
		}
		x := e.index(ctx, token, src, m)
		if x != nil {
			e.probes.Put(key, m, x)
		}
		return x, nil
	})
	select {
	case <-ctx.Done():
		return nil
	case r := <-ch:
		x, _ := r.Val.(*ffmpeg.FrameIndex)
		return x
	}
}

// index reads the frame index of the source's video stream. A source that
// cannot be indexed is still served, by input seeks, so a failure is only
// logged.
func (e *Engine) index(ctx context.Context, token, src string, m ffmpeg.Media) *ffmpeg.FrameIndex {
	if m.TBNum <= 0 || m.TBDen <= 0 {
		return nil
	}
	// One ffprobe per free process slot (up to 4), each reading a part of
	// the source: at least one slot, waiting for it, then whatever else
	// is free now.
	if err := e.procs.Acquire(ctx); err != nil {
		return nil
	}
	parts := 1
	for parts < min(e.cfg.Workers, 4) && e.procs.TryAcquire() {
		parts++
	}
	defer func() {
		for range parts {
			e.procs.Release()
		}
	}()
	began := time.Now()
	x, err := e.cfg.Runner.Index(ctx, src, m, parts)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("source not indexed; every frame will be an input seek", "task", Redact(token), "err", err)
		}
		return nil
	}
	e.log.Debug("source indexed", "task", Redact(token), "frames", x.Frames(), "keyframes", x.Keyframes(), "took", time.Since(began))
	return x
}

// extractAll takes every planned frame of every output, in one plan, so
// that outputs asking for the same frame share it.
func (e *Engine) extractAll(ctx context.Context, src string, m ffmpeg.Media, x *ffmpeg.FrameIndex, plans []*outputPlan, dir string, progress func(done, total int)) error {
	reqs, frames, owner := frameRequests(plans, m)
	scratch := filepath.Join(dir, "extract")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	began := time.Now()
	ex := &ffmpeg.Extractor{Runner: e.cfg.Runner, Workers: e.cfg.Workers, Dir: scratch, Slots: e.procs, Progress: progress}
	results, plan, err := ex.Extract(ctx, src, m, x, reqs)
	if err != nil {
		return err
	}
	e.log.Debug("frames extracted", "frames", len(reqs), "distinct", len(plan.Picks),
		"jobs", len(plan.Jobs), "indexed", x != nil, "took", time.Since(began))
	for i, res := range results {
		f := frames[i]
		f.info = ffmpeg.FrameInfo{PTS: res.Frame.PTS - m.VideoStart, Keyframe: res.Frame.Keyframe}
		f.strategy, f.took = res.Strategy, res.Took
		owner[i].took = max(owner[i].took, res.Done)
	}
	return nil
}

// frameRequests lists what the extractor is asked for: a request per
// planned frame of every output, each with its output's rendering.
func frameRequests(plans []*outputPlan, m ffmpeg.Media) ([]ffmpeg.FrameRequest, []*plannedFrame, []*outputPlan) {
	var reqs []ffmpeg.FrameRequest
	var frames []*plannedFrame
	var owner []*outputPlan
	rotate := ffmpeg.RotateFilter(m.Rotation)
	if rotate != "" {
		rotate += ","
	}
	for _, p := range plans {
		render := func(geo Geometry) ffmpeg.Render {
			if p.out.Sprite && p.out.Kind == KindThumbnails {
				// Tiles stay lossless until their sheet is encoded, once.
				return ffmpeg.Render{Filter: rotate + FilterChain(geo, PNG, m.HDR()), Codec: CodecArgs(PNG, 0), Ext: string(PNG)}
			}
			return ffmpeg.Render{Filter: rotate + FilterChain(geo, p.format, m.HDR()), Codec: CodecArgs(p.format, p.out.Quality), Ext: string(p.format)}
		}
		for _, f := range p.frames {
			reqs = append(reqs, ffmpeg.FrameRequest{Want: f.want, Render: render(f.geo), Out: f.file})
			frames = append(frames, f)
			owner = append(owner, p)
		}
	}
	return reqs, frames, owner
}

// manifestKept is the name thumbd keeps an output's manifest under: ""
// when it keeps no files, or the output has no manifest. A chunk of a
// series has none yet: its entries name the one the series' manifest
// will be kept under once its chunks are made.
func (e *Engine) manifestKept(token string, p *outputPlan) string {
	if e.cfg.Files == nil {
		return ""
	}
	if p.chunk {
		return keptName(token, p, manifestName(p.out.Kind, ""))
	}
	i := slices.IndexFunc(p.files, func(pf producedFile) bool { return pf.kind == KindManifest })
	if i < 0 {
		return ""
	}
	return keptName(token, p, p.files[i].name)
}

// saveManifest keeps an output's manifest (manifestKept) and uploads it to
// the output's destinations when asked for. A chunk of a series has none.
func (e *Engine) saveManifest(ctx context.Context, token string, p *outputPlan) error {
	i := slices.IndexFunc(p.files, func(pf producedFile) bool { return pf.kind == KindManifest })
	if p.chunk || i < 0 {
		return nil
	}
	pf := p.files[i]
	const ct = "application/json"
	if kept := e.manifestKept(token, p); kept != "" {
		if _, err := e.putLocal(ctx, kept, pf.path, ct); err != nil {
			return fmt.Errorf("keeping %s: %w", pf.name, err)
		}
	}
	if !e.cfg.UploadManifests && !p.out.Manifest {
		return nil
	}
	for _, d := range p.out.Destinations {
		d.URL = manifestURL(d.URL, p.out.Kind, p.index, fmt.Sprintf("thumbnail-%d.%s", p.index, p.format))
		if _, err := e.putObject(ctx, d, pf.path, ct); err != nil {
			return err
		}
	}
	return nil
}

// keptName is the name thumbd keeps a file of an output under: in the
// task's folder, or in the output's own folder for a series.
func keptName(token string, p *outputPlan, name string) string {
	if p.out.Kind == KindThumbnails {
		return fmt.Sprintf("%s/thumbnails-%d/%s", token, p.index, name)
	}
	return token + "/" + name
}

// withSuffix puts a combination's suffix ("_0.25_320x240") into the URL
// an image goes to when its destination URL names a file: before the
// extension of the URL's last segment, or at its end when it has none
// (poster.png → poster_0.25_320x240.png). A folder URL (ending in "/")
// gets the image's own name, which says it already.
func withSuffix(obj, dest, suffix string) string {
	if suffix == "" || strings.HasSuffix(dest, "/") {
		return obj
	}
	slash := strings.LastIndex(obj, "/")
	ext := path.Ext(obj[slash+1:])
	return strings.TrimSuffix(obj, ext) + suffix + ext
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
	loc, err := e.cfg.Files.Put(ctx, name, f, ct)
	e.cfg.Observer.FileStored("local", err)
	return loc, err
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
	loc, err := e.cfg.Objects.Put(ctx, d, f, fi.Size(), ct)
	e.cfg.Observer.FileStored("s3", err)
	return loc, err
}

// objectURL is the URL a file of an output is uploaded to. A thumbnail's
// or a video's destination URL names the object itself (the key is used
// verbatim), unless it ends in "/"; a series' URL names a folder, with or
// without the trailing "/" (a URL whose last segment has an image or .vtt
// extension counts as a file in that folder).
func objectURL(dest string, kind OutputKind, index int, name string) string {
	if kind == KindThumbnail || kind == KindMetadata || kind.Video() {
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

// wantIndex reports whether reading the source's packet index pays for
// itself. The index lets every frame be reached from its own keyframe in
// few processes, but ffprobe reads the whole file to build it: worth it for
// a file on local disk (file://, tus:) as soon as more than one frame is
// wanted, and for a remote one only when the frames are dense enough
// (about one every 2 s or closer) that input seeks would read most of it
// anyway. A single remote thumbnail costs a few range requests instead. A
// remote source the gateway holds on local disk (downloaded whole, its
// origin ignoring Range) counts as local.
func wantIndex(spec Spec, m ffmpeg.Media, local bool) bool {
	dur := m.Duration()
	frames := countFrames(spec, m)
	if frames < 2 {
		return false
	}
	if local || strings.HasPrefix(spec.Source, "file://") || strings.HasPrefix(spec.Source, "tus:") {
		return true
	}
	return time.Duration(frames)*2*time.Second >= dur
}

// countFrames is how many frames spec's image outputs ask for.
func countFrames(spec Spec, m ffmpeg.Media) int {
	dur := m.Duration()
	frames := 0
	for _, o := range spec.Outputs {
		switch o.Kind {
		case KindThumbnail:
			frames += max(1, len(o.Times)) // sizes share their frame
		case KindThumbnails:
			if o.Interval > 0 {
				frames += int((dur + o.Interval - 1) / o.Interval)
			}
		}
	}
	return frames
}
