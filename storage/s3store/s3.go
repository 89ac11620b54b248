// Package s3store uploads files to, and reads them from, any S3-compatible
// server with aws-sdk-go-v2: path-style requests, https unless the host is
// listed as plain http, retries with backoff, and errors that name the
// destination but never its secret.
package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/thumbd/thumbd/storage"
)

// Region is the signing region S3 requests use. Third-party S3 servers
// accept it, and thumbd's destinations name no region.
const Region = "us-east-1"

const (
	defaultRetries   = 4
	defaultBackoff   = 200 * time.Millisecond
	maxBackoff       = 30 * time.Second
	defaultPresign   = 15 * time.Minute
	maxPresign       = 7 * 24 * time.Hour // SigV4's limit
	maxCachedClients = 256
)

// Options configures an S3.
type Options struct {
	// HTTPHosts lists the hosts (names or addresses, no port) spoken to over
	// plain http; every other host is spoken to over https.
	HTTPHosts []string
	// Retries is how many times a failed request is tried again: 0 means 4,
	// a negative number means never.
	Retries int
	// Backoff is the wait before the first retry, 200ms when 0; it doubles
	// with each retry, up to 30s, with jitter.
	Backoff time.Duration
	// Logger receives a line for each retry; nil means slog.Default().
	Logger *slog.Logger
	// HTTPClient, when set, makes every request; nil means the SDK's default.
	HTTPClient *http.Client
}

// S3 talks to S3-compatible servers: it uploads files, reads them back and
// presigns GET URLs. One S3 is safe for concurrent use; it keeps one SDK
// client per endpoint and credentials.
type Store struct {
	opts    Options
	retries int
	backoff time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	clients map[string]*s3.Client
}

// NewS3 returns an S3 configured by opts.
func New(opts Options) *Store {
	s := &Store{opts: opts, retries: opts.Retries, backoff: opts.Backoff, log: opts.Logger, clients: map[string]*s3.Client{}}
	switch {
	case s.retries == 0:
		s.retries = defaultRetries
	case s.retries < 0:
		s.retries = 0
	}
	if s.backoff <= 0 {
		s.backoff = defaultBackoff
	}
	if s.log == nil {
		s.log = slog.Default()
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
// cannot change (4xx such as AccessDenied or NoSuchBucket). The error, an
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
	err = s.do(ctx, t, "put", func() error {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return &permanent{fmt.Errorf("rewind the file: %w", err)}
		}
		_, err := client.PutObject(ctx, in)
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
	err = s.do(ctx, t, "get", func() (err error) {
		out, err = client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.url.Bucket), Key: aws.String(t.url.Key)})
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
	err = s.do(ctx, t, "stat", func() (err error) {
		out, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(t.url.Bucket), Key: aws.String(t.url.Key)})
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
		Retryer:                    aws.NopRetryer{}, // S3.do retries
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, func(o *s3.Options) {
		if s.opts.HTTPClient != nil {
			o.HTTPClient = s.opts.HTTPClient
		}
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

// do runs call until it succeeds, fails for good or runs out of retries,
// sleeping between tries. t.attempt counts the tries.
func (s *Store) do(ctx context.Context, t *target, op string, call func() error) error {
	delay := s.backoff
	for t.attempt = 1; ; t.attempt++ {
		err := call()
		if err == nil {
			return nil
		}
		if t.attempt > s.retries || !retryable(ctx, err) {
			return t.fail(op, err)
		}
		wait := jitter(delay)
		s.log.WarnContext(ctx, "s3 request failed; retrying",
			"op", op, "url", t.shown, "key_id", storage.KeyHint(t.key),
			"attempt", t.attempt, "retry_in", wait, "err", t.fail(op, err).Error())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			e := t.fail(op, err)
			e.gaveUp = context.Cause(ctx)
			e.err = errors.Join(e.gaveUp, err)
			return e
		case <-timer.C:
		}
		delay = min(delay*2, maxBackoff)
	}
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
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

// permanent marks an error that no retry can fix.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// retryable says whether trying again might succeed.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var p *permanent
	if errors.As(err, &p) {
		return false
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		switch code := status.HTTPStatusCode(); {
		case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
			return true
		}
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
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
	switch {
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
