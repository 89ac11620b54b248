// Package s3test runs a real S3 server for tests: the versitygw gateway over
// a temporary directory, listening on a loopback port.
//
// The versitygw binary must be on PATH or in $(go env GOPATH)/bin; install it
// with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// About ACLs: versitygw v1.8.0 keeps ACLs on buckets only. Its PutObject
// ignores x-amz-acl (and the x-amz-grant-* headers) whatever the bucket's
// object ownership, so uploads with "x-amz-acl: public-read" succeed on any
// bucket and the ACL is not recorded; the posix backend answers
// GetObjectAcl/PutObjectAcl with NotImplemented. (Unlike AWS, it does not
// refuse object ACLs on BucketOwnerEnforced buckets.) CreateBucket still asks
// for ObjectOwnership BucketOwnerPreferred, the setting under which AWS S3
// itself accepts canned ACLs on uploads. No gateway flag is needed; the
// --disable-acl flag would only make the gateway ignore ACL headers on
// bucket requests too.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Credentials of the gateway's root account.
const (
	AccessKey = "AKIATHUMBDTEST000001"
	Secret    = "thumbd-test-secret/with+odd=chars0001"
)

// Host is the loopback address the gateway listens on; it speaks plain http.
const Host = "127.0.0.1"

const installHint = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Server is a running versitygw gateway.
type Server struct {
	Endpoint  string // "127.0.0.1:PORT"
	Port      int
	AccessKey string
	Secret    string
	Dir       string // the gateway's root directory: one folder per bucket

	client *s3.Client
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{} // closed when the process has exited
}

// Start starts a gateway for t, waits until it answers and stops it when t
// ends. It calls t.Fatal when versitygw is not installed or does not start.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("s3test: %v; install it with: %s", err, installHint)
	}
	dir := t.TempDir()
	var last error
	for range 3 { // the free port found may be taken before versitygw binds it
		s, err := start(bin, dir)
		if err == nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("s3test: versitygw output:\n%s", s.Output())
				}
				s.stop()
			})
			return s
		}
		last = err
	}
	t.Fatalf("s3test: %v", last)
	return nil
}

// findBinary looks for versitygw on PATH, then in $(go env GOPATH)/bin.
func findBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = filepath.SplitList(strings.TrimSpace(string(out)))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("versitygw is neither on PATH nor in $(go env GOPATH)/bin")
}

// start runs versitygw on a free port and waits for it to answer.
func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  net.JoinHostPort(Host, strconv.Itoa(port)),
		Port:      port,
		AccessKey: AccessKey,
		Secret:    Secret,
		Dir:       dir,
		out:       &syncBuffer{},
	}
	if err := s.launch(bin); err != nil {
		return nil, err
	}
	return s, nil
}

// Stop stops the gateway, as an outage would; Restart brings it back.
func (s *Server) Stop() { s.stop() }

// Restart starts the gateway again, on the same port and directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	if err := s.launch(bin); err != nil {
		t.Fatalf("s3test: restart: %v", err)
	}
}

// launch runs versitygw for s and waits for it to answer.
func (s *Server) launch(bin string) error {
	dir := s.Dir
	s.done = make(chan struct{})
	// versitygw [global options] posix [posix options] DIR. The root
	// credentials go in the environment rather than on the command line.
	s.cmd = exec.Command(bin, "--port", s.Endpoint, "--quiet", "posix", dir)
	s.cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_")
	}), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.Secret)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %v", bin, err)
	}
	cmd, done := s.cmd, s.done
	go func() { _ = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(15 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return fmt.Errorf("versitygw exited at start: %s\n%s", s.cmd.ProcessState, s.out)
		default:
		}
		resp, err := hc.Get("http://" + s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break // any answer, even 403, means it is serving
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("versitygw did not answer on %s within 15s: %v\n%s", s.Endpoint, err, s.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.client = s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String("http://" + s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.Secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return nil
}

// stop ends the gateway: SIGTERM, then SIGKILL after 5s.
func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client returns an SDK client signed with the root credentials.
func (s *Server) Client() *s3.Client { return s.client }

// Output returns what the gateway has printed so far.
func (s *Server) Output() string { return s.out.String() }

// URL returns s3://127.0.0.1:PORT/bucket/key.
func (s *Server) URL(bucket, key string) string {
	return "s3://" + s.Endpoint + "/" + bucket + "/" + key
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// CreateBucket creates the bucket name, with ObjectOwnership
// BucketOwnerPreferred so that canned ACLs such as public-read are accepted
// on uploads (see the package comment).
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	_, err := s.client.CreateBucket(ctx(t), &s3.CreateBucketInput{
		Bucket:          aws.String(name),
		ObjectOwnership: types.ObjectOwnershipBucketOwnerPreferred,
	})
	if err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

// GetObject returns the content of bucket/key.
func (s *Server) GetObject(t testing.TB, bucket, key string) []byte {
	t.Helper()
	out, err := s.client.GetObject(ctx(t), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("s3test: get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("s3test: read %s/%s: %v", bucket, key, err)
	}
	return b
}

// Head is what HeadObject reports. versitygw keeps no object ACLs, so there
// is no ACL to report.
type Head struct {
	ContentType   string
	ContentLength int64
	CacheControl  string
	StorageClass  string // often empty: the gateway omits STANDARD
	ETag          string
}

// HeadObject returns the metadata of bucket/key.
func (s *Server) HeadObject(t testing.TB, bucket, key string) Head {
	t.Helper()
	out, err := s.client.HeadObject(ctx(t), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("s3test: head %s/%s: %v", bucket, key, err)
	}
	return Head{
		ContentType:   aws.ToString(out.ContentType),
		ContentLength: aws.ToInt64(out.ContentLength),
		CacheControl:  aws.ToString(out.CacheControl),
		StorageClass:  string(out.StorageClass),
		ETag:          aws.ToString(out.ETag),
	}
}

// ListKeys returns the keys in bucket that start with prefix, sorted.
func (s *Server) ListKeys(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("s3test: list %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

// syncBuffer is a bytes.Buffer safe for the process's two writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
