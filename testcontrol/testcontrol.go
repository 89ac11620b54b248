// Package testcontrol is the machinery of thumbd's test-control plane (served
// under /_thumbd/ by package api when THUMBD_TEST_API=1): holds that keep
// tasks in a chosen state until released or for a number of status polls,
// and faults injected into tasks, destination uploads and callbacks.
//
// A Plane is the engine's Gate: the engine asks it before a task enters
// each state, and it blocks the task while a hold applies to the state the
// task is in, or fails it when a fault is set for the state it enters.
//
// Holds make polling deterministic: a status read (WatchStatus wraps the
// API's) of a task that is on its way to a stop (bound for a hold on a
// later state, or let go by the poll that used up a hold or by a release)
// waits, up to SettleTimeout, until the task has stopped at its next hold
// or ended; a queued task that no worker takes within PickupTimeout (every
// worker is busy) reads queued. So a client polling a task with holds of
// one poll on queued and encoding sees queued, then encoding, then
// completed, whatever the machine's speed.
package testcontrol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// SettleTimeout bounds how long a status read waits for a task to stop at
// a hold or end.
const SettleTimeout = 10 * time.Second

// PickupTimeout bounds how long a status read waits for a queued task that
// no worker has taken yet (all may be busy) to start on its way to a hold.
const PickupTimeout = time.Second

// Hold keeps tasks in a state.
type Hold struct {
	ID    int
	Token string       // the task it applies to; empty: every task
	State engine.State // the state tasks stay in
	Polls int          // let a task go after this many status reads in State; 0: until released
}

// TaskFault makes a task fail as it enters a state.
type TaskFault struct {
	ID      int
	Token   string       // the task it applies to; empty: the next task to enter State
	State   engine.State // default downloading: the task fails as soon as it starts
	Message string       // the task's error description
}

// Holdable are the states a task can be held in.
var Holdable = []engine.State{engine.StateQueued, engine.StateDownloading, engine.StateEncoding, engine.StateSaving}

// Failable are the states whose entry a TaskFault can fail.
var Failable = []engine.State{engine.StateDownloading, engine.StateEncoding, engine.StateSaving, engine.StateCompleted}

// Plane holds the control plane's state. The zero value is not usable;
// call New.
type Plane struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	nextID  int
	holds   []*Hold
	faults  []*TaskFault
	dest    counter
	cb      counter
	tasks   map[string]*task
}

type counter struct{ n, code int }

// task is what the plane knows of one task.
type task struct {
	state    engine.State         // as far as the gate knows
	polls    map[engine.State]int // status reads while in each state
	released map[int]bool         // holds released for this task alone
	held     int                  // the hold it waits on; 0: none
	moving   bool                 // let go; not yet stopped again or ended
	ended    bool                 // its final status is stored
	running  bool                 // a worker has it (it has been through the gate)
}

// New returns an empty Plane.
func New() *Plane {
	return &Plane{changed: make(chan struct{}), tasks: map[string]*task{}}
}

var _ engine.Gate = (*Plane)(nil)

func (p *Plane) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Plane) task(token string) *task {
	t, ok := p.tasks[token]
	if !ok {
		t = &task{state: engine.StateQueued, polls: map[engine.State]int{}, released: map[int]bool{}}
		p.tasks[token] = t
	}
	return t
}

// holding returns the hold that keeps the task in state st, or nil.
func (p *Plane) holding(token string, t *task, st engine.State) *Hold {
	for _, h := range p.holds {
		if h.State != st || (h.Token != "" && h.Token != token) || t.released[h.ID] {
			continue
		}
		if h.Polls > 0 && t.polls[st] >= h.Polls {
			continue
		}
		return h
	}
	return nil
}

// Enter implements engine.Gate: it blocks while a hold keeps the task in the
// state it is in, then fails the task if a fault is set for next.
func (p *Plane) Enter(ctx context.Context, token string, next engine.State) error {
	p.mu.Lock()
	t := p.task(token)
	t.running = true
	for {
		h := p.holding(token, t, t.state)
		if h == nil {
			break
		}
		if t.held != h.ID {
			t.held, t.moving = h.ID, false
			p.broadcast()
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			p.mu.Lock()
			t.held = 0
			p.mu.Unlock()
			return ctx.Err()
		case <-ch:
		}
		p.mu.Lock()
		t = p.task(token) // Clear may have replaced it
		t.running = true
	}
	t.held = 0
	for i, f := range p.faults {
		if f.State == next && (f.Token == "" || f.Token == token) {
			p.faults = slices.Delete(p.faults, i, i+1)
			t.state = engine.StateError
			p.mu.Unlock()
			return errors.New(f.Message)
		}
	}
	t.state = next
	p.mu.Unlock()
	return nil
}

