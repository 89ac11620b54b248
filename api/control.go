package api

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/testcontrol"
)

// Control is thumbd's test-control plane, served under /_thumbd/ when set
// (THUMBD_TEST_API=1). None of it is Qencode's: it is what integration
// tests need from an emulator (moto and LocalStack have the like).
type Control struct {
	Plane *testcontrol.Plane
	// Reset forgets every task, token, stored file and callback record,
	// and every hold and fault.
	Reset func(ctx context.Context) error
	// Callbacks returns the callbacks sent, oldest first.
	Callbacks func() []callback.Delivery
}

// mountControl adds the /_thumbd/ routes.
func (s *Server) mountControl(r chi.Router) {
	c := s.cfg.Control
	method := func(p string, h handler) {
		r.Post(p, s.adapt(h))
		r.Get(p, s.adapt(h))
	}
	r.Post("/_thumbd/reset", s.adapt(func(r *http.Request, _ url.Values) (any, error) {
		if err := c.Reset(r.Context()); err != nil {
			return nil, err
		}
		return okReply{}, nil
	}))
	r.Post("/_thumbd/hold", s.adapt(s.controlHold))
	r.Post("/_thumbd/release", s.adapt(s.controlRelease))
	r.Post("/_thumbd/fail/task", s.adapt(s.controlFailTask))
	r.Post("/_thumbd/fail/destination", s.adapt(func(r *http.Request, form url.Values) (any, error) {
		n, code, err := timesAndCode(form, http.StatusServiceUnavailable)
		if err != nil {
			return nil, err
		}
		c.Plane.FailDestinations(n, code)
		return okReply{}, nil
	}))
	r.Post("/_thumbd/fail/callback", s.adapt(func(r *http.Request, form url.Values) (any, error) {
		n, code, err := timesAndCode(form, http.StatusInternalServerError)
		if err != nil {
			return nil, err
		}
		c.Plane.FailCallbacks(n, code)
		return okReply{}, nil
	}))
	method("/_thumbd/callbacks", s.controlCallbacks)
	method("/_thumbd/state", s.controlState)
}

type okReply struct {
	Error int `json:"error"`
}

type idReply struct {
	Error int `json:"error"`
	ID    int `json:"id"`
}

type releaseReply struct {
	Error    int `json:"error"`
	Released int `json:"released"`
}

