// Package source makes a task's source readable by ffmpeg, and keeps a
// query from making thumbd read what it should not.
//
// ffmpeg never sees the user's URL. Open registers the source with a
// Gateway, a small HTTP server on loopback, and hands ffmpeg
// http://127.0.0.1:PORT/<random id>/<name>. The gateway answers ffmpeg's
// range requests from the origin:
//
//   - http(s) sources through one http.Client whose dialer refuses private,
//     loopback and link-local addresses (unless allowed) on every
//     connection it makes, after DNS resolution and on every redirect;
//     redirects are capped, and each of ffmpeg's open-ended ranges is read
//     from the origin in bounded chunks, so a seek costs about what the
//     decoder reads and not the rest of the file;
//   - s3:// sources through a presigned GET URL (aws-sdk-go-v2), read the
//     same way;
//   - file:// sources only under the operator's directories, opened with
//     os.Root so that ".." and symbolic links cannot leave them;
//   - tus:<id> sources from the uploads of the same task.
//
// It enforces the maximum source size, refuses playlists and documents
// (whose nested URLs ffmpeg would fetch itself), times out origins that stop
// answering, counts the bytes read, and records why a read failed in words a
// user can act on, with the URL stripped of credentials.
package source

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/storage"
)

// Presigner turns an s3:// URL into an http(s) URL anyone may GET for ttl.
// s3store.Store implements it.
type Presigner interface {
	Presign(ctx context.Context, rawURL, key, secret string, ttl time.Duration) (string, error)
}

// Uploads finds the files uploaded over TUS for a task. upload.Server
// implements it.
type Uploads interface {
	// Find reports whether task has an upload with this id, finished or not.
	Find(ctx context.Context, task, id string) error
	// Open returns the finished upload id of task, or an error that says
	// why it cannot be read (unknown, unfinished).
	Open(ctx context.Context, task, id string) (*os.File, error)
	// Remove deletes the uploads of task.
	Remove(task string) error
}

// Config configures a Gateway. Zero values take the defaults.
type Config struct {
	// Guard decides which addresses sources may reach; nil refuses every
	// address that is not public (netguard.Default), so that a hosted
	// thumbd cannot be used as a proxy into its operator's network.
	Guard *netguard.Guard
	// Dirs are the directories file:// sources may be read from; none
	// means file:// sources are refused.
	Dirs []string
	// MaxSize is the largest source accepted, in bytes; 0 means no limit.
	MaxSize int64
	// MaxUnsizedSize is the most read from a source that does not say its
	// size (a live stream, or a server that never stops sending), in bytes;
	// 0 means MaxSize.
	MaxUnsizedSize int64
	// MinRate is the slowest an origin may send, in bytes per second,
	// measured over RateWindow of waiting for it (time ffmpeg spends busy
	// elsewhere does not count); 0 means no minimum. RateWindow defaults
	// to 60s.
	MinRate    int64
	RateWindow time.Duration
	// MaxRedirects is how many redirects are followed; default 5.
	MaxRedirects int
	// ConnectTimeout bounds connecting to an origin (default 10s),
	// HeaderTimeout waiting for its answer (default 30s), and StallTimeout
	// waiting for the next bytes of a body (default 30s).
	ConnectTimeout, HeaderTimeout, StallTimeout time.Duration
	// PresignTTL is how long presigned s3:// URLs stay valid; default 6h.
	PresignTTL time.Duration
	// S3 presigns s3:// sources; nil refuses them.
	S3 Presigner
	// Uploads resolves tus:<id> sources; nil refuses them.
	Uploads Uploads
	// Self are the base URLs thumbd itself answers at: its public URL and
	// the address it listens on (SelfURLs). A source on one of them under
	// /static/ is read from the files embedded in the binary (package
	// static), never over the network, so the guard need not let sources
	// reach this machine for thumbd's sample video.
	Self []string
	// SpoolDir is where a source from an origin that ignores Range is
	// downloaded, once, to be read locally; default the system's
	// temporary directory.
	SpoolDir string
	// Addr is where the gateway listens; default 127.0.0.1:0.
	Addr   string
	Logger *slog.Logger
}

