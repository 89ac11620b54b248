package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/internal/netguard"
	"github.com/thumbd/thumbd/internal/s3test"
	"github.com/thumbd/thumbd/storage"
	"github.com/thumbd/thumbd/storage/s3store"
)

// countingBucket counts the objects opened in the bucket it wraps.
type countingBucket struct {
	Bucket
	opens atomic.Int32
}

func (b *countingBucket) OpenFile(ctx context.Context, name string) (storage.File, error) {
	b.opens.Add(1)
	return b.Bucket.OpenFile(ctx, name)
}

// instance is one thumbd's upload server in a test farm.
type instance struct {
	s   *Server
	url string // the TUS base: <url>/<task> creates an upload
	dir string
}

func newInstance(t *testing.T, shared Bucket) instance {
	t.Helper()
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, BasePath: "/v1/upload_file/", Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.StripPrefix("/v1/upload_file", s))
	t.Cleanup(ts.Close)
	return instance{s: s, url: ts.URL + "/v1/upload_file", dir: dir}
}

func newKept(t *testing.T, srv *s3test.Server, bucket string) *s3store.Kept {
	t.Helper()
	store := s3store.New(s3store.Options{
		HTTPHosts:   []string{s3test.Host},
		Guard:       netguard.New(netguard.Policy{AllowPrivate: true}), // versitygw listens on loopback
		Backoff:     time.Millisecond,
		RetryWindow: time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	k, err := s3store.NewKept(store, "s3://"+url.PathEscape(srv.AccessKey)+":"+url.PathEscape(srv.Secret)+"@"+srv.Endpoint+"/"+bucket+"/files")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tusRequest sends one TUS request and returns its response, body read.
func tusRequest(t *testing.T, method, u string, hdr map[string]string, body []byte) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// create makes an upload of size bytes for task and returns its URL.
func create(t *testing.T, in instance, task string, size int) string {
	t.Helper()
	resp, body := tusRequest(t, http.MethodPost, in.url+"/"+task, map[string]string{"Upload-Length": strconv.Itoa(size)}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// patch sends chunk at offset and returns the response.
func patch(t *testing.T, u string, offset int, chunk []byte) (*http.Response, string) {
	t.Helper()
	return tusRequest(t, http.MethodPatch, u, map[string]string{
		"Upload-Offset": strconv.Itoa(offset),
		"Content-Type":  "application/offset+octet-stream",
	}, chunk)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// openAll reads the upload id of task through s.Open.
func openAll(t *testing.T, s *Server, task, id string) []byte {
	t.Helper()
	f, err := s.Open(t.Context(), task, id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSharedUploads(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "farm")
	kept := newKept(t, srv, "farm")
	counted := &countingBucket{Bucket: kept}
	a, b := newInstance(t, kept), newInstance(t, counted)
	for _, tc := range []struct {
		name   string
		size   int
		chunks int
	}{
		{"one PATCH", 300_000, 1},
		{"three PATCHes", 3_000_001, 3},
		{"empty", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			task := engine.NewToken()
			body := randomBytes(t, tc.size)
			loc := create(t, a, task, tc.size)
			id := loc[strings.LastIndex(loc, "/")+1:]
			step := (tc.size + tc.chunks - 1) / max(tc.chunks, 1)
			for off := 0; off < tc.size; off += step {
				end := min(off+step, tc.size)
				if end < tc.size {
					// Unfinished: found where it is received only.
					if err := a.s.Find(ctx, task, id); err != nil {
						t.Errorf("Find on the receiving instance before the end: %v", err)
					}
					if err := b.s.Find(ctx, task, id); !errors.Is(err, ErrNotFound) {
						t.Errorf("Find on another instance before the end = %v, want ErrNotFound", err)
					}
				}
				if resp, msg := patch(t, loc, off, body[off:end]); resp.StatusCode != http.StatusNoContent {
					t.Fatalf("PATCH at %d: %d %s", off, resp.StatusCode, msg)
				}
			}
			// The upload is in the bucket once its last request is answered.
			key := "files/uploads/" + task + "/" + id
			if got := srv.GetObject(t, "farm", key); !bytes.Equal(got, body) {
				t.Fatalf("the bucket's copy has %d bytes, want the %d uploaded", len(got), len(body))
			}
			if err := b.s.Find(ctx, task, id); err != nil {
				t.Errorf("Find on another instance: %v", err)
			}
			if err := b.s.Find(ctx, engine.NewToken(), id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Find for another task = %v, want ErrNotFound", err)
			}
			// Opened at once many times on another instance: downloaded once.
			counted.opens.Store(0)
			var wg sync.WaitGroup
			got := make([][]byte, 4)
			for i := range got {
				wg.Go(func() {
					f, err := b.s.Open(ctx, task, id)
					if err != nil {
						t.Error(err)
						return
					}
					defer f.Close()
					got[i], _ = io.ReadAll(f)
				})
			}
			wg.Wait()
			for i := range got {
				if !bytes.Equal(got[i], body) {
					t.Errorf("Open %d on another instance read %d bytes, want the %d uploaded", i, len(got[i]), len(body))
				}
			}
			if n := counted.opens.Load(); n != 1 {
				t.Errorf("4 Opens at once read the bucket %d times, want 1", n)
			}
			if local, err := os.ReadFile(filepath.Join(b.dir, task, id)); err != nil || !bytes.Equal(local, body) {
				t.Errorf("the other instance's local copy: %d bytes, %v", len(local), err)
			}
			// Later Opens read the local copy.
			if got := openAll(t, b.s, task, id); !bytes.Equal(got, body) || counted.opens.Load() != 1 {
				t.Errorf("Open again: %d bytes, %d bucket reads", len(got), counted.opens.Load())
			}
			if got := openAll(t, a.s, task, id); !bytes.Equal(got, body) {
				t.Errorf("Open on the receiving instance: %d bytes", len(got))
			}
			// HEAD on the receiving instance: finished.
			if resp, _ := tusRequest(t, http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != strconv.Itoa(tc.size) {
				t.Errorf("HEAD: %d, offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
			}

			// The task ends on the other instance: its copy and the bucket's go.
			if err := b.s.Remove(task); err != nil {
				t.Fatal(err)
			}
			if keys := srv.ListKeys(t, "farm", "files/uploads/"+task); len(keys) != 0 {
				t.Errorf("the bucket still holds %q", keys)
			}
			if _, err := os.Stat(filepath.Join(b.dir, task)); !os.IsNotExist(err) {
				t.Errorf("the other instance's copy is still there: %v", err)
			}
			if _, err := b.s.Open(ctx, task, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Open after Remove = %v, want ErrNotFound", err)
			}
			// The receiving instance's sweep removes its own copy: the
			// task ended elsewhere.
			if _, err := a.s.Sweep(ctx, 48*time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(a.dir, task)); !os.IsNotExist(err) {
				t.Errorf("the receiving instance's copy survived its sweep: %v", err)
			}
		})
	}
}

func TestSharedSweepRemovesOldCopies(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "farm")
	a := newInstance(t, newKept(t, srv, "farm"))
	ctx := t.Context()
	old, fresh := engine.NewToken(), engine.NewToken()
	for _, task := range []string{old, fresh} {
		loc := create(t, a, task, 10)
		if resp, msg := patch(t, loc, 0, []byte("0123456789")); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH: %d %s", resp.StatusCode, msg)
		}
	}
	past := time.Now().Add(-72 * time.Hour)
	filepath.Walk(filepath.Join(a.dir, old), func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, past, past) })
	n, err := a.s.Sweep(ctx, 48*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	keys := srv.ListKeys(t, "farm", "files/uploads/")
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "files/uploads/"+fresh+"/") {
		t.Errorf("the bucket holds %q; want only the fresh task's upload", keys)
	}
	if _, err := os.Stat(filepath.Join(a.dir, fresh)); err != nil {
		t.Errorf("the fresh task's upload: %v", err)
	}
}

func TestSharedCopyFailureFailsTheLastPatch(t *testing.T) {
	srv := s3test.Start(t)
	a := newInstance(t, newKept(t, srv, "later")) // no such bucket yet
	b := newInstance(t, newKept(t, srv, "later"))
	ctx := t.Context()
	task := engine.NewToken()
	body := randomBytes(t, 100_000)
	loc := create(t, a, task, len(body))
	id := loc[strings.LastIndex(loc, "/")+1:]
	if resp, msg := patch(t, loc, 0, body[:50_000]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %d %s", resp.StatusCode, msg)
	}
	resp, msg := patch(t, loc, 50_000, body[50_000:])
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(msg, "ERR_UPLOAD_NOT_SHARED") || !strings.Contains(msg, "other instances cannot read it") {
		t.Fatalf("last PATCH with the bucket missing: %d %q; want 503 ERR_UPLOAD_NOT_SHARED saying why", resp.StatusCode, msg)
	}
	if strings.Contains(msg, srv.Secret) {
		t.Errorf("the error shows the bucket's secret: %q", msg)
	}
	// Nothing lost: the receiving instance has it, and a HEAD does not
	// say finished while the bucket lacks it.
	if got := openAll(t, a.s, task, id); !bytes.Equal(got, body) {
		t.Errorf("Open on the receiving instance: %d bytes", len(got))
	}
	if resp, _ := tusRequest(t, http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HEAD while the bucket is missing: %d, want 503", resp.StatusCode)
	}
	if err := b.s.Find(ctx, task, id); err == nil {
		t.Errorf("Find on another instance found an upload the bucket lacks")
	}
	// Once the bucket answers, the client's HEAD copies it.
	srv.CreateBucket(t, "later")
	if resp, _ := tusRequest(t, http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(body)) {
		t.Fatalf("HEAD after the bucket is back: %d, offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	if keys := srv.ListKeys(t, "later", ""); !slices.Equal(keys, []string{"files/uploads/" + task + "/" + id}) {
		t.Errorf("the bucket holds %q", keys)
	}
	if got := openAll(t, b.s, task, id); !bytes.Equal(got, body) {
		t.Errorf("Open on another instance: %d bytes", len(got))
	}
}
