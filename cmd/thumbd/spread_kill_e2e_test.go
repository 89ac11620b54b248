package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFarmSpreadSIGKILLMidPart spreads a task of six series into one part
// per output and kills the instance running its parts (B, alone until
// then) with SIGKILL while it makes one of them. Two other instances
// start; the killed part's lease runs out, River's rescuer makes it
// available again, and another instance makes it: the task completes
// once, every part is recorded once and the killed one not by B, every
// image shows the right frame, the bucket holds each file once, and the
// callbacks are exactly queued, saved.
func TestFarmSpreadSIGKILLMidPart(t *testing.T) {
	f := newFarm(t)
	s3, src, pool := f.s3, f.src, f.pool
	settings := []string{"THUMBD_SPREAD_OUTPUTS=1", "THUMBD_FAILOVER_AFTER=5s"}

	const outputs = 6
	var formats []any
	for i := range outputs {
		formats = append(formats, map[string]any{"output": "thumbnails", "interval": 1, "width": 96 + 16*i, "image_format": "jpg"})
	}
	b := f.start(t, settings...)
	byB := maker(b)
	rcv := newHookReceiver(t, http.StatusOK)
	token := startTask(t, b.base, map[string]any{"source": src, "format": formats, "callback_url": rcv.url}, "")
	rcv.waitForms(t, 1) // queued, delivered by B

	// Kill B once it has made a part and is making another.
	var killedPart int
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("B made no part and started no second one within a minute")
		}
		var done int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM thumbd_part WHERE task = $1`, token).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done == 0 {
			continue
		}
		err := pool.QueryRow(context.Background(), `SELECT (args->>'part')::int FROM river_job j WHERE kind = 'thumbd_part' AND state = 'running' AND args->>'token' = $1
			AND NOT EXISTS (SELECT 1 FROM thumbd_part p WHERE p.task = $1 AND p.part = (j.args->>'part')::int) LIMIT 1`, token).Scan(&killedPart)
		if err == nil {
			break
		}
	}
	b.kill9(t)
	killed := time.Now()
	var recorded bool
	if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM thumbd_part WHERE task = $1 AND part = $2)`, token, killedPart).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded {
		t.Fatalf("part %d ended just before the kill: the kill did not land mid-part", killedPart)
	}
	a := f.start(t, settings...)
	c := f.start(t, settings...)

	st := waitStatus(t, a.base, token, 180*time.Second, "completed", "error")
	t.Logf("the task completed %v after B was killed making part %d", time.Since(killed).Round(100*time.Millisecond), killedPart)
	if st.Status != "completed" {
		t.Fatalf("task %s: %v", st.Status, st.ErrorDescription)
	}
	// Each series: its images, then its VTT, in output order.
	perOutput := len(st.Images) / outputs
	if perOutput < 3 || len(st.Images) != perOutput*outputs {
		t.Fatalf("%d status entries for %d series, want the same number for each", len(st.Images), outputs)
	}
	checkKeptImages(t, st, perOutput*outputs)
	for i, im := range st.Images {
		o, n := i/perOutput, i%perOutput
		want := fmt.Sprintf("/storage/%s/thumbnails-%d/thumb_%04d.jpg", token, o, n+1)
		if n == perOutput-1 {
			want = fmt.Sprintf("/storage/%s/thumbnails-%d/thumbnails.vtt", token, o)
		}
		if u, err := url.Parse(im.URL); err != nil || u.Path != want {
			t.Errorf("entry %d is %s, want …%s", i, im.URL, want)
		}
	}
	keys := s3.ListKeys(t, "kept", "files/"+token+"/")
	if want := len(st.Images) + outputs; len(keys) != want || len(slices.Compact(slices.Clone(keys))) != want {
		t.Errorf("the bucket holds %d files for the task, want %d (entries and manifests), each once", len(keys), want)
	}
	// Served by C as well.
	if u, _ := url.Parse(st.Images[0].URL); u != nil {
		if code, _ := get(t, c.base+u.Path); code != 200 {
			t.Errorf("C serves %s: %d", u.Path, code)
		}
	}

	// Every part recorded once; the killed one made again, not by B.
	rows, err := pool.Query(context.Background(), `SELECT part, made_by FROM thumbd_part WHERE task = $1 ORDER BY part`, token)
	if err != nil {
		t.Fatal(err)
	}
	var parts []int
	by := map[int]string{}
	for rows.Next() {
		var p int
		var m string
		if err := rows.Scan(&p, &m); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
		by[p] = m
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(parts, []int{0, 1, 2, 3, 4, 5}) {
		t.Errorf("parts recorded %v, want 0 to 5 once each", parts)
	}
	if by[killedPart] == byB || by[killedPart] == "" {
		t.Errorf("the killed part %d was recorded by %q, want another instance than B (%s)", killedPart, by[killedPart], byB)
	}
	var state string
	var attempt int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		// River records a job's end a moment after the part's.
		if err := pool.QueryRow(context.Background(), `SELECT state, attempt FROM river_job WHERE kind = 'thumbd_part' AND args->>'token' = $1 AND (args->>'part')::int = $2`, token, killedPart).Scan(&state, &attempt); err != nil {
			t.Fatal(err)
		}
		if state != "running" || time.Now().After(deadline) {
			break
		}
	}
	if state != "completed" || attempt != 2 {
		t.Errorf("the killed part's job: %s after %d attempts, want completed after 2 (B's, then the rescue's)", state, attempt)
	}

	// One task's callbacks: queued (before the kill), then saved, once.
	rcv.waitForms(t, 2)
	time.Sleep(time.Second) // nothing more may come
	var events []string
	for _, f := range rcv.waitForms(t, 2) {
		events = append(events, f.Get("event"))
	}
	if strings.Join(events, ",") != "queued,saved" {
		t.Errorf("callbacks %v, want queued, saved", events)
	}
}