// Chunk sizes of origin reads: the first read of a source, then each
// ranged read starts at minChunk and doubles up to maxChunk while ffmpeg
// keeps reading.
const (
	headSize = 1 << 20
	minChunk = 256 << 10
	maxChunk = 8 << 20
)

// Gateway serves registered sources to ffmpeg on loopback. It implements
// engine.Sources.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	guard  *netguard.Guard
	client *http.Client
	ln     net.Listener
	srv    *http.Server
	base   string
	roots  []root
	self   []selfBase

	mu         sync.Mutex
	entries    map[string]*entry
	readClosed int64 // bytes read for the sources closed so far
}

var _ engine.Sources = (*Gateway)(nil)

// New starts a Gateway. Close stops it.
func New(cfg Config) (*Gateway, error) {
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = 5
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 30 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 30 * time.Second
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.PresignTTL <= 0 {
		cfg.PresignTTL = 6 * time.Hour
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Guard == nil {
		cfg.Guard = netguard.Default()
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, guard: cfg.Guard.For("the source").WithTimeout(cfg.ConnectTimeout),
		entries: map[string]*entry{}, self: parseSelf(cfg.Self)}
	for _, d := range cfg.Dirs {
		r, err := openRoot(d)
		if err != nil {
			g.closeRoots()
			return nil, err
		}
		g.roots = append(g.roots, r)
	}
	g.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,                 // a proxy would dial for us, past the address check
			DialContext:           g.guard.DialContext, // on every connection, redirects included
			TLSHandshakeTimeout:   cfg.ConnectTimeout,
			ResponseHeaderTimeout: cfg.HeaderTimeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       30 * time.Second,
			DisableCompression:    true, // byte ranges are of the stored bytes
		},
		CheckRedirect: g.guard.CheckRedirect(cfg.MaxRedirects),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		g.closeRoots()
		return nil, fmt.Errorf("source gateway: %w", err)
	}
	g.ln = ln
	ln = smallBuffers{ln}
	g.base = "http://" + ln.Addr().String()
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

// Close stops the gateway and every source still open.
func (g *Gateway) Close() error {
	g.mu.Lock()
	open := make([]*entry, 0, len(g.entries))
	for _, e := range g.entries {
		open = append(open, e)
	}
	g.mu.Unlock()
	for _, e := range open {
		e.Close()
	}
	err := g.srv.Close()
	g.closeRoots()
	return err
}

func (g *Gateway) closeRoots() {
	for _, r := range g.roots {
		r.Close()
	}
}

// Check refuses, before a task is queued, a source this server will never
// read: a scheme that is off, a host that is a private address, a file
// outside the source directories, an upload the task does not have.
func (g *Gateway) Check(ctx context.Context, task, raw string) error {
	u, err := parse(raw)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return errors.New("has no host")
		}
		if f, _, ok, err := g.openSelf(u); ok {
			if f != nil {
				f.Close()
			}
			return err
		}
		return g.guard.CheckHost(u.Hostname())
	case "s3":
		if g.cfg.S3 == nil {
			return errors.New("s3:// sources are not enabled on this server")
		}
		s, err := storage.ParseS3URL(raw)
		if err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "storage: "))
		}
		return g.guard.CheckHost(s.Host)
	case "file":
		f, _, err := g.openFile(u)
		if err != nil {
			return err
		}
		f.Close()
	case "tus":
		if g.cfg.Uploads == nil {
			return errors.New("tus: sources (direct uploads) are not enabled on this server")
		}
		id, err := tusID(u)
		if err != nil {
			return err
		}
		return g.cfg.Uploads.Find(ctx, task, id)
	default:
		return fmt.Errorf("scheme %q is not supported (use http, https, s3, tus or file)", u.Scheme)
	}
	return nil
}

