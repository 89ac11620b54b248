// Command thumbd is a self-hosted thumbnail engine that speaks the Qencode
// transcoding API. See docs/api.md for the API and docs/configuration.md for every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/thumbd/thumbd/internal/app"
)

func main() {
	env := environment{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if code, ok := subcommand(context.Background(), os.Args[1:], env); ok {
		os.Exit(code)
	}
	cfg, err := app.LoadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "thumbd:", err)
		os.Exit(2)
	}
	log := app.NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg, log, nil); err != nil {
		log.Error("thumbd stopped", "err", err)
		os.Exit(1)
	}
}
