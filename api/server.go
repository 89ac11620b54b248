// Package api serves Qencode's transcoding API on top of the engine: form
// and JSON decoding, numbers that arrive as strings, the {"query": {...}}
// wrapper, error codes and messages, and the URLs built from the public
// base URL. The status JSON, which callbacks post too, is rendered by
// package api/wire. Nothing outside api and api/wire knows a Qencode field
// name.
//
// Every reply is HTTP 200 with a JSON body whose integer "error" is 0 on
// success: Qencode's Node SDK retries any non-2xx reply for a minute.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/storage"
)

// Engine is what the API needs of the engine.
type Engine interface {
	NewSession(ctx context.Context, apiKey string) (token string, expires time.Time, err error)
	CreateTask(ctx context.Context, accessToken string) (string, error)
	Start(ctx context.Context, taskToken string, spec engine.Spec) error
	Status(ctx context.Context, taskToken string) (engine.Snapshot, error)
}

// Files serves files thumbd keeps itself. storage.Local (the data
// directory) and s3store.Kept (a bucket shared by several instances)
// implement it. A file that is not there is fs.ErrNotExist or
// storage.ErrBadName.
type Files interface {
	OpenFile(ctx context.Context, name string) (storage.File, error)
}

// Config is what a Server needs.
type Config struct {
	Engine    Engine
	Files     Files
	PublicURL string // base URL clients reach this server at; empty: taken from each request's Host
	Logger    *slog.Logger
	// Ready reports whether the server can do work (ffmpeg found, data
	// directory writable); nil means always ready.
	Ready func(ctx context.Context) error
	// Uploads is the TUS endpoint behind upload_url, mounted at
	// /v1/upload_file and seeing paths /<task_token>[/<file id>];
	// upload.Server implements it. nil: direct uploads are off.
	Uploads http.Handler
	// Control, when set, serves the test-control plane under /_thumbd/.
	Control *Control
	// PollStatus, when set, is how /v1/status reads a task instead of
	// Engine.Status: the test-control plane hangs its holds on here
	// (testcontrol.Plane.WatchStatus), only when the test API is on.
	PollStatus func(ctx context.Context, taskToken string) (engine.Snapshot, error)
	// Static, when set, serves the files under /static/ (GET and HEAD):
	// static.Handler, with the sample video.
	Static http.Handler
	// Metrics, when set, serves GET /metrics (Prometheus).
	Metrics http.Handler
	// BodyTimeout bounds how long a request's body may take to arrive,
	// counted from the end of its headers; 0 means DefaultBodyTimeout.
	// Uploads are not bound by it: each of their reads has tusd's own
	// timeout instead.
	BodyTimeout time.Duration
	// Console, when set, is the web console, served at /console/; / then
	// leads to it.
	Console http.Handler
}

// DefaultBodyTimeout is the BodyTimeout of a Config that sets none.
const DefaultBodyTimeout = 30 * time.Second

// Server is the HTTP face of thumbd.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New builds a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	return &Server{cfg: cfg, log: cfg.Logger}
}

// maxBody bounds the body of an API request. The rest of a longer body,
// up to maxDrain, is read and thrown away after the error reply, so that
// a client still sending can read it rather than see its connection reset.
const (
	maxBody  = 4 << 20
	maxDrain = 64 << 20
)

