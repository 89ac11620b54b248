// Package callback delivers task events to the callback_url a task names,
// as form-encoded POSTs, the way Qencode sends its callbacks. It implements
// engine.Notifier: Notify returns at once and delivery runs beside the
// engine, in order for each task (queued before saved), retried with
// backoff for a bounded time. A receiver that keeps failing gets the task a
// warning, through the Warner it is given; the task is not held back. Every
// delivery is recorded for the test-control plane's inspector.
//
// Deliveries wait and are recorded in one of two places. Without a Queue
// they live in memory, on goroutines of the Notifier's own, and are lost
// when the process stops. With a Queue (package riverq implements it on
// River) each delivery is a job in a database: its retries survive a
// restart, any process sharing the database may make the next attempt, and
// Deliveries reads the database; the Queue's workers make each attempt
// through the Notifier's Try.
//
// The form is Qencode's, rendered by package api/wire: its status field is
// the object /v1/status returns for the task.
package callback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/thumbd/thumbd/api/wire"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
)

// Warner adds a warning to a task. *engine.Engine implements it, and so
// does engine.TaskWarnings, which needs only the engine's Store.
type Warner interface {
	AddWarning(ctx context.Context, taskToken string, w engine.Warning) error
}

// Config configures a Notifier.
type Config struct {
	// Base is the public URL of this server, for the status_url and the
	// URLs of kept files in the status a callback carries.
	Base string
	// Warnings gets the warning of a task whose callback could not be
	// delivered; nil: none is recorded.
	Warnings Warner
	// Guard decides which addresses callbacks may reach; nil refuses every
	// address that is not public (netguard.Default). A URL whose host is a
	// refused address, or "localhost", is never sent to; any other host is
	// checked when it is dialed, redirects included.
	Guard *netguard.Guard
	// Client sends the requests instead of one with a 10 s timeout, at
	// most 5 redirects and Guard's dialer; it should dial with
	// Guard.DialContext.
	Client *http.Client
	// RetryFor bounds how long a failing delivery is retried; default 1 min.
	RetryFor time.Duration
	// Backoff is the wait before the first retry; it doubles each time, up
	// to 30 s. Default 500 ms.
	Backoff time.Duration
	// Fault, when set, is asked before each attempt: ok true makes the
	// attempt fail with status code, without sending anything (fault
	// injection).
	Fault func() (code int, ok bool)
	// Keep is how many deliveries are remembered for Deliveries; default
	// 1000.
	Keep int
	// Queue, when set, keeps the deliveries (durable delivery); nil: they
	// are kept in memory.
	Queue  Queue
	Logger *slog.Logger
	// Observer, when set, is told how each delivery ended (for metrics).
	Observer Observer
}

// Observer is told how each callback delivery ended: result is
// "delivered" (a 2xx reply came), "failed" (retried for RetryFor without
// one), "refused" (the network guard refused its address) or "stopped"
// (thumbd stopped before it could try again; only without a Queue, which
// keeps such a delivery for later), after attempts tries. With a Queue the
// process that made the last attempt tells it. Package internal/metrics
// implements it.
type Observer interface {
	CallbackDelivered(event engine.EventKind, result string, attempts int)
}

// Job is what a Queue keeps of one delivery: everything needed to make it
// again, in any process.
type Job struct {
	TaskToken string           `json:"task_token"`
	Event     engine.EventKind `json:"event"`
	URL       string           `json:"url"` // as the query gave it, secrets included: never shown
	Fields    url.Values       `json:"fields"`
}

// Queue keeps deliveries in a database. Package riverq implements it.
type Queue interface {
	// Handle names what makes the attempts of the queue's deliveries: the
	// queue calls h.Try for each, one delivery of a task at a time, in the
	// order they were added, and waits h.Backoff before a retry.
	Handle(h Handler)
	// Add keeps a delivery to be made.
	Add(ctx context.Context, j Job) error
	// List returns the deliveries kept, at most the latest limit, oldest
	// first. Their URLs are fit to show (netguard.ShowURL).
	List(ctx context.Context, limit int) ([]Delivery, error)
	// Clear deletes every delivery not being attempted right now.
	Clear(ctx context.Context) error
}

