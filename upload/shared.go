package upload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/thumbd/thumbd/storage"
)

// Bucket is the store the instances of a farm share: s3store.Kept, whose
// names are slash paths under its prefix.
type Bucket interface {
	// Put stores body as name.
	Put(ctx context.Context, name string, body io.Reader, contentType string) (storage.Location, error)
	// OpenFile opens name for reading; a missing name is fs.ErrNotExist.
	OpenFile(ctx context.Context, name string) (storage.File, error)
	// RemoveAll deletes every name under the folder prefix; a missing
	// folder is no error.
	RemoveAll(prefix string) error
}

// sharedPrefix is the folder of the bucket that holds the uploads, one
// folder per task token: uploads/<task_token>/<file id>. It is no task
// token, so the kept files of tasks never meet it.
const sharedPrefix = "uploads/"

// sharedName is the name of an upload in the bucket.
func sharedName(task, id string) string { return sharedPrefix + task + "/" + id }

// sharedMark is the name of the empty file next to an upload that says
// the bucket has it: written once the upload is copied there, or when it
// was downloaded from there.
func (s *Server) sharedMark(task, id string) string {
	return filepath.Join(s.dir, task, id+".shared")
}

// preFinish is tusd's PreFinishResponseCallback: the request that finishes
// an upload is answered only once the upload is in the shared bucket, so
// that a client told "finished" can start its task through any instance.
// A failed copy fails that request; the upload stays here, and the next
// HEAD copies it again.
func (s *Server) preFinish(ev tusd.HookEvent) (tusd.HTTPResponse, error) {
	task, id, _ := strings.Cut(ev.Upload.ID, "/")
	if err := s.share(ev.Context, task, id); err != nil {
		return tusd.HTTPResponse{}, tusd.NewError("ERR_UPLOAD_NOT_SHARED", err.Error(), http.StatusServiceUnavailable)
	}
	return tusd.HTTPResponse{}, nil
}

// shareFinished copies the upload id of task to the bucket if it is
// finished and not there yet (its first copy failed). An upload this
// server does not have, or not finished, is left to tusd to answer for.
func (s *Server) shareFinished(ctx context.Context, task, id string) error {
	if s.shared == nil {
		return nil
	}
	if _, err := os.Stat(s.sharedMark(task, id)); err == nil {
		return nil
	}
	info, err := s.info(ctx, task, id)
	if err != nil || info.SizeIsDeferred || info.Offset < info.Size {
		return nil
	}
	return s.share(ctx, task, id)
}

// share copies the finished upload id of task to the bucket, once at a
// time, and marks it shared. The copy goes on when the client leaves.
func (s *Server) share(ctx context.Context, task, id string) error {
	ch := s.once.DoChan("put "+task+"/"+id, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		f, err := os.Open(filepath.Join(s.dir, task, id))
		if err != nil {
			return nil, fmt.Errorf("the upload is received, but copying it to the bucket the instances share failed: %w", err)
		}
		defer f.Close()
		if _, err := s.shared.Put(ctx, sharedName(task, id), f, "application/octet-stream"); err != nil {
			s.log.Warn("copying an upload to the shared bucket", "err", err)
			return nil, fmt.Errorf("the upload is received, but copying it to the bucket the instances share failed, so other instances cannot read it yet; retry (a HEAD request copies it again): %w", err)
		}
		return nil, os.WriteFile(s.sharedMark(task, id), nil, 0o644)
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-ch:
		return res.Err
	}
}

// download copies the upload id of task from the bucket into this
// server's directory, where it then is like an upload received here and
// finished: its bytes, then its tusd .info file, then its shared mark.
func (s *Server) download(ctx context.Context, task, id string) error {
	if _, err := s.info(ctx, task, id); err == nil {
		return nil // another download finished first
	}
	src, err := s.shared.OpenFile(ctx, sharedName(task, id))
	if err != nil {
		return s.sharedError(id, err)
	}
	defer src.Close()
	dir := filepath.Join(s.dir, task)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tus:%s: %w", id, err)
	}
	n, err := writeFile(dir, id, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("tus:%s: downloading the upload from the bucket the instances share: %w", id, err)
	}
	info, err := json.Marshal(tusd.FileInfo{ID: task + "/" + id, Size: n, Offset: n, MetaData: tusd.MetaData{}})
	if err != nil {
		return err
	}
	if _, err := writeFile(dir, id+".info", func(w io.Writer) error {
		_, err := w.Write(info)
		return err
	}); err != nil {
		return fmt.Errorf("tus:%s: %w", id, err)
	}
	if err := os.WriteFile(s.sharedMark(task, id), nil, 0o644); err != nil {
		return fmt.Errorf("tus:%s: %w", id, err)
	}
	s.log.Debug("downloaded an upload another instance received", "size", n)
	return nil
}

// writeFile writes name in dir through a temporary file renamed into
// place, so that name is whole or absent, and returns its size.
func writeFile(dir, name string, write func(io.Writer) error) (int64, error) {
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	var n int64
	if err == nil {
		n, err = tmp.Seek(0, io.SeekCurrent)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	return n, err
}

// sharedError explains a failure to find upload id in the bucket.
func (s *Server) sharedError(id string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tus:%s: %w for this task: neither this instance nor the bucket the instances share has it (an upload is shared once its last byte is received; the id is the last part of the upload's URL, and an upload is usable only by the task it was made for)", id, ErrNotFound)
	}
	return fmt.Errorf("tus:%s: reading the upload from the bucket the instances share: %w", id, err)
}

// ended reports whether the uploads in the folder of task were shared and
// are gone from the bucket: the task ended, on another instance, which
// removed them there.
func (s *Server) ended(ctx context.Context, task string) bool {
	marks, _ := filepath.Glob(filepath.Join(s.dir, task, "*.shared"))
	if len(marks) == 0 {
		return false
	}
	id := strings.TrimSuffix(filepath.Base(marks[0]), ".shared")
	f, err := s.shared.OpenFile(ctx, sharedName(task, id))
	if err == nil {
		f.Close()
		return false
	}
	return errors.Is(err, fs.ErrNotExist)
}
