// Package s3store uploads files to, and reads them from, any S3-compatible
// server with aws-sdk-go-v2: path-style requests, https unless the host is
// listed as plain http, retries with backoff, and errors that name the
// destination but never its secret. Retries are the SDK's own standard
// retryer, spread over a bounded window.
package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/storage"
)

// Region is the signing region S3 requests use. Third-party S3 servers
// accept it, and thumbd's destinations name no region.
const Region = "us-east-1"

const (
	defaultWindow    = time.Minute
	defaultBackoff   = 200 * time.Millisecond
	maxBackoff       = 10 * time.Second
	defaultPresign   = 15 * time.Minute
	maxPresign       = 7 * 24 * time.Hour // SigV4's limit
	maxCachedClients = 256
)

// Options configures an S3.
type Options struct {
	// HTTPHosts lists the hosts (names or addresses, no port) spoken to over
	// plain http; every other host is spoken to over https.
	HTTPHosts []string
	// RetryWindow is how long a request that keeps failing is tried again,
	// counted from its first failure: an outage shorter than it costs time,
	// not the upload. 0 means one minute.
	RetryWindow time.Duration
	// Retries, when positive, also caps how many times a failed request is
	// tried again; 0 means as many times as fit in RetryWindow, a negative
	// number means never.
	Retries int
	// Backoff is the longest wait before the first retry, 200ms when 0; it
	// doubles with each retry, up to 10s (or a quarter of RetryWindow when
	// that is less), with full jitter.
	Backoff time.Duration
	// Logger receives a line for each retry; nil means slog.Default().
	Logger *slog.Logger
	// Guard decides which addresses S3 servers may be at; nil refuses every
	// address that is not public (netguard.Default). A URL's host is
	// checked before any request, and every connection the default HTTP
	// client makes is checked when it is dialed, redirects included.
	Guard *netguard.Guard
	// HTTPClient, when set, makes every request instead of the SDK's
	// default client with Guard's dialer; its transport should dial with
	// Guard.DialContext.
	HTTPClient *http.Client
}

// S3 talks to S3-compatible servers: it uploads files, reads them back and
// presigns GET URLs. One S3 is safe for concurrent use; it keeps one SDK
// client per endpoint and credentials.
type Store struct {
	opts     Options
	retries  int // most retries; 0: as many as fit in window
	window   time.Duration
	standard *retry.Standard
	log      *slog.Logger
	guard    *netguard.Guard
	http     s3.HTTPClient

	mu      sync.Mutex
	clients map[string]*s3.Client
}

// NewS3 returns an S3 configured by opts.
func New(opts Options) *Store {
	s := &Store{opts: opts, retries: opts.Retries, window: opts.RetryWindow, log: opts.Logger, clients: map[string]*s3.Client{}}
	if s.window <= 0 {
		s.window = defaultWindow
	}
	backoff := opts.Backoff
	if backoff <= 0 {
		backoff = defaultBackoff
	}
	ceiling := max(min(maxBackoff, s.window/4), backoff)
	attempts := maxAttempts
	switch {
	case s.retries > 0:
		attempts = s.retries + 1
	case s.retries < 0:
		attempts = 1
	}
	s.standard = retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.BaseDelay = backoff
		o.MaxBackoff = ceiling
		// The window bounds the retries; a token bucket shared by every
		// upload would instead fail them all early in a long outage.
		o.RateLimiter = ratelimit.None
		o.Retryables = append([]retry.IsErrorRetryable{refused{}}, append(o.Retryables, retryableStatus{})...)
	})
	if s.log == nil {
		s.log = slog.Default()
	}
	s.guard = opts.Guard
	if s.guard == nil {
		s.guard = netguard.Default()
	}
	if opts.HTTPClient != nil {
		s.http = opts.HTTPClient
	} else {
		s.http = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.Proxy = nil // a proxy would dial for us, past the guard
			t.DialContext = s.guard.DialContext
		})
	}
	return s
}

