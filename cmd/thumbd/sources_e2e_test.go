package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/frametest"
	"github.com/thumbd/thumbd/internal/s3test"
)

// halfQuery asks for one 320x180 PNG at 50 % of the source, kept by
// thumbd (no destination).
func halfQuery(source string) map[string]any {
	return map[string]any{"source": source, "format": []any{
		map[string]any{"output": "thumbnail", "time": "0.5", "width": 320, "height": 180},
	}}
}

// node runs a script of e2e/node with env and returns its stdout, stderr
// and exit code.
func node(t *testing.T, script string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	dir := "../../e2e/node"
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tus-js-client")); err != nil {
		t.Fatalf("the Node packages are not installed: run scripts/deps.sh (%v)", err)
	}
	cmd := exec.Command("node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	return out.String(), errb.String(), 0
}

// runQuery runs run-query.js with query; taskToken, when set, is the task
// to start. It returns the final status, or the SDK's error message.
func runQuery(t *testing.T, endpoint, taskToken string, query any) (wireStatus, string) {
	t.Helper()
	qf := filepath.Join(t.TempDir(), "query.json")
	b, _ := json.Marshal(query)
	if err := os.WriteFile(qf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := node(t, "run-query.js", "THUMBD_ENDPOINT="+endpoint, "THUMBD_API_KEY=e2e-test-key-0001",
		"QUERY_FILE="+qf, "TIMEOUT_MS=60000", "TASK_TOKEN="+taskToken)
	if code != 0 {
		return wireStatus{}, stderr
	}
	var res sdkResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("run-query.js printed %q: %v", stdout, err)
	}
	var st wireStatus
	if err := json.Unmarshal(res.Final, &st); err != nil {
		t.Fatal(err)
	}
	return st, ""
}

// checkHalf checks a completed halfQuery: the kept PNG shows frame 125 of
// the 10 s, 25 fps clip, and source_size and duration are the clip's.
func checkHalf(t *testing.T, st wireStatus) {
	t.Helper()
	if st.Status != "completed" {
		desc := ""
		if st.ErrorDescription != nil {
			desc = *st.ErrorDescription
		}
		t.Fatalf("status %q: %s", st.Status, desc)
	}
	fi, _ := os.Stat("../../testdata/clip.mp4")
	if st.SourceSize != fi.Size() || st.Duration != 10 {
		t.Errorf("source_size %d, duration %v; want %d and 10", st.SourceSize, st.Duration, fi.Size())
	}
	if len(st.Images) != 1 {
		t.Fatalf("images: %+v", st.Images)
	}
	resp, err := http.Get(st.Images[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	img, format, err := frametest.Decode(b)
	if err != nil || format != "png" || img.Bounds().Dx() != 320 || img.Bounds().Dy() != 180 {
		t.Fatalf("%s: %s %v, err %v", st.Images[0].URL, format, img.Bounds(), err)
	}
	checkFrame(t, "thumbnail", img, image.Rect(0, 0, 320, 180), 5.0, st.Images[0].Time)
}

func errorOf(st wireStatus) string {
	if st.ErrorDescription == nil {
		return ""
	}
	return *st.ErrorDescription
}

// TestS3SourceThroughNodeSDK reads the source from a real S3 server, with
// credentials in the URL as Qencode documents, and from the default AWS
// credential chain.
func TestS3SourceThroughNodeSDK(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "videos")
	data, err := os.ReadFile("../../testdata/clip.mp4")
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("videos"), Key: aws.String("in/clip.mp4"), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	base := startThumbd(t, nil)
	withCreds := func(key, secret, bucketKey string) string {
		return fmt.Sprintf("s3://%s:%s@%s/%s", key, url.PathEscape(secret), srv.Endpoint, bucketKey)
	}

	t.Run("credentials in the URL", func(t *testing.T) {
		st, sdkErr := runQuery(t, base, "", halfQuery(withCreds(srv.AccessKey, srv.Secret, "videos/in/clip.mp4")))
		if sdkErr != "" {
			t.Fatal(sdkErr)
		}
		checkHalf(t, st)
	})
	t.Run("unencoded slash in the secret", func(t *testing.T) {
		raw := fmt.Sprintf("s3://%s:%s@%s/videos/in/clip.mp4", srv.AccessKey, srv.Secret, srv.Endpoint)
		st, sdkErr := runQuery(t, base, "", halfQuery(raw))
		if sdkErr != "" {
			t.Fatal(sdkErr)
		}
		checkHalf(t, st)
	})
	t.Run("default credential chain", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		st, sdkErr := runQuery(t, base, "", halfQuery(srv.URL("videos", "in/clip.mp4")))
		if sdkErr != "" {
			t.Fatal(sdkErr)
		}
		checkHalf(t, st)
	})
	for _, tt := range []struct {
		name, src, want string
	}{
		{"wrong secret", withCreds(srv.AccessKey, "not-the-secret", "videos/in/clip.mp4"),
			"the source answered 403 Forbidden (SignatureDoesNotMatch) for " + srv.URL("videos", "in/clip.mp4")},
		{"missing object", withCreds(srv.AccessKey, srv.Secret, "videos/in/nope.mp4"),
			"the source answered 404 Not Found (NoSuchKey) for " + srv.URL("videos", "in/nope.mp4")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, sdkErr := runQuery(t, base, "", halfQuery(tt.src))
			if sdkErr != "" {
				t.Fatal(sdkErr)
			}
			if st.Status != "error" || st.Error != 1 || errorOf(st) != tt.want {
				t.Fatalf("status %q error %d %q, want error %q", st.Status, st.Error, errorOf(st), tt.want)
			}
			if strings.Contains(errorOf(st), srv.Secret) || strings.Contains(errorOf(st), srv.AccessKey) {
				t.Errorf("the error shows the credentials: %q", errorOf(st))
			}
		})
	}
}

