package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/thumbd/thumbd/internal/app"
)

// scrapeMetrics reads base/metrics with Prometheus' text parser.
func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of name's series with these label pairs: a
// counter's or gauge's value, a histogram's count; -1 when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetrics runs a task that completes (with a callback) and one that
// fails against the real wiring, and finds the counts moved on /metrics.
func TestMetrics(t *testing.T) {
	var hooks atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks.Add(1) }))
	defer rcv.Close()
	th := runThumbd(t, testConfig(t, nil))
	before := scrapeMetrics(t, th.base)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "thumbd_queue_depth", "tusd_uploads_created"} {
		if metricValue(before, name) < 0 {
			t.Errorf("%s is missing from /metrics", name)
		}
	}

	ok := startTask(t, th.base, thumbQuery(th.base+"/static/test_mini.mp4", map[string]any{"callback_url": rcv.URL}), "")
	if st := waitStatus(t, th.base, ok, 60*time.Second, "completed", "error"); st.Status != "completed" {
		t.Fatalf("task ended %s: %v", st.Status, st.ErrorDescription)
	}
	bad := startTask(t, th.base, thumbQuery(serveTestdata(t)+"/no-such-file.mp4", nil), "")
	if st := waitStatus(t, th.base, bad, 60*time.Second, "completed", "error"); st.Status != "error" {
		t.Fatalf("a task on a missing source ended %s", st.Status)
	}
	// Callbacks (queued, saved) are delivered after the task ends.
	var after map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after = scrapeMetrics(t, th.base)
		if metricValue(after, "thumbd_callback_deliveries_total", "event", "saved", "result", "delivered") >= 1 || time.Now().After(deadline) {
			break
		}
	}

	moved := func(name string, want float64, labels ...string) {
		t.Helper()
		b, a := metricValue(before, name, labels...), metricValue(after, name, labels...)
		if b < 0 || a < 0 || a-b != want {
			t.Errorf("%s%v went from %v to %v, want +%v", name, labels, b, a, want)
		}
	}
	moved("thumbd_tasks_started_total", 2)
	moved("thumbd_tasks_finished_total", 1, "outcome", "completed")
	moved("thumbd_tasks_finished_total", 1, "outcome", "error")
	moved("thumbd_task_duration_seconds", 1, "outcome", "completed")
	moved("thumbd_task_duration_seconds", 1, "outcome", "error")
	moved("thumbd_output_duration_seconds", 1, "kind", "thumbnail")
	moved("thumbd_output_duration_seconds", 1, "kind", "thumbnails")
	moved("thumbd_callback_deliveries_total", 1, "event", "queued", "result", "delivered")
	moved("thumbd_callback_deliveries_total", 1, "event", "saved", "result", "delivered")
	moved("thumbd_callback_attempts_total", 1, "event", "saved", "result", "delivered")
	if hooks.Load() != 2 {
		t.Errorf("the receiver got %d callbacks, want 2", hooks.Load())
	}
	// The thumbnail, the 3 images every 2 s of the 6 s sample and their
	// VTT, kept by thumbd.
	if d := metricValue(after, "thumbd_files_stored_total", "storage", "local", "result", "ok") - metricValue(before, "thumbd_files_stored_total", "storage", "local", "result", "ok"); d < 4 {
		t.Errorf("thumbd_files_stored_total{local,ok} moved by %v, want at least 4", d)
	}
	if d := metricValue(after, "thumbd_source_bytes_read_total") - metricValue(before, "thumbd_source_bytes_read_total"); d < 10_000 {
		t.Errorf("thumbd_source_bytes_read_total moved by %v, want the sample's bytes read", d)
	}
	if v := metricValue(after, "thumbd_queue_depth"); v != 0 {
		t.Errorf("thumbd_queue_depth = %v with nothing queued", v)
	}
	if v := metricValue(after, "thumbd_ffmpeg_processes", "tool", "ffmpeg"); v != 0 {
		t.Errorf("thumbd_ffmpeg_processes{ffmpeg} = %v with no task running", v)
	}
}

// TestMetricsOff checks THUMBD_METRICS=false.
func TestMetricsOff(t *testing.T) {
	th := runThumbd(t, testConfig(t, func(c *app.Config) { c.Metrics = false }))
	resp, err := http.Get(th.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics with metrics off: %s, want 404", resp.Status)
	}
}