// target is a parsed object URL with the credentials to reach it.
type target struct {
	url     storage.S3URL
	shown   string // the URL as given, less any userinfo: safe to show
	scheme  string
	key     string
	secret  string
	dflt    bool // use the default AWS credential chain
	attempt int
}

// target parses rawURL and picks the credentials: key and secret when given,
// else the URL's userinfo, else the default AWS credential chain.
func (s *Store) target(op, rawURL, key, secret string) (*target, error) {
	u, err := storage.ParseS3URL(rawURL)
	if err != nil {
		return nil, &Error{Op: op, URL: storage.StripUserinfo(rawURL), err: err, Message: strings.TrimPrefix(err.Error(), "storage: ")}
	}
	t := &target{url: u, shown: storage.StripUserinfo(rawURL), key: key, secret: secret, scheme: "https"}
	if slices.ContainsFunc(s.opts.HTTPHosts, func(h string) bool { return strings.EqualFold(h, u.Host) }) {
		t.scheme = "http"
	}
	if t.key == "" && t.secret == "" {
		t.key, t.secret = u.AccessKey, u.SecretKey
	}
	if err := s.guard.CheckHost(u.Host); err != nil {
		return nil, t.fail(op, err)
	}
	switch {
	case t.key == "" && t.secret == "":
		t.dflt = true
	case t.key == "":
		return nil, t.fail(op, errors.New("a secret was given without an access key id"))
	case t.secret == "":
		return nil, t.fail(op, fmt.Errorf("access key id %s was given without a secret", storage.KeyHint(t.key)))
	}
	return t, nil
}

func (t *target) endpoint() string { return t.scheme + "://" + t.url.HostPort() }

