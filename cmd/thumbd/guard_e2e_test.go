package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/s3test"
)

// publicOrigin serves ../../testdata on 127.0.0.2, which the tests below
// allow (THUMBD_ALLOWED_NETWORKS) as if it were a host on the Internet,
// while the rest of loopback stays refused.
func publicOrigin(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	if h == nil {
		h = http.FileServer(http.Dir("../../testdata"))
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// guarded is the binary's default network policy, with only 127.0.0.2
// allowed.
func guarded(c *app.Config) {
	c.AllowPrivateNetworks = false
	c.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
}

// syncBuffer is a log that tests read while thumbd writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDestinationOnPrivateNetworkRefused runs tasks whose S3 destination
// is a real S3 server on loopback, with private networks off: each task
// ends in error naming the destination without its secret, and nothing is
// stored.
func TestDestinationOnPrivateNetworkRefused(t *testing.T) {
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "thumbs")
	var logs syncBuffer
	th := runThumbdLog(t, testConfig(t, guarded), &logs)
	src := publicOrigin(t, nil) + "/clip.mp4"
	port := strconv.Itoa(s3.Port)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			dst := "s3://" + host + ":" + port + "/thumbs/" + host + ".png"
			query := map[string]any{
				"source": src,
				"format": []any{map[string]any{"output": "thumbnail", "time": 0.5, "width": 64,
					"destination": map[string]any{"url": dst, "key": s3.AccessKey, "secret": s3.Secret}}},
			}
			token := startTask(t, th.base, query, "")
			st := waitStatus(t, th.base, token, time.Minute, "error", "completed")
			if st.Status != "error" || st.ErrorDescription == nil {
				t.Fatalf("task %s, want error", st.Status)
			}
			desc := *st.ErrorDescription
			want := "the destination's host " + host + " is a loopback address"
			if !strings.Contains(desc, want) || !strings.Contains(desc, dst) {
				t.Fatalf("error_description %q, want it to name %s and say %q", desc, dst, want)
			}
			if strings.Contains(desc, s3.Secret) || strings.Contains(desc, s3.AccessKey) {
				t.Fatalf("error_description %q shows the credentials", desc)
			}
		})
	}
	if keys := s3.ListKeys(t, "thumbs", ""); len(keys) != 0 {
		t.Fatalf("the S3 server holds %q", keys)
	}
	log := logs.String()
	if !strings.Contains(log, "THUMBD_ALLOWED_NETWORKS") || !strings.Contains(log, "127.0.0.2/32") {
		t.Errorf("the startup log does not say which private networks are allowed:\n%s", log)
	}
	if strings.Contains(log, s3.Secret) {
		t.Errorf("the log shows the S3 secret")
	}
}

// TestPrivateNetworksOnSaySo: a thumbd that may reach private networks
// says so in a warning when it starts.
func TestPrivateNetworksOnSaySo(t *testing.T) {
	var logs syncBuffer
	runThumbdLog(t, testConfig(t, nil), &logs)
	if log := logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "THUMBD_ALLOW_PRIVATE_NETWORKS is on") {
		t.Fatalf("no warning about private networks in the startup log:\n%s", log)
	}
}

// TestCallbackToPrivateNetworkRefused runs a task whose callback_url is a
// receiver on loopback, with credentials and a token in the URL, under the
// binary's default network policy: the receiver gets nothing, the task
// completes with a warning per callback that says why, and neither the
// warnings, the callback inspector nor the log show the credentials.
func TestCallbackToPrivateNetworkRefused(t *testing.T) {
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
	}))
	defer rcv.Close()
	var logs syncBuffer
	th := runThumbdLog(t, testConfig(t, func(c *app.Config) { guarded(c); c.TestAPI = true }), &logs)
	hook := strings.Replace(rcv.URL, "http://", "http://u:PASS@", 1) + "/hook?auth=TOKEN"
	shown := rcv.URL + "/hook?…"
	token := startTask(t, th.base, thumbQuery(publicOrigin(t, nil)+"/clip.mp4", map[string]any{"callback_url": hook}), "")
	st := waitStatus(t, th.base, token, time.Minute, "completed", "error")
	if st.Status != "completed" {
		t.Fatalf("task %s, want completed: a callback never holds a task back", st.Status)
	}
	var warnings []struct{ Message, Details string }
	deadline := time.Now().Add(20 * time.Second)
	for len(warnings) < 2 && time.Now().Before(deadline) {
		_, raw := status(t, th.base, token)
		var s struct {
			Warnings []struct{ Message, Details string } `json:"warnings"`
		}
		json.Unmarshal(raw, &s)
		warnings = s.Warnings
		time.Sleep(100 * time.Millisecond)
	}
	if len(warnings) != 2 {
		t.Fatalf("warnings %+v, want one per callback (queued, saved)", warnings)
	}
	for _, w := range warnings {
		want := "Error sending callback to " + shown + ": the callback's host 127.0.0.1 is a loopback address"
		if w.Message != "Callback delivery error" || !strings.HasPrefix(w.Details, want) {
			t.Errorf("warning %+v, want details starting %q", w, want)
		}
	}
	var cbs callbacksReply
	post(t, th.base, "/_thumbd/callbacks", url.Values{"task_token": {token}}, &cbs)
	if len(cbs.Callbacks) != 2 {
		t.Fatalf("the inspector lists %d callbacks, want 2", len(cbs.Callbacks))
	}
	for _, c := range cbs.Callbacks {
		if c.URL != shown || c.Delivered || len(c.Attempts) != 1 {
			t.Errorf("inspector: %+v, want the URL %s, undelivered after one attempt", c, shown)
		}
	}
	if n := got.Load(); n != 0 {
		t.Fatalf("the receiver on loopback got %d requests", n)
	}
	for _, secret := range []string{"PASS", "TOKEN"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows %s", secret)
		}
	}
}
