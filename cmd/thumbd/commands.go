package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// command is one of thumbd's subcommands. main runs it with the arguments
// after its name; it returns the process's exit code.
type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, env environment) int
}

// environment is what a subcommand may touch of the process: tests pass
// their own.
type environment struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// commands lists the subcommands. "thumbd" alone, or followed by flags,
// serves the API.
func commands() []command {
	return []command{
		{"run", "run one Qencode query with the engine, without the server: thumbd run -h", runCommand},
		{"healthcheck", "exit 0 when the thumbd at THUMBD_ADDR answers /readyz (for container healthchecks)", healthcheck},
		{"version", "print the version and the source revision thumbd was built from", version},
	}
}

// subcommand runs the subcommand args names, if it names one.
func subcommand(ctx context.Context, args []string, env environment) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	for _, c := range commands() {
		if args[0] == c.name {
			return c.run(ctx, args[1:], env), true
		}
	}
	if args[0] == "help" {
		printCommands(env.stdout)
		return 0, true
	}
	if !strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(env.stderr, "thumbd: unknown command %q\n\n", args[0])
		printCommands(env.stderr)
		return 2, true
	}
	return 0, false
}

// printCommands prints a line for each subcommand.
func printCommands(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n  thumbd [flags]              serve the API (thumbd -h lists every setting)\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  thumbd %-20s %s\n", c.name, c.usage)
	}
}

// healthcheck GETs /readyz of the thumbd this environment configures and
// exits 0 if it answers 200, 1 otherwise. The address comes from
// THUMBD_ADDR (as the server reads it); an unspecified host like 0.0.0.0
// is probed on loopback. Images without curl or wget use it as their
// HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, env environment) int {
	fs := flag.NewFlagSet("thumbd healthcheck", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	addr := env.getenv("THUMBD_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	rawURL := fs.String("url", "", "URL to GET; empty: /readyz at the address of -addr")
	fs.StringVar(&addr, "addr", addr, "address thumbd listens on (env THUMBD_ADDR)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: thumbd healthcheck [flags]\n\nExits 0 when thumbd answers GET /readyz with 200, else 1.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	target := *rawURL
	if target == "" {
		u, err := probeURL(addr)
		if err != nil {
			fmt.Fprintln(env.stderr, "thumbd healthcheck:", err)
			return 2
		}
		target = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintln(env.stderr, "thumbd healthcheck:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(env.stderr, "thumbd healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(env.stderr, "thumbd healthcheck: %s: %s %s\n", target, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(env.stdout, "%s: %s\n", target, strings.TrimSpace(string(body)))
	return 0
}

// probeURL is the /readyz URL of a server listening on addr, with an
// unspecified host (all interfaces) replaced by loopback.
func probeURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("THUMBD_ADDR %q: %v", addr, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// version prints the module version and the VCS revision the binary was
// built from, as Go recorded them.
func version(_ context.Context, args []string, env environment) int {
	if len(args) > 0 {
		fmt.Fprintf(env.stderr, "thumbd version takes no arguments, got %q\n", args)
		return 2
	}
	fmt.Fprintln(env.stdout, versionLine(debug.ReadBuildInfo))
	return 0
}

// versionLine describes the build: "thumbd v1.2.3 (rev 0123abcd, 2025-01-02T03:04:05Z, modified) go1.26".
func versionLine(read func() (*debug.BuildInfo, bool)) string {
	info, ok := read()
	if !ok {
		return "thumbd (no build information)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "rev "+rev)
	} else {
		parts = append(parts, "no VCS revision recorded")
	}
	if at != "" {
		parts = append(parts, at)
	}
	if modified {
		parts = append(parts, "modified")
	}
	return fmt.Sprintf("thumbd %s (%s) %s", v, strings.Join(parts, ", "), info.GoVersion)
}