// Put uploads body, size bytes long (-1: unknown), to dst.URL with
// contentType, and the canned ACL, storage class and Cache-Control that dst
// names. It retries a failed upload with exponential backoff, seeking body
// back to its start each time, except when ctx ends or the server's answer
// cannot change (4xx such as AccessDenied or NoSuchBucket). A body larger
// than a single request may carry (5 GiB) is sent in parts. The error, an
// *Error, names the destination without credentials.
func (s *Store) Put(ctx context.Context, dst storage.Destination, body io.ReadSeeker, size int64, contentType string) (storage.Location, error) {
	t, err := s.target("put", dst.URL, dst.Key, dst.Secret)
	if err != nil {
		return storage.Location{}, err
	}
	loc := storage.Location{
		URL:    t.shown,
		Type:   "custom_s3",
		Scheme: t.scheme,
		Host:   t.url.Host,
		Port:   t.url.Port,
		Bucket: t.url.Bucket,
		Key:    t.url.Key,
	}
	if t.url.Key == "" {
		return storage.Location{}, t.fail("put", errors.New("the URL names no object key"))
	}
	client, err := s.client(ctx, t)
	if err != nil {
		return storage.Location{}, t.fail("put", err)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(t.url.Bucket),
		Key:    aws.String(t.url.Key),
		Body:   body,
	}
	if size >= 0 {
		in.ContentLength = aws.Int64(size)
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	if dst.Permissions != "" {
		in.ACL = types.ObjectCannedACL(dst.Permissions)
	}
	if dst.StorageClass != "" {
		in.StorageClass = types.StorageClass(dst.StorageClass)
	}
	if dst.CacheControl != "" {
		in.CacheControl = aws.String(dst.CacheControl)
	}
	if size > maxSinglePut {
		if err := s.putParts(ctx, t, client, in, body, size); err != nil {
			return storage.Location{}, err
		}
		s.log.DebugContext(ctx, "s3 put in parts", "url", t.shown, "size", size)
		return loc, nil
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return storage.Location{}, t.fail("put", fmt.Errorf("rewind the file: %w", err))
	}
	err = s.do(ctx, t, "put", func(retryer func(*s3.Options)) error {
		_, err := client.PutObject(ctx, in, retryer) // the SDK rewinds body for each retry
		return err
	})
	if err != nil {
		return storage.Location{}, err
	}
	s.log.DebugContext(ctx, "s3 put", "url", t.shown, "size", size, "attempts", t.attempt)
	return loc, nil
}

// Get opens the object at rawURL (s3://host[:port]/bucket/key) for reading
// and returns it with its length (-1 when the server did not say). key and
// secret are the credentials; when both are empty, the URL's userinfo or else
// the default AWS credential chain is used. Opening is retried as Put is; the
// caller closes the body.
func (s *Store) Get(ctx context.Context, rawURL, key, secret string) (io.ReadCloser, int64, error) {
	t, err := s.target("get", rawURL, key, secret)
	if err != nil {
		return nil, 0, err
	}
	client, err := s.client(ctx, t)
	if err != nil {
		return nil, 0, t.fail("get", err)
	}
	var out *s3.GetObjectOutput
	err = s.do(ctx, t, "get", func(retryer func(*s3.Options)) (err error) {
		out, err = client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.url.Bucket), Key: aws.String(t.url.Key)}, retryer)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// ObjectInfo is what Stat tells about an object.
type ObjectInfo struct {
	Size         int64
	ContentType  string
	CacheControl string
	ETag         string
	LastModified time.Time
}

// Stat returns what the server says about the object at rawURL, with the
// credentials chosen as Get does.
func (s *Store) Stat(ctx context.Context, rawURL, key, secret string) (ObjectInfo, error) {
	t, err := s.target("stat", rawURL, key, secret)
	if err != nil {
		return ObjectInfo{}, err
	}
	client, err := s.client(ctx, t)
	if err != nil {
		return ObjectInfo{}, t.fail("stat", err)
	}
	var out *s3.HeadObjectOutput
	err = s.do(ctx, t, "stat", func(retryer func(*s3.Options)) (err error) {
		out, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(t.url.Bucket), Key: aws.String(t.url.Key)}, retryer)
		return err
	})
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{
		Size:         aws.ToInt64(out.ContentLength),
		ContentType:  aws.ToString(out.ContentType),
		CacheControl: aws.ToString(out.CacheControl),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// Presign returns a URL through which anyone may GET the object at rawURL
// for ttl (15 minutes when 0, at most 7 days), signed with the credentials
// chosen as Get does. It is how s3:// sources are handed to ffmpeg. The URL
// holds the access key id, so treat it as a secret.
func (s *Store) Presign(ctx context.Context, rawURL, key, secret string, ttl time.Duration) (string, error) {
	t, err := s.target("presign", rawURL, key, secret)
	if err != nil {
		return "", err
	}
	if t.url.Key == "" || strings.HasSuffix(t.url.Key, "/") {
		return "", t.fail("presign", errors.New("the URL names a folder, not an object"))
	}
	switch {
	case ttl <= 0:
		ttl = defaultPresign
	case ttl > maxPresign:
		ttl = maxPresign
	}
	client, err := s.client(ctx, t)
	if err != nil {
		return "", t.fail("presign", err)
	}
	req, err := s3.NewPresignClient(client).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: aws.String(t.url.Bucket), Key: aws.String(t.url.Key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", t.fail("presign", err)
	}
	return req.URL, nil
}

// client returns the cached SDK client for t's endpoint and credentials,
// making it if need be. With the default credential chain it first checks
// that the chain yields credentials, so that a machine without any fails at
// once instead of after every retry.
func (s *Store) client(ctx context.Context, t *target) (*s3.Client, error) {
	sum := sha256.Sum256([]byte(t.secret))
	id := t.endpoint() + "\x00" + t.key + "\x00" + hex.EncodeToString(sum[:8])
	if t.dflt {
		id = t.endpoint() + "\x00default chain"
	}
	s.mu.Lock()
	c := s.clients[id]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}

	var creds aws.CredentialsProvider
	if t.dflt {
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(Region))
		if err != nil {
			return nil, &chainError{err}
		}
		if cfg.Credentials == nil {
			return nil, &chainError{errors.New("it has none")}
		}
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			return nil, &chainError{err}
		}
		creds = cfg.Credentials
	} else {
		creds = credentials.NewStaticCredentialsProvider(t.key, t.secret, "")
	}
	c = s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String(t.endpoint()),
		UsePathStyle:               true,
		Credentials:                creds,
		Retryer:                    aws.NopRetryer{}, // each call brings its own, from S3.do
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 s.http,
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.clients[id]; old != nil {
		return old, nil
	}
	if len(s.clients) >= maxCachedClients {
		clear(s.clients) // crude, but bounds memory for servers with many users
	}
	s.clients[id] = c
	return c, nil
}

