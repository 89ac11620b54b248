// Package upload receives source files over TUS 1.0.0, as Qencode's direct
// upload does: create_task's upload_url plus "/<task_token>" is a TUS
// creation endpoint, each upload lives at "<upload_url>/<task_token>/<file
// id>", and a query then names the file as source "tus:<file id>".
//
// The protocol is tusd v2's (github.com/tus/tusd/v2) with its file store:
// an upload's bytes and its .info file lie under Dir/<task_token>/. An upload
// belongs to the task token in its URL: Open finds it only for that token,
// and tusd's concatenation (which could name another task's uploads) and
// download are turned off.
//
// A farm of instances shares finished uploads through a bucket
// (Config.Shared): an upload is copied there before the request that
// finishes it is answered, and an instance without the file downloads it
// once, into its own directory, when a task opens it.
package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	xslog "golang.org/x/exp/slog"
	"golang.org/x/sync/singleflight"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// Config configures a Server.
type Config struct {
	// Dir holds the uploads, one folder per task token.
	Dir string
	// MaxSize is the largest upload accepted, in bytes; 0 means no limit.
	MaxSize int64
	// BasePath is where the server is mounted: an absolute URL
	// (https://thumbs.example.com/v1/upload_file/) or a path
	// (/v1/upload_file/) completed with each request's host.
	BasePath string
	// Shared is the bucket a farm's instances share (THUMBD_FILES_URL), or
	// nil for an instance on its own. When set, a finished upload is copied
	// there before the request that finishes it is answered, and Find and
	// Open find an upload that another instance received.
	Shared Bucket
	Logger *slog.Logger
}

// Server is the TUS endpoint. Mount it so that it sees paths of the form
// /<task_token> and /<task_token>/<file id> (http.StripPrefix).
type Server struct {
	dir    string
	store  filestore.FileStore
	tus    *tusd.UnroutedHandler
	h      http.Handler
	log    *slog.Logger
	shared Bucket
	once   singleflight.Group // copies to and from the bucket, one per upload at a time
}

// taskKey carries the task token of a creation request to the hook that
// names the new upload.
type taskKey struct{}

// New builds a Server, creating Dir if need be.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("upload directory: %w", err)
	}
	store := filestore.New(cfg.Dir)
	composer := tusd.NewStoreComposer()
	store.UseIn(composer)
	memorylocker.New().UseIn(composer)
	s := &Server{dir: cfg.Dir, store: store, log: cfg.Logger, shared: cfg.Shared}
	var preFinish func(tusd.HookEvent) (tusd.HTTPResponse, error)
	if s.shared != nil {
		preFinish = s.preFinish
	}
	h, err := tusd.NewUnroutedHandler(tusd.Config{
		StoreComposer:           composer,
		BasePath:                cfg.BasePath,
		MaxSize:                 cfg.MaxSize,
		DisableDownload:         true,
		DisableConcatenation:    true,
		RespectForwardedHeaders: true,
		Logger:                  xslog.New(xslog.NewTextHandler(io.Discard, nil)), // tusd logs every request
		PreUploadCreateCallback: func(ev tusd.HookEvent) (tusd.HTTPResponse, tusd.FileInfoChanges, error) {
			task, _ := ev.Context.Value(taskKey{}).(string)
			if !engine.ValidToken(task) {
				return tusd.HTTPResponse{}, tusd.FileInfoChanges{}, tusd.NewError("ERR_NO_TASK", "upload to <upload_url>/<task_token>", http.StatusNotFound)
			}
			// The upload's id is its path: the file id is the last
			// segment of Location, as Qencode's clients expect.
			return tusd.HTTPResponse{}, tusd.FileInfoChanges{ID: task + "/" + engine.NewToken()}, nil
		},
		PreFinishResponseCallback: preFinish,
	})
	if err != nil {
		return nil, err
	}
	s.tus = h
	s.h = h.Middleware(http.HandlerFunc(s.route))
	return s, nil
}

