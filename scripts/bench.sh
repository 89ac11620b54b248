#!/usr/bin/env bash
# bench.sh runs both benchmarks and prints their Markdown tables:
#   - the API cases (bench/api): a burst of single-thumbnail tasks, one
#     thumbnail alone, /v1/status throughput under vegeta, a source from an
#     origin that ignores Range; each against a baseline measured in the
#     same run;
#   - the long sources (bench): thumbd's extraction planner against three
#     ffmpeg-only baselines. The first run generates its sources with ffmpeg
#     into bench/.cache (git-ignored; about 3 GB, and some ten minutes on 2
#     cores for the 60-minute source); later runs reuse them.
# -cases LIST (or none) chooses API cases; every other argument goes to the
# long-source benchmark, and -sources none skips it:
#   scripts/bench.sh -cases burst,status -sources none
#   scripts/bench.sh -cases none -sources clip30 -md results.md
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cases=all
long=()
while [ $# -gt 0 ]; do
	case "$1" in
	-cases | --cases) cases=$2; shift 2 ;;
	-cases=* | --cases=*) cases=${1#*=}; shift ;;
	*) long+=("$1"); shift ;;
	esac
done
skip_long=false
for i in "${!long[@]}"; do
	if [ "${long[$i]}" = "-sources=none" ] || { [ "${long[$i]}" = "-sources" ] && [ "${long[$((i + 1))]:-}" = "none" ]; }; then
		skip_long=true
	fi
done

bash scripts/deps.sh ffmpeg
export PATH="$(go env GOPATH)/bin:$PATH"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ "$cases" != none ]; then
	# vegeta, the load tool of the status case: a tool, not a dependency of
	# thumbd's module.
	if ! command -v vegeta >/dev/null; then
		go install github.com/tsenart/vegeta/v12@v12.13.0
	fi
	go run ./bench/api -cases "$cases"
fi
if ! $skip_long; then
	go run ./bench "${long[@]}"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