// Open registers raw for one task and returns what ffmpeg should read. It
// reads the start of an http(s) or s3:// source at once, so that a source
// that is missing, empty, too large or not a video fails here with a clear
// error rather than later in ffprobe.
func (g *Gateway) Open(ctx context.Context, task, raw string) (engine.OpenSource, error) {
	u, err := parse(raw)
	if err != nil {
		return nil, errors.New("the source is not a valid URL")
	}
	e := &entry{g: g, task: task, id: newID(), size: -1}
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	name := "source"
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if f, shown, ok, err := g.openSelf(u); ok {
			if err != nil {
				return nil, err
			}
			e.kind, e.file, e.shown = kindFile, f, shown
			name = path.Base(u.Path)
			break
		}
		e.kind, e.origin, e.shown, e.ident = kindHTTP, raw, netguard.ShowURL(raw), raw
		name = path.Base(u.Path)
		if err := g.guard.CheckHost(u.Hostname()); err != nil {
			return nil, err
		}
	case "s3":
		if g.cfg.S3 == nil {
			return nil, errors.New("s3:// sources are not enabled on this server")
		}
		s, err := storage.ParseS3URL(raw)
		if err != nil {
			return nil, errors.New("the source " + strings.TrimPrefix(err.Error(), "storage: "))
		}
		if err := g.guard.CheckHost(s.Host); err != nil {
			return nil, err
		}
		signed, err := g.cfg.S3.Presign(ctx, raw, "", "", g.cfg.PresignTTL)
		if err != nil {
			return nil, fmt.Errorf("the s3:// source could not be signed: %v", err)
		}
		e.kind, e.origin, e.shown, e.ident = kindHTTP, signed, s.String(), raw
		name = path.Base(s.Key)
	case "file":
		f, shown, err := g.openFile(u)
		if err != nil {
			return nil, err
		}
		e.kind, e.file, e.shown, e.ident = kindFile, f, shown, shown
		name = path.Base(u.Path)
	case "tus":
		if g.cfg.Uploads == nil {
			return nil, errors.New("tus: sources (direct uploads) are not enabled on this server")
		}
		id, err := tusID(u)
		if err != nil {
			return nil, fmt.Errorf("the source %v", err)
		}
		f, err := g.cfg.Uploads.Open(ctx, task, id)
		if err != nil {
			return nil, err
		}
		e.kind, e.file, e.shown, e.upload = kindFile, f, "tus:"+id, true
	default:
		return nil, fmt.Errorf("the source scheme %q is not supported", u.Scheme)
	}
	if err := e.start(ctx); err != nil {
		e.cancel()
		if e.file != nil {
			e.file.Close()
		}
		return nil, err
	}
	g.mu.Lock()
	g.entries[e.id] = e
	g.mu.Unlock()
	e.url = g.base + "/" + e.id + "/" + safeName(name)
	return e, nil
}

// BytesRead returns how many bytes were read from every source since the
// gateway started, from their origins or files (for metrics).
func (g *Gateway) BytesRead() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.readClosed
	for _, e := range g.entries {
		n += e.read.Load()
	}
	return n
}

// ReleaseTask implements engine.TaskReleaser: a task that has ended no
// longer needs its uploads (a task token starts one task only).
func (g *Gateway) ReleaseTask(ctx context.Context, task string) {
	if g.cfg.Uploads == nil {
		return
	}
	if err := g.cfg.Uploads.Remove(task); err != nil {
		g.log.Warn("removing a task's uploads", "task", engine.Redact(task), "err", err)
	}
}

// ServeHTTP answers ffmpeg: GET /<id>/<name> with an optional Range.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	g.mu.Lock()
	e := g.entries[id]
	g.mu.Unlock()
	if e == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	e.requests.Add(1)
	switch e.kind {
	case kindFile:
		e.serveFile(w, r)
	default:
		e.serveOrigin(w, r)
	}
}

type kind int

const (
	kindHTTP kind = iota // read from e.origin over http(s)
	kindFile             // read from e.file
)