// ServeHTTP serves /<task_token> (POST creates an upload) and
// /<task_token>/<file id> (HEAD, PATCH, DELETE), and OPTIONS on both.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.h.ServeHTTP(w, r)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	task, file, hasFile := strings.Cut(strings.Trim(r.URL.Path, "/"), "/")
	if !engine.ValidToken(task) || (hasFile && !validFileID(file)) {
		http.Error(w, "no such upload: the URL is <upload_url>/<task_token>[/<file id>]", http.StatusNotFound)
		return
	}
	switch {
	case r.Method == http.MethodOptions:
		// tusd's middleware has answered it.
	case !hasFile && r.Method == http.MethodPost:
		s.tus.PostFile(w, r.WithContext(context.WithValue(r.Context(), taskKey{}, task)))
	case hasFile && r.Method == http.MethodHead:
		if err := s.shareFinished(r.Context(), task, file); err != nil {
			// A finished upload that is not in the shared bucket yet (its
			// copy failed) is not reported finished until it is.
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		r.URL.Path = task + "/" + file
		s.tus.HeadFile(w, r)
	case hasFile && r.Method == http.MethodPatch:
		r.URL.Path = task + "/" + file
		s.tus.PatchFile(w, r)
	case hasFile && r.Method == http.MethodDelete:
		r.URL.Path = task + "/" + file
		s.tus.DelFile(w, r)
	case hasFile:
		w.Header().Set("Allow", "HEAD, PATCH, DELETE, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// validFileID reports whether s has the shape of the file ids this server
// makes: 32 hex digits.
func validFileID(s string) bool { return engine.ValidToken(s) }

// ErrNotFound means the task has no upload with that id.
var ErrNotFound = errors.New("no upload with this id")

// Find reports whether task has an upload with id, finished or not: in
// this server's directory, or finished in the shared bucket.
func (s *Server) Find(ctx context.Context, task, id string) error {
	_, err := s.info(ctx, task, id)
	if errors.Is(err, ErrNotFound) && s.shared != nil {
		var f storage.File
		if f, err = s.shared.OpenFile(ctx, sharedName(task, id)); err == nil {
			f.Close()
			return nil
		}
		return s.sharedError(id, err)
	}
	return err
}

// Open returns the finished upload id of task. Another task's upload is
// not found. An upload another instance received is downloaded from the
// shared bucket into this server's directory first, once however many
// open it at the same time.
func (s *Server) Open(ctx context.Context, task, id string) (*os.File, error) {
	info, err := s.info(ctx, task, id)
	if errors.Is(err, ErrNotFound) && s.shared != nil {
		ch := s.once.DoChan("get "+task+"/"+id, func() (any, error) {
			// The download goes on for those still waiting when the
			// first caller gives up.
			return nil, s.download(context.WithoutCancel(ctx), task, id)
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case res := <-ch:
			if res.Err != nil {
				return nil, res.Err
			}
		}
		info, err = s.info(ctx, task, id)
	}
	if err != nil {
		return nil, err
	}
	if info.SizeIsDeferred {
		return nil, fmt.Errorf("the upload tus:%s is not finished: %d bytes received, and its length was never declared", id, info.Offset)
	}
	if info.Offset < info.Size {
		return nil, fmt.Errorf("the upload tus:%s is not finished: %d of %d bytes received; resume it, then start the task", id, info.Offset, info.Size)
	}
	return os.Open(filepath.Join(s.dir, task, id))
}

// notFound is the error for an upload task does not have.
func notFound(id string) error {
	return fmt.Errorf("tus:%s: %w for this task (the id is the last part of the upload's URL, and an upload is usable only by the task it was made for)", id, ErrNotFound)
}

func (s *Server) info(ctx context.Context, task, id string) (tusd.FileInfo, error) {
	if !engine.ValidToken(task) || !validFileID(id) {
		return tusd.FileInfo{}, notFound(id)
	}
	up, err := s.store.GetUpload(ctx, task+"/"+id)
	if err != nil {
		if errors.Is(err, tusd.ErrNotFound) {
			return tusd.FileInfo{}, notFound(id)
		}
		return tusd.FileInfo{}, fmt.Errorf("tus:%s: %v", id, err)
	}
	return up.GetInfo(ctx)
}

// Remove deletes every upload of task, here and in the shared bucket.
func (s *Server) Remove(task string) error {
	if !engine.ValidToken(task) {
		return nil
	}
	var errs []error
	if s.shared != nil {
		if err := s.shared.RemoveAll(sharedPrefix + task); err != nil {
			errs = append(errs, fmt.Errorf("removing the shared copies of the uploads: %w", err))
		}
	}
	if err := os.RemoveAll(filepath.Join(s.dir, task)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Sweep deletes the uploads of tasks that have seen no new upload for
// longer than age (tasks that were never started), with their copies in
// the shared bucket. With a shared bucket it also deletes the uploads here
// of a task that ended on another instance (which removed them from the
// bucket). It returns how many tasks' uploads it removed.
func (s *Server) Sweep(ctx context.Context, age time.Duration) (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-age)
	n := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if !e.IsDir() || !engine.ValidToken(e.Name()) {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		newest := time.Time{}
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			if fi, err := f.Info(); err == nil && fi.ModTime().After(newest) {
				newest = fi.ModTime()
			}
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		switch {
		case newest.Before(cutoff):
			if s.shared != nil {
				if err := s.shared.RemoveAll(sharedPrefix + e.Name()); err != nil {
					s.log.Warn("removing the shared copies of old uploads", "err", err)
					continue // kept here, so that the next sweep tries again
				}
			}
		case s.shared == nil || !s.ended(ctx, e.Name()):
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			n++
		}
	}
	return n, nil
}

// SweepEvery runs Sweep(age) every interval until ctx ends, and returns
// then: run it on a goroutine its owner waits for.
func (s *Server) SweepEvery(ctx context.Context, interval, age time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.Sweep(ctx, age); err != nil && ctx.Err() == nil {
				s.log.Warn("sweeping old uploads", "err", err)
			} else if n > 0 {
				s.log.Info("removed the uploads of tasks never started or ended elsewhere", "tasks", n, "older_than", age)
			}
		}
	}
}

// Metrics returns tusd's counts of this server's uploads (created,
// finished, terminated, bytes received, errors), for metrics.
func (s *Server) Metrics() tusd.Metrics { return s.tus.Metrics }
