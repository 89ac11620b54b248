// Command thumbd is a self-hosted thumbnail engine that speaks the Qencode
// transcoding API. See the README for the API and every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/thumbd/thumbd/api"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

func main() {
	cfg, err := LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "thumbd:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, log, nil); err != nil {
		log.Error("thumbd stopped", "err", err)
		os.Exit(1)
	}
}

// Run builds every component from cfg, serves until ctx ends, then shuts
// down: it stops accepting requests, stops running ffmpeg processes and
// returns. If listening is not nil, it receives the address once the server
// listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, listening chan<- string) error {
	if len(cfg.APIKeys) == 0 {
		log.Warn("THUMBD_API_KEYS is not set: ANY api_key of at least 12 characters is accepted. Set THUMBD_API_KEYS before exposing thumbd to anyone.")
	}
	files, err := storage.NewLocal(filepath.Join(cfg.DataDir, "files"))
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	objects := storage.NewS3(storage.S3Options{HTTPHosts: cfg.S3HTTPHosts, Logger: log})
	runner := engine.Runner{FFmpeg: cfg.FFmpeg, FFprobe: cfg.FFprobe}
	if err := runner.Check(ctx); err != nil {
		log.Warn("ffmpeg is missing: tasks will fail until it is installed", "err", err)
	}
	eng := engine.New(engine.Config{
		APIKeys:  cfg.APIKeys,
		Workers:  cfg.Workers,
		Accuracy: cfg.Accuracy,
		WorkDir:  filepath.Join(cfg.DataDir, "work"),
		Runner:   runner,
		Objects:  objects,
		Files:    files,
		Logger:   log,
	})
	srv := api.New(api.Config{
		Engine:    eng,
		Files:     files,
		PublicURL: cfg.PublicURL,
		Logger:    log,
		Ready:     readiness(runner, cfg.DataDir),
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10e9}
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(engCtx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- httpSrv.Serve(ln) }()
	log.Info("thumbd listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "data_dir", cfg.DataDir, "workers", cfg.Workers)
	if listening != nil {
		listening <- ln.Addr().String()
	}

	select {
	case err = <-srvDone:
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if shErr := httpSrv.Shutdown(shCtx); shErr != nil {
		log.Warn("http shutdown", "err", shErr)
	}
	stopEngine()
	<-engDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// readiness checks that ffmpeg and ffprobe can be found and that the data
// directory is writable.
func readiness(r engine.Runner, dataDir string) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, tool := range []string{r.FFmpeg, r.FFprobe} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%s not found", tool)
			}
		}
		f, err := os.CreateTemp(dataDir, ".ready-*")
		if err != nil {
			return fmt.Errorf("data directory is not writable: %v", err)
		}
		f.Close()
		return os.Remove(f.Name())
	}
}
