package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/thumbd/thumbd/storage"
)

// saveWorkers is how many files are stored at once: uploads wait on the
// network and local copies on the disk's sync, not on the CPU.
const saveWorkers = 8

// saveFlushEvery is how often the status is written while files are being
// saved. Writing it once per file would cost the whole status each time:
// saving n images would cost n².
const saveFlushEvery = time.Second

// saveJob is one produced file to store, with where it went, or an
// output's manifest (saveManifest).
type saveJob struct {
	p        *outputPlan
	pf       producedFile
	manifest bool
	locs     []storage.Location
	err      error
	done     chan struct{}
}

// save puts every produced file in its destinations, or keeps it, and
// records an image or video entry for each. An output's manifest is kept
// by thumbd whatever the destinations, and uploaded beside the images only
// when asked for (Output.Manifest, Config.UploadManifests): a destination
// gets what Qencode would put there. It has no entry of its own (Qencode
// clients take every images entry for a picture or the VTT); the output's
// image entries name it (saveManifest).
//
// Manifests, then files, are stored saveWorkers at a time; entries are recorded in
// order, in batches written about every saveFlushEvery, so that saving
// costs the same per file whatever their number. On the first failure the
// files stored before it in order are recorded and the error returned.
func (e *Engine) save(ctx context.Context, token string, plans []*outputPlan) error {
	if err := e.progress(ctx, token, StateSaving, 90); err != nil {
		return err
	}
	var jobs []*saveJob
	total := 0
	manifests := map[*outputPlan]string{}
	for _, p := range plans {
		manifests[p] = e.manifestKept(token, p)
		if slices.ContainsFunc(p.files, func(pf producedFile) bool { return pf.kind == KindManifest }) {
			jobs = append(jobs, &saveJob{p: p, manifest: true, done: make(chan struct{})})
		}
	}
	for _, p := range plans {
		for _, pf := range p.files {
			if pf.kind == KindManifest {
				continue
			}
			total += max(1, len(p.out.Destinations))
			jobs = append(jobs, &saveJob{p: p, pf: pf, done: make(chan struct{})})
		}
	}
	if len(jobs) == 0 {
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan *saveJob)
	var wg sync.WaitGroup
	for range min(saveWorkers, len(jobs)) {
		wg.Go(func() {
			for j := range next {
				if j.manifest {
					j.err = e.saveManifest(ctx, token, j.p)
				} else {
					j.locs, j.err = e.store1(ctx, token, j.p, j.pf)
				}
				close(j.done)
			}
		})
	}
	go func() {
		defer close(next)
		for _, j := range jobs {
			select {
			case next <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()

	b := saveBatch{e: e, token: token, last: time.Now()}
	defer b.flush(ctx)
	n := map[*outputPlan]int{} // entries recorded per output, numbered from its first file's
	for _, p := range plans {
		n[p] = p.firstFile() * max(1, len(p.out.Destinations))
	}
	stored := 0
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.err != nil {
			cancel()
			return j.err
		}
		for _, loc := range j.locs {
			stored++
			p, pf := j.p, j.pf
			if v := pf.video; v != nil {
				b.videos = append(b.videos, Video{Output: p.index, N: n[p], Format: v.format, UserTag: p.out.UserTag,
					Location: loc, Size: v.size, Duration: v.duration, Bitrate: v.bitrate, Meta: v.meta})
			} else {
				b.images = append(b.images, Image{Output: p.index, N: n[p], Kind: pf.kind, Format: pf.format,
					UserTag: p.out.UserTag, Location: loc, Width: pf.width, Height: pf.height, Frames: pf.frames, Manifest: manifests[p]})
			}
			n[p]++
		}
		b.pct = 90 + 9*float64(stored)/float64(total)
		if time.Since(b.last) >= saveFlushEvery {
			b.flush(ctx)
		}
	}
	return nil
}

// store1 stores one file: kept locally when its output has no
// destination, else uploaded to each destination in turn.
func (e *Engine) store1(ctx context.Context, token string, p *outputPlan, pf producedFile) ([]storage.Location, error) {
	ct := ImageFormat(pf.format).ContentType()
	switch {
	case pf.kind == KindVTT:
		ct = "text/vtt"
	case pf.video != nil:
		ct = pf.video.contentType
	}
	var locs []storage.Location
	if len(p.out.Destinations) == 0 {
		loc, err := e.putLocal(ctx, keptName(token, p, pf.name), pf.path, ct)
		if err != nil {
			return nil, fmt.Errorf("keeping %s: %w", pf.name, err)
		}
		locs = append(locs, loc)
	}
	for _, d := range p.out.Destinations {
		d.URL = withSuffix(objectURL(d.URL, p.out.Kind, p.index, pf.name), d.URL, pf.suffix)
		loc, err := e.putObject(ctx, d, pf.path, ct)
		if err != nil {
			return nil, err
		}
		locs = append(locs, loc)
	}
	return locs, nil
}

// saveBatch holds the entries recorded since the status was last written.
type saveBatch struct {
	e      *Engine
	token  string
	images []Image
	videos []Video
	pct    float64
	last   time.Time
}

// flush writes the batch into the task's status, in one write.
func (b *saveBatch) flush(ctx context.Context) {
	if len(b.images) == 0 && len(b.videos) == 0 && b.pct == 0 {
		return
	}
	images, videos, pct := b.images, b.videos, b.pct
	if part := partOf(ctx); part != nil {
		// A part's entries go into its task's status when it ends.
		part.images, part.videos = append(part.images, images...), append(part.videos, videos...)
		b.images, b.videos, b.pct, b.last = nil, nil, 0, time.Now()
		return
	}
	b.e.update(ctx, b.token, func(s *Snapshot) {
		s.Images = append(s.Images, images...)
		s.Videos = append(s.Videos, videos...)
		s.Percent = max(s.Percent, pct)
	})
	b.images, b.videos, b.pct, b.last = nil, nil, 0, time.Now()
}