// entry is one open source. It implements engine.OpenSource.
type entry struct {
	g      *Gateway
	task   string
	id     string
	kind   kind
	origin string // http(s) URL read from; may hold credentials or a signature
	shown  string // the source as it may be shown to the user
	file   localFile
	url    string // what ffmpeg reads
	ctx    context.Context
	cancel context.CancelFunc

	head     []byte // the first bytes of an http source, read by Open
	noRanges bool   // the origin answers 200 to range requests

	ident      string // what names the source for ContentKey: its URL, as given
	upload     bool   // a tus: upload, named by its content
	spooled    bool   // an http source downloaded to e.file (its origin ignores Range)
	validators string // the origin's ETag and Last-Modified, for ContentKey

	mu         sync.Mutex
	size       int64 // -1 until known
	failure    error
	closed     bool
	cache      map[chunkKey][]byte // chunks read from the origin, for the next ffmpeg
	order      []chunkKey          // oldest first
	cacheBytes int                 // bytes in cache

	read     atomic.Int64 // bytes read from the origin (or file)
	requests atomic.Int64 // requests ffmpeg made
	fetches  atomic.Int64 // requests made to the origin
}

// URL implements engine.OpenSource.
func (e *entry) URL() string { return e.url }

// Name implements engine.OpenSource: the source without credentials.
func (e *entry) Name() string { return e.shown }

// Size implements engine.OpenSource.
func (e *entry) Size() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.size, 0)
}

// Failure implements engine.OpenSource.
func (e *entry) Failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failure
}

// BytesRead is how many bytes were read from the origin so far.
func (e *entry) BytesRead() int64 { return e.read.Load() }

// Close implements engine.OpenSource.
func (e *entry) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.g.mu.Lock()
	delete(e.g.entries, e.id)
	e.g.readClosed += e.read.Load()
	e.g.mu.Unlock()
	if e.file != nil {
		e.file.Close()
	}
	e.g.log.Info("source closed", "task", engine.Redact(e.task), "source", e.shown,
		"size", e.Size(), "bytes_read", e.read.Load(), "ffmpeg_requests", e.requests.Load(), "origin_requests", e.fetches.Load())
}

// fail records the first reason reading the source failed and returns it.
func (e *entry) fail(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failure == nil {
		e.failure = err
	}
	return e.failure
}

// setSize records the source's size, refusing one over the limit.
func (e *entry) setSize(n int64) error {
	if n < 0 {
		return nil
	}
	e.mu.Lock()
	e.size = n
	e.mu.Unlock()
	if max := e.g.cfg.MaxSize; max > 0 && n > max {
		return e.fail(fmt.Errorf("the source is %s, more than this server's limit of %s (THUMBD_MAX_SOURCE_SIZE): %s", FormatSize(n), FormatSize(max), e.shown))
	}
	if n == 0 {
		return e.fail(fmt.Errorf("the source is empty (0 bytes): %s", e.shown))
	}
	return nil
}

func (e *entry) knownSize() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.size
}

// start checks the source before any ffmpeg reads it.
func (e *entry) start(ctx context.Context) error {
	if e.kind == kindFile {
		fi, err := e.file.Stat()
		if err != nil {
			return fmt.Errorf("the source %s cannot be read: %v", e.shown, err)
		}
		if err := e.setSize(fi.Size()); err != nil {
			return err
		}
		head := make([]byte, 64)
		n, _ := e.file.ReadAt(head, 0)
		return e.sniff(head[:n])
	}
	return e.readHead(ctx)
}

// sniff refuses what is plainly not a media file: playlists and manifests,
// whose nested URLs ffmpeg would open itself, and HTML or XML documents,
// which are what a web server answers instead of a missing video.
func (e *entry) sniff(head []byte) error {
	// Only the first bytes matter: the head of an http source is a
	// megabyte, and lowering all of it costs milliseconds a task.
	s := strings.TrimLeft(strings.TrimPrefix(string(head[:min(len(head), 512)]), "\ufeff"), " \t\r\n")
	lower := strings.ToLower(s[:min(len(s), 32)])
	var what string
	switch {
	case strings.HasPrefix(s, "#EXTM3U"):
		what = "an HLS playlist (m3u8); give the URL of a video file"
	case strings.HasPrefix(s, "ffconcat"):
		what = "an ffconcat script; give the URL of a video file"
	case strings.HasPrefix(lower, "<!doctype html"), strings.HasPrefix(lower, "<html"):
		what = "an HTML page, not a video"
	case strings.HasPrefix(s, "<?xml"), strings.HasPrefix(s, "<MPD"):
		what = "an XML document (a DASH manifest?), not a video file"
	default:
		return nil
	}
	return e.fail(fmt.Errorf("the source is %s: %s", what, e.shown))
}

