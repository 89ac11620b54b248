package app

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/storage"
)

// Config is thumbd's configuration: THUMBD_* environment variables,
// overridden by flags.
type Config struct {
	Addr            string
	PublicURL       string
	DataDir         string
	APIKeys         []string
	Workers         int
	Accuracy        ffmpeg.Accuracy
	ProbeCache      int // sources whose probe and index are kept; 0: none
	S3HTTPHosts     []string
	FFmpeg          string
	FFprobe         string
	LogLevel        slog.Level
	LogFormat       string // "text" (logfmt) or "json"
	ShutdownTimeout time.Duration
	Store           string        // "sqlite", "postgres" or "memory"
	DatabaseURL     string        // postgres:// URL of the shared database (Store "postgres")
	Retention       time.Duration // how long ended tasks and kept files stay; 0: for ever
	TaskTimeout     time.Duration // time limit of one task, reading its source included; 0: none
	CallbackRetry   time.Duration // how long a failing callback is retried
	TestAPI         bool          // serve the test-control plane under /_thumbd/
	BodyTimeout     time.Duration // how long an API request's body may take to arrive
	MaxConns        int           // client connections open at once; 0: no limit
	Console         bool          // serve the web console at /console/

	AllowPrivateNetworks bool           // sources, destinations and callbacks may reach loopback, private and link-local addresses
	AllowedNetworks      []netip.Prefix // private networks they may reach when AllowPrivateNetworks is off
	SourceDirs           []string       // directories file:// sources may come from; none: file:// is off
	MaxSourceSize        int64          // bytes; 0: no limit
	MaxUnsizedSize       int64          // bytes read at most from a source that does not say its size; 0: MaxSourceSize
	MinSourceRate        int64          // bytes a second an origin must send, over SourceRateWindow; 0: no minimum
	SourceRateWindow     time.Duration
	S3RetryWindow        time.Duration // how long a failing S3 request is retried
	MaxSourcePixels      int64         // pixels a frame of a source's video; 0: no limit
	MaxOutputs           int           // outputs a task; 0: no limit
	MaxImages            int           // images (and sprite tiles) a task; 0: no limit

	Metrics         bool          // serve Prometheus metrics at /metrics
	FilesURL        string        // s3:// bucket and prefix for kept files; empty: the data directory
	FailoverAfter   time.Duration // PostgreSQL: how long a dead instance's task waits before another runs it
	SpreadOutputs   int           // PostgreSQL: outputs per part of a task spread over the instances (default 8); 0: not spread
	SpreadImages    int           // PostgreSQL: images per chunk of a long series of a spread task (default 50); 0: a series is one part
	UploadManifests bool          // every output's manifest.json goes to its destinations too
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
			a, err := ffmpeg.ParseAccuracy(v)
			c.Accuracy = a
			return err
		}},
		{"probe-cache", "THUMBD_PROBE_CACHE", "256", "how many sources' probes and frame indexes are kept, so that a source read again unchanged (same URL and ETag/Last-Modified and size, same file and modification time, same upload content) is not probed again; 0: none", func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("must be a whole number, 0 or more, got %q", v)
			}
			c.ProbeCache = n
			return nil
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
		{"log-format", "THUMBD_LOG_FORMAT", "text", "text (logfmt) or json (one JSON object a line)", func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "text", "json":
				c.LogFormat = strings.ToLower(v)
				return nil
			}
			return fmt.Errorf("must be text or json, got %q", v)
		}},
		{"shutdown-timeout", "THUMBD_SHUTDOWN_TIMEOUT", "30s", "how long a shutdown waits for requests and running tasks to finish; tasks still running then are stopped and stay queued", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"store", "THUMBD_STORE", "", "where tasks, tokens and the queue live: sqlite (a database in the data directory, kept across restarts), postgres (the database at -database-url, shared by several thumbd processes) or memory (lost on exit); empty: postgres when -database-url is set, else sqlite", func(c *Config, v string) error {
			switch v {
			case "", "sqlite", "postgres", "memory":
				c.Store = v
				return nil
			}
			return fmt.Errorf("must be sqlite, postgres or memory, got %q", v)
		}},
		{"database-url", "THUMBD_DATABASE_URL", "", "PostgreSQL URL like postgres://user:password@host:5432/thumbd for -store postgres, which it makes the default", func(c *Config, v string) error {
			if v == "" {
				c.DatabaseURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				// Never the value: it may hold a password.
				return fmt.Errorf("must be a URL like postgres://user:password@host:5432/thumbd")
			}
			c.DatabaseURL = v
			return nil
		}},
		{"retention", "THUMBD_RETENTION", "24h", "how long a task is kept after it ends, with the files thumbd keeps for it; 0 keeps them for ever", duration(func(c *Config) *time.Duration { return &c.Retention })},
		{"task-timeout", "THUMBD_TASK_TIMEOUT", "1h", "time limit of one task, reading its source included, after which it ends in error; 0: none", duration(func(c *Config) *time.Duration { return &c.TaskTimeout })},
		{"callback-retry", "THUMBD_CALLBACK_RETRY", "1m", "how long a callback that fails is retried, with backoff, before the task gets a warning", duration(func(c *Config) *time.Duration { return &c.CallbackRetry })},
		{"test-api", "THUMBD_TEST_API", "0", "1 serves the test-control plane under /_thumbd/ (reset, holds, fault injection, callback inspector); never in production", func(c *Config, v string) error {
			b, err := parseBool(v)
			c.TestAPI = b
			return err
		}},
		{"body-timeout", "THUMBD_BODY_TIMEOUT", "30s", "how long an API request's body may take to arrive after its headers (uploads have their own per-read timeout)", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("must be a duration like 30s or 2m, got %q", v)
			}
			c.BodyTimeout = d
			return nil
		}},
		{"max-conns", "THUMBD_MAX_CONNS", "1024", "client connections open at once; more wait in the kernel's queue until one closes (0: no limit)", func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("must be a whole number, 0 for no limit, got %q", v)
			}
			c.MaxConns = n
			return nil
		}},
		{"console", "THUMBD_CONSOLE", "1", "serve the web console at /console/ (tasks, their images and VTT, a form to start one); 0 turns it off", func(c *Config, v string) error {
			b, err := parseBool(v)
			c.Console = b
			return err
		}},
		{"allow-private-networks", "THUMBD_ALLOW_PRIVATE_NETWORKS", "false", "let sources, S3 destinations and callbacks reach loopback, private and link-local addresses, this machine included (for a trusted network; never on a public service)", func(c *Config, v string) error {
			b, err := parseBool(v)
			c.AllowPrivateNetworks = b
			return err
		}},
		{"allowed-networks", "THUMBD_ALLOWED_NETWORKS", "", "comma-separated private networks (10.1.2.0/24) or addresses (10.1.2.3) that sources, S3 destinations and callbacks may reach although private networks are off", func(c *Config, v string) error {
			p, err := netguard.ParseNetworks(v)
			c.AllowedNetworks = p
			return err
		}},
		{"source-dirs", "THUMBD_SOURCE_DIRS", "", "comma-separated directories file:// sources may be read from; empty: file:// sources are refused", func(c *Config, v string) error {
			c.SourceDirs = list(v)
			return nil
		}},
		{"upload-manifests", "THUMBD_UPLOAD_MANIFESTS", "false", "also upload every output's manifest to its destinations, beside the images (thumbd keeps every manifest either way; an output's \"manifest\": 1 asks for it alone)", func(c *Config, v string) error {
			b, err := parseBool(v)
			c.UploadManifests = b
			return err
		}},
		{"max-source-size", "THUMBD_MAX_SOURCE_SIZE", "20GiB", "largest source or upload accepted, like 500MB or 20GiB; 0: no limit", func(c *Config, v string) error {
			n, err := parseSize(v)
			c.MaxSourceSize = n
			return err
		}},
		{"max-unsized-source-size", "THUMBD_MAX_UNSIZED_SOURCE_SIZE", "1GiB", "most read from a source that does not say its size (a live stream, a server that never stops sending); 0: the same as -max-source-size", func(c *Config, v string) error {
			n, err := parseSize(v)
			c.MaxUnsizedSize = n
			return err
		}},
		{"min-source-rate", "THUMBD_MIN_SOURCE_RATE", "16KiB", "slowest an origin may send, in bytes a second over -source-rate-window of waiting for it, like 16KiB; a slower source ends its task in error; 0: no minimum", func(c *Config, v string) error {
			n, err := parseSize(v)
			c.MinSourceRate = n
			return err
		}},
		{"source-rate-window", "THUMBD_SOURCE_RATE_WINDOW", "1m", "how long an origin is measured against -min-source-rate", func(c *Config, v string) error {
			return positive(v, &c.SourceRateWindow)
		}},
		{"max-source-pixels", "THUMBD_MAX_SOURCE_PIXELS", "7680x4320", "largest video frame a source may have, as WIDTHxHEIGHT (its area counts: 7680x4320 is 33177600 pixels, any shape) or a pixel count; a larger one is refused before it is decoded; 0: no limit", func(c *Config, v string) error {
			n, err := parsePixels(v)
			c.MaxSourcePixels = n
			return err
		}},
		{"max-outputs", "THUMBD_MAX_OUTPUTS", "100", "most outputs (format entries) one task may list; start_encode2 refuses more; 0: no limit", func(c *Config, v string) error {
			return count(v, &c.MaxOutputs)
		}},
		{"max-images", "THUMBD_MAX_IMAGES", "10000", "most images one task may make (thumbnails, and the tiles of sprites); a task asking for more ends in error once its source's length is known; 0: no limit", func(c *Config, v string) error {
			return count(v, &c.MaxImages)
		}},
		{"s3-retry-window", "THUMBD_S3_RETRY_WINDOW", "1m", "how long a failing S3 request (a destination upload, an s3:// source) is retried, with backoff, before its task ends in error", func(c *Config, v string) error {
			return positive(v, &c.S3RetryWindow)
		}},
		{"metrics", "THUMBD_METRICS", "true", "serve Prometheus metrics at /metrics", func(c *Config, v string) error {
			b, err := parseBool(v)
			c.Metrics = b
			return err
		}},
		{"files-url", "THUMBD_FILES_URL", "", "s3://[key:secret@]host[:port]/bucket[/prefix] where files without a destination are kept, for every instance to serve under /storage/ (credentials: the URL's, else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); empty: the data directory", func(c *Config, v string) error {
			if v == "" {
				c.FilesURL = ""
				return nil
			}
			if _, err := storage.ParseS3URL(v); err != nil {
				// Never the value: it may hold a secret.
				return fmt.Errorf("must be a URL like s3://host:9000/bucket/prefix: %v", err)
			}
			c.FilesURL = v
			return nil
		}},
		{"failover-after", "THUMBD_FAILOVER_AFTER", "15s", "with PostgreSQL, how long a task whose instance stopped renewing its lease (killed, cut off) waits before another instance runs it again; a running instance renews it every fifth of that", func(c *Config, v string) error {
			return positive(v, &c.FailoverAfter)
		}},
		{"spread-outputs", "THUMBD_SPREAD_OUTPUTS", "8", "with PostgreSQL, a task with more outputs than this is spread into parts of this many outputs, each a job that any instance runs, so that one large task runs on every instance at once; 0: a task runs on one instance", func(c *Config, v string) error {
			return count(v, &c.SpreadOutputs)
		}},
		{"spread-images", "THUMBD_SPREAD_IMAGES", "50", "with PostgreSQL and spreading on, a series (interval) of more images than this is cut into chunks of this many (whole sprite sheets), each a part that any instance makes; 0: a series is made in one part", func(c *Config, v string) error {
			return count(v, &c.SpreadImages)
		}},
	}
}

