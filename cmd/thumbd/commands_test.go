package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/thumbd/thumbd/internal/app"
)

// testEnv is an environment with the given variables and captured output.
func testEnv(vars map[string]string) (environment, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return environment{
		getenv: func(k string) string { return vars[k] },
		stdin:  strings.NewReader(""),
		stdout: &stdout,
		stderr: &stderr,
	}, &stdout, &stderr
}

func TestProbeURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080/readyz"},
		{":9000", "http://127.0.0.1:9000/readyz"},
		{"[::]:8080", "http://[::1]:8080/readyz"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080/readyz"},
		{"10.1.2.3:81", "http://10.1.2.3:81/readyz"},
		{"thumbd.internal:8080", "http://thumbd.internal:8080/readyz"},
	}
	for _, tc := range tests {
		got, err := probeURL(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("probeURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := probeURL("8080"); err == nil {
		t.Error(`probeURL("8080"): no error for an address without a port separator`)
	}
}

func TestHealthcheck(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"status":"ready"}`))
	}))
	defer ready.Close()
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"unavailable","reason":"ffmpeg not found"}`))
	}))
	defer unready.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := closed.Listener.Addr().String()
	closed.Close()

	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		code       int
		wantStderr string
	}{
		{"ready via THUMBD_ADDR", map[string]string{"THUMBD_ADDR": ready.Listener.Addr().String()}, nil, 0, ""},
		{"ready via -addr", nil, []string{"-addr", ready.Listener.Addr().String()}, 0, ""},
		{"unready says why", map[string]string{"THUMBD_ADDR": unready.Listener.Addr().String()}, nil, 1, "ffmpeg not found"},
		{"nothing listening", map[string]string{"THUMBD_ADDR": closedAddr}, nil, 1, "refused"},
		{"-url", nil, []string{"-url", ready.URL + "/nope"}, 1, "404"},
		{"bad address", map[string]string{"THUMBD_ADDR": "nonsense"}, nil, 2, "THUMBD_ADDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, stdout, stderr := testEnv(tc.env)
			code, ok := subcommand(context.Background(), append([]string{"healthcheck"}, tc.args...), env)
			if !ok || code != tc.code {
				t.Fatalf("thumbd healthcheck = %d (handled %v), want %d; stderr %s", code, ok, tc.code, stderr)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not say %q", stderr, tc.wantStderr)
			}
			if tc.code == 0 && !strings.Contains(stdout.String(), "ready") {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

// TestHealthcheckRealServer probes a thumbd started in this process, the
// way the image's HEALTHCHECK does.
func TestHealthcheckRealServer(t *testing.T) {
	srv := runThumbd(t, testConfig(t, nil))
	env, stdout, stderr := testEnv(map[string]string{"THUMBD_ADDR": strings.TrimPrefix(srv.base, "http://")})
	if code, _ := subcommand(context.Background(), []string{"healthcheck"}, env); code != 0 {
		t.Fatalf("thumbd healthcheck = %d; stderr %s", code, stderr)
	}
	if !strings.Contains(stdout.String(), `"status":"ready"`) {
		t.Errorf("stdout %q", stdout)
	}
	// A thumbd whose ffmpeg is missing is up but not ready.
	broken := runThumbd(t, testConfig(t, func(c *app.Config) { c.FFmpeg = "/nonexistent/ffmpeg" }))
	env, _, stderr = testEnv(map[string]string{"THUMBD_ADDR": strings.TrimPrefix(broken.base, "http://")})
	if code, _ := subcommand(context.Background(), []string{"healthcheck"}, env); code != 1 {
		t.Fatalf("thumbd healthcheck of a thumbd without ffmpeg = %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "not found") {
		t.Errorf("stderr %q does not say what is wrong", stderr)
	}
}

func TestSubcommandDispatch(t *testing.T) {
	tests := []struct {
		args    []string
		handled bool
		code    int
	}{
		{nil, false, 0},
		{[]string{"-addr", ":0"}, false, 0}, // flags: the server
		{[]string{"help"}, true, 0},
		{[]string{"bogus"}, true, 2},
		{[]string{"version", "extra"}, true, 2},
	}
	for _, tc := range tests {
		env, _, _ := testEnv(nil)
		code, ok := subcommand(context.Background(), tc.args, env)
		if ok != tc.handled || code != tc.code {
			t.Errorf("subcommand(%q) = %d, %v; want %d, %v", tc.args, code, ok, tc.code, tc.handled)
		}
	}
	env, stdout, _ := testEnv(nil)
	subcommand(context.Background(), []string{"help"}, env)
	for _, c := range commands() {
		if !strings.Contains(stdout.String(), "thumbd "+c.name) {
			t.Errorf("help does not list %s:\n%s", c.name, stdout)
		}
	}
}

func TestVersionLine(t *testing.T) {
	info := func(version string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/thumbd/thumbd", Version: version}, Settings: settings}, true
		}
	}
	tests := []struct {
		name string
		read func() (*debug.BuildInfo, bool)
		want string
	}{
		{"tagged module", info("v1.4.0",
			debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			debug.BuildSetting{Key: "vcs.time", Value: "2025-01-02T03:04:05Z"},
			debug.BuildSetting{Key: "vcs.modified", Value: "false"}),
			"thumbd v1.4.0 (rev 0123456789ab, 2025-01-02T03:04:05Z) go1.26.0"},
		{"dirty checkout", info("(devel)",
			debug.BuildSetting{Key: "vcs.revision", Value: "abc"},
			debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			"thumbd (devel) (rev abc, modified) go1.26.0"},
		{"no VCS", info(""), "thumbd (devel) (no VCS revision recorded) go1.26.0"},
		{"no build info", func() (*debug.BuildInfo, bool) { return nil, false }, "thumbd (no build information)"},
	}
	for _, tc := range tests {
		if got := versionLine(tc.read); got != tc.want {
			t.Errorf("%s: versionLine = %q, want %q", tc.name, got, tc.want)
		}
	}
	env, stdout, _ := testEnv(nil)
	if code, _ := subcommand(context.Background(), []string{"version"}, env); code != 0 || !strings.HasPrefix(stdout.String(), "thumbd ") {
		t.Errorf("thumbd version = %d, %q", code, stdout)
	}
}
