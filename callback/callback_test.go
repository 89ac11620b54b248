package callback_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
)

// receiver records the forms posted to it and answers with the codes it is
// given, one per request (the last one repeats).
type receiver struct {
	mu    sync.Mutex
	forms []url.Values
	codes []int
	got   chan struct{}
}

func newReceiver(t *testing.T, codes ...int) (*receiver, string) {
	r := &receiver{codes: codes, got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if ct := req.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("content type %q", ct)
		}
		req.ParseForm()
		r.mu.Lock()
		r.forms = append(r.forms, req.PostForm)
		code := 200
		if len(r.codes) > 0 {
			code = r.codes[0]
			if len(r.codes) > 1 {
				r.codes = r.codes[1:]
			}
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		io.WriteString(w, "reply body")
		r.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL + "/hook?secret=s"
}

// allowAll lets the tests' callbacks reach their receivers on loopback.
var allowAll = netguard.New(netguard.Policy{AllowPrivate: true})

type warnings struct {
	mu sync.Mutex
	ws map[string][]engine.Warning
}

func (w *warnings) AddWarning(_ context.Context, token string, wa engine.Warning) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ws == nil {
		w.ws = map[string][]engine.Warning{}
	}
	w.ws[token] = append(w.ws[token], wa)
	return nil
}

func (w *warnings) of(token string) []engine.Warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ws[token]
}

func event(token string, kind engine.EventKind, u string) engine.Event {
	return engine.Event{Token: token, Kind: kind, Spec: engine.Spec{CallbackURL: u}}
}

// settle waits until every delivery is done.
func settle(t *testing.T, n *callback.Notifier, want int) []callback.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds := n.Deliveries()
		done := len(ds) == want
		for _, d := range ds {
			done = done && d.Done
		}
		if done {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not done: %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDelivery(t *testing.T) {
	tests := []struct {
		name          string
		codes         []int
		fault         int // attempts failed by injection
		wantAttempts  int
		wantDelivered bool
		wantWarning   string
	}{
		{name: "accepted at once", codes: []int{200}, wantAttempts: 1, wantDelivered: true},
		{name: "any 2xx", codes: []int{204}, wantAttempts: 1, wantDelivered: true},
		{name: "retried until accepted", codes: []int{500, 503, 200}, wantAttempts: 3, wantDelivered: true},
		{name: "injected failures are retried", codes: []int{200}, fault: 2, wantAttempts: 3, wantDelivered: true},
		{name: "a receiver that keeps failing", codes: []int{500}, wantAttempts: 3, wantDelivered: false,
			wantWarning: "Error sending callback to URL 500: Internal Server Error"},
		{name: "a status without a reason phrase", codes: []int{599}, wantAttempts: 3, wantDelivered: false,
			wantWarning: "Error sending callback to URL 599"},
		{name: "no receiver", codes: nil, wantAttempts: 3, wantDelivered: false,
			wantWarning: "Error sending callback to http://127.0.0.1:9/hook: dial tcp 127.0.0.1:9: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv, u := newReceiver(t, tt.codes...)
			if tt.codes == nil {
				u = "http://127.0.0.1:9/hook" // nothing listens on the discard port
			}
			var w warnings
			var mu sync.Mutex
			faults := tt.fault
			n := callback.New(callback.Config{Guard: allowAll, Warnings: &w, RetryFor: 250 * time.Millisecond, Backoff: 50 * time.Millisecond,
				Fault: func() (int, bool) {
					mu.Lock()
					defer mu.Unlock()
					if faults > 0 {
						faults--
						return 502, true
					}
					return 0, false
				}})
			defer n.Close(context.Background())
			tok := strings.Repeat("a", 32)
			n.Notify(context.Background(), event(tok, engine.EventSaved, u))
			d := settle(t, n, 1)[0]
			if len(d.Attempts) != tt.wantAttempts || d.Delivered != tt.wantDelivered {
				t.Errorf("attempts %d delivered %v, want %d %v: %+v", len(d.Attempts), d.Delivered, tt.wantAttempts, tt.wantDelivered, d.Attempts)
			}
			for i, a := range d.Attempts[:tt.fault] {
				if !a.Injected || a.Code != 502 {
					t.Errorf("attempt %d = %+v, want an injected 502", i, a)
				}
			}
			rcv.mu.Lock()
			sent := len(rcv.forms)
			rcv.mu.Unlock()
			want := tt.wantAttempts - tt.fault
			if tt.codes == nil {
				want = 0
			}
			if sent != want {
				t.Errorf("the receiver got %d requests, want %d", sent, want)
			}
			ws := w.of(tok)
			if tt.wantWarning == "" {
				if len(ws) != 0 {
					t.Errorf("warnings %+v", ws)
				}
				return
			}
			wantDetails := strings.ReplaceAll(tt.wantWarning, "URL", netguard.ShowURL(u))
			if len(ws) != 1 || ws[0].Message != "Callback delivery error" || ws[0].Details != wantDetails {
				t.Errorf("warnings %+v, want one with details %q", ws, wantDetails)
			}
		})
	}
}

// TestOrderPerTask checks that a task's callbacks arrive in the order of its
// events even when the first needs retries, and that another task's
// callbacks are not held back meanwhile.
func TestOrderPerTask(t *testing.T) {
	slow, slowURL := newReceiver(t, 500, 500, 200)
	fast, fastURL := newReceiver(t, 200)
	n := callback.New(callback.Config{Guard: allowAll, RetryFor: 5 * time.Second, Backoff: 100 * time.Millisecond})
	defer n.Close(context.Background())
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 32)
	n.Notify(context.Background(), event(a, engine.EventQueued, slowURL))
	n.Notify(context.Background(), event(a, engine.EventError, slowURL))
	n.Notify(context.Background(), event(a, engine.EventSaved, slowURL))
	n.Notify(context.Background(), event(b, engine.EventQueued, fastURL))
	select {
	case <-fast.got:
	case <-time.After(150 * time.Millisecond):
		t.Error("task b's callback waited behind task a's retries")
	}
	settle(t, n, 4)
	var events []string
	for _, f := range slow.forms {
		events = append(events, f.Get("event"))
	}
	if got := strings.Join(events, ","); got != "queued,queued,queued,error,saved" {
		t.Errorf("task a's receiver saw %s", got)
	}
}

func TestNoURLNoDelivery(t *testing.T) {
	n := callback.New(callback.Config{})
	n.Notify(context.Background(), event(strings.Repeat("a", 32), engine.EventQueued, ""))
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ds := n.Deliveries(); len(ds) != 0 {
		t.Errorf("deliveries %+v", ds)
	}
}

func TestClear(t *testing.T) {
	_, u := newReceiver(t, 200)
	n := callback.New(callback.Config{Guard: allowAll})
	defer n.Close(context.Background())
	n.Notify(context.Background(), event(strings.Repeat("a", 32), engine.EventQueued, u))
	settle(t, n, 1)
	n.Clear()
	if ds := n.Deliveries(); len(ds) != 0 {
		t.Errorf("after Clear: %+v", ds)
	}
}

// The engine, and its store alone, can take a callback's warnings.
var (
	_ callback.Warner = (*engine.Engine)(nil)
	_ callback.Warner = engine.TaskWarnings{}
)