// parseBool reads true/false, 1/0, yes/no, on/off.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "", "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false, got %q", v)
}

// parseSize reads a byte count: a number with an optional unit, decimal
// (KB, MB, GB, TB) or binary (K, M, G, T, KiB, MiB, GiB, TiB).
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	units := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}
	mult, ok := units[strings.ToLower(unit)]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("must be a size like 500MB or 20GiB, got %q", v)
	}
	return int64(f * mult), nil
}

// parsePixels reads WIDTHxHEIGHT, or a pixel count.
func parsePixels(v string) (int64, error) {
	s := strings.TrimSpace(v)
	if w, h, ok := strings.Cut(strings.ToLower(s), "x"); ok {
		wi, err1 := strconv.ParseInt(strings.TrimSpace(w), 10, 32)
		hi, err2 := strconv.ParseInt(strings.TrimSpace(h), 10, 32)
		if err1 == nil && err2 == nil && wi > 0 && hi > 0 {
			return wi * hi, nil
		}
	} else if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	return 0, fmt.Errorf("must be a frame size like 7680x4320 or a pixel count, got %q", v)
}

// count reads a whole number, 0 or more, into n.
func count(v string, n *int) error {
	i, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || i < 0 {
		return fmt.Errorf("must be a whole number, 0 or more, got %q", v)
	}
	*n = i
	return nil
}