// tusResult is what e2e/node/tus-upload.js prints.
type tusResult struct {
	TaskToken      string `json:"task_token"`
	UploadURL      string `json:"upload_url"`
	Endpoint       string `json:"endpoint"`
	Location       string `json:"location"`
	LocationHeader string `json:"location_header"`
	FileID         string `json:"file_id"`
	Size           int64  `json:"size"`
	Resumed        bool   `json:"resumed"`
	OffsetAtResume int64  `json:"offset_at_resume"`
}

// tusUpload runs e2e/node/tus-upload.js against the thumbd at base: it
// creates a task and uploads file to its upload_url with tus-js-client
// (env adds the script's settings: CHUNK_SIZE, ABORT_AFTER_BYTES), and
// returns what the script printed.
func tusUpload(t *testing.T, base, file string, env ...string) tusResult {
	t.Helper()
	env = append([]string{"THUMBD_ENDPOINT=" + base, "THUMBD_API_KEY=e2e-test-key-0001", "FILE=" + file, "TIMEOUT_MS=60000"}, env...)
	stdout, stderr, code := node(t, "tus-upload.js", env...)
	if code != 0 {
		t.Fatalf("tus-upload.js exited %d: %s", code, stderr)
	}
	var up tusResult
	if err := json.Unmarshal([]byte(stdout), &up); err != nil {
		t.Fatalf("tus-upload.js printed %q: %v", stdout, err)
	}
	return up
}