// order ranks the states a task passes through.
func order(st engine.State) int {
	switch st {
	case engine.StateQueued:
		return 1
	case engine.StateDownloading:
		return 2
	case engine.StateEncoding:
		return 3
	case engine.StateSaving:
		return 4
	case engine.StateCompleted, engine.StateError:
		return 5
	}
	return 0
}

// inFlight reports whether a task whose status reads st is on its way to a
// stop: let go by a poll or a release, or bound for a hold on a later state.
// waiting says that no worker has taken it yet.
func (p *Plane) inFlight(token string, st engine.State) (inFlight, waiting bool) {
	if st == engine.StateCreated || st.Done() {
		return false, false
	}
	t, ok := p.tasks[token]
	if !ok {
		t = &task{state: engine.StateQueued}
	}
	if t.held != 0 || t.ended {
		return false, false
	}
	if t.moving {
		return true, !t.running
	}
	cur := max(order(st), order(t.state))
	for _, h := range p.holds {
		if order(h.State) > cur && (h.Token == "" || h.Token == token) && !t.released[h.ID] &&
			(h.Polls == 0 || t.polls[h.State] < h.Polls) {
			return true, !t.running
		}
	}
	return false, false
}

// Settle is called with the state a status read found. If the task is on
// its way to a stop (let go by a poll or a release, or bound for a hold on
// a later state) it waits until the task has stopped at a hold or ended, at
// most SettleTimeout. It reports whether the caller should read the status
// again: it waited, or the task has moved on since st was read.
func (p *Plane) Settle(ctx context.Context, token string, st engine.State) bool {
	began := time.Now()
	timer := time.NewTimer(SettleTimeout)
	defer timer.Stop()
	waited := false
	for {
		p.mu.Lock()
		flying, waiting := p.inFlight(token, st)
		if waiting && time.Since(began) >= PickupTimeout {
			flying = false // every worker is busy: it stays queued for now
		}
		if !flying {
			// The task may have moved on between the read and now.
			t, ok := p.tasks[token]
			moved := ok && (t.ended || order(t.state) > order(st))
			p.mu.Unlock()
			return waited || moved
		}
		ch := p.changed
		p.mu.Unlock()
		waited = true
		var pickup <-chan time.Time
		if waiting {
			pickup = time.After(PickupTimeout - time.Since(began))
		}
		select {
		case <-ch:
		case <-pickup:
		case <-ctx.Done():
			return waited
		case <-timer.C:
			return waited
		}
	}
}