// Handler returns the router.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.CleanPath, middleware.StripSlashes, s.bodyDeadline, middleware.Recoverer, s.logRequests)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.readyz)
	if s.cfg.Static != nil {
		r.Get("/static/*", s.cfg.Static.ServeHTTP)
		r.Head("/static/*", s.cfg.Static.ServeHTTP)
	}
	if s.cfg.Metrics != nil {
		r.Get("/metrics", s.cfg.Metrics.ServeHTTP)
	}
	r.Group(func(r chi.Router) {
		// /v1.1/... is where the PHP client sends everything after its
		// endpoint discovery (GET /v1.1) when built with version "v1.1".
		for _, v := range []string{"/v1", "/v1.1"} {
			method := func(p string, h handler) {
				r.Post(v+p, s.adapt(h))
				r.Get(v+p, s.adapt(h))
			}
			method("/access_token", s.accessToken)
			method("/create_task", s.createTask)
			method("/create_token", s.createTask) // the name Qencode's thumbnail docs print
			method("/start_encode2", s.startEncode2)
			method("/start_encode", s.startEncode)
			method("/status", s.status)
			method("/request_templates", s.requestTemplates)
		}
	})
	r.Get("/v1.1", s.endpointHost)
	if s.cfg.Uploads != nil {
		r.Handle("/v1/upload_file/*", http.StripPrefix("/v1/upload_file", s.uploadsFor(s.cfg.Uploads)))
	}
	if s.cfg.Control != nil {
		s.mountControl(r)
	}
	if s.cfg.Console != nil {
		r.Handle("/console", s.cfg.Console)
		r.Handle("/console/*", s.cfg.Console)
		r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/console/", http.StatusFound) })
	}
	r.Get("/storage/*", s.serveFile)
	r.Head("/storage/*", s.serveFile)
	// Under /v1 every request gets Qencode's envelope with HTTP 200, even
	// for a method thumbd does not know or a verb it does not take: the
	// Node SDK retries anything else for a minute before it gives up.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusNotFound
		if apiPath(r.URL.Path) {
			code = http.StatusOK
		}
		writeJSON(w, code, errorReply{Error: codeNoMethod, Message: "no such API method: " + r.URL.Path +
			" (thumbd serves access_token, create_task, start_encode2, status and request_templates under /v1/)"})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusMethodNotAllowed
		if apiPath(r.URL.Path) {
			code = http.StatusOK
		}
		writeJSON(w, code, errorReply{Error: codeNoMethod, Message: "method " + r.Method + " is not allowed on " + r.URL.Path + ": use POST"})
	})
	return r
}

// apiPath reports whether p is under Qencode's API paths, /v1/ or /v1.1/.
func apiPath(p string) bool {
	return p == "/v1" || p == "/v1.1" || strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v1.1/")
}

// handler is an API method: it returns the reply value or an error that
// adapt renders in Qencode's envelope.
type handler func(r *http.Request, form url.Values) (any, error)

// adapt turns a handler into an http.HandlerFunc. It is the one place that
// renders API errors.
func (s *Server) adapt(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body := r.Body
		form, err := readForm(r)
		if errors.Is(err, errTooLarge) {
			s.refuseLarge(w, r, body)
			return
		}
		var v any
		if err == nil {
			v, err = h(r, form)
		}
		if err != nil {
			e := toError(err)
			if e.Code == codeInternal {
				s.log.Error("internal error", "path", r.URL.Path, "err", err)
			}
			v = errorReply{Error: e.Code, Message: e.Message}
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// errTooLarge is a request body over maxBody.
var errTooLarge = errors.New("request body too large")

// readForm collects a request's fields from its query string and from a
// form-encoded or JSON body.
func readForm(r *http.Request) (url.Values, error) {
	if r.ContentLength > maxBody {
		return nil, errTooLarge
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		form := r.URL.Query()
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil && !errors.Is(err, io.EOF) {
			if err := bodyError(err); err != nil {
				return nil, err
			}
			return nil, errorf(codeFieldRequired, "request body is not valid JSON: %v", err)
		}
		for k, v := range m {
			switch x := v.(type) {
			case string:
				form.Add(k, x)
			case []any:
				for _, e := range x {
					if s, ok := e.(string); ok {
						form.Add(k, s)
					}
				}
			default: // a query given as an object rather than a string
				b, _ := json.Marshal(x)
				form.Add(k, string(b))
			}
		}
		return form, nil
	}
	if err := r.ParseForm(); err != nil {
		if err := bodyError(err); err != nil {
			return nil, err
		}
		return nil, errorf(codeFieldRequired, "request body is not a valid form: %v", err)
	}
	return r.Form, nil
}

// bodyError says why reading a request's body failed when the reason is
// the body itself (too large, too slow) rather than what it holds; nil
// otherwise.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return errSlowBody
	}
	return nil
}

// errSlowBody is a body that did not arrive within BodyTimeout.
var errSlowBody = errors.New("request body too slow")

