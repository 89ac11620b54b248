package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFarmDirectUpload uploads the clip with tus-js-client to instance A
// of a three-instance farm (PostgreSQL, the kept-files bucket shared),
// starts the task through instance B, which validates its tus: source,
// with more outputs than one part holds, so that its parts run on several
// instances, each reading the upload A received. The task completes with
// every image showing the right frame, and once it has ended the upload
// is gone from the bucket.
func TestFarmDirectUpload(t *testing.T) {
	f := newFarm(t)
	procs := []*process{f.start(t), f.start(t), f.start(t)}
	a, b, c := procs[0], procs[1], procs[2]

	clip, _ := filepath.Abs("../../testdata/clip.mp4")
	fi, err := os.Stat(clip)
	if err != nil {
		t.Fatal(err)
	}
	up := tusUpload(t, a.base, clip, "CHUNK_SIZE=100000")
	if up.UploadURL != a.base+"/v1/upload_file" {
		t.Errorf("upload_url = %q, want A's own %q", up.UploadURL, a.base+"/v1/upload_file")
	}
	// Answered finished only once it is in the bucket.
	key := "files/uploads/" + up.TaskToken + "/" + up.FileID
	if h := f.s3.HeadObject(t, "kept", key); h.ContentLength != fi.Size() {
		t.Fatalf("the bucket's copy of the upload has %d bytes, want %d", h.ContentLength, fi.Size())
	}

	// An id no instance has: B refuses it, saying so.
	other := createTask(t, b.base)
	q, _ := json.Marshal(map[string]any{"query": halfQuery("tus:" + strings.Repeat("ab", 16))})
	var reply struct {
		Error   int    `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(postRaw(t, b.base, "/v1/start_encode2", url.Values{"task_token": {other}, "query": {string(q)}}), &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Error == 0 || !strings.Contains(reply.Message, "no upload with this id for this task") {
		t.Errorf("an unknown upload through B: error %d %q, want a refusal naming it", reply.Error, reply.Message)
	}

	// 20 thumbnails: three parts of at most 8 (the default).
	const outputs = 20
	var formats []any
	for i := range outputs {
		formats = append(formats, map[string]any{"output": "thumbnail", "time": fmt.Sprintf("%.4f", (float64(i)+0.5)/outputs), "width": 320})
	}
	began := time.Now()
	start(t, b.base, up.TaskToken, map[string]any{"source": "tus:" + up.FileID, "format": formats}, "")
	st := waitStatus(t, c.base, up.TaskToken, 180*time.Second, "completed", "error")
	t.Logf("the task of %d outputs completed in %v", outputs, time.Since(began).Round(10*time.Millisecond))
	checkKeptImages(t, st, outputs)

	// Three parts (of 8, 8 and 4 outputs), made by more than one instance.
	makers := map[string]bool{}
	for _, m := range f.partsMade(t, up.TaskToken, 3) {
		makers[m] = true
	}
	if len(makers) < 2 {
		t.Errorf("every part made by one instance (%v): the upload was read by one instance only", makers)
	}

	// The task has ended: its upload is removed from the bucket.
	deadline := time.Now().Add(15 * time.Second)
	for {
		keys := f.s3.ListKeys(t, "kept", "files/uploads/")
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bucket still holds %q after the task ended", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
