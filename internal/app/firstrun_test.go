package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPortTakenFailsFirst checks that thumbd binds its port before it
// touches anything else, and that the error names the setting to change.
func TestPortTakenFailsFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg, err := LoadConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = taken.Addr().String()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Run(ctx, cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		t.Fatal("Run on a port in use returned nil")
	}
	for _, want := range []string{cfg.Addr, "address already in use", "THUMBD_ADDR", "-addr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, serr := os.Stat(cfg.DataDir); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the data directory was made before the port was bound (stat: %v)", serr)
	}
}

// TestHelpShowsEachDefaultOnce checks -h: one default per flag, the
// setting's own, even when the environment sets another value.
func TestHelpShowsEachDefaultOnce(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"THUMBD_ACCURACY": "keyframe"}
	_, err := LoadConfig([]string{"-h"}, func(k string) string { return env[k] }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error = %v, want flag.ErrHelp", err)
	}
	help := out.String()
	if n := strings.Count(help, `default "exact"`); n != 1 {
		t.Errorf(`-h says default "exact" %d times, want once:\n%s`, n, help)
	}
	if strings.Contains(help, `default "keyframe"`) {
		t.Errorf("-h shows the environment's value as the default:\n%s", help)
	}
	if n, want := strings.Count(help, "default \""), len(settings()); n != want {
		t.Errorf("-h shows %d defaults for %d settings:\n%s", n, want, help)
	}
}

// TestFlagOverridesEnvWithEmpty checks that a flag given an empty value
// still overrides its environment variable.
func TestFlagOverridesEnvWithEmpty(t *testing.T) {
	env := map[string]string{"THUMBD_API_KEYS": "key-one-123456"}
	cfg, err := LoadConfig([]string{"-api-keys="}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.APIKeys) != 0 {
		t.Errorf("APIKeys = %q, want none", cfg.APIKeys)
	}
}

func TestLogFormat(t *testing.T) {
	for _, tt := range []struct {
		env  string
		json bool
	}{{"", false}, {"text", false}, {"json", true}, {"JSON", true}} {
		cfg, err := LoadConfig(nil, func(k string) string {
			if k == "THUMBD_LOG_FORMAT" {
				return tt.env
			}
			return ""
		}, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tt.env, err)
		}
		var buf bytes.Buffer
		NewLogger(cfg, &buf).Info("thumbd listening", "addr", "127.0.0.1:8080")
		var rec map[string]any
		jerr := json.Unmarshal(buf.Bytes(), &rec)
		if tt.json && (jerr != nil || rec["msg"] != "thumbd listening" || rec["addr"] != "127.0.0.1:8080") {
			t.Errorf("%q: not a JSON log line: %q (%v)", tt.env, buf.String(), jerr)
		}
		if !tt.json && (jerr == nil || !strings.Contains(buf.String(), `msg="thumbd listening" addr=127.0.0.1:8080`)) {
			t.Errorf("%q: not a text log line: %q", tt.env, buf.String())
		}
	}
	if _, err := LoadConfig([]string{"-log-format", "xml"}, func(string) string { return "" }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "THUMBD_LOG_FORMAT") {
		t.Errorf("-log-format xml: error %v, want one naming THUMBD_LOG_FORMAT", err)
	}
}