// do runs call, which passes retryer to its SDK operation: the standard
// retryer, bounded by the window and counting t.attempt. It returns call's
// error as an *Error.
func (s *Store) do(ctx context.Context, t *target, op string, call func(retryer func(*s3.Options)) error) error {
	w := &windowed{Standard: s.standard, window: s.window, log: s.log, t: t, op: op}
	err := call(func(o *s3.Options) { o.Retryer = w })
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && w.last != nil {
		// Canceled while waiting to retry: the SDK's error says only that.
		e := t.fail(op, w.last)
		e.gaveUp = context.Cause(ctx)
		e.err = errors.Join(e.gaveUp, w.last)
		return e
	}
	e := t.fail(op, err)
	if w.ended {
		e.gaveUp = fmt.Errorf("still failing %v after the first failure", s.window)
	}
	return e
}

// maxAttempts is the retryer's bound when only the window bounds it.
const maxAttempts = 1000

// windowed is the SDK's standard retryer for one call: it counts the
// attempts into t, logs each retry, and ends the retries once the window
// that began with the first failure is over. Its last wait is cut short to
// end with the window, so that one attempt is made at its end.
type windowed struct {
	*retry.Standard
	window time.Duration
	log    *slog.Logger
	t      *target
	op     string

	first time.Time // of the first failure
	last  error     // of the last failure
	ended bool      // the window ended the retries
}

// GetAttemptToken counts the attempts.
func (w *windowed) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	w.t.attempt++
	return w.Standard.GetAttemptToken(ctx)
}

// RetryDelay is the standard retryer's backoff, within the window.
func (w *windowed) RetryDelay(attempt int, err error) (time.Duration, error) {
	now := time.Now()
	if w.first.IsZero() {
		w.first = now
	}
	w.last = err
	d, derr := w.Standard.RetryDelay(attempt, err)
	if derr != nil {
		return 0, derr
	}
	left := w.window - now.Sub(w.first)
	if left <= 0 {
		w.ended = true
		return 0, &windowError{err}
	}
	d = min(d, left)
	w.log.Warn("s3 request failed; retrying",
		"op", w.op, "url", w.t.shown, "key_id", storage.KeyHint(w.t.key),
		"attempt", attempt, "retry_in", d, "err", w.t.fail(w.op, err).Error())
	return d, nil
}

// windowError ends the retries of a call whose window is over; it wraps the
// last failure.
type windowError struct{ err error }

func (w *windowError) Error() string { return w.err.Error() }
func (w *windowError) Unwrap() error { return w.err }

// retryableStatus retries what the standard retryer does not by default:
// every 5xx, 408 Request Timeout and 429 Too Many Requests.
type retryableStatus struct{}

func (retryableStatus) IsErrorRetryable(err error) aws.Ternary {
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		switch code := status.HTTPStatusCode(); {
		case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
			return aws.TrueTernary
		}
	}
	return aws.UnknownTernary
}

// refused never retries a connection the network guard refused: the
// answer cannot change.
type refused struct{}

