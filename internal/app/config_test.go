package app

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
)

const pgURL = "postgres://thumbd:hunter2@db.internal:5432/thumbd?sslmode=require"

func TestLoadConfig(t *testing.T) {
	defaults := Config{
		Addr: "127.0.0.1:8080", DataDir: "./thumbd-data", Workers: runtime.NumCPU(), Accuracy: ffmpeg.AccuracyExact,
		S3HTTPHosts: []string{"localhost", "127.0.0.1", "::1"}, FFmpeg: "ffmpeg", FFprobe: "ffprobe",
		LogLevel: slog.LevelInfo, LogFormat: "text", ShutdownTimeout: 30 * time.Second, Metrics: true,
		MaxSourceSize: 20 << 30, MaxUnsizedSize: 1 << 30, MinSourceRate: 16 << 10, SourceRateWindow: time.Minute,
		S3RetryWindow: time.Minute, FailoverAfter: 15 * time.Second, MaxSourcePixels: 7680 * 4320, MaxOutputs: 100, MaxImages: 10000, ProbeCache: 256, SpreadOutputs: 8, SpreadImages: 50,
		Store: "sqlite", Retention: 24 * time.Hour, TaskTimeout: time.Hour, CallbackRetry: time.Minute,
		BodyTimeout: 30 * time.Second, MaxConns: 1024,
		Console: true,
	}
	with := func(f func(c *Config)) Config {
		c := defaults
		c.S3HTTPHosts = append([]string(nil), defaults.S3HTTPHosts...)
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: defaults},
		{
			name: "environment",
			env: map[string]string{
				"THUMBD_ADDR": "0.0.0.0:9000", "THUMBD_PUBLIC_URL": "https://thumbs.example.com/",
				"THUMBD_DATA_DIR": "/var/lib/thumbd", "THUMBD_API_KEYS": " key-one-123456, key-two-123456 ,",
				"THUMBD_WORKERS": "6", "THUMBD_S3_HTTP_HOSTS": "minio,[::1]", "THUMBD_LOG_LEVEL": "debug",
				"THUMBD_SHUTDOWN_TIMEOUT": "5s", "THUMBD_STORE": "memory", "THUMBD_RETENTION": "2h30m",
				"THUMBD_TASK_TIMEOUT": "0", "THUMBD_CALLBACK_RETRY": "10s", "THUMBD_TEST_API": "1", "THUMBD_ACCURACY": "Keyframe",
				"THUMBD_CONSOLE": "off",
			},
			want: with(func(c *Config) {
				c.Addr, c.PublicURL, c.DataDir = "0.0.0.0:9000", "https://thumbs.example.com", "/var/lib/thumbd"
				c.APIKeys = []string{"key-one-123456", "key-two-123456"}
				c.Workers, c.S3HTTPHosts, c.LogLevel, c.ShutdownTimeout = 6, []string{"minio", "::1"}, slog.LevelDebug, 5*time.Second
				c.Store, c.Retention, c.TaskTimeout, c.CallbackRetry, c.TestAPI = "memory", 150*time.Minute, 0, 10*time.Second, true
				c.Accuracy = ffmpeg.AccuracyKeyframe
				c.Console = false
			}),
		},
		{
			name: "flags override the environment",
			env:  map[string]string{"THUMBD_ADDR": "0.0.0.0:9000", "THUMBD_WORKERS": "6"},
			args: []string{"-addr", "127.0.0.1:0", "-workers=3", "-public-url", "http://localhost:8080"},
			want: with(func(c *Config) { c.Addr, c.Workers, c.PublicURL = "127.0.0.1:0", 3, "http://localhost:8080" }),
		},
		{
			name: "sources",
			env: map[string]string{
				"THUMBD_ALLOW_PRIVATE_NETWORKS": "1", "THUMBD_SOURCE_DIRS": "/srv/videos, /mnt/nas/in",
				"THUMBD_MAX_SOURCE_SIZE": "500MB", "THUMBD_TASK_TIMEOUT": "5m",
			},
			want: with(func(c *Config) {
				c.AllowPrivateNetworks, c.SourceDirs = true, []string{"/srv/videos", "/mnt/nas/in"}
				c.MaxSourceSize, c.TaskTimeout = 500_000_000, 5*time.Minute
			}),
		},
		{
			name: "source flags override the environment",
			env:  map[string]string{"THUMBD_ALLOW_PRIVATE_NETWORKS": "yes", "THUMBD_MAX_SOURCE_SIZE": "1GB"},
			args: []string{"-allow-private-networks=false", "-max-source-size", "1.5GiB", "-task-timeout", "0"},
			want: with(func(c *Config) { c.MaxSourceSize, c.TaskTimeout = 3<<29, 0 }),
		},
		{name: "size in bytes, no limit", args: []string{"-max-source-size", "0"}, want: with(func(c *Config) { c.MaxSourceSize = 0 })},
		{name: "size in KiB", args: []string{"-max-source-size", "512K"}, want: with(func(c *Config) { c.MaxSourceSize = 512 << 10 })},
		{name: "bad allow private", env: map[string]string{"THUMBD_ALLOW_PRIVATE_NETWORKS": "maybe"}, wantErr: "THUMBD_ALLOW_PRIVATE_NETWORKS"},
		{
			name: "allowed networks",
			env:  map[string]string{"THUMBD_ALLOWED_NETWORKS": "10.1.2.0/24, 192.168.1.5,fd00::/8"},
			want: with(func(c *Config) {
				c.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("192.168.1.5/32"), netip.MustParsePrefix("fd00::/8")}
			}),
		},
		{
			name: "slow clients",
			env:  map[string]string{"THUMBD_BODY_TIMEOUT": "5s", "THUMBD_MAX_CONNS": "64"},
			args: []string{"-max-conns", "0"},
			want: with(func(c *Config) { c.BodyTimeout, c.MaxConns = 5*time.Second, 0 }),
		},
		{name: "zero body timeout", env: map[string]string{"THUMBD_BODY_TIMEOUT": "0"}, wantErr: "THUMBD_BODY_TIMEOUT"},
		{name: "negative max conns", args: []string{"-max-conns=-1"}, wantErr: "-max-conns"},
		{name: "bad allowed network", args: []string{"-allowed-networks", "10.0.0.0/8,intranet"}, wantErr: `-allowed-networks / THUMBD_ALLOWED_NETWORKS: "intranet" is not a network`},
		{name: "bad size unit", env: map[string]string{"THUMBD_MAX_SOURCE_SIZE": "2 lots"}, wantErr: "THUMBD_MAX_SOURCE_SIZE"},
		{name: "negative size", args: []string{"-max-source-size", "-1"}, wantErr: "-max-source-size"},
		{name: "bad task timeout", env: map[string]string{"THUMBD_TASK_TIMEOUT": "forever"}, wantErr: "THUMBD_TASK_TIMEOUT"},
		{
			name: "resource limits",
			env: map[string]string{
				"THUMBD_MAX_UNSIZED_SOURCE_SIZE": "200MiB", "THUMBD_MIN_SOURCE_RATE": "64K",
				"THUMBD_SOURCE_RATE_WINDOW": "30s", "THUMBD_S3_RETRY_WINDOW": "5m",
			},
			args: []string{"-min-source-rate", "0"},
			want: with(func(c *Config) {
				c.MaxUnsizedSize, c.MinSourceRate, c.SourceRateWindow, c.S3RetryWindow = 200<<20, 0, 30*time.Second, 5*time.Minute
			}),
		},
		{
			name: "task limits",
			env:  map[string]string{"THUMBD_MAX_SOURCE_PIXELS": "3840x2160", "THUMBD_MAX_OUTPUTS": "10", "THUMBD_MAX_IMAGES": "0"},
			args: []string{"-max-outputs", "20"},
			want: with(func(c *Config) { c.MaxSourcePixels, c.MaxOutputs, c.MaxImages = 3840*2160, 20, 0 }),
		},
		{name: "pixels as a count", args: []string{"-max-source-pixels", "1000000"}, want: with(func(c *Config) { c.MaxSourcePixels = 1_000_000 })},
		{name: "bad pixels", env: map[string]string{"THUMBD_MAX_SOURCE_PIXELS": "8K"}, wantErr: "THUMBD_MAX_SOURCE_PIXELS"},
		{name: "negative outputs", args: []string{"-max-outputs", "-1"}, wantErr: "-max-outputs"},
		{name: "zero rate window", env: map[string]string{"THUMBD_SOURCE_RATE_WINDOW": "0s"}, wantErr: "THUMBD_SOURCE_RATE_WINDOW"},
		{
			name: "farm",
			env:  map[string]string{"THUMBD_FILES_URL": "s3://key:secret@s3:7070/thumbs/kept", "THUMBD_FAILOVER_AFTER": "30s"},
			want: with(func(c *Config) { c.FilesURL, c.FailoverAfter = "s3://key:secret@s3:7070/thumbs/kept", 30*time.Second }),
		},
		{
			name: "spreading off",
			env:  map[string]string{"THUMBD_SPREAD_OUTPUTS": "0"},
			want: with(func(c *Config) { c.SpreadOutputs = 0 }),
		},
		{name: "negative spread", args: []string{"-spread-outputs", "-1"}, wantErr: "-spread-outputs"},
		{name: "files URL not s3", env: map[string]string{"THUMBD_FILES_URL": "https://key:hunter2@s3/thumbs"}, wantErr: "THUMBD_FILES_URL"},
		{name: "files URL without a bucket", args: []string{"-files-url", "s3://s3:7070"}, wantErr: "-files-url"},
		{name: "zero failover", env: map[string]string{"THUMBD_FAILOVER_AFTER": "0s"}, wantErr: "THUMBD_FAILOVER_AFTER"},
		{name: "bad s3 retry window", args: []string{"-s3-retry-window", "a while"}, wantErr: "-s3-retry-window"},
		{
			name: "accuracy flag over the environment",
			env:  map[string]string{"THUMBD_ACCURACY": "keyframe"},
			args: []string{"-accuracy", "exact"},
			want: defaults,
		},
		{name: "probe cache off", env: map[string]string{"THUMBD_PROBE_CACHE": "0"}, want: with(func(c *Config) { c.ProbeCache = 0 })},
		{name: "bad probe cache", args: []string{"-probe-cache", "-1"}, wantErr: "-probe-cache"},
		{name: "bad accuracy", env: map[string]string{"THUMBD_ACCURACY": "nearest"}, wantErr: "THUMBD_ACCURACY"},
		{name: "bad workers", env: map[string]string{"THUMBD_WORKERS": "many"}, wantErr: "THUMBD_WORKERS"},
		{name: "zero workers", args: []string{"-workers", "0"}, wantErr: "-workers"},
		{name: "bad public url", env: map[string]string{"THUMBD_PUBLIC_URL": "thumbs.example.com"}, wantErr: "THUMBD_PUBLIC_URL"},
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: "-log-level"},
		{name: "bad shutdown timeout", env: map[string]string{"THUMBD_SHUTDOWN_TIMEOUT": "soon"}, wantErr: "THUMBD_SHUTDOWN_TIMEOUT"},
		{
			name: "test API and retention by flag",
			env:  map[string]string{"THUMBD_TEST_API": "1", "THUMBD_RETENTION": "1h"},
			args: []string{"-test-api=false", "-retention", "0"},
			want: with(func(c *Config) { c.TestAPI, c.Retention = false, 0 }),
		},
		{name: "bad store", env: map[string]string{"THUMBD_STORE": "mysql"}, wantErr: "THUMBD_STORE"},
		{
			name: "database URL makes postgres the default",
			env:  map[string]string{"THUMBD_DATABASE_URL": pgURL},
			want: with(func(c *Config) { c.Store, c.DatabaseURL = "postgres", pgURL }),
		},
		{
			name: "postgres by flag",
			args: []string{"-store", "postgres", "-database-url", "postgresql://db.internal/thumbd"},
			want: with(func(c *Config) { c.Store, c.DatabaseURL = "postgres", "postgresql://db.internal/thumbd" }),
		},
		{
			name: "store flag over a database URL in the environment",
			env:  map[string]string{"THUMBD_DATABASE_URL": pgURL},
			args: []string{"-store", "memory", "-database-url", ""},
			want: with(func(c *Config) { c.Store = "memory" }),
		},
		{name: "postgres without a URL", env: map[string]string{"THUMBD_STORE": "postgres"}, wantErr: "set -database-url / THUMBD_DATABASE_URL"},
		{name: "URL with another store", env: map[string]string{"THUMBD_STORE": "sqlite", "THUMBD_DATABASE_URL": pgURL}, wantErr: "-store / THUMBD_STORE is sqlite"},
		{name: "not a postgres URL", env: map[string]string{"THUMBD_DATABASE_URL": "mysql://u:hunter2@db/x"}, wantErr: "THUMBD_DATABASE_URL"},
		{name: "unparsable URL", env: map[string]string{"THUMBD_DATABASE_URL": "postgres://u:hunter2@db:port/x"}, wantErr: "THUMBD_DATABASE_URL"},
		{name: "bad retention", env: map[string]string{"THUMBD_RETENTION": "1 day"}, wantErr: "THUMBD_RETENTION"},
		{name: "negative task timeout", args: []string{"-task-timeout", "-1m"}, wantErr: "-task-timeout"},
		{name: "bad callback retry", env: map[string]string{"THUMBD_CALLBACK_RETRY": "often"}, wantErr: "THUMBD_CALLBACK_RETRY"},
		{name: "bad test api", env: map[string]string{"THUMBD_TEST_API": "yes please"}, wantErr: "THUMBD_TEST_API"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-port", "80"}, wantErr: "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := LoadConfig(tt.args, func(k string) string { return tt.env[k] }, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q holds a password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDatabaseNameHidesPassword(t *testing.T) {
	tests := []struct{ url, want string }{
		{pgURL, "db.internal:5432/thumbd"},
		{"postgres://db/x?sslmode=disable&password=hunter2", "db/x"},
		{"postgres://u:hunter2@db:port/x", "(unparsable URL)"},
	}
	for _, tt := range tests {
		if got := databaseName(tt.url); got != tt.want || strings.Contains(got, "hunter2") {
			t.Errorf("databaseName(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := LoadConfig([]string{"-h"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error = %v, want flag.ErrHelp", err)
	}
	for _, s := range settings() {
		if !strings.Contains(out.String(), "-"+s.flag) || !strings.Contains(out.String(), s.env) {
			t.Errorf("-h does not list -%s / %s", s.flag, s.env)
		}
	}
}

// TestPartOutputs checks that spreading is on by default with PostgreSQL
// only, and that THUMBD_SPREAD_OUTPUTS=0 turns it off.
func TestPartOutputs(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want int
	}{
		{"sqlite", nil, 0},
		{"memory", map[string]string{"THUMBD_STORE": "memory", "THUMBD_SPREAD_OUTPUTS": "4"}, 0},
		{"postgres", map[string]string{"THUMBD_DATABASE_URL": "postgres://u:p@db/thumbd"}, 8},
		{"postgres, off", map[string]string{"THUMBD_DATABASE_URL": "postgres://u:p@db/thumbd", "THUMBD_SPREAD_OUTPUTS": "0"}, 0},
		{"postgres, 3", map[string]string{"THUMBD_DATABASE_URL": "postgres://u:p@db/thumbd", "THUMBD_SPREAD_OUTPUTS": "3"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(nil, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := partOutputs(cfg); got != tt.want {
				t.Errorf("outputs per part %d, want %d", got, tt.want)
			}
		})
	}
}
