package callback_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
)

// outcomes records what a Notifier tells its Observer.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) CallbackDelivered(ev engine.EventKind, result string, attempts int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, fmt.Sprintf("%s %s %d", ev, result, attempts))
}

func (o *outcomes) wait(t *testing.T, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		o.mu.Lock()
		got := append([]string(nil), o.got...)
		o.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

func TestObserver(t *testing.T) {
	_, u := newReceiver(t, 500, 200)
	var o outcomes
	n := callback.New(callback.Config{Guard: allowAll, RetryFor: 300 * time.Millisecond, Backoff: 50 * time.Millisecond, Observer: &o})
	n.Notify(t.Context(), event("t1", engine.EventQueued, u))
	n.Notify(t.Context(), event("t2", engine.EventSaved, "http://127.0.0.1:9/hook")) // nothing listens
	got := o.wait(t, 2)
	slices.Sort(got)
	// A failing delivery is tried until RetryFor: 3 times here, fewer on a
	// slow machine.
	if len(got) != 2 || got[0] != "queued delivered 2" || !strings.HasPrefix(got[1], "saved failed ") || got[1] == "saved failed 1" {
		t.Errorf("observed %q, want queued delivered 2 and saved failed after retries", got)
	}
}

// TestObserverRefused checks that a callback the network guard refuses is
// observed as refused, after one attempt.
func TestObserverRefused(t *testing.T) {
	_, u := newReceiver(t, 200)
	var o outcomes
	n := callback.New(callback.Config{RetryFor: 5 * time.Second, Observer: &o}) // the default guard: loopback refused
	n.Notify(t.Context(), event("t1", engine.EventSaved, u))
	if got := o.wait(t, 1); len(got) != 1 || got[0] != "saved refused 1" {
		t.Errorf("observed %q, want saved refused 1", got)
	}
}
