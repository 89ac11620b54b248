package app

import (
	"io"
	"log/slog"
)

// NewLogger returns the logger of cfg's level and format, writing to w:
// logfmt text, or one JSON object a line with THUMBD_LOG_FORMAT=json.
func NewLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
