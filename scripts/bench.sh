#!/usr/bin/env bash
# bench.sh runs the benchmark (bench/main.go): the API cases (a burst of
# single-thumbnail tasks, one thumbnail alone, /v1/status throughput under
# vegeta, a source from an origin that ignores Range), each against a
# baseline measured in the same run, then thumbd's extraction planner
# against three ffmpeg-only baselines on long sources. The first run
# generates its sources with ffmpeg into bench/.cache (git-ignored; about
# 3 GB, and some ten minutes on 2 cores for the 60-minute source); later
# runs reuse them. It prints Markdown tables. Arguments go to the
# benchmark: scripts/bench.sh -cases burst,status
#            scripts/bench.sh -sources clip30 -md results.md
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh ffmpeg
export PATH="$(go env GOPATH)/bin:$PATH"
# vegeta, the load tool of the status case: a tool, not a dependency of
# thumbd's module.
if ! command -v vegeta >/dev/null; then
	go install github.com/tsenart/vegeta/v12@v12.13.0
fi
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
go run ./bench "$@"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