// refuseLarge answers a request whose body is over maxBody with Qencode's
// envelope, then reads and throws away the rest of the body, up to
// maxDrain, before the connection is closed: a client that sends the whole
// body before it reads the reply then finds the reply, where closing at
// once would reset the connection under it.
func (s *Server) refuseLarge(w http.ResponseWriter, r *http.Request, body io.ReadCloser) {
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // read the body after the reply is sent
	w.Header().Set("Connection", "close")
	msg := fmt.Sprintf("query too large: the request body is over this server's limit of %d MiB", maxBody>>20)
	if r.ContentLength > 0 {
		msg = fmt.Sprintf("query too large: the request body is %.1f MiB, over this server's limit of %d MiB", float64(r.ContentLength)/(1<<20), maxBody>>20)
	}
	writeJSON(w, http.StatusOK, errorReply{Error: codeFieldRequired, Message: msg})
	_ = rc.Flush()
	if r.ContentLength <= maxDrain {
		_, _ = io.CopyN(io.Discard, body, maxDrain)
	}
	s.log.Warn("request body too large", "path", r.URL.Path, "content_length", r.ContentLength)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// base is the public URL of this server for a request.
func (s *Server) base(r *http.Request) string { return wire.BaseURL(r, s.cfg.PublicURL) }

func (s *Server) accessToken(r *http.Request, form url.Values) (any, error) {
	key := strings.TrimSpace(form.Get("api_key"))
	if key == "" {
		return nil, errorf(codeBadAPIKey, "api_key is required")
	}
	token, exp, err := s.cfg.Engine.NewSession(r.Context(), key)
	if err != nil {
		return nil, err
	}
	return tokenReply{Token: token, Expire: exp.UTC().Format("2006-01-02T15:04:05")}, nil
}

func (s *Server) createTask(r *http.Request, form url.Values) (any, error) {
	token := strings.TrimSpace(form.Get("token"))
	if token == "" {
		return nil, errorf(codeBadToken, "token is required: get one from /v1/access_token")
	}
	tt, err := s.cfg.Engine.CreateTask(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return createTaskReply{TaskToken: tt, UploadURL: s.base(r) + "/v1/upload_file"}, nil
}

// maxPayload is the longest payload Qencode accepts.
const maxPayload = 1000

func (s *Server) startEncode2(r *http.Request, form url.Values) (any, error) {
	tt := strings.TrimSpace(form.Get("task_token"))
	if tt == "" {
		return nil, errorf(codeBadToken, "task_token is required: get one from /v1/create_task")
	}
	payload := form.Get("payload")
	if len([]rune(payload)) > maxPayload {
		return nil, errorf(codeBadPayload, "payload is longer than %d characters", maxPayload)
	}
	if _, ok := form["query"]; !ok {
		return nil, errorf(codeQueryRequired, "query field is required")
	}
	spec, err := decodeQuery(form.Get("query"))
	if err != nil {
		return nil, err
	}
	spec.Payload = payload
	spec.Query = form.Get("query")
	if err := s.cfg.Engine.Start(r.Context(), tt, spec); err != nil {
		return nil, err
	}
	return startReply{StatusURL: s.base(r) + "/v1/status"}, nil
}

// requestTemplates answers the Node SDK's getTemplates(): thumbd has no
// templates, so the list is empty.
func (s *Server) requestTemplates(r *http.Request, form url.Values) (any, error) {
	key := strings.TrimSpace(form.Get("api_key"))
	if key == "" {
		return nil, errorf(codeBadAPIKey, "api_key is required")
	}
	if _, _, err := s.cfg.Engine.NewSession(r.Context(), key); err != nil {
		return nil, err
	}
	return templatesReply{Templates: []any{}}, nil
}

// endpointHost answers the PHP client's endpoint discovery (GET /v1.1,
// when it is built with version "v1.1"): this server's public host, and
// its port unless it is the scheme's default, as plain text. The client
// then sends everything to https://<that host>/v1.1/.
func (s *Server) endpointHost(w http.ResponseWriter, r *http.Request) {
	host := s.base(r)
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Host
		if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
			host = u.Hostname()
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, host)
}

func (s *Server) startEncode(r *http.Request, form url.Values) (any, error) {
	return nil, errorf(11, "profiles are not supported by thumbd: use /v1/start_encode2 with a query")
}

func (s *Server) status(r *http.Request, form url.Values) (any, error) {
	var tokens []string
	for _, k := range []string{"task_tokens[]", "task_tokens", "task_token"} {
		for _, v := range form[k] {
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					tokens = append(tokens, t)
				}
			}
		}
	}
	if len(tokens) == 0 {
		return nil, errorf(codeBadTokens, "task_tokens is required: give one or more task tokens")
	}
	base := s.base(r)
	reply := statusReply{Statuses: map[string]*wire.Status{}}
	for _, t := range tokens {
		snap, err := s.pollStatus(r.Context(), t)
		if errors.Is(err, engine.ErrTokenNotFound) || errors.Is(err, engine.ErrBadToken) {
			reply.Statuses[t] = wire.UnknownStatus(base)
			continue
		}
		if err != nil {
			return nil, err // error 1: the client polls again
		}
		reply.Statuses[t] = wire.TaskStatus(snap, base)
	}
	return reply, nil
}

