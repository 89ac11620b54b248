// Package app builds every component of thumbd from a Config and runs them:
// the one place that wires the engine, its stores and queue, the sources,
// storage, callbacks, uploads, the test-control plane and the HTTP API.
// cmd/thumbd calls it; so can a test or a tool that starts thumbd in its
// own process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/thumbd/thumbd/api"
	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/console"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/pgstore"
	"github.com/thumbd/thumbd/riverq"
	"github.com/thumbd/thumbd/source"
	"github.com/thumbd/thumbd/sqlitestore"
	"github.com/thumbd/thumbd/static"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
	"github.com/thumbd/thumbd/testcontrol"
	"github.com/thumbd/thumbd/upload"
)

// Run builds every component from cfg, serves until ctx ends, then shuts
// down: it stops accepting requests and tasks, lets running tasks finish
// for up to cfg.ShutdownTimeout, stops the ffmpeg processes still running
// (their tasks stay queued) and returns. If listening is not nil, it
// receives the address once the server listens.
func Run(ctx context.Context, cfg Config, log *slog.Logger, listening chan<- string) error {
	// The port first: when it is taken, nothing else has been done (no
	// database opened or migrated) and the error says how to move it.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return listenError(cfg.Addr, err)
	}
	defer ln.Close()
	if len(cfg.APIKeys) == 0 {
		log.Warn("THUMBD_API_KEYS is not set: ANY api_key of at least 12 characters is accepted. Set THUMBD_API_KEYS before exposing thumbd to anyone.")
	}
	local, err := storage.NewLocal(filepath.Join(cfg.DataDir, "files"))
	if err != nil {
		return dataDirError(cfg.DataDir, err)
	}
	var (
		files  keptFiles     = local
		shared upload.Bucket // the bucket a farm shares, for uploads
	)
	if cfg.FilesURL != "" {
		// The operator's own bucket: a store of its own, which neither
		// fault injection nor the guard on users' destinations touch (the
		// operator named it; it is often on a private network).
		kept, err := s3store.NewKept(s3store.New(s3store.Options{HTTPHosts: cfg.S3HTTPHosts, RetryWindow: cfg.S3RetryWindow,
			Guard: netguard.New(netguard.Policy{AllowPrivate: true}).For("the kept files' bucket"), Logger: log}), cfg.FilesURL)
		if err != nil {
			return fmt.Errorf("THUMBD_FILES_URL: %w", err)
		}
		log.Info("kept files go to a bucket", "url", kept.URL())
		files, shared = kept, kept
	}
	base := cfg.PublicURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}

	guard := outboundGuard(cfg, log)
	var plane *testcontrol.Plane
	s3opts := s3store.Options{HTTPHosts: cfg.S3HTTPHosts, RetryWindow: cfg.S3RetryWindow, Guard: guard, Logger: log}
	if cfg.TestAPI {
		log.Warn("THUMBD_TEST_API=1: the test-control plane is served under /_thumbd/ (anyone can reset thumbd); never set it in production")
		plane = testcontrol.New()
		s3opts.HTTPClient = &http.Client{Transport: plane.Transport(guard.Transport())}
	}
	objects := s3store.New(s3opts)
	uploadBase := "/v1/upload_file/"
	if cfg.PublicURL != "" {
		uploadBase = cfg.PublicURL + uploadBase
	}
	uploads, err := upload.New(upload.Config{Dir: filepath.Join(cfg.DataDir, "uploads"), MaxSize: cfg.MaxSourceSize, BasePath: uploadBase, Shared: shared, Logger: log})
	if err != nil {
		return err
	}
	sources, err := source.New(source.Config{
		Guard:          guard,
		Dirs:           cfg.SourceDirs,
		MaxSize:        cfg.MaxSourceSize,
		MaxUnsizedSize: cfg.MaxUnsizedSize,
		MinRate:        cfg.MinSourceRate,
		RateWindow:     cfg.SourceRateWindow,
		SpoolDir:       spoolDir(cfg.DataDir),
		PresignTTL:     presignTTL(cfg.TaskTimeout),
		S3:             objects,
		Uploads:        uploads,
		Self:           source.SelfURLs(cfg.PublicURL, ln.Addr()),
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer sources.Close()
	obs := newObservers(cfg.Metrics)
	runner := ffmpeg.Runner{FFmpeg: cfg.FFmpeg, FFprobe: cfg.FFprobe, Processes: obs.processes}
	if err := runner.Check(ctx); err != nil {
		log.Warn("ffmpeg is missing: tasks will fail until it is installed", "err", err)
	}

	var (
		store engine.Store
		queue engine.Queue
		cbq   callback.Queue                // nil: callbacks are kept in memory
		ready []func(context.Context) error // besides ffmpeg and the data directory
	)
	switch cfg.Store {
	case "memory":
		q := engine.NewMemoryQueue(4096, cfg.Workers)
		q.Grace, q.Timeout = cfg.ShutdownTimeout, queueTimeout(cfg.TaskTimeout)
		store, queue = engine.NewMemoryStore(), q
	case "postgres":
		// Several thumbd processes may share this database and its queue.
		// A task of a process that died is run again by River's rescuer
		// (see riverq.NewPostgres), not at the next start as with SQLite.
		log.Info("using PostgreSQL", "database", databaseName(cfg.DatabaseURL))
		db, err := pgstore.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer db.Close()
		opts := riverOptions(cfg, log)
		opts.Lease = cfg.FailoverAfter
		q, err := riverq.NewPostgres(ctx, db.Pool(), opts)
		if err != nil {
			return err
		}
		store, queue, cbq = db, q, q.Callbacks()
	default:
		db, err := sqlitestore.Open(ctx, cfg.DataDir)
		if err != nil {
			return err
		}
		defer db.Close()
		q, err := riverq.NewSQLite(ctx, db.SQL(), riverOptions(cfg, log))
		if err != nil {
			return err
		}
		store, queue, cbq = db, q, q.Callbacks()
		ready = append(ready, db.Check)
		go db.Watch(ctx, dbCheckEvery, log)
	}

	obs.read(queue, sources, uploads)

	// Status polls are answered from memory: every writer below (the
	// engine, the callbacks' warnings, the console) shares this one cache.
	store = engine.NewCachedStore(store)

	// Events go one way: the engine tells callbacks of them, and a callback
	// that keeps failing warns its task through the store they share. With
	// a database each delivery is a River job beside the tasks' (cbq).
	cbCfg := callback.Config{
		Queue:    cbq,
		Guard:    guard,
		Base:     base,
		Warnings: engine.TaskWarnings{Store: store},
		RetryFor: cfg.CallbackRetry,
		Logger:   log,
		Observer: obs.callbacks,
	}
	if plane != nil {
		cbCfg.Fault = plane.CallbackFault
	}
	callbacks := callback.New(cbCfg)
	var (
		notifier engine.Notifier = callbacks
		gate     engine.Gate
	)
	if plane != nil {
		notifier, gate = plane.Observe(callbacks), plane
	}
	eng := engine.New(engine.Config{
		APIKeys:   cfg.APIKeys,
		Workers:   cfg.Workers,
		WorkDir:   filepath.Join(cfg.DataDir, "work"),
		Runner:    runner,
		Objects:   objects,
		Files:     files,
		Store:     store,
		Queue:     queue,
		Notifier:  notifier,
		Gate:      gate,
		Observer:  obs.engine,
		Retention: cfg.Retention,
		Accuracy:  cfg.Accuracy,
		Logger:    log,

		Sources:         sources,
		TaskTimeout:     cfg.TaskTimeout,
		MaxPixels:       cfg.MaxSourcePixels,
		MaxOutputs:      cfg.MaxOutputs,
		MaxImages:       cfg.MaxImages,
		UploadManifests: cfg.UploadManifests,
		ProbeCache:      probeCache(cfg.ProbeCache),
		PartOutputs:     partOutputs(cfg),
		PartImages:      cfg.SpreadImages,
	})
	var cons http.Handler
	if cfg.Console {
		cons = console.New(console.Config{
			Backend: &console.StoreBackend{Store: store, Callbacks: callbacks.Deliveries,
				Status: func(s engine.Snapshot, base string) any { return wire.TaskStatus(s, base) }},
			APIKeys:   cfg.APIKeys,
			PublicURL: cfg.PublicURL,
			Logger:    log,
		})
	}
	apiCfg := api.Config{
		Engine:      eng,
		Files:       files,
		PublicURL:   cfg.PublicURL,
		Logger:      log,
		Ready:       readiness(runner, cfg.DataDir, ready...),
		Uploads:     uploads,
		Static:      static.Handler(),
		BodyTimeout: cfg.BodyTimeout,
		Console:     cons,
		Metrics:     obs.handler,
	}
	if plane != nil {
		// The test-control plane hangs on from outside: its routes, and
		// its holds on the status reads of /v1/status.
		apiCfg.Control = &api.Control{
			Plane: plane,
			Reset: func(ctx context.Context) error {
				err := eng.Reset(ctx)
				plane.Clear()
				callbacks.Clear()
				return err
			},
			Callbacks: callbacks.Deliveries,
		}
		apiCfg.PollStatus = plane.WatchStatus(eng.Status)
	}
	// Slow clients are bounded: 10 s for the headers, BodyTimeout for an
	// API request's body, IdleTimeout between requests, and MaxConns open
	// at once.
	httpSrv := &http.Server{Handler: api.New(apiCfg).Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	// Every goroutine started here ends with a context of Run's and is
	// waited for before Run returns.
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	var engErr error
	engDone := make(chan struct{})
	go func() { defer close(engDone); engErr = eng.Run(engCtx) }()
	var srvErr error
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); srvErr = httpSrv.Serve(limitConns(ln, cfg.MaxConns)) }()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); uploads.SweepEvery(sweepCtx, time.Hour, uploadMaxAge) }()
	log.Info("thumbd listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "data_dir", cfg.DataDir,
		"workers", cfg.Workers, "store", cfg.Store, "test_api", cfg.TestAPI, "console", cfg.Console)
	if listening != nil {
		listening <- ln.Addr().String()
	}

	select {
	case <-srvDone:
		err = srvErr
	case <-engDone:
		err = engErr
		if err == nil {
			err = errors.New("the engine stopped")
		}
	case <-ctx.Done():
	}
	log.Info("shutting down: no new requests or tasks; running tasks may finish", "timeout", cfg.ShutdownTimeout)
	eng.Close()
	shCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+5*time.Second)
	defer cancel()
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if shErr := httpSrv.Shutdown(shCtx); shErr != nil {
			log.Warn("http shutdown", "err", shErr)
		}
	}()
	stopEngine()
	stopSweep()
	<-engDone
	if engErr != nil && err == nil {
		err = engErr
	}
	<-httpDone
	<-srvDone
	<-sweepDone
	if cbErr := callbacks.Close(shCtx); cbErr != nil {
		log.Warn("callbacks still being delivered were dropped", "err", cbErr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// listenError explains a failure to listen on addr and names the setting
// that moves thumbd to another address.
func listenError(addr string, err error) error {
	hint := "set THUMBD_ADDR or -addr to another address, like 127.0.0.1:8081"
	if errors.Is(err, syscall.EADDRINUSE) {
		hint = "another program (or another thumbd) is using it; stop it, or " + hint
	}
	return fmt.Errorf("cannot listen on %s: %w; %s", addr, err, hint)
}

// keptFiles is where the files without a destination go: the data
// directory (storage.Local) or a bucket (s3store.Kept).
type keptFiles interface {
	engine.FileStore
	engine.FileRemover
	api.Files
}

// dataDirError explains a failure to prepare the data directory; when it
// is a permission error it says which user must own the directory, the
// usual mistake with a host folder mounted into the container.
func dataDirError(dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		uid, gid := os.Getuid(), os.Getgid()
		return fmt.Errorf("data directory %s: %w: thumbd runs as uid %d and must be able to write there; for a host folder mounted into a container, run on the host: sudo chown -R %d:%d <folder>", dir, err, uid, uid, gid)
	}
	return fmt.Errorf("data directory: %w", err)
}

// outboundGuard is the one network guard of sources, S3 destinations and
// callbacks (netGuard). It says so in the log when it lets them reach
// private networks.
func outboundGuard(cfg Config, log *slog.Logger) *netguard.Guard {
	switch {
	case cfg.AllowPrivateNetworks:
		log.Warn("THUMBD_ALLOW_PRIVATE_NETWORKS is on: sources, S3 destinations and callbacks may reach loopback, private and link-local addresses, this machine included. Keep it off on a service others can use.")
	case len(cfg.AllowedNetworks) > 0:
		nets := make([]string, len(cfg.AllowedNetworks))
		for i, p := range cfg.AllowedNetworks {
			nets[i] = p.String()
		}
		log.Warn("THUMBD_ALLOWED_NETWORKS: sources, S3 destinations and callbacks may reach these private networks", "networks", strings.Join(nets, ","))
	}
	return netGuard(cfg)
}

// netGuard is the network guard cfg's AllowPrivateNetworks and
// AllowedNetworks describe.
func netGuard(cfg Config) *netguard.Guard {
	return netguard.New(netguard.Policy{AllowPrivate: cfg.AllowPrivateNetworks, Allowed: cfg.AllowedNetworks})
}

// dbCheckEvery is how often the SQLite database's file is checked: one
// deleted under a running thumbd is logged within that time.
const dbCheckEvery = 2 * time.Second

// readiness checks that ffmpeg and ffprobe can be found, that the data
// directory is writable, and then checks.
func readiness(r ffmpeg.Runner, dataDir string, checks ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, check := range checks {
			if err := check(ctx); err != nil {
				return err
			}
		}
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

// uploadMaxAge is how long the uploads of a task that is never started are
// kept: past the life of the access token that could start it.
const uploadMaxAge = 48 * time.Hour

// presignTTL is how long an s3:// source's presigned URL must live: past
// the end of the longest task.
func presignTTL(taskTimeout time.Duration) time.Duration {
	if taskTimeout <= 0 {
		return 24 * time.Hour
	}
	return taskTimeout + 10*time.Minute
}

// riverOptions configures the River queue of either database.
func riverOptions(cfg Config, log *slog.Logger) riverq.Options {
	return riverq.Options{Workers: cfg.Workers, Grace: cfg.ShutdownTimeout,
		Timeout: queueTimeout(cfg.TaskTimeout), Poll: 500 * time.Millisecond, Logger: log.With("component", "river")}
}

// queueTimeout is the queue's own limit on one task: a safety net behind
// the engine's TaskTimeout, which ends an overlong task with a clear error
// first.
func queueTimeout(taskTimeout time.Duration) time.Duration {
	if taskTimeout <= 0 {
		return 0
	}
	return taskTimeout + time.Minute
}

// probeCache turns THUMBD_PROBE_CACHE into engine.Config.ProbeCache, where
// 0 is the default and a negative number none.
func probeCache(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// spoolDir is where sources from origins that ignore Range are downloaded:
// beside the work in progress, on the data directory's disk. It is made
// here, and "" (the system's temporary directory) if it cannot be.
func spoolDir(dataDir string) string {
	dir := filepath.Join(dataDir, "work", "spool")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	return dir
}

// partOutputs is engine.Config.PartOutputs: THUMBD_SPREAD_OUTPUTS, with
// PostgreSQL only (a queue on SQLite or in memory serves one instance).
func partOutputs(cfg Config) int {
	if cfg.Store != "postgres" {
		return 0
	}
	return cfg.SpreadOutputs
}
