// Package metrics keeps thumbd's Prometheus metrics: one registry, built
// once by internal/app, with the Go and process collectors and thumbd's
// own. The components report to it through small interfaces each of them
// owns (engine.Observer, ffmpeg.ProcessObserver, callback.Observer), which
// *Metrics implements; values the components already hold (queue depth,
// source bytes read, tusd's upload counts) are read when Prometheus
// scrapes. Handler serves the registry at /metrics. The engine and the
// other components never import Prometheus.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	tusd "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/prometheuscollector"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
)

// Metrics is thumbd's registry and its collectors. It implements
// engine.Observer, ffmpeg.ProcessObserver and callback.Observer.
type Metrics struct {
	reg *prometheus.Registry

	tasksStarted   prometheus.Counter
	tasksFinished  *prometheus.CounterVec   // outcome
	taskDuration   *prometheus.HistogramVec // outcome
	outputDuration *prometheus.HistogramVec // kind
	filesStored    *prometheus.CounterVec   // storage, result
	processes      *prometheus.GaugeVec     // tool
	callbacks      *prometheus.CounterVec   // event, result
	callbackTries  *prometheus.CounterVec   // event, result
}

var (
	_               engine.Observer        = (*Metrics)(nil)
	_               ffmpeg.ProcessObserver = (*Metrics)(nil)
	_               callback.Observer      = (*Metrics)(nil)
	durationBuckets                        = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	outcomes                               = []engine.State{engine.StateCompleted, engine.StateError}
	outputKinds                            = []engine.OutputKind{engine.KindThumbnail, engine.KindThumbnails, engine.KindMP4, engine.KindWebM}
	callbackEvents                         = []engine.EventKind{engine.EventQueued, engine.EventError, engine.EventSaved}
	callbackResults                        = []string{"delivered", "failed", "refused", "stopped"}
	storages                               = []string{"local", "s3"}
	results                                = []string{"ok", "error"}
	tools                                  = []string{"ffmpeg", "ffprobe"}
)

// New returns the metrics of one thumbd process, with the Go runtime's and
// the process's collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		tasksStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "thumbd_tasks_started_total", Help: "Tasks started (start_encode2 accepted them and they were queued).",
		}),
		tasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thumbd_tasks_finished_total", Help: "Tasks that ended, by outcome: completed or error.",
		}, []string{"outcome"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "thumbd_task_duration_seconds", Help: "Time from a worker taking up a task to its end, by outcome.",
			Buckets: durationBuckets,
		}, []string{"outcome"}),
		outputDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "thumbd_output_duration_seconds", Help: "Time from the start of a task's outputs to this output being made, by output kind (thumbnail, thumbnails, mp4, webm).",
			Buckets: durationBuckets,
		}, []string{"kind"}),
		filesStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thumbd_files_stored_total", Help: "Output files uploaded to destinations (storage s3) or kept by thumbd (storage local), by result: ok or error.",
		}, []string{"storage", "result"}),
		processes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "thumbd_ffmpeg_processes", Help: "ffmpeg and ffprobe processes running now, by tool.",
		}, []string{"tool"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thumbd_callback_deliveries_total", Help: "Callback deliveries that ended, by event and result: delivered (a 2xx reply came), failed (retried until THUMBD_CALLBACK_RETRY without one), refused (the network guard refused its address) or stopped (thumbd stopped first).",
		}, []string{"event", "result"}),
		callbackTries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "thumbd_callback_attempts_total", Help: "Attempts made by the callback deliveries that ended, by event and result.",
		}, []string{"event", "result"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.tasksStarted, m.tasksFinished, m.taskDuration, m.outputDuration,
		m.filesStored, m.processes, m.callbacks, m.callbackTries,
	)
	// Every series exists from the start, at 0, so that rates and
	// increases see the first event.
	for _, o := range outcomes {
		m.tasksFinished.WithLabelValues(string(o))
		m.taskDuration.WithLabelValues(string(o))
	}
	for _, k := range outputKinds {
		m.outputDuration.WithLabelValues(string(k))
	}
	for _, s := range storages {
		for _, r := range results {
			m.filesStored.WithLabelValues(s, r)
		}
	}
	for _, t := range tools {
		m.processes.WithLabelValues(t)
	}
	for _, e := range callbackEvents {
		for _, r := range callbackResults {
			m.callbacks.WithLabelValues(string(e), r)
			m.callbackTries.WithLabelValues(string(e), r)
		}
	}
	return m
}

// Registry returns the registry, for collectors of other components.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format (or OpenMetrics
// when asked). A collector that fails leaves its metrics out and the rest
// is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}

// QueueDepth has thumbd_queue_depth read from depth at each scrape: the
// tasks waiting to run (not those running).
func (m *Metrics) QueueDepth(depth func(ctx context.Context) (int, error)) {
	m.reg.MustRegister(&funcGauge{
		desc: prometheus.NewDesc("thumbd_queue_depth", "Tasks waiting in the queue to run (not counting those running); with PostgreSQL, those of every instance.", nil, nil),
		read: depth,
	})
}

// SourceBytes has thumbd_source_bytes_read_total read from total at each
// scrape: bytes read from sources (origins, objects, files, uploads).
func (m *Metrics) SourceBytes(total func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "thumbd_source_bytes_read_total", Help: "Bytes read from sources: origins, s3:// objects, files and uploads.",
	}, func() float64 { return float64(total()) }))
}

// Uploads registers tusd's metrics of the direct uploads (tusd_*):
// uploads created, finished and terminated, bytes received, errors by
// status.
func (m *Metrics) Uploads(tus tusd.Metrics) {
	m.reg.MustRegister(prometheuscollector.New(tus))
}

// TaskQueued implements engine.Observer.
func (m *Metrics) TaskQueued() { m.tasksStarted.Inc() }

// TaskEnded implements engine.Observer.
func (m *Metrics) TaskEnded(outcome engine.State, took time.Duration) {
	m.tasksFinished.WithLabelValues(string(outcome)).Inc()
	m.taskDuration.WithLabelValues(string(outcome)).Observe(took.Seconds())
}

// OutputMade implements engine.Observer.
func (m *Metrics) OutputMade(kind engine.OutputKind, took time.Duration) {
	m.outputDuration.WithLabelValues(string(kind)).Observe(took.Seconds())
}

// FileStored implements engine.Observer.
func (m *Metrics) FileStored(storage string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.filesStored.WithLabelValues(storage, result).Inc()
}

// ProcessStarted implements ffmpeg.ProcessObserver.
func (m *Metrics) ProcessStarted(tool string) { m.processes.WithLabelValues(tool).Inc() }

// ProcessEnded implements ffmpeg.ProcessObserver.
func (m *Metrics) ProcessEnded(tool string) { m.processes.WithLabelValues(tool).Dec() }

// CallbackDelivered implements callback.Observer.
func (m *Metrics) CallbackDelivered(event engine.EventKind, result string, attempts int) {
	m.callbacks.WithLabelValues(string(event), result).Inc()
	m.callbackTries.WithLabelValues(string(event), result).Add(float64(attempts))
}

// funcGauge is a gauge read at each scrape from a function that may fail
// (a database query): a failure leaves the metric out of that scrape.
type funcGauge struct {
	desc *prometheus.Desc
	read func(ctx context.Context) (int, error)
}

func (g *funcGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *funcGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := g.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(g.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n))
}