// Polled counts a status read of a task found in state st. The read that
// uses up a hold's polls lets the task go.
func (p *Plane) Polled(token string, st engine.State) {
	if st.Done() || st == engine.StateCreated {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.task(token)
	before := p.holding(token, t, st)
	t.polls[st]++
	if before != nil && p.holding(token, t, st) == nil {
		t.moving, t.held = true, 0
		p.broadcast()
	}
}

// Ended records that a task has ended and its final status is stored.
func (p *Plane) Ended(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.task(token)
	t.moving, t.ended = false, true
	p.broadcast()
}

// StatusFunc reads a task's status: engine.Engine.Status.
type StatusFunc func(ctx context.Context, token string) (engine.Snapshot, error)

// WatchStatus wraps how the API's /v1/status reads a task, so that holds
// make polling deterministic: each read of a task that exists is settled
// (see Settle), read again if the task moved on, and counted (see Polled).
func (p *Plane) WatchStatus(status StatusFunc) StatusFunc {
	return func(ctx context.Context, token string) (engine.Snapshot, error) {
		snap, err := status(ctx, token)
		if err != nil {
			return snap, err
		}
		if p.Settle(ctx, token, snap.State) {
			if snap, err = status(ctx, token); err != nil {
				return snap, err
			}
		}
		p.Polled(token, snap.State)
		return snap, nil
	}
}

// Observe wraps a Notifier (nil for none) so that the plane learns when
// tasks end.
func (p *Plane) Observe(next engine.Notifier) engine.Notifier {
	return observer{p, next}
}

type observer struct {
	p    *Plane
	next engine.Notifier
}

func (o observer) Notify(ctx context.Context, ev engine.Event) {
	if ev.Kind == engine.EventSaved {
		o.p.Ended(ev.Token)
	}
	if o.next != nil {
		o.next.Notify(ctx, ev)
	}
}

// AddHold adds a hold and returns its ID.
func (p *Plane) AddHold(h Hold) (int, error) {
	if !slices.Contains(Holdable, h.State) {
		return 0, fmt.Errorf("state must be one of %s", join(Holdable))
	}
	if h.Polls < 0 {
		return 0, errors.New("polls must not be negative")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	h.ID = p.nextID
	p.holds = append(p.holds, &h)
	p.broadcast()
	return h.ID, nil
}

// Release lets tasks go. With a token, every hold on that task is released
// for it (holds on every task keep holding the others); without, every
// hold is removed. A state limits the release to the holds on that state.
// It returns how many holds it released.
func (p *Plane) Release(token string, st engine.State) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	keep := p.holds[:0]
	for _, h := range p.holds {
		match := st == "" || h.State == st
		switch {
		case !match || (token != "" && h.Token != "" && h.Token != token):
			keep = append(keep, h)
		case token != "" && h.Token == "":
			p.task(token).released[h.ID] = true
			keep = append(keep, h)
			n++
		default:
			n++
		}
	}
	clear(p.holds[len(keep):])
	p.holds = keep
	for tok, t := range p.tasks {
		if t.held != 0 && p.holding(tok, t, t.state) == nil {
			t.moving, t.held = true, 0
		}
	}
	p.broadcast()
	return n
}

// AddTaskFault makes a task fail as it enters a state and returns the
// fault's ID. A fault is used once.
func (p *Plane) AddTaskFault(f TaskFault) (int, error) {
	if f.State == "" {
		f.State = engine.StateDownloading
	}
	if !slices.Contains(Failable, f.State) {
		return 0, fmt.Errorf("state must be one of %s", join(Failable))
	}
	if strings.TrimSpace(f.Message) == "" {
		f.Message = "Injected failure (thumbd test API)"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	f.ID = p.nextID
	p.faults = append(p.faults, &f)
	return f.ID, nil
}

// FailDestinations makes the next n requests to destination storage fail
// with HTTP status code (see Transport).
func (p *Plane) FailDestinations(n, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dest = counter{n, code}
}

// FailCallbacks makes the next n callback attempts fail with HTTP status
// code, without sending them.
func (p *Plane) FailCallbacks(n, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cb = counter{n, code}
}

func (c *counter) take() (int, bool) {
	if c.n <= 0 {
		return 0, false
	}
	c.n--
	return c.code, true
}

// CallbackFault reports whether the next callback attempt is to fail, and
// with which status code (callback.Config.Fault).
func (p *Plane) CallbackFault() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cb.take()
}

// Transport wraps the HTTP transport of destination uploads: while
// FailDestinations has failures left, each request that writes (PUT or
// POST) gets an S3 error reply with that status code instead of reaching
// the server.
func (p *Plane) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			p.mu.Lock()
			code, fail := p.dest.take()
			p.mu.Unlock()
			if fail {
				if r.Body != nil {
					r.Body.Close()
				}
				body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>Injected failure (thumbd test API)</Message></Error>`, s3Code(code))
				return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
					Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r, ContentLength: int64(len(body)),
					Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
			}
		}
		return next.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func s3Code(code int) string {
	switch {
	case code == http.StatusServiceUnavailable:
		return "SlowDown"
	case code == http.StatusForbidden:
		return "AccessDenied"
	case code >= 500:
		return "InternalError"
	default:
		return "InvalidRequest"
	}
}

// Clear forgets every hold, fault and count, and lets every held task go.
func (p *Plane) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holds, p.faults = nil, nil
	p.dest, p.cb = counter{}, counter{}
	p.tasks = map[string]*task{}
	p.broadcast()
}

// State is what the plane holds, for inspection.
type State struct {
	Holds             []Hold
	TaskFaults        []TaskFault
	DestinationFaults int
	DestinationCode   int
	CallbackFaults    int
	CallbackCode      int
	Held              map[string]engine.State // tasks waiting on a hold, and the state they are held in
}

// State returns a copy of what the plane holds.
func (p *Plane) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := State{DestinationFaults: p.dest.n, DestinationCode: p.dest.code, CallbackFaults: p.cb.n, CallbackCode: p.cb.code,
		Held: map[string]engine.State{}}
	for _, h := range p.holds {
		s.Holds = append(s.Holds, *h)
	}
	for _, f := range p.faults {
		s.TaskFaults = append(s.TaskFaults, *f)
	}
	for tok, t := range p.tasks {
		if t.held != 0 {
			s.Held[tok] = t.state
		}
	}
	return s
}

func join(states []engine.State) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}
