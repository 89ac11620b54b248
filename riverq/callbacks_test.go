package riverq_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/riverq"
)

// hooks is a callback receiver on a fixed address that answers each
// request with the next of its codes (the last repeats), and can be
// started after the deliveries to it began.
type hooks struct {
	addr  string
	mu    sync.Mutex
	codes []int
	forms []url.Values
	got   chan url.Values
	srv   *http.Server
}

// newHooks reserves an address for a receiver that does not listen yet:
// connections to it are refused until start.
func newHooks(t *testing.T, codes ...int) *hooks {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hooks{addr: ln.Addr().String(), codes: codes, got: make(chan url.Values, 100)}
	ln.Close()
	return h
}

func (h *hooks) url() string { return "http://user:pw@" + h.addr + "/hook?secret=s" }

func (h *hooks) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		h.mu.Lock()
		code := 200
		if len(h.codes) > 0 {
			code = h.codes[0]
			if len(h.codes) > 1 {
				h.codes = h.codes[1:]
			}
		}
		h.forms = append(h.forms, r.PostForm)
		h.mu.Unlock()
		w.WriteHeader(code)
		h.got <- r.PostForm
	})}
	go h.srv.Serve(ln)
	t.Cleanup(func() { h.srv.Close() })
}

func (h *hooks) wait(t *testing.T, n int) []url.Values {
	t.Helper()
	var got []url.Values
	for range n {
		select {
		case f := <-h.got:
			got = append(got, f)
		case <-time.After(20 * time.Second):
			t.Fatalf("received %v, want %d requests", got, n)
		}
	}
	return got
}

type taskWarnings struct {
	mu sync.Mutex
	ws map[string][]engine.Warning
}

func (w *taskWarnings) AddWarning(_ context.Context, token string, wa engine.Warning) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ws == nil {
		w.ws = map[string][]engine.Warning{}
	}
	w.ws[token] = append(w.ws[token], wa)
	return nil
}

func (w *taskWarnings) of(token string) []engine.Warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ws[token]
}

var allowAll = netguard.New(netguard.Policy{AllowPrivate: true})

// notifier opens a queue on dir's database with a Notifier on its
// callbacks, and runs the queue until the returned stop.
func notifier(t *testing.T, dir string, w *taskWarnings, retryFor time.Duration) (*callback.Notifier, func()) {
	t.Helper()
	db, q := open(t, dir, riverq.Options{})
	n := callback.New(callback.Config{Queue: q.Callbacks(), Guard: allowAll, Warnings: w, RetryFor: retryFor,
		Backoff: 100 * time.Millisecond, Base: "http://thumbd.test"})
	stopQ := run(q, func(context.Context, string) error { return nil })
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopQ()
			db.Close()
		}
	}
	t.Cleanup(stop)
	return n, stop
}

func ev(token string, kind engine.EventKind, u string) engine.Event {
	return engine.Event{Token: token, Kind: kind, Spec: engine.Spec{CallbackURL: u}}
}

// deliveries waits until the Notifier's queue holds want deliveries that
// satisfy ok.
func deliveries(t *testing.T, n *callback.Notifier, want int, ok func(callback.Delivery) bool) []callback.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds := n.Deliveries()
		done := len(ds) == want
		for _, d := range ds {
			done = done && ok(d)
		}
		if done {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func done(d callback.Delivery) bool { return d.Done }

// TestCallbacksInOrder checks that a task's saved callback waits while its
// queued one is being retried, that each attempt is recorded in the job,
// and that the inspector shows the URL without its secrets.
func TestCallbacksInOrder(t *testing.T) {
	h := newHooks(t, 500, 200)
	h.start(t)
	n, _ := notifier(t, t.TempDir(), nil, time.Minute)
	n.Notify(t.Context(), ev("t1", engine.EventQueued, h.url()))
	n.Notify(t.Context(), ev("t1", engine.EventSaved, h.url()))
	forms := h.wait(t, 3)
	var events []string
	for _, f := range forms {
		events = append(events, f.Get("event"))
	}
	if strings.Join(events, " ") != "queued queued saved" {
		t.Errorf("events received %v, want queued (500), queued again, then saved", events)
	}
	ds := deliveries(t, n, 2, done)
	q, s := ds[0], ds[1]
	if q.Event != engine.EventQueued || !q.Delivered || len(q.Attempts) != 2 || q.Attempts[0].Code != 500 ||
		q.Attempts[0].Error != "500: Internal Server Error" || q.Attempts[1].Error != "" || q.Code != 200 {
		t.Errorf("queued delivery %+v, want delivered on its second attempt after a 500", q)
	}
	if s.Event != engine.EventSaved || !s.Delivered || len(s.Attempts) != 1 || s.ID <= q.ID {
		t.Errorf("saved delivery %+v, want delivered at once, after queued", s)
	}
	if s.TaskToken != "t1" || s.URL != "http://"+h.addr+"/hook?…" || s.Fields.Get("task_token") != "t1" || s.Fields.Get("event") != "saved" {
		t.Errorf("saved delivery %+v", s)
	}
	if gap := q.Attempts[1].At.Sub(q.Attempts[0].At); gap < 100*time.Millisecond {
		t.Errorf("retried after %v, want the backoff (100ms) at least", gap)
	}
	n.Clear()
	if ds := n.Deliveries(); len(ds) != 0 {
		t.Errorf("after Clear: %+v", ds)
	}
}

// TestCallbackGivenUp checks that a delivery failing past RetryFor ends,
// not delivered, and warns its task once.
func TestCallbackGivenUp(t *testing.T) {
	h := newHooks(t, 503)
	h.start(t)
	var w taskWarnings
	n, _ := notifier(t, t.TempDir(), &w, 300*time.Millisecond)
	n.Notify(t.Context(), ev("t1", engine.EventSaved, h.url()))
	ds := deliveries(t, n, 1, done)
	if d := ds[0]; d.Delivered || len(d.Attempts) < 2 || d.Code != 503 {
		t.Errorf("delivery %+v, want given up after retries", d)
	}
	var ws []engine.Warning
	for deadline := time.Now().Add(5 * time.Second); len(ws) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ws = w.of("t1")
	}
	time.Sleep(200 * time.Millisecond) // a second warning would come by now
	ws = w.of("t1")
	if len(ws) != 1 || ws[0].Message != callback.WarningMessage ||
		ws[0].Details != "Error sending callback to http://"+h.addr+"/hook?… 503: Service Unavailable" {
		t.Errorf("warnings %+v", ws)
	}
}

// TestCallbackSurvivesRestart checks that a delivery whose receiver is
// down is kept across a restart of the process that queued it, and made
// once the receiver is up.
func TestCallbackSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHooks(t, 200)
	n, stop := notifier(t, dir, nil, time.Minute)
	n.Notify(t.Context(), ev("t1", engine.EventSaved, h.url()))
	deliveries(t, n, 1, func(d callback.Delivery) bool { return len(d.Attempts) >= 1 })
	stop()

	n, _ = notifier(t, dir, nil, time.Minute)
	h.start(t)
	form := h.wait(t, 1)[0]
	if form.Get("event") != "saved" || form.Get("task_token") != "t1" {
		t.Errorf("received %v", form)
	}
	d := deliveries(t, n, 1, done)[0]
	if !d.Delivered || len(d.Attempts) < 2 || !strings.Contains(d.Attempts[0].Error, "connection refused") {
		t.Errorf("delivery %+v, want refused before the restart and delivered after it", d)
	}
}
