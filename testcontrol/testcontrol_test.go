package testcontrol_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/testcontrol"
)

// fakeTask walks a task through the states the engine does, asking the gate
// first, and records the state it is in, as the store would.
type fakeTask struct {
	mu    sync.Mutex
	state engine.State
	err   error
}

func (f *fakeTask) get() engine.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fakeTask) run(ctx context.Context, p *testcontrol.Plane, token string) {
	f.mu.Lock()
	f.state = engine.StateQueued
	f.mu.Unlock()
	for _, st := range []engine.State{engine.StateDownloading, engine.StateEncoding, engine.StateSaving, engine.StateCompleted} {
		if err := p.Enter(ctx, token, st); err != nil {
			f.mu.Lock()
			f.state, f.err = engine.StateError, err
			f.mu.Unlock()
			p.Ended(token)
			return
		}
		f.mu.Lock()
		f.state = st
		f.mu.Unlock()
	}
	p.Ended(token)
}

// poll reads the task's state as the status method does: through
// WatchStatus.
func poll(p *testcontrol.Plane, f *fakeTask, token string) engine.State {
	read := p.WatchStatus(func(context.Context, string) (engine.Snapshot, error) {
		return engine.Snapshot{State: f.get()}, nil
	})
	snap, err := read(context.Background(), token)
	if err != nil {
		panic(err) // the fake never fails
	}
	return snap.State
}

var tok = strings.Repeat("a", 32)

func TestPollsStepTheTask(t *testing.T) {
	tests := []struct {
		name  string
		holds []testcontrol.Hold
		want  []engine.State
	}{
		{"queued then encoding", []testcontrol.Hold{{State: engine.StateQueued, Polls: 1}, {State: engine.StateEncoding, Polls: 1}},
			[]engine.State{engine.StateQueued, engine.StateEncoding, engine.StateCompleted}},
		{"a hold on a later state alone", []testcontrol.Hold{{State: engine.StateEncoding, Polls: 1}},
			[]engine.State{engine.StateEncoding, engine.StateCompleted}},
		{"two polls in each state", []testcontrol.Hold{{State: engine.StateQueued, Polls: 1}, {State: engine.StateDownloading, Polls: 2},
			{Token: tok, State: engine.StateSaving, Polls: 2}},
			[]engine.State{engine.StateQueued, engine.StateDownloading, engine.StateDownloading, engine.StateSaving, engine.StateSaving, engine.StateCompleted}},
		{"every state", []testcontrol.Hold{{State: engine.StateQueued, Polls: 1}, {State: engine.StateDownloading, Polls: 1},
			{State: engine.StateEncoding, Polls: 1}, {State: engine.StateSaving, Polls: 1}},
			[]engine.State{engine.StateQueued, engine.StateDownloading, engine.StateEncoding, engine.StateSaving, engine.StateCompleted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testcontrol.New()
			for _, h := range tt.holds {
				if _, err := p.AddHold(h); err != nil {
					t.Fatal(err)
				}
			}
			f := &fakeTask{}
			f.state = engine.StateQueued
			go f.run(context.Background(), p, tok)
			var got []engine.State
			for range tt.want {
				got = append(got, poll(p, f, tok))
			}
			if !equal(got, tt.want) {
				t.Errorf("polls saw %v, want %v", got, tt.want)
			}
		})
	}
}

func equal(a, b []engine.State) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHoldUntilReleased(t *testing.T) {
	p := testcontrol.New()
	other := strings.Repeat("b", 32)
	if _, err := p.AddHold(testcontrol.Hold{State: engine.StateEncoding}); err != nil {
		t.Fatal(err)
	}
	a, b := &fakeTask{}, &fakeTask{}
	go a.run(context.Background(), p, tok)
	go b.run(context.Background(), p, other)
	waitHeld(t, p, tok, other)
	time.Sleep(50 * time.Millisecond)
	if a.get() != engine.StateEncoding || b.get() != engine.StateEncoding {
		t.Fatalf("held tasks are in %s and %s, want encoding", a.get(), b.get())
	}
	if n := p.Release(tok, ""); n != 1 {
		t.Errorf("Release(a) released %d holds, want 1", n)
	}
	if st := poll(p, a, tok); st != engine.StateCompleted {
		t.Errorf("a after its release: %s", st)
	}
	if st := b.get(); st != engine.StateEncoding {
		t.Errorf("b was let go with a: %s", st)
	}
	p.Release("", "")
	if st := poll(p, b, other); st != engine.StateCompleted {
		t.Errorf("b after releasing everything: %s", st)
	}
}

func waitHeld(t *testing.T, p *testcontrol.Plane, tokens ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		held := p.State().Held
		all := true
		for _, tk := range tokens {
			_, ok := held[tk]
			all = all && ok
		}
		if all {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("tasks %v not held: %+v", tokens, p.State())
}

func TestHeldTaskStopsWithItsContext(t *testing.T) {
	p := testcontrol.New()
	p.AddHold(testcontrol.Hold{State: engine.StateQueued})
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeTask{}
	done := make(chan struct{})
	go func() { f.run(ctx, p, tok); close(done) }()
	waitHeld(t, p, tok)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a held task did not stop with its context")
	}
}

func TestTaskFault(t *testing.T) {
	tests := []struct {
		name      string
		fault     testcontrol.TaskFault
		wantState engine.State // the last state before the failure
		wantErr   string
	}{
		{"default: as it starts", testcontrol.TaskFault{Message: "source unreachable"}, engine.StateQueued, "source unreachable"},
		{"entering saving", testcontrol.TaskFault{State: engine.StateSaving, Message: "disk full"}, engine.StateEncoding, "disk full"},
		{"for this task", testcontrol.TaskFault{Token: tok, State: engine.StateCompleted}, engine.StateSaving, "Injected failure (thumbd test API)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testcontrol.New()
			if _, err := p.AddTaskFault(tt.fault); err != nil {
				t.Fatal(err)
			}
			var seen []engine.State
			var err error
			for _, st := range []engine.State{engine.StateDownloading, engine.StateEncoding, engine.StateSaving, engine.StateCompleted} {
				if err = p.Enter(context.Background(), tok, st); err != nil {
					break
				}
				seen = append(seen, st)
			}
			last := engine.StateQueued
			if len(seen) > 0 {
				last = seen[len(seen)-1]
			}
			if err == nil || err.Error() != tt.wantErr || last != tt.wantState {
				t.Errorf("failed with %v after %s, want %q after %s", err, last, tt.wantErr, tt.wantState)
			}
			// Used once: the next task runs through.
			for _, st := range []engine.State{engine.StateDownloading, engine.StateEncoding, engine.StateSaving, engine.StateCompleted} {
				if err := p.Enter(context.Background(), tok, st); err != nil {
					t.Errorf("a fault was used twice: %v", err)
				}
			}
		})
	}
	if _, err := testcontrol.New().AddTaskFault(testcontrol.TaskFault{State: engine.StateQueued}); err == nil {
		t.Error("a fault on entering queued was accepted")
	}
}

func TestDestinationTransport(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	p := testcontrol.New()
	p.FailDestinations(2, 503)
	c := &http.Client{Transport: p.Transport(nil)}
	var codes []int
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPut, http.MethodPut} {
		req, _ := http.NewRequest(m, srv.URL, strings.NewReader("x"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{200, 503, 503, 200}; !slicesEqual(codes, want) || hits != 2 {
		t.Errorf("codes %v (server hit %d times), want %v (2 hits)", codes, hits, want)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
