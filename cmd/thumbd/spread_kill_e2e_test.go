package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thumbd/thumbd/internal/frametest"
	"github.com/thumbd/thumbd/vtt"
)

// TestFarmSpreadSIGKILLMidPart runs a task of 600 images, six series of
// 100 (one of them a sprite of 5×5 sheets), on three instances of one
// PostgreSQL with the kept files in the S3 server. With
// THUMBD_SPREAD_IMAGES=25 each series is cut into four chunks: 24 parts.
// Once B has made a part and is making another, B is killed with SIGKILL;
// the killed part's lease runs out, River's rescuer makes it available
// again, and A or C makes it. The task completes once, with parts
// recorded on all three instances (the killed one not by B), its entries
// in the order and under the names of a task run whole, every image and
// sprite tile showing the right frame, each series' WebVTT file tiling
// the clip and naming its images, each manifest listing its frames, the
// bucket holding each file once, and the callbacks exactly queued, saved.
func TestFarmSpreadSIGKILLMidPart(t *testing.T) {
	f := newFarm(t)
	s3, src, pool := f.s3, f.src, f.pool
	settings := []string{"THUMBD_SPREAD_IMAGES=25", "THUMBD_FAILOVER_AFTER=5s"}

	type series struct {
		format string
		width  int
		sprite bool
	}
	all := []series{{"jpg", 96, false}, {"png", 64, false}, {"webp", 80, false}, {"jpg", 120, false}, {"jpg", 64, true}, {"png", 48, false}}
	const perSeries, interval = 100, 100 * time.Millisecond
	var formats []any
	for _, s := range all {
		q := map[string]any{"output": "thumbnails", "interval": interval.Seconds(), "width": s.width, "image_format": s.format}
		if s.sprite {
			q["sprite"], q["columns"], q["rows"] = 1, 5, 5
		}
		formats = append(formats, q)
	}
	procs := []*process{f.start(t, settings...), f.start(t, settings...), f.start(t, settings...)}
	a, b, c := procs[0], procs[1], procs[2]
	rcv := newHookReceiver(t, http.StatusOK)
	began := time.Now()
	token := startTask(t, a.base, map[string]any{"source": src, "format": formats, "callback_url": rcv.url}, "")
	const parts = 24
	waitParts(t, pool, token, parts)

	// Kill B once it has made a part and is making another.
	byB := maker(b)
	var killedPart int
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("B made no part and started no second one within 90 s")
		}
		var done int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM thumbd_part WHERE task = $1 AND made_by = $2`, token, byB).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done == 0 {
			continue
		}
		// B's running part: River records its client, named as
		// thumbd_part names B, in attempted_by.
		err := pool.QueryRow(context.Background(), `SELECT (args->>'part')::int FROM river_job j WHERE kind = 'thumbd_part' AND state = 'running' AND args->>'token' = $1
			AND attempted_by[array_length(attempted_by, 1)] = $2
			AND NOT EXISTS (SELECT 1 FROM thumbd_part p WHERE p.task = $1 AND p.part = (j.args->>'part')::int) LIMIT 1`, token, byB).Scan(&killedPart)
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

	st := waitStatus(t, a.base, token, 240*time.Second, "completed", "error")
	t.Logf("the task of 600 images completed %v after it started, %v after B was killed making part %d",
		time.Since(began).Round(100*time.Millisecond), time.Since(killed).Round(100*time.Millisecond), killedPart)
	if st.Status != "completed" {
		t.Fatalf("task %s: %v", st.Status, st.ErrorDescription)
	}

	// The entries of a task run whole: each series' images (or sheets),
	// then its VTT, in output order; every image shows its frame.
	var wantPaths []string
	for o, s := range all {
		if s.sprite {
			for i := range perSeries / 25 {
				wantPaths = append(wantPaths, fmt.Sprintf("thumbnails-%d/sprite_%04d.%s", o, i+1, s.format))
			}
		} else {
			for i := range perSeries {
				wantPaths = append(wantPaths, fmt.Sprintf("thumbnails-%d/thumb_%04d.%s", o, i+1, s.format))
			}
		}
		wantPaths = append(wantPaths, fmt.Sprintf("thumbnails-%d/thumbnails.vtt", o))
	}
	checkKeptImages(t, st, len(wantPaths))
	for i, im := range st.Images {
		if u, err := url.Parse(im.URL); err != nil || u.Path != "/storage/"+token+"/"+wantPaths[i] {
			t.Fatalf("entry %d is %s, want …/%s", i, im.URL, wantPaths[i])
		}
	}

	// Each series' VTT (read through C) tiles the clip and names its
	// images, or its sheets' tiles, each showing the frame at its cue's
	// start; its manifest lists the same frames.
	entry := 0
	for o, s := range all {
		files := perSeries
		if s.sprite {
			files = perSeries / 25
		}
		vttURL := st.Images[entry+files].URL
		code, body := get(t, c.base+mustPath(t, vttURL))
		if code != http.StatusOK {
			t.Fatalf("C serves %s: %d", vttURL, code)
		}
		cues, err := vtt.Parse(bytes.NewReader(body))
		if err != nil || len(cues) != perSeries {
			t.Fatalf("series %d: %d cues, %v; want %d", o, len(cues), err, perSeries)
		}
		sheets := map[string]image.Image{}
		for i, cue := range cues {
			start, end := time.Duration(i)*interval, time.Duration(i+1)*interval
			if cue.Start != start || cue.End != min(end, 10*time.Second) {
				t.Errorf("series %d cue %d: %v-%v, want %v-%v", o, i, cue.Start, cue.End, start, end)
			}
			if !s.sprite {
				if want := fmt.Sprintf("thumb_%04d.%s", i+1, s.format); cue.Text != want {
					t.Errorf("series %d cue %d names %q, want %q", o, i, cue.Text, want)
				}
				continue
			}
			var x, y, w, h int
			name := fmt.Sprintf("sprite_%04d.%s", i/25+1, s.format)
			if _, err := fmt.Sscanf(cue.Text, name+"#xywh=%d,%d,%d,%d", &x, &y, &w, &h); err != nil {
				t.Fatalf("series %d cue %d: %q, want a tile of %s: %v", o, i, cue.Text, name, err)
			}
			if k := i % 25; x != (k%5)*w || y != (k/5)*h || w != s.width {
				t.Errorf("series %d cue %d: xywh %d,%d,%d,%d", o, i, x, y, w, h)
			}
			if sheets[name] == nil {
				_, body := get(t, st.Images[entry+i/25].URL)
				img, _, err := frametest.Decode(body)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				sheets[name] = img
			}
			checkFrame(t, fmt.Sprintf("series %d tile %d", o, i), sheets[name], image.Rect(x, y, x+w, y+h), cue.Start.Seconds(), nil)
		}
		var man manifest
		code, body = get(t, st.Images[entry].ManifestURL)
		if code != http.StatusOK || json.Unmarshal(body, &man) != nil || len(man.Frames) != perSeries {
			t.Fatalf("series %d manifest (%s): %d, %d frames", o, st.Images[entry].ManifestURL, code, len(man.Frames))
		}
		for i, fr := range man.Frames {
			if fr.RequestedTime != (time.Duration(i)*interval).Seconds() || !strings.HasPrefix(cues[i].Text, fr.File) {
				t.Errorf("series %d manifest frame %d: %+v, cue %q", o, i, fr, cues[i].Text)
			}
			if !s.sprite {
				if reported := st.Images[entry+i].Time; reported == nil || *reported != fr.Time {
					t.Errorf("series %d image %d: status time %v, manifest %v", o, i, reported, fr.Time)
				}
			}
		}
		entry += files + 1
	}

	keys := s3.ListKeys(t, "kept", "files/"+token+"/")
	if want := len(st.Images) + len(all); len(keys) != want || len(slices.Compact(slices.Clone(keys))) != want {
		t.Errorf("the bucket holds %d files for the task, want %d (entries and manifests), each once", len(keys), want)
	}

	// Every part recorded once, on all three instances; the killed one
	// made again, not by B.
	by := f.partsMade(t, token, parts, procs...)
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

	// One task's callbacks: queued, then saved, once.
	rcv.checkEvents(t, time.Second, "queued", "saved")
}

// mustPath is the path of a URL.
func mustPath(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Path
}