// Handler makes the attempts of a Queue's deliveries. *Notifier is one.
type Handler interface {
	// Try makes one attempt at j, after the failed attempts prior. final
	// is true when the delivery is over: delivered (a.Error is empty), or
	// to be given up.
	Try(ctx context.Context, j Job, prior []Attempt) (a Attempt, final bool)
	// GaveUp is told of a delivery given up once the queue has recorded
	// it so, with its last attempt.
	GaveUp(j Job, last Attempt)
	// Backoff is the wait after the given failed attempt (1 for the first)
	// before the next.
	Backoff(attempt int) time.Duration
}

// WarningMessage is the message of the warning a task gets when a callback
// could not be delivered, as Qencode words it.
const WarningMessage = "Callback delivery error"

// Delivery is one callback: an event of a task, posted to its URL.
type Delivery struct {
	ID        int
	TaskToken string
	Event     engine.EventKind
	URL       string // without userinfo or query (netguard.ShowURL): fit to show
	Fields    url.Values
	Attempts  []Attempt
	Delivered bool // a 2xx reply came
	Done      bool // delivered, or given up
	Code      int  // the last reply's status code; 0 if none came

	target string // the callback URL as the query gave it
}

// Attempt is one try at a delivery.
type Attempt struct {
	At       time.Time     `json:"at"`
	Code     int           `json:"code,omitempty"`     // status code of the reply; 0 if none came
	Error    string        `json:"error,omitempty"`    // why it failed; empty on success
	Injected bool          `json:"injected,omitempty"` // failed by fault injection, nothing sent
	Took     time.Duration `json:"took,omitempty"`
}

// Notifier delivers callbacks. It implements engine.Notifier.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	guard  *netguard.Guard
	ctx    context.Context // ends on Close's deadline
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	nextID int
	all    []*Delivery           // most recent last, at most cfg.Keep
	queues map[string][]*pending // per task, waiting their turn
	busy   map[string]bool       // a goroutine is delivering this task's callbacks
	gen    int                   // bumped by Clear: deliveries of an older generation are not recorded
	_      struct{}
}

type pending struct {
	d   *Delivery
	gen int
}