func formInt(form url.Values, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(form.Get(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errorf(codeFieldRequired, "%s: must be a whole number from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

func formToken(form url.Values) (string, error) {
	t := strings.TrimSpace(form.Get("task_token"))
	if t != "" && !engine.ValidToken(t) {
		return "", engine.ErrBadToken
	}
	return t, nil
}

func timesAndCode(form url.Values, defCode int) (int, int, error) {
	n, err := formInt(form, "times", 1, 0, 1000000)
	if err != nil {
		return 0, 0, err
	}
	code, err := formInt(form, "code", defCode, 400, 599)
	if err != nil {
		return 0, 0, err
	}
	return n, code, nil
}

// controlHold: POST /_thumbd/hold state=S [task_token=T] [polls=N].
func (s *Server) controlHold(r *http.Request, form url.Values) (any, error) {
	tok, err := formToken(form)
	if err != nil {
		return nil, err
	}
	polls, err := formInt(form, "polls", 0, 0, 1000000)
	if err != nil {
		return nil, err
	}
	st := engine.State(strings.TrimSpace(form.Get("state")))
	id, err := s.cfg.Control.Plane.AddHold(testcontrol.Hold{Token: tok, State: st, Polls: polls})
	if err != nil {
		return nil, errorf(codeFieldRequired, "state: %v", err)
	}
	return idReply{ID: id}, nil
}

// controlRelease: POST /_thumbd/release [task_token=T] [state=S].
func (s *Server) controlRelease(r *http.Request, form url.Values) (any, error) {
	tok, err := formToken(form)
	if err != nil {
		return nil, err
	}
	st := engine.State(strings.TrimSpace(form.Get("state")))
	if st != "" && !slices.Contains(testcontrol.Holdable, st) {
		return nil, errorf(codeFieldRequired, "state: must be empty or a state a task can be held in")
	}
	return releaseReply{Released: s.cfg.Control.Plane.Release(tok, st)}, nil
}

// controlFailTask: POST /_thumbd/fail/task [message=M] [state=S] [task_token=T].
func (s *Server) controlFailTask(r *http.Request, form url.Values) (any, error) {
	tok, err := formToken(form)
	if err != nil {
		return nil, err
	}
	id, err := s.cfg.Control.Plane.AddTaskFault(testcontrol.TaskFault{Token: tok, Message: form.Get("message"),
		State: engine.State(strings.TrimSpace(form.Get("state")))})
	if err != nil {
		return nil, errorf(codeFieldRequired, "state: %v", err)
	}
	return idReply{ID: id}, nil
}

type callbacksReply struct {
	Error     int            `json:"error"`
	Callbacks []callbackJSON `json:"callbacks"`
}

type callbackJSON struct {
	ID        int               `json:"id"`
	TaskToken string            `json:"task_token"`
	Event     string            `json:"event"`
	URL       string            `json:"url"`
	Fields    map[string]string `json:"fields"`
	Code      int               `json:"code"`
	Delivered bool              `json:"delivered"`
	Done      bool              `json:"done"`
	Attempts  []attemptJSON     `json:"attempts"`
}

type attemptJSON struct {
	At       string  `json:"at"`
	Code     int     `json:"code"`
	Error    *string `json:"error"`
	Injected bool    `json:"injected"`
	TookMS   float64 `json:"took_ms"`
}

// controlCallbacks: GET /_thumbd/callbacks [task_token=T].
func (s *Server) controlCallbacks(r *http.Request, form url.Values) (any, error) {
	tok, err := formToken(form)
	if err != nil {
		return nil, err
	}
	out := callbacksReply{Callbacks: []callbackJSON{}}
	for _, d := range s.cfg.Control.Callbacks() {
		if tok != "" && d.TaskToken != tok {
			continue
		}
		j := callbackJSON{ID: d.ID, TaskToken: d.TaskToken, Event: string(d.Event), URL: d.URL, Fields: map[string]string{},
			Code: d.Code, Delivered: d.Delivered, Done: d.Done, Attempts: []attemptJSON{}}
		for k, v := range d.Fields {
			j.Fields[k] = strings.Join(v, ",")
		}
		for _, a := range d.Attempts {
			j.Attempts = append(j.Attempts, attemptJSON{At: a.At.UTC().Format(time.RFC3339Nano), Code: a.Code,
				Error: strPtr(a.Error), Injected: a.Injected, TookMS: float64(a.Took.Microseconds()) / 1000})
		}
		out.Callbacks = append(out.Callbacks, j)
	}
	return out, nil
}

type stateReply struct {
	Error        int               `json:"error"`
	Holds        []holdJSON        `json:"holds"`
	TaskFaults   []taskFaultJSON   `json:"task_faults"`
	Destinations faultCountJSON    `json:"destination_faults"`
	Callbacks    faultCountJSON    `json:"callback_faults"`
	Held         map[string]string `json:"held"`
}

type holdJSON struct {
	ID        int     `json:"id"`
	TaskToken *string `json:"task_token"`
	State     string  `json:"state"`
	Polls     int     `json:"polls"`
}

type taskFaultJSON struct {
	ID        int     `json:"id"`
	TaskToken *string `json:"task_token"`
	State     string  `json:"state"`
	Message   string  `json:"message"`
}

type faultCountJSON struct {
	Times int `json:"times"`
	Code  int `json:"code"`
}

// controlState: GET /_thumbd/state.
func (s *Server) controlState(r *http.Request, _ url.Values) (any, error) {
	st := s.cfg.Control.Plane.State()
	out := stateReply{Holds: []holdJSON{}, TaskFaults: []taskFaultJSON{}, Held: map[string]string{},
		Destinations: faultCountJSON{st.DestinationFaults, st.DestinationCode}, Callbacks: faultCountJSON{st.CallbackFaults, st.CallbackCode}}
	for _, h := range st.Holds {
		out.Holds = append(out.Holds, holdJSON{ID: h.ID, TaskToken: strPtr(h.Token), State: string(h.State), Polls: h.Polls})
	}
	for _, f := range st.TaskFaults {
		out.TaskFaults = append(out.TaskFaults, taskFaultJSON{ID: f.ID, TaskToken: strPtr(f.Token), State: string(f.State), Message: f.Message})
	}
	for tok, state := range st.Held {
		out.Held[tok] = string(state)
	}
	return out, nil
}
