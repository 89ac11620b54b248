// Package console serves thumbd's web console: a page that shows which
// tasks arrived, the query each carried, the images, sprites, VTT files,
// videos and manifests that came out, the callbacks sent for it, and a
// scrub preview that shows which image the VTT maps each moment of the
// source to. A form starts new tasks through thumbd's own Qencode API, with
// a source URL or a file uploaded over TUS.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no
// build step and nothing loaded from elsewhere. It reads what it shows from
// a few JSON endpoints under /console/api/, which read a Backend: the
// console's view of the engine, implemented by the caller.
//
// With API keys configured, every JSON request must carry one (header
// X-API-Key) and sees only the tasks created with that key.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/engine"
)

// Path is where the console is served.
const Path = "/console/"

// KeyHeader is the request header that carries the API key.
const KeyHeader = "X-API-Key"

// Backend is what the console reads: the tasks, newest first, and one
// task in full. thumbd's wiring implements it over the engine's store and
// the callback notifier.
type Backend interface {
	// Tasks lists tasks, newest first, as f asks.
	Tasks(ctx context.Context, f Filter) ([]Task, error)
	// Task returns one task, or an error wrapping ErrNotFound when there
	// is no such task or it belongs to another key than s.Key.
	Task(ctx context.Context, s Scope, token string) (Detail, error)
}

// ErrNotFound is what a Backend returns for a task it does not show.
var ErrNotFound = errors.New("no such task")

// Scope is who asks, and from where.
type Scope struct {
	// Key is the API key the tasks must have been created with; empty:
	// every task.
	Key string
	// Base is this server's public URL, for the URLs in the status JSON.
	Base string
}

// Filter says which tasks Tasks lists.
type Filter struct {
	Scope
	// States keeps the tasks in one of these states; empty: every state.
	States []string
	// Limit is the most tasks listed.
	Limit int
}

// Task is one line of the task list.
type Task struct {
	Token   string     `json:"token"`
	Created time.Time  `json:"created"`
	Ended   *time.Time `json:"ended,omitempty"`
	Status  string     `json:"status"`
	Percent float64    `json:"percent"`
	Source  string     `json:"source,omitempty"`  // what the query named, secrets hidden; empty until started
	Outputs []string   `json:"outputs,omitempty"` // the kind of each output: thumbnail, thumbnails, mp4, webm
	Images  int        `json:"images"`            // files stored so far: images, sprite sheets and VTT files
	Videos  int        `json:"videos"`
	Error   string     `json:"error,omitempty"`
}

// Detail is everything the console shows of one task.
type Detail struct {
	Task
	// Query is the query as the client sent it, with destination secrets
	// hidden; null until the task is started.
	Query json.RawMessage `json:"query"`
	// StatusJSON is the task's object as /v1/status returns it.
	StatusJSON json.RawMessage `json:"status_json"`
	// Callbacks are the callbacks sent for the task, oldest first.
	Callbacks []Callback `json:"callbacks"`
}

// Callback is one callback sent for a task.
type Callback struct {
	Event     string     `json:"event"`
	URL       string     `json:"url"` // path and query hidden: they may carry secrets
	Code      int        `json:"code"`
	Attempts  int        `json:"attempts"`
	Delivered bool       `json:"delivered"`
	Done      bool       `json:"done"`
	Error     string     `json:"error,omitempty"` // why the last attempt failed
	At        *time.Time `json:"at,omitempty"`    // the last attempt
}

// Config is what a Handler needs.
type Config struct {
	Backend Backend
	// APIKeys, when set, makes every JSON request carry one of them and
	// limits what it sees to that key's tasks.
	APIKeys   []string
	PublicURL string // base URL clients reach thumbd at; empty: each request's Host
	Logger    *slog.Logger
}

//go:embed static
var static embed.FS

// DefaultLimit and MaxLimit bound the task list.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Handler serves the console under Path.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	assets http.Handler
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	return &Handler{cfg: cfg, log: cfg.Logger, assets: http.StripPrefix(strings.TrimSuffix(Path, "/"), http.FileServerFS(sub))}
}

// ServeHTTP serves the page, its assets and its JSON endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == strings.TrimSuffix(Path, "/"):
		http.Redirect(w, r, Path, http.StatusFound)
	case strings.HasPrefix(p, Path+"api/"):
		w.Header().Set("Cache-Control", "no-store")
		h.api(w, r, strings.TrimPrefix(p, Path+"api/"))
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", csp)
		h.assets.ServeHTTP(w, r)
	}
}