// New returns a Notifier.
func New(cfg Config) *Notifier {
	if cfg.Guard == nil {
		cfg.Guard = netguard.Default()
	}
	guard := cfg.Guard.For("the callback")
	if cfg.Client == nil {
		cfg.Client = guard.Client(10*time.Second, 5)
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{cfg: cfg, log: cfg.Logger, guard: guard, ctx: ctx, cancel: cancel,
		queues: map[string][]*pending{}, busy: map[string]bool{}}
	if cfg.Queue != nil {
		cfg.Queue.Handle(n)
	}
	return n
}

// Notify implements engine.Notifier: it renders the event's fields now and
// queues their delivery behind the task's earlier callbacks. A task without
// a callback URL is ignored.
func (n *Notifier) Notify(_ context.Context, ev engine.Event) {
	if ev.Spec.CallbackURL == "" {
		return
	}
	fields, err := wire.CallbackForm(ev, n.cfg.Base)
	if err != nil {
		n.log.Error("rendering a callback", "task", engine.Redact(ev.Token), "event", ev.Kind, "err", err)
		return
	}
	if n.cfg.Queue != nil {
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		j := Job{TaskToken: ev.Token, Event: ev.Kind, URL: ev.Spec.CallbackURL, Fields: fields}
		if err := n.cfg.Queue.Add(ctx, j); err != nil {
			n.log.Error("queueing a callback", "task", engine.Redact(ev.Token), "event", ev.Kind, "err", err)
		}
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nextID++
	d := &Delivery{ID: n.nextID, TaskToken: ev.Token, Event: ev.Kind, URL: netguard.ShowURL(ev.Spec.CallbackURL),
		Fields: fields, target: ev.Spec.CallbackURL}
	n.all = append(n.all, d)
	if len(n.all) > n.cfg.Keep {
		n.all = n.all[len(n.all)-n.cfg.Keep:]
	}
	n.queues[ev.Token] = append(n.queues[ev.Token], &pending{d: d, gen: n.gen})
	if !n.busy[ev.Token] {
		n.busy[ev.Token] = true
		n.wg.Go(func() { n.drain(ev.Token) })
	}
}

// drain delivers a task's callbacks one after the other until none waits.
func (n *Notifier) drain(token string) {
	for {
		n.mu.Lock()
		q := n.queues[token]
		if len(q) == 0 {
			delete(n.queues, token)
			delete(n.busy, token)
			n.mu.Unlock()
			return
		}
		p := q[0]
		n.queues[token] = q[1:]
		n.mu.Unlock()
		n.deliver(p)
	}
}

// deliver posts one callback, retrying with backoff until it is accepted or
// RetryFor has passed, then warns the task if it never was.
func (n *Notifier) deliver(p *pending) {
	d := p.d
	began := time.Now()
	wait := n.cfg.Backoff
	var last string
	stopped, refused := false, false
	for !stopped {
		a := n.attempt(n.ctx, d.target, d.Fields)
		n.mu.Lock()
		d.Attempts = append(d.Attempts, a.Attempt)
		d.Code = a.Code
		if a.Error == "" {
			d.Delivered, d.Done = true, true
		}
		n.mu.Unlock()
		if a.Error == "" {
			n.observe(d.Event, "delivered", len(d.Attempts))
			return
		}
		last = a.Error
		n.log.Warn("callback not delivered", "task", engine.Redact(d.TaskToken), "event", d.Event,
			"url", d.URL, "attempt", len(d.Attempts), "err", a.Error)
		if a.refused || time.Since(began)+wait > n.cfg.RetryFor {
			refused = a.refused
			break // a refused address stays refused
		}
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			last += " (thumbd stopped before it could try again)"
			stopped = true
		}
		wait = min(2*wait, 30*time.Second)
	}
	n.mu.Lock()
	d.Done = true
	current := p.gen == n.gen
	attempts := len(d.Attempts)
	n.mu.Unlock()
	switch {
	case stopped:
		n.observe(d.Event, "stopped", attempts)
	case refused:
		n.observe(d.Event, "refused", attempts)
	default:
		n.observe(d.Event, "failed", attempts)
	}
	if current {
		n.warn(d.TaskToken, d.URL, d.Code, last)
	}
}

// warn gives a task the warning of a callback that was not delivered.
func (n *Notifier) warn(token, shownURL string, code int, why string) {
	if n.cfg.Warnings == nil {
		return
	}
	w := engine.Warning{Message: WarningMessage, Details: "Error sending callback to " + shownURL + sep(code) + why}
	if err := n.cfg.Warnings.AddWarning(context.Background(), token, w); err != nil && !errors.Is(err, engine.ErrTokenNotFound) {
		n.log.Error("recording a callback warning", "task", engine.Redact(token), "err", err)
	}
}

// Try implements Handler for a Queue: one attempt at j. A failed attempt
// is final when the network guard refused it or when the next could not
// come within RetryFor of the first. An attempt cut short by ctx (thumbd
// stopping) is not final.
func (n *Notifier) Try(ctx context.Context, j Job, prior []Attempt) (Attempt, bool) {
	a := n.attempt(ctx, j.URL, j.Fields)
	tries := len(prior) + 1
	if a.Error == "" {
		n.observe(j.Event, "delivered", tries)
		return a.Attempt, true
	}
	n.log.Warn("callback not delivered", "task", engine.Redact(j.TaskToken), "event", j.Event,
		"url", netguard.ShowURL(j.URL), "attempt", tries, "err", a.Error)
	if ctx.Err() != nil {
		return a.Attempt, false // stopping: the queue keeps it for later
	}
	began := a.At
	if len(prior) > 0 {
		began = prior[0].At
	}
	switch {
	case a.refused:
		n.observe(j.Event, "refused", tries)
		return a.Attempt, true
	case time.Since(began)+n.Backoff(tries) > n.cfg.RetryFor:
		n.observe(j.Event, "failed", tries)
		return a.Attempt, true
	}
	return a.Attempt, false
}

// GaveUp implements Handler: it warns j's task that its callback was not
// delivered, why last says.
func (n *Notifier) GaveUp(j Job, last Attempt) {
	n.warn(j.TaskToken, netguard.ShowURL(j.URL), last.Code, last.Error)
}

// Backoff implements Handler: Config.Backoff doubled after each failed
// attempt, at most 30 s.
func (n *Notifier) Backoff(attempt int) time.Duration {
	wait := n.cfg.Backoff
	for i := 1; i < attempt && wait < 30*time.Second; i++ {
		wait *= 2
	}
	return min(wait, 30*time.Second)
}

// observe tells the Observer how a delivery ended.
func (n *Notifier) observe(event engine.EventKind, result string, attempts int) {
	if n.cfg.Observer != nil {
		n.cfg.Observer.CallbackDelivered(event, result, attempts)
	}
}

// attempt makes one try. Its Error reads like Qencode's warning details:
// "500: Internal Server Error", or why no reply came. It never holds the
// reply's body, nor the reason phrase the receiver chose: a callback must
// not read a service back to whoever named it.
func (n *Notifier) attempt(ctx context.Context, target string, fields url.Values) attempt {
	a := attempt{Attempt: Attempt{At: time.Now()}}
	if n.cfg.Fault != nil {
		if code, ok := n.cfg.Fault(); ok {
			a.Code, a.Injected = code, true
			a.Error = fmt.Sprintf("%d: injected failure", code)
			return a
		}
	}
	u, err := url.Parse(target)
	if err != nil {
		a.Error, a.refused = "the callback URL is not valid", true
		return a
	}
	if err := n.guard.CheckHost(u.Hostname()); err != nil {
		a.Error, a.refused = err.Error(), true
		return a
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(fields.Encode()))
	if err != nil {
		a.Error, a.refused = "the callback URL cannot be requested", true
		return a
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "thumbd-callback/1")
	resp, err := n.cfg.Client.Do(req)
	a.Took = time.Since(a.At)
	if err != nil {
		if b, ok := netguard.AsBlocked(err); ok {
			a.Error, a.refused = b.Error(), true
			return a
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without "Post <url>:", which may hold secrets
		}
		a.Error = err.Error()
		return a
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // so the connection is kept
	a.Code = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Error = strings.TrimSuffix(fmt.Sprintf("%d: %s", resp.StatusCode, http.StatusText(resp.StatusCode)), ": ")
	}
	return a
}

// attempt is an Attempt and whether the guard refused it, which no retry
// can change.
type attempt struct {
	Attempt
	refused bool
}

// Deliveries returns a copy of the deliveries remembered (at most
// Config.Keep), oldest first: with a Queue, those it holds.
func (n *Notifier) Deliveries() []Delivery {
	if n.cfg.Queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds, err := n.cfg.Queue.List(ctx, n.cfg.Keep)
		if err != nil {
			n.log.Error("reading the callbacks queued", "err", err)
		}
		return ds
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Delivery, len(n.all))
	for i, d := range n.all {
		out[i] = *d
		out[i].Fields = cloneValues(d.Fields)
		out[i].Attempts = append([]Attempt(nil), d.Attempts...)
	}
	return out
}

// Clear forgets every delivery. Deliveries under way go on, unrecorded,
// and warn no task. With a Queue it deletes the deliveries not being
// attempted.
func (n *Notifier) Clear() {
	if n.cfg.Queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.cfg.Queue.Clear(ctx); err != nil {
			n.log.Error("clearing the callbacks queued", "err", err)
		}
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = nil
	n.gen++
}

// Close waits for the deliveries under way until ctx ends, then stops
// retrying them. A Queue's deliveries are not its to wait for: they stay
// queued.
func (n *Notifier) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return ctx.Err()
	}
}

// sep is what goes between the URL and the reason in a warning, as Qencode
// words it: "<url> 500: Internal Server Error", or "<url>: <why no reply
// came>".
func sep(code int) string {
	if code > 0 {
		return " "
	}
	return ": "
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
