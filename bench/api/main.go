// Command api measures thumbd as test suites meet it: a real thumbd
// (internal/app.Run: SQLite store, River queue, source gateway) on
// 127.0.0.1, driven over HTTP, each case against a baseline measured in
// the same run, and prints a Markdown table with the targets met or
// missed. It is a program of its own so that the long-source benchmark
// (go run ./bench), which measures its children's memory, does not carry
// the whole server.
//
//	go run ./bench/api                      # every case
//	go run ./bench/api -cases burst,status  # some
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
)

func main() {
	only := flag.String("cases", "all", "comma-separated cases to run: single,burst,status,norange (status runs burst first)")
	cache := flag.String("cache", "bench/.cache", "where the long-source benchmark keeps its sources (norange reads one)")
	md := flag.String("md", "", "also write the table to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process, thumbd included, to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/api:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench/api:", err)
			os.Exit(1)
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "Machine: %d cores; load average before the run: %s.\n\n", runtime.NumCPU(), loadAvg())
	err := runCases(ctx, *cache, *only, &report)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/api:", err)
		os.Exit(1)
	}
	fmt.Print(report.String())
	if *md != "" {
		if err := os.WriteFile(*md, []byte(report.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench/api:", err)
			os.Exit(1)
		}
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