// csp keeps the page to its own scripts and styles; images, media and
// fetches may go anywhere, since a task's files may live in any bucket.
const csp = "default-src 'self'; img-src * data: blob:; media-src * blob:; connect-src *; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// apiError is a JSON endpoint's failure: an HTTP status and a message.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func (h *Handler) api(w http.ResponseWriter, r *http.Request, route string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	v, err := h.route(r, route)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			h.log.Error("console", "path", r.URL.Path, "err", err)
			ae = &apiError{http.StatusInternalServerError, "thumbd could not read its tasks: " + err.Error()}
		}
		writeJSON(w, ae.code, map[string]string{"error": ae.msg})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// configReply tells the page how this server is set up.
type configReply struct {
	// KeyRequired: the page must ask for an API key.
	KeyRequired bool `json:"key_required"`
	// UploadURL is create_task's upload_url, for the page's TUS client.
	UploadURL string `json:"upload_url"`
	// PublicURL is where thumbd is reached.
	PublicURL string `json:"public_url"`
}

type listReply struct {
	Tasks []Task `json:"tasks"`
}

func (h *Handler) route(r *http.Request, route string) (any, error) {
	base := h.base(r)
	if route == "config" {
		return configReply{KeyRequired: len(h.cfg.APIKeys) > 0, UploadURL: base + "/v1/upload_file", PublicURL: base}, nil
	}
	scope, err := h.scope(r)
	if err != nil {
		return nil, err
	}
	scope.Base = base
	switch {
	case route == "tasks":
		f, err := parseFilter(r)
		if err != nil {
			return nil, err
		}
		f.Scope = scope
		tasks, err := h.cfg.Backend.Tasks(r.Context(), f)
		if err != nil {
			return nil, err
		}
		if tasks == nil {
			tasks = []Task{}
		}
		return listReply{Tasks: tasks}, nil
	case strings.HasPrefix(route, "tasks/"):
		token := strings.TrimPrefix(route, "tasks/")
		if !engine.ValidToken(token) {
			return nil, &apiError{http.StatusNotFound, "no such task: a task token is 32 hex digits"}
		}
		d, err := h.cfg.Backend.Task(r.Context(), scope, token)
		if errors.Is(err, ErrNotFound) {
			return nil, &apiError{http.StatusNotFound, "no such task (it may have expired, or belong to another API key)"}
		}
		if err != nil {
			return nil, err
		}
		if d.Callbacks == nil {
			d.Callbacks = []Callback{}
		}
		return d, nil
	}
	return nil, &apiError{http.StatusNotFound, "no such console endpoint: " + route}
}

// scope checks the request's API key when keys are configured.
func (h *Handler) scope(r *http.Request) (Scope, error) {
	if len(h.cfg.APIKeys) == 0 {
		return Scope{}, nil
	}
	key := strings.TrimSpace(r.Header.Get(KeyHeader))
	if key == "" {
		return Scope{}, &apiError{http.StatusUnauthorized, "this thumbd has API keys (THUMBD_API_KEYS): give yours to see its tasks"}
	}
	for _, k := range h.cfg.APIKeys {
		if subtle.ConstantTimeCompare([]byte(k), []byte(key)) == 1 {
			return Scope{Key: k}, nil
		}
	}
	return Scope{}, &apiError{http.StatusUnauthorized, "unknown API key: give one of THUMBD_API_KEYS"}
}

// States are the task states a filter may name.
var States = []string{"created", "queued", "downloading", "encoding", "saving", "completed", "error"}

// parseFilter reads ?status=a,b and ?limit=n. The status "active" stands
// for every state between queued and saving.
func parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{Limit: DefaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return f, &apiError{http.StatusBadRequest, "limit must be a whole number of at least 1, got " + strconv.Quote(v)}
		}
		f.Limit = min(n, MaxLimit)
	}
	for _, s := range strings.Split(q.Get("status"), ",") {
		s = strings.TrimSpace(strings.ToLower(s))
		switch {
		case s == "" || s == "all":
		case s == "active":
			f.States = append(f.States, "queued", "downloading", "encoding", "saving")
		case slices.Contains(States, s):
			f.States = append(f.States, s)
		default:
			return f, &apiError{http.StatusBadRequest, "status must be one of all, active, " + strings.Join(States, ", ") + "; got " + strconv.Quote(s)}
		}
	}
	return f, nil
}

// base is the public URL of this server for a request, as package api
// computes it.
func (h *Handler) base(r *http.Request) string { return wire.BaseURL(r, h.cfg.PublicURL) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