func (refused) IsErrorRetryable(err error) aws.Ternary {
	if _, ok := netguard.AsBlocked(err); ok {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
}

// chainError says the default AWS credential chain yielded no credentials.
type chainError struct{ err error }

func (c *chainError) Error() string {
	return "no credentials given, and the default AWS credential chain failed: " + c.err.Error()
}
func (c *chainError) Unwrap() error { return c.err }

func isOperationError(err error) bool {
	_, ok := err.(*smithy.OperationError)
	return ok
}

// Error is how S3's methods fail. Its message names the object URL without
// credentials, how many tries were made and what the server said; any
// secret, and the access key id beyond a short prefix, are cut out of it.
type Error struct {
	Op         string // "put", "get", "stat" or "presign"
	URL        string // the URL as given, less any userinfo
	Attempts   int    // tries made; 0 when none was
	StatusCode int    // HTTP status of the last answer; 0 when there was none
	Code       string // the server's error code, such as "NoSuchBucket"
	Message    string // the server's message, or what went wrong; redacted
	err        error
	gaveUp     error // the context's error, when it ended while waiting to retry
}

// Error returns the redacted message.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "storage: %s %s", e.Op, e.URL)
	if e.Attempts > 0 {
		fmt.Fprintf(&b, " failed after %d attempt", e.Attempts)
		if e.Attempts > 1 {
			b.WriteString("s")
		}
	}
	b.WriteString(": ")
	switch {
	case e.Code != "" && e.StatusCode != 0:
		fmt.Fprintf(&b, "%s (HTTP %d): %s", e.Code, e.StatusCode, e.Message)
	case e.Code != "":
		fmt.Fprintf(&b, "%s: %s", e.Code, e.Message)
	case e.StatusCode != 0:
		fmt.Fprintf(&b, "HTTP %d: %s", e.StatusCode, e.Message)
	default:
		b.WriteString(e.Message)
	}
	if e.gaveUp != nil {
		fmt.Fprintf(&b, "; gave up retrying: %v", e.gaveUp)
	}
	return b.String()
}

// Unwrap returns the underlying error, so that errors.Is finds
// context.Canceled. Its own message is not redacted: print the Error.
func (e *Error) Unwrap() error { return e.err }

// fail wraps err as an *Error about t, with t's secret and key id cut out.
func (t *target) fail(op string, err error) *Error {
	e := &Error{Op: op, URL: t.shown, Attempts: t.attempt, err: err}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		e.StatusCode = status.HTTPStatusCode()
	}
	var api smithy.APIError
	var ce *chainError
	var urlErr *url.Error
	switch b, blocked := netguard.AsBlocked(err); {
	case blocked:
		b.Subject = "the S3 server"
		if op == "put" {
			b.Subject = "the destination"
		}
		e.Message = b.Error()
	case errors.As(err, &ce):
		e.Message = ce.Error()
	case errors.As(err, &api):
		e.Code, e.Message = api.ErrorCode(), api.ErrorMessage()
		if e.Message == "" {
			e.Message = http.StatusText(e.StatusCode)
		}
	case errors.Is(err, context.Canceled):
		e.Message = context.Canceled.Error()
	case errors.Is(err, context.DeadlineExceeded):
		e.Message = context.DeadlineExceeded.Error()
	case errors.As(err, &urlErr):
		e.Message = "request failed: " + urlErr.Err.Error()
	case isOperationError(err):
		e.Message = err.(*smithy.OperationError).Err.Error()
	default:
		e.Message = err.Error()
	}
	e.Code = redact(e.Code, t.key, t.secret)
	e.Message = redact(e.Message, t.key, t.secret)
	return e
}

// redact cuts secret, and key beyond KeyHint's prefix, out of s.
func redact(s, key, secret string) string {
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[secret]")
	}
	if key != "" {
		s = strings.ReplaceAll(s, key, storage.KeyHint(key))
	}
	return s
}