// positive reads a duration above zero into d.
func positive(v string, d *time.Duration) error {
	n, err := time.ParseDuration(v)
	if err != nil || n <= 0 {
		return fmt.Errorf("must be a duration above 0 like 30s or 2m, got %q", v)
	}
	*d = n
	return nil
}

// duration returns a setter for a non-negative duration field.
func duration(field func(c *Config) *time.Duration) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("must be a duration like 30s, 10m or 24h, got %q", v)
		}
		*field(c) = d
		return nil
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
		// The flag's own default stays empty, so that -h shows each
		// default once: in the usage text, as the variable's.
		values[s.flag] = fs.String(s.flag, "", fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "thumbd: a thumbnail engine that speaks the Qencode transcoding API.\n\nUsage: thumbd [flags]\n       thumbd help   (lists the other commands)\n\nEach flag overrides its environment variable.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings() {
		if given[s.flag] {
			continue
		}
		*values[s.flag] = s.def
		if e := getenv(s.env); e != "" {
			*values[s.flag] = e
		}
	}
	for _, s := range settings() {
		if err := s.set(&c, *values[s.flag]); err != nil {
			return c, fmt.Errorf("-%s / %s: %w", s.flag, s.env, err)
		}
	}
	switch {
	case c.Store == "" && c.DatabaseURL != "":
		c.Store = "postgres"
	case c.Store == "":
		c.Store = "sqlite"
	case c.Store == "postgres" && c.DatabaseURL == "":
		return c, fmt.Errorf("-store / THUMBD_STORE is postgres: set -database-url / THUMBD_DATABASE_URL to the database's postgres:// URL")
	case c.Store != "postgres" && c.DatabaseURL != "":
		return c, fmt.Errorf("-database-url / THUMBD_DATABASE_URL is set but -store / THUMBD_STORE is %s: unset one, or choose postgres", c.Store)
	}
	return c, nil
}

// databaseName names the database of a postgres:// URL by host and path,
// never its user or password: for logs.
func databaseName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Host + u.Path
}
