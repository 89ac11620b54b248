package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/source"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
)

// TaskOptions says where RunTask keeps files and whom it tells of
// progress.
type TaskOptions struct {
	// Files keeps the files of outputs without a destination, under names
	// that start with the task token; nil: a storage.Local under
	// cfg.DataDir, as the server keeps them.
	Files engine.FileStore
	// Progress, if set, is called with each new state or percentage the
	// task reaches, and with the last.
	Progress func(engine.Snapshot)
	// Poll is how often the task's state is read; default 100 ms.
	Poll time.Duration
}

// RunTask runs one task with the engine the server uses, without the HTTP
// server: the same sources (under cfg's rules: SourceDirs for file://,
// the network guard of AllowPrivateNetworks and AllowedNetworks), ffmpeg, outputs and S3 destinations, with tasks in
// memory and scratch files under cfg.DataDir. It returns the task's last
// snapshot, which says whether it completed; the error is for what kept
// the task from running at all (a spec the engine refuses, ffmpeg
// missing, ctx ending).
func RunTask(ctx context.Context, cfg Config, log *slog.Logger, spec engine.Spec, opts TaskOptions) (engine.Snapshot, error) {
	runner := ffmpeg.Runner{FFmpeg: cfg.FFmpeg, FFprobe: cfg.FFprobe}
	if err := runner.Check(ctx); err != nil {
		return engine.Snapshot{}, fmt.Errorf("ffmpeg: %w", err)
	}
	files := opts.Files
	if files == nil {
		local, err := newLocalFiles(cfg.DataDir)
		if err != nil {
			return engine.Snapshot{}, err
		}
		files = local
	}
	guard := netGuard(cfg) // a one-shot run on the user's machine: no warning

	objects := s3store.New(s3store.Options{HTTPHosts: cfg.S3HTTPHosts, RetryWindow: cfg.S3RetryWindow, Guard: guard, Logger: log})
	sources, err := source.New(source.Config{
		Guard:      guard,
		Dirs:       cfg.SourceDirs,
		MaxSize:    cfg.MaxSourceSize,
		PresignTTL: presignTTL(cfg.TaskTimeout),
		S3:         objects,
		Logger:     log,
	})
	if err != nil {
		return engine.Snapshot{}, err
	}
	defer sources.Close()
	// One key, known only here: nobody else can reach this engine.
	key := engine.NewToken()
	eng := engine.New(engine.Config{
		APIKeys:         []string{key},
		Workers:         cfg.Workers,
		Accuracy:        cfg.Accuracy,
		WorkDir:         filepath.Join(cfg.DataDir, "work"),
		Runner:          runner,
		Objects:         objects,
		Files:           files,
		Sources:         sources,
		TaskTimeout:     cfg.TaskTimeout,
		UploadManifests: cfg.UploadManifests,
		Logger:          log,
	})
	engCtx, stopEngine := context.WithCancel(ctx)
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(engCtx) }()
	defer func() {
		eng.Close()
		stopEngine()
		<-engDone
	}()

	session, _, err := eng.NewSession(ctx, key)
	if err != nil {
		return engine.Snapshot{}, err
	}
	token, err := eng.CreateTask(ctx, session)
	if err != nil {
		return engine.Snapshot{}, err
	}
	if err := eng.Start(ctx, token, spec); err != nil {
		return engine.Snapshot{}, err
	}
	poll := opts.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var last engine.Snapshot
	for {
		snap, err := eng.Status(ctx, token)
		if err != nil {
			return last, err
		}
		if opts.Progress != nil && (snap.State != last.State || snap.Percent != last.Percent) {
			opts.Progress(snap)
		}
		last = snap
		if snap.State.Done() {
			return snap, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case err := <-engDone:
			engDone <- err
			if err == nil {
				err = errors.New("the engine stopped")
			}
			return last, err
		case <-tick.C:
		}
	}
}

// newLocalFiles is the store of the files thumbd keeps, under dataDir.
func newLocalFiles(dataDir string) (*storage.Local, error) {
	files, err := storage.NewLocal(filepath.Join(dataDir, "files"))
	if err != nil {
		return nil, dataDirError(dataDir, err)
	}
	return files, nil
}
