package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// spool downloads the source of an origin that ignores Range, whose answer
// to the first request (resp) is the whole file, into an unnamed file in
// SpoolDir, and serves it from there: every seek ffmpeg makes would
// otherwise read the origin again from the start. The file goes when the
// source is closed (it has no name from the start, so not even a crash
// leaves it behind). A source over the size limit is refused as it comes.
func (e *entry) spool(ctx context.Context, resp *http.Response, stall *time.Timer) error {
	f, err := os.CreateTemp(e.g.cfg.SpoolDir, "thumbd-spool-*")
	if err != nil {
		return e.fail(fmt.Errorf("the source cannot be downloaded: its origin does not take range requests, and the server has no room to keep it: %v", err))
	}
	os.Remove(f.Name())
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	limit, max := int64(-1), e.g.cfg.MaxSize
	if e.knownSize() < 0 {
		max = e.g.unsizedLimit()
	}
	if max > 0 {
		limit = max + 1
	}
	began := time.Now()
	n, err := copyBody(f, resp.Body, stall, e.g.cfg.StallTimeout, &e.read, limit, e.g.rateCheck())
	var we *writeError
	switch {
	case errors.As(err, &we):
		return e.fail(fmt.Errorf("the source cannot be downloaded: its origin does not take range requests, and keeping it failed: %v", we.err))
	case err != nil:
		return e.fail(e.readError(ctx, err))
	case limit > 0 && n == limit:
		return e.fail(e.g.unsizedError(e.shown))
	}
	if size := e.knownSize(); size >= 0 && n != size {
		return e.fail(fmt.Errorf("the source ended after %d of its %d bytes: %s", n, size, e.shown))
	}
	if err := e.setSize(n); err != nil {
		return err
	}
	e.kind, e.file, e.spooled, keep = kindFile, f, true, true
	e.g.log.Info("source downloaded whole: its origin ignores range requests", "task", engine.Redact(e.task), "source", e.shown,
		"size", n, "took", time.Since(began).Round(time.Millisecond))
	head := make([]byte, 64)
	m, _ := f.ReadAt(head, 0)
	return e.sniff(head[:m])
}

// Local implements engine.LocalSource: a file, an upload or a source
// downloaded whole is read from this machine's disk.
func (e *entry) Local() bool { return e.kind == kindFile }