// pollStatus reads a task for /v1/status: through Config.PollStatus when
// set, else from the engine.
func (s *Server) pollStatus(ctx context.Context, token string) (engine.Snapshot, error) {
	if s.cfg.PollStatus != nil {
		return s.cfg.PollStatus(ctx, token)
	}
	return s.cfg.Engine.Status(ctx, token)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// serveFile serves a file thumbd keeps for a task without a destination.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "*")
	// Only a task's folder is served: the store may hold other folders,
	// such as the uploads a farm shares, which are no one's to download.
	task, _, _ := strings.Cut(name, "/")
	if s.cfg.Files == nil || name == "" || !engine.ValidToken(task) {
		http.NotFound(w, r)
		return
	}
	f, err := s.cfg.Files.OpenFile(r.Context(), name)
	if err != nil {
		var pe *fs.PathError // the data directory's errors: missing, a link out of it
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, storage.ErrBadName) || errors.As(err, &pe) {
			http.NotFound(w, r)
			return
		}
		s.log.Warn("reading a kept file", "err", err)
		http.Error(w, "the file store is unavailable", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	if ct := contentType(name); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	http.ServeContent(w, r, path.Base(name), fi.ModTime(), f)
}

func contentType(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".vtt":
		return "text/vtt; charset=utf-8"
	case ".webp":
		return "image/webp"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".png":
		return "image/png"
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".webm":
		return "video/webm"
	case ".json":
		return "application/json"
	}
	return ""
}

// bodyDeadline gives every request but an upload BodyTimeout to send its
// body, so that a client dribbling a body cannot hold a connection (and a
// file descriptor) for longer. It runs after the path is cleaned, on the
// path the router sees.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
			p = rctx.RoutePath
		}
		if p != "/v1/upload_file" && !strings.HasPrefix(p, "/v1/upload_file/") {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// logRequests logs each request's method, path, status and time; never its
// form values, which carry keys and tokens.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		began := time.Now()
		next.ServeHTTP(ww, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(), "took", time.Since(began))
	})
}

// uploadsFor lets TUS requests through only for a task token that exists,
// and lets uploads be created or written only until the task is started.
// TUS clients expect plain HTTP statuses, not Qencode's envelope.
func (s *Server) uploadsFor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions {
			task, _, _ := strings.Cut(strings.Trim(r.URL.Path, "/"), "/")
			if !engine.ValidToken(task) {
				http.Error(w, "upload to <upload_url>/<task_token>, with the task_token from /v1/create_task", http.StatusNotFound)
				return
			}
			snap, err := s.cfg.Engine.Status(r.Context(), task)
			if err != nil {
				http.Error(w, "unknown task_token: get one from /v1/create_task", http.StatusNotFound)
				return
			}
			if (r.Method == http.MethodPost || r.Method == http.MethodPatch) && snap.State != engine.StateCreated {
				http.Error(w, "this task has already been started; upload before start_encode2", http.StatusConflict)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
