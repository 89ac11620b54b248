#!/usr/bin/env bash
# bench-tasks.sh measures whole tasks, for sizing: each shape runs as
# `thumbd run` (probe, index, plan, ffmpeg, files written; no HTTP or
# database) RUNS times, and the CPU time of thumbd and its ffmpeg children
# (user + system) gives tasks per hour per core = 3600 / CPU seconds a task.
# CPU time, unlike wall time, holds on a loaded machine. The sources are
# scripts/bench.sh's (bench/.cache; run `scripts/bench.sh -sources
# clip30,tenmin1080 -methods thumbd-exact` once to make them) and the
# embedded 10 s sample. Usage: scripts/bench-tasks.sh [RUNS]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-5}
bin=$(mktemp -d)/thumbd
go build -o "$bin" ./cmd/thumbd
out=$(mktemp -d)
trap 'rm -rf "$out" "$out.time" "$out.err" "$(dirname "$bin")"' EXIT

clip30=$(ls bench/.cache/clip30-*.mp4 2>/dev/null | head -1 || true)
tenmin=$(ls bench/.cache/tenmin1080-*.mp4 2>/dev/null | head -1 || true)

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
echo
echo "| shape | accuracy | runs | CPU per task | wall per task | tasks per hour per core |"
echo "|---|---|---:|---:|---:|---:|"

# shape NAME ACCURACY RUNS SOURCE FLAGS...
shape() {
	local name=$1 acc=$2 n=$3 src=$4
	shift 4
	[ -f "$src" ] || { echo "| $name | $acc | skipped: no $src | | | |"; return; }
	local cpu=0 wall=0 i t
	for ((i = 0; i < n; i++)); do
		rm -rf "$out"/*
		THUMBD_ACCURACY=$acc /usr/bin/time -o "$out.time" -f "%e %U %S" "$bin" run -progress none -out "$out" -source "$src" "$@" >/dev/null 2>"$out.err" ||
			{ echo "thumbd run failed on $src:" >&2; cat "$out.err" >&2; exit 1; }
		t=$(tail -1 "$out.time")
		wall=$(echo "$wall $t" | awk '{print $1 + $2}')
		cpu=$(echo "$cpu $t" | awk '{print $1 + $3 + $4}')
	done
	awk -v name="$name" -v acc="$acc" -v n="$n" -v cpu="$cpu" -v wall="$wall" \
		'BEGIN { c = cpu / n; printf "| %s | %s | %d | %.2f s | %.2f s | %d |\n", name, acc, n, c, wall / n, 3600 / c }'
}

sample=static/test_mini.mp4
shape "1 thumbnail, 10 s 640x360 sample" exact "$runs" "$sample" -times 50% -size 320
shape "1 thumbnail, 30 s 720p clip" exact "$runs" "$clip30" -times 50% -size 320
shape "series every 1 s + VTT, 30 s 720p clip (30 images)" exact "$runs" "$clip30" -interval 1 -size 320 -format jpg
shape "series every 1 s + VTT, 30 s 720p clip (30 images)" keyframe "$runs" "$clip30" -interval 1 -size 320 -format jpg
shape "series every 4 s + VTT, 10 min 1080p (150 images)" exact 1 "$tenmin" -interval 4 -size 320 -format jpg
shape "series every 4 s + VTT, 10 min 1080p (150 images)" keyframe "$runs" "$tenmin" -interval 4 -size 320 -format jpg
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
