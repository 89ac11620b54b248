package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/engine"
)

// Config is thumbd's configuration: THUMBD_* environment variables,
// overridden by flags.
type Config struct {
	Addr            string
	PublicURL       string
	DataDir         string
	APIKeys         []string
	Workers         int
	Accuracy        engine.Accuracy
	S3HTTPHosts     []string
	FFmpeg          string
	FFprobe         string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
}

// setting is one configuration knob: its flag, its environment variable,
// its default and where it goes.
type setting struct {
	flag, env, def, usage string
	set                   func(c *Config, v string) error
}

func settings() []setting {
	list := func(v string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return []setting{
		{"addr", "THUMBD_ADDR", "127.0.0.1:8080", "address to listen on", func(c *Config, v string) error { c.Addr = v; return nil }},
		{"public-url", "THUMBD_PUBLIC_URL", "", "base URL clients reach thumbd at (status_url, upload_url, stored files); empty: taken from each request's Host", func(c *Config, v string) error {
			if v == "" {
				c.PublicURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("must be an http(s) URL like https://thumbs.example.com, got %q", v)
			}
			c.PublicURL = strings.TrimRight(v, "/")
			return nil
		}},
		{"data-dir", "THUMBD_DATA_DIR", "./thumbd-data", "directory for kept files and work in progress", func(c *Config, v string) error {
			if v == "" {
				return fmt.Errorf("must not be empty")
			}
			c.DataDir = v
			return nil
		}},
		{"api-keys", "THUMBD_API_KEYS", "", "comma-separated API keys accepted by /v1/access_token; empty: any key of 12+ characters", func(c *Config, v string) error { c.APIKeys = list(v); return nil }},
		{"workers", "THUMBD_WORKERS", strconv.Itoa(runtime.NumCPU()), "ffmpeg processes (and tasks) run at once", func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 256 {
				return fmt.Errorf("must be a whole number from 1 to 256, got %q", v)
			}
			c.Workers = n
			return nil
		}},
		{"accuracy", "THUMBD_ACCURACY", "exact", "which frame a requested time gets, unless an output says: exact (the first frame at or after it) or keyframe (the nearest keyframe, fastest)", func(c *Config, v string) error {
			a, err := engine.ParseAccuracy(v)
			c.Accuracy = a
			return err
		}},
		{"s3-http-hosts", "THUMBD_S3_HTTP_HOSTS", "localhost,127.0.0.1,::1", "comma-separated S3 hosts spoken to over plain http; all others use https", func(c *Config, v string) error {
			c.S3HTTPHosts = list(v)
			for i, h := range c.S3HTTPHosts {
				c.S3HTTPHosts[i] = strings.Trim(h, "[]")
			}
			return nil
		}},
		{"ffmpeg", "THUMBD_FFMPEG", "ffmpeg", "ffmpeg binary", func(c *Config, v string) error { c.FFmpeg = v; return nil }},
		{"ffprobe", "THUMBD_FFPROBE", "ffprobe", "ffprobe binary", func(c *Config, v string) error { c.FFprobe = v; return nil }},
		{"log-level", "THUMBD_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
		{"shutdown-timeout", "THUMBD_SHUTDOWN_TIMEOUT", "30s", "how long a shutdown waits for requests to finish", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("must be a duration like 30s, got %q", v)
			}
			c.ShutdownTimeout = d
			return nil
		}},
	}
}

// LoadConfig reads the configuration from the environment (through getenv)
// and then from args, which override it. -h prints every setting to out.
func LoadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("thumbd", flag.ContinueOnError)
	fs.SetOutput(out)
	values := map[string]*string{}
	for _, s := range settings() {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		values[s.flag] = fs.String(s.flag, v, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "thumbd: a thumbnail engine that speaks the Qencode transcoding API.\n\nUsage: thumbd [flags]\n\nEach flag overrides its environment variable.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, s := range settings() {
		if err := s.set(&c, *values[s.flag]); err != nil {
			return c, fmt.Errorf("-%s / %s: %w", s.flag, s.env, err)
		}
	}
	return c, nil
}