// parse parses a source URL. An s3:// URL is parsed by storage.ParseS3URL
// later, which tolerates what url.Parse does not (a "/" in the secret), so
// only its scheme is taken here.
func parse(raw string) (*url.URL, error) {
	if scheme, _, ok := strings.Cut(raw, "://"); ok && strings.EqualFold(scheme, "s3") {
		return &url.URL{Scheme: "s3"}, nil
	}
	return url.Parse(raw)
}

// newID returns 32 random hex digits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// safeName keeps a source's base name for ffmpeg (whose probing weighs the
// extension) in a form that needs no escaping.
func safeName(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 80 {
			break
		}
	}
	if s := strings.Trim(b.String(), "."); s != "" {
		return s
	}
	return "source"
}

// FormatSize renders a byte count for people: 1.5 GiB, 300 MiB, 12 KiB.
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

// copyBody copies src to w, counting into n. Reads from src are bounded by
// stall: the timer runs only while a read is waiting, not while ffmpeg is
// busy elsewhere and the write blocks. rate, when not nil, ends the copy
// with a *slowError once the origin has sent less than its minimum over a
// window of that waiting.
func copyBody(w io.Writer, src io.Reader, stall *time.Timer, d time.Duration, count *atomic.Int64, limit int64, rate *rateCheck) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for limit < 0 || total < limit {
		p := buf
		if limit >= 0 && int64(len(p)) > limit-total {
			p = p[:limit-total]
		}
		stall.Reset(d)
		began := time.Now()
		n, rerr := src.Read(p)
		stall.Stop()
		if n > 0 {
			count.Add(int64(n))
			total += int64(n)
			if _, werr := w.Write(p[:n]); werr != nil {
				return total, &writeError{werr}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		if err := rate.add(n, time.Since(began)); err != nil {
			return total, err
		}
	}
	return total, nil
}

// rateCheck measures how fast an origin sends while thumbd waits for it,
// in windows of at least window: a window in which it sent less than min
// bytes a second ends the read.
type rateCheck struct {
	min    int64 // bytes per second
	window time.Duration
	waited time.Duration // in the current window
	got    int64         // bytes in the current window
}

// rateCheck returns the check of the gateway's minimum rate, or nil when
// there is none.
func (g *Gateway) rateCheck() *rateCheck {
	if g.cfg.MinRate <= 0 {
		return nil
	}
	return &rateCheck{min: g.cfg.MinRate, window: g.cfg.RateWindow}
}

// add counts a read of n bytes that waited d.
func (r *rateCheck) add(n int, d time.Duration) error {
	if r == nil {
		return nil
	}
	r.waited += d
	r.got += int64(n)
	if r.waited < r.window {
		return nil
	}
	if float64(r.got) < float64(r.min)*r.waited.Seconds() {
		return &slowError{got: r.got, over: r.waited, min: r.min}
	}
	r.waited, r.got = 0, 0
	return nil
}

// slowError is an origin that sent less than the minimum rate.
type slowError struct {
	got  int64
	over time.Duration
	min  int64
}

func (s *slowError) Error() string {
	return fmt.Sprintf("the source sent %s in %v, slower than this server's minimum of %s a second (THUMBD_MIN_SOURCE_RATE)",
		FormatSize(s.got), s.over.Round(100*time.Millisecond), FormatSize(s.min))
}

// writeError is a failed write to ffmpeg: it went away, which is not the
// source's fault.
type writeError struct{ err error }

func (w *writeError) Error() string { return "writing to ffmpeg: " + w.err.Error() }
func (w *writeError) Unwrap() error { return w.err }

// smallBuffers keeps the kernel from queueing megabytes towards ffmpeg:
// what sits in socket buffers when ffmpeg seeks away was read from the
// origin for nothing.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(sendBuffer)
	}
	return c, err
}

// sendBuffer is the socket send buffer towards ffmpeg.
const sendBuffer = 64 << 10
