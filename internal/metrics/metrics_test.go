package metrics

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/thumbd/thumbd/engine"
)

// scrape serves the metrics and parses them with Prometheus' own parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, rec.Body)
	}
	return fams
}

// value returns the value of the series of name with these labels (a
// counter, gauge or untyped value, or a histogram's count), and whether
// there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestObservers(t *testing.T) {
	m := New()
	depth := 3
	m.QueueDepth(func(context.Context) (int, error) { return depth, nil })
	var read int64 = 1000
	m.SourceBytes(func() int64 { return read })

	before := scrape(t, m)
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"thumbd_tasks_started_total", nil},
		{"thumbd_tasks_finished_total", []string{"outcome", "error"}},
		{"thumbd_output_duration_seconds", []string{"kind", "mp4"}},
		{"thumbd_callback_deliveries_total", []string{"event", "saved", "result", "failed"}},
		{"thumbd_files_stored_total", []string{"storage", "s3", "result", "error"}},
		{"thumbd_ffmpeg_processes", []string{"tool", "ffprobe"}},
		{"go_goroutines", nil},
		{"process_cpu_seconds_total", nil},
	} {
		if v, ok := value(before, s.name, s.labels...); !ok || (v != 0 && s.name[:3] != "go_" && s.name[:8] != "process_") {
			t.Errorf("%s%v before anything happened: %v, present %v; want present at 0", s.name, s.labels, v, ok)
		}
	}

	m.TaskQueued()
	m.TaskQueued()
	m.TaskEnded(engine.StateCompleted, 2*time.Second)
	m.TaskEnded(engine.StateError, time.Second)
	m.OutputMade(engine.KindThumbnails, 1500*time.Millisecond)
	m.FileStored("local", nil)
	m.FileStored("s3", errors.New("503"))
	m.ProcessStarted("ffmpeg")
	m.ProcessStarted("ffmpeg")
	m.ProcessEnded("ffmpeg")
	m.CallbackDelivered(engine.EventSaved, "failed", 4)
	depth, read = 1, 5000

	after := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"thumbd_tasks_started_total", nil, 2},
		{"thumbd_tasks_finished_total", []string{"outcome", "completed"}, 1},
		{"thumbd_tasks_finished_total", []string{"outcome", "error"}, 1},
		{"thumbd_task_duration_seconds", []string{"outcome", "completed"}, 1},
		{"thumbd_output_duration_seconds", []string{"kind", "thumbnails"}, 1},
		{"thumbd_output_duration_seconds", []string{"kind", "thumbnail"}, 0},
		{"thumbd_files_stored_total", []string{"storage", "local", "result", "ok"}, 1},
		{"thumbd_files_stored_total", []string{"storage", "s3", "result", "error"}, 1},
		{"thumbd_ffmpeg_processes", []string{"tool", "ffmpeg"}, 1},
		{"thumbd_callback_deliveries_total", []string{"event", "saved", "result", "failed"}, 1},
		{"thumbd_callback_attempts_total", []string{"event", "saved", "result", "failed"}, 4},
		{"thumbd_queue_depth", nil, 1},
		{"thumbd_source_bytes_read_total", nil, 5000},
	} {
		if got, ok := value(after, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	h := after["thumbd_task_duration_seconds"].Metric
	for _, s := range h {
		if s.Label[0].GetValue() == "completed" && s.Histogram.GetSampleSum() != 2 {
			t.Errorf("task duration sum %v, want 2", s.Histogram.GetSampleSum())
		}
	}
}

// TestFailingQueueDepth checks that a queue that cannot be counted leaves
// only its own metric out.
func TestFailingQueueDepth(t *testing.T) {
	m := New()
	m.QueueDepth(func(context.Context) (int, error) { return 0, errors.New("database is gone") })
	m.TaskQueued()
	fams := scrape(t, m)
	if _, ok := value(fams, "thumbd_queue_depth"); ok {
		t.Error("thumbd_queue_depth served although the count failed")
	}
	if v, ok := value(fams, "thumbd_tasks_started_total"); !ok || v != 1 {
		t.Errorf("thumbd_tasks_started_total = %v (present %v), want 1", v, ok)
	}
}
