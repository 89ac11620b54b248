package app

import (
	"context"
	"net/http"

	"github.com/thumbd/thumbd/callback"
	"github.com/thumbd/thumbd/engine"
	"github.com/thumbd/thumbd/ffmpeg"
	"github.com/thumbd/thumbd/internal/metrics"
	"github.com/thumbd/thumbd/source"
	"github.com/thumbd/thumbd/upload"
)

// observers are what the components report their metrics to, and the
// /metrics handler: all nil when THUMBD_METRICS is off.
type observers struct {
	m         *metrics.Metrics
	engine    engine.Observer
	processes ffmpeg.ProcessObserver
	callbacks callback.Observer
	handler   http.Handler
}

// newObservers builds the metrics registry when on is set.
func newObservers(on bool) observers {
	if !on {
		return observers{}
	}
	m := metrics.New()
	return observers{m: m, engine: m, processes: m, callbacks: m, handler: m.Handler()}
}

// read registers the values read at each scrape: the queue's depth, the
// bytes read from sources, tusd's counts of direct uploads.
func (o observers) read(queue engine.Queue, sources *source.Gateway, uploads *upload.Server) {
	if o.m == nil {
		return
	}
	switch q := queue.(type) {
	case interface{ Len() int }: // engine.MemoryQueue
		o.m.QueueDepth(func(context.Context) (int, error) { return q.Len(), nil })
	case interface {
		Len(context.Context) (int, error)
	}: // riverq.Queue
		o.m.QueueDepth(q.Len)
	}
	o.m.SourceBytes(sources.BytesRead)
	o.m.Uploads(uploads.Metrics())
}