// TestTusUploadThroughNodeSDK uploads the clip with the real tus-js-client,
// aborting after a first chunk and resuming from the offset the server
// reports, then starts the same task with source "tus:<file id>" through
// the Node SDK. Another task cannot use the upload.
func TestTusUploadThroughNodeSDK(t *testing.T) {
	base := startThumbd(t, nil)
	clip, _ := filepath.Abs("../../testdata/clip.mp4")
	up := tusUpload(t, base, clip, "ABORT_AFTER_BYTES=150000")
	t.Logf("%+v", up)
	if up.UploadURL != base+"/v1/upload_file" {
		t.Errorf("upload_url = %q, want %q", up.UploadURL, base+"/v1/upload_file")
	}
	if want := up.UploadURL + "/" + up.TaskToken + "/" + up.FileID; up.LocationHeader != want || up.Location != want || len(up.FileID) != 32 {
		t.Errorf("Location %q (resolved %q), want %q with a 32-digit file id", up.LocationHeader, up.Location, want)
	}
	if !up.Resumed || up.OffsetAtResume < 150000 || up.OffsetAtResume >= up.Size {
		t.Errorf("resumed %v at offset %d of %d, want a resume after the first 150000 bytes", up.Resumed, up.OffsetAtResume, up.Size)
	}
	src := "tus:" + up.FileID

	// Another task: the upload is not there for it.
	_, sdkErr := runQuery(t, base, "", halfQuery(src))
	if !strings.Contains(sdkErr, "source: tus:"+up.FileID+": no upload with this id for this task") {
		t.Errorf("another task starting with %s: %q, want a refusal", src, sdkErr)
	}
	// Its own task: the thumbnail of the uploaded file.
	st, sdkErr := runQuery(t, base, up.TaskToken, halfQuery(src))
	if sdkErr != "" {
		t.Fatal(sdkErr)
	}
	checkHalf(t, st)

	// Once the task has started, its uploads cannot be changed; once it
	// has ended, they are deleted.
	resp := tusRequest(t, "POST", up.Endpoint, nil, "Upload-Length", "10")
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("creating an upload for a started task: %s, want 409", resp.Status)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp := tusRequest(t, "HEAD", up.Location, nil)
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("HEAD of the upload after its task ended: %s, want 404 (deleted)", resp.Status)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tusRequest makes one TUS request with header pairs, and returns the
// response with its body read.
func tusRequest(t *testing.T, method, u string, body []byte, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// newTask gets a task token over the API.
func newTask(t *testing.T, base string) (token, uploadURL string) {
	t.Helper()
	post := func(method string, form url.Values, v any) {
		resp, err := http.PostForm(base+"/v1/"+method, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var at struct{ Token string }
	post("access_token", url.Values{"api_key": {"e2e-test-key-0001"}}, &at)
	var ct struct {
		TaskToken string `json:"task_token"`
		UploadURL string `json:"upload_url"`
	}
	post("create_task", url.Values{"token": {at.Token}}, &ct)
	return ct.TaskToken, ct.UploadURL
}

// TestTusEndpoint checks the TUS endpoint's answers that tus-js-client
// does not exercise: unknown tasks, uploads of other tasks, an unfinished
// upload used as a source, and the operator's size limit.
func TestTusEndpoint(t *testing.T) {
	base := startThumbd(t, func(c *app.Config) { c.MaxSourceSize = 1000 })
	task, uploadURL := newTask(t, base)
	other, _ := newTask(t, base)

	resp := tusRequest(t, "OPTIONS", uploadURL+"/"+task, nil)
	if resp.StatusCode/100 != 2 || resp.Header.Get("Tus-Version") != "1.0.0" || resp.Header.Get("Tus-Max-Size") != "1000" {
		t.Errorf("OPTIONS: %s, Tus-Version %q, Tus-Max-Size %q", resp.Status, resp.Header.Get("Tus-Version"), resp.Header.Get("Tus-Max-Size"))
	}
	if resp := tusRequest(t, "POST", uploadURL+"/"+strings.Repeat("0", 32), nil, "Upload-Length", "100"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST for an unknown task: %s, want 404", resp.Status)
	}
	if resp := tusRequest(t, "POST", uploadURL+"/"+task, nil, "Upload-Length", "1001"); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST over the size limit: %s, want 413", resp.Status)
	}
	resp = tusRequest(t, "POST", uploadURL+"/"+task, nil, "Upload-Length", "100")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, uploadURL+"/"+task+"/") {
		t.Fatalf("POST: %s, Location %q", resp.Status, loc)
	}
	id := loc[strings.LastIndex(loc, "/")+1:]
	resp = tusRequest(t, "PATCH", loc, make([]byte, 40), "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != "40" {
		t.Fatalf("PATCH: %s, Upload-Offset %q", resp.Status, resp.Header.Get("Upload-Offset"))
	}
	stolen := uploadURL + "/" + other + "/" + id
	for _, m := range []string{"HEAD", "PATCH", "DELETE"} {
		resp := tusRequest(t, m, stolen, nil, "Upload-Offset", "40", "Content-Type", "application/offset+octet-stream")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s of another task's upload: %s, want 404", m, resp.Status)
		}
	}
	resp = tusRequest(t, "GET", loc, nil)
	if resp.StatusCode == http.StatusOK {
		t.Errorf("GET of an upload: %s, want no download", resp.Status)
	}
	resp = tusRequest(t, "POST", uploadURL+"/"+task, nil, "Upload-Length", "100", "Upload-Concat", "final;"+stolen)
	if resp.StatusCode == http.StatusCreated {
		t.Errorf("concatenation of another task's upload: %s, want a refusal", resp.Status)
	}
	resp = tusRequest(t, "HEAD", loc, nil)
	if off, _ := strconv.Atoi(resp.Header.Get("Upload-Offset")); resp.StatusCode != http.StatusOK || off != 40 {
		t.Errorf("HEAD: %s, Upload-Offset %d", resp.Status, off)
	}

	// Started with the upload unfinished: a clear error.
	st, sdkErr := runQuery(t, base, task, halfQuery("tus:"+id))
	if sdkErr != "" {
		t.Fatal(sdkErr)
	}
	if want := "the upload tus:" + id + " is not finished: 40 of 100 bytes received; resume it, then start the task"; st.Status != "error" || errorOf(st) != want {
		t.Errorf("status %q %q, want error %q", st.Status, errorOf(st), want)
	}
}
