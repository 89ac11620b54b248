package engine

import (
	"context"
	"strings"
	"time"
)

// Sources makes a task's source readable by ffmpeg. The source gateway
// (package source) implements it: it reads http(s), s3://, file:// and tus:
// sources for ffmpeg through loopback, with the server's guard rails.
type Sources interface {
	// Check refuses, before a task is queued, a source this server will
	// never read; the error's text says why, as the reason of the
	// "source" field.
	Check(ctx context.Context, task, rawURL string) error
	// Open makes rawURL readable for the task until Close. Its error
	// tells the user what is wrong with the source.
	Open(ctx context.Context, task, rawURL string) (OpenSource, error)
}

// OpenSource is a source made readable for one task.
type OpenSource interface {
	URL() string    // what ffmpeg and ffprobe read
	Name() string   // the source as it may be shown: no credentials
	Size() int64    // bytes; 0 when unknown
	Failure() error // why reading it failed, when the reader knows; else nil
	Close()
}

// ContentKeyer is implemented by OpenSources that can name their content:
// a key that changes whenever the bytes may have (the URL with the
// validators its origin sent, a file's identity and modification time, an
// upload's hash), or "" when they cannot tell. The engine reuses what it
// learned of a source (its probe and frame index) under this key.
type ContentKeyer interface {
	ContentKey() string
}

// contentKey is src's ContentKey, or "".
func contentKey(src OpenSource) string {
	if k, ok := src.(ContentKeyer); ok {
		return k.ContentKey()
	}
	return ""
}

// LocalSource is implemented by OpenSources that can say whether ffmpeg
// reads them from this machine's disk (a file, an upload, a source
// downloaded whole), where reading all of it for a frame index is cheap.
type LocalSource interface {
	Local() bool
}

// isLocal reports whether src says it is read from local disk.
func isLocal(src OpenSource) bool {
	l, ok := src.(LocalSource)
	return ok && l.Local()
}

// TaskReleaser is implemented by Sources that keep something for a task,
// such as its direct uploads, until the task has ended for good (completed
// or failed; not interrupted by a shutdown, after which it runs again).
type TaskReleaser interface {
	ReleaseTask(ctx context.Context, task string)
}

// Presigner turns an s3:// URL into an https URL that ffmpeg can read.
// s3store.Store implements it.
type Presigner interface {
	Presign(ctx context.Context, rawURL, key, secret string, ttl time.Duration) (string, error)
}

// openSource opens a task's source with the configured Sources, or, when
// there are none, hands http(s) URLs to ffmpeg as they are and presigns
// s3:// ones (for tests and embedding; thumbd itself always has a gateway).
func (e *Engine) openSource(ctx context.Context, token, src string) (OpenSource, error) {
	if e.cfg.Sources != nil {
		s, err := e.cfg.Sources.Open(ctx, token, src)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &sourceError{Reason: err.Error()}
		}
		return s, nil
	}
	if strings.HasPrefix(src, "s3://") {
		p, ok := e.cfg.Objects.(Presigner)
		if !ok {
			return nil, &sourceError{Reason: "s3:// sources are not available on this server"}
		}
		u, err := p.Presign(ctx, src, "", "", 6*time.Hour)
		if err != nil {
			return nil, &sourceError{Reason: "the s3:// source could not be signed", Err: err}
		}
		return direct{url: u, name: src}, nil
	}
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return nil, &sourceError{Reason: "this server reads only http(s) and s3:// sources"}
	}
	return direct{url: src, name: src}, nil
}

// direct is a source ffmpeg reads by itself.
type direct struct{ url, name string }

func (d direct) URL() string    { return d.url }
func (d direct) Name() string   { return d.name }
func (d direct) Size() int64    { return 0 }
func (d direct) Failure() error { return nil }
func (d direct) Close()         {}

// explainRead explains a failure that happened while ffmpeg read src: the
// reader's own account when it has one (the origin's status, a refused
// address, a size over the limit), else err with the loopback URL ffmpeg
// read replaced by the source's name.
func explainRead(err error, src OpenSource) error {
	if err == nil {
		return nil
	}
	if f := src.Failure(); f != nil {
		return &sourceError{Reason: f.Error()}
	}
	err = asSourceError(err)
	if src.URL() != src.Name() && strings.Contains(err.Error(), src.URL()) {
		return &renamed{err: err, old: src.URL(), new: src.Name()}
	}
	return err
}

// renamed is an error whose text names the source instead of the URL
// ffmpeg read it through.
type renamed struct {
	err      error
	old, new string
}

func (r *renamed) Error() string { return strings.ReplaceAll(r.err.Error(), r.old, r.new) }
func (r *renamed) Unwrap() error { return r.err }
