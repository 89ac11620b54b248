package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFarmFailoverAndSharedFiles runs three thumbd processes on one
// PostgreSQL, keeping files in one bucket (THUMBD_FILES_URL). B takes a
// task and is killed with SIGKILL in the middle of it; another instance
// runs it again within its lease and the rescuer's round, the task
// completes once with the right frames, the bucket holds each of its
// files once, and every instance serves them, ranges included.
func TestFarmFailoverAndSharedFiles(t *testing.T) {
	f := newFarm(t)
	s3, src := f.s3, f.src
	settings := []string{"THUMBD_TEST_API=1", "THUMBD_FAILOVER_AFTER=5s"}
	// B alone first, holding its tasks in encoding, so that it is B that
	// takes the task.
	b := f.start(t, settings...)
	post(t, b.base, "/_thumbd/hold", url.Values{"state": {"encoding"}}, nil)
	token := startTask(t, b.base, thumbQuery(src, nil), "")
	waitHeld(t, b.base, token)
	a := f.start(t, settings...)
	c := f.start(t, settings...)
	b.kill9(t)
	killed := time.Now()

	st := waitStatus(t, a.base, token, 120*time.Second, "completed", "error")
	t.Logf("the task of the killed instance completed %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	checkKeptImages(t, st, 7) // 1 thumbnail + 5 series images + the VTT, read through A
	keys := s3.ListKeys(t, "kept", "files/"+token+"/")
	// The 7 files of the status and the 2 outputs' manifests, which get
	// no status entry.
	if len(keys) != 9 || len(slices.Compact(slices.Clone(keys))) != 9 {
		t.Errorf("the bucket holds %d files for the task, want 9, each once: %q", len(keys), keys)
	}

	// Every instance serves every kept file, from the bucket.
	for _, im := range st.Images {
		u, err := url.Parse(im.URL)
		if err != nil || !strings.HasPrefix(u.Path, "/storage/"+token+"/") {
			t.Fatalf("kept file URL %q", im.URL)
		}
		_, want := get(t, im.URL)
		for name, p := range map[string]*process{"A": a, "C": c} {
			code, body := get(t, p.base+u.Path)
			if code != 200 || string(body) != string(want) {
				t.Errorf("%s serves %s: %d, %d bytes, want 200 and %d bytes", name, u.Path, code, len(body), len(want))
			}
		}
	}
	t.Run("range", func(t *testing.T) {
		u, _ := url.Parse(st.Images[0].URL)
		_, whole := get(t, u.String())
		code, body := getRange(t, c.base+u.Path, "bytes=10-19")
		if code != 206 || string(body) != string(whole[10:20]) {
			t.Errorf("C: range 10-19: %d, %q", code, body)
		}
	})

	// Once: the task's job ran on B, was rescued, and completed once.
	pool := f.pool
	var state string
	var attempt int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		// River records the end of a job a moment after the task's.
		if err := pool.QueryRow(context.Background(), `SELECT state, attempt FROM river_job WHERE args->>'token' = $1`, token).Scan(&state, &attempt); err != nil {
			t.Fatal(err)
		}
		if state != "running" || time.Now().After(deadline) {
			break
		}
	}
	if state != "completed" || attempt != 2 {
		t.Errorf("the task's job: %s after %d attempts, want completed after 2 (B's, then the rescue's)", state, attempt)
	}
}

// getRange fetches a range of a URL.
func getRange(t *testing.T, u, rng string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestFarmLastAttemptLost kills with SIGKILL the instance running a task's
// job on its last attempt (the job's attempt count is set to its maximum
// while B holds the task in encoding, as nine earlier failures would have
// left it). River's rescuer then discards the job rather than run it
// again, and another instance ends the task in error, once, saying what
// happened, with the error and saved callbacks: the task is not left
// encoding.
func TestFarmLastAttemptLost(t *testing.T) {
	f := newFarm(t)
	settings := []string{"THUMBD_TEST_API=1", "THUMBD_FAILOVER_AFTER=2s"}
	b := f.start(t, settings...)
	post(t, b.base, "/_thumbd/hold", url.Values{"state": {"encoding"}}, nil)
	rcv := newHookReceiver(t, http.StatusOK)
	token := startTask(t, b.base, thumbQuery(f.src, map[string]any{"callback_url": rcv.url}), "")
	waitHeld(t, b.base, token)
	tag, err := f.pool.Exec(context.Background(), `UPDATE river_job SET attempt = max_attempts
		WHERE kind = 'thumbd_task' AND state = 'running' AND args->>'token' = $1`, token)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("setting the running job's attempt to its last: %v rows, %v", tag.RowsAffected(), err)
	}
	rcv.waitForms(t, 1) // queued
	b.kill9(t)
	killed := time.Now()
	a := f.start(t, settings...)

	st := waitStatus(t, a.base, token, 120*time.Second, "completed", "error")
	t.Logf("the task ended %s %v after the kill", st.Status, time.Since(killed).Round(100*time.Millisecond))
	if st.Status != "error" || st.ErrorDescription == nil || !strings.Contains(*st.ErrorDescription, "stopped during its last attempt") {
		t.Fatalf("task %s (%v), want error saying its instance stopped during its last attempt", st.Status, st.ErrorDescription)
	}
	var state string
	var givenUp bool
	if err := f.pool.QueryRow(context.Background(), `SELECT state, coalesce((metadata->>'thumbd_given_up')::bool, false) FROM river_job
		WHERE kind = 'thumbd_task' AND args->>'token' = $1`, token).Scan(&state, &givenUp); err != nil {
		t.Fatal(err)
	}
	if state != "discarded" || !givenUp {
		t.Errorf("the task's job is %s (given up: %v), want discarded and given up", state, givenUp)
	}
	rcv.checkEvents(t, time.Second, "queued", "error", "saved")
}
