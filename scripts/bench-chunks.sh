#!/usr/bin/env bash
# bench-chunks.sh measures what cutting a long series into chunks costs one
# instance: the same task (one series of 600 images, every 0.1 s of a 60 s
# 720p clip, 160 px jpg) runs on one thumbd on PostgreSQL made whole
# (THUMBD_SPREAD_IMAGES=0) and in chunks (THUMBD_SPREAD_IMAGES=50 and 150),
# RUNS times each, interleaved. It prints each way's median wall time and
# CPU time (thumbd and its ffmpeg processes, user + system, from
# /usr/bin/time: the server runs one task and stops) and their ratios to
# the whole run's, measured in the same run. On a farm the chunks run on
# every instance at once; this is their price on one.
# Needs PostgreSQL (THUMBD_TEST_DATABASE_URL, scripts/test.sh's default
# otherwise) and ffmpeg. Usage: scripts/bench-chunks.sh [RUNS]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-3}
db=${THUMBD_TEST_DATABASE_URL:-postgres://thumbd:thumbd@127.0.0.1:5432/thumbd_test?sslmode=disable}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/thumbd" ./cmd/thumbd
ffmpeg -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=25 -t 60 -c:v libx264 -preset veryfast -g 50 -pix_fmt yuv420p "$work/long.mp4"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# once SPREAD_IMAGES: runs the task on a fresh schema; prints "wall cpu".
once() {
	local schema="bench_chunks_$$_$RANDOM" data="$work/data" pid tok task st t0 t1 port base
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	base=http://127.0.0.1:$port
	psql -q "$db" -c "CREATE SCHEMA $schema"
	rm -rf "$data" && mkdir -p "$data"
	THUMBD_ADDR=127.0.0.1:$port THUMBD_DATA_DIR="$data" THUMBD_SOURCE_DIRS="$work" \
		THUMBD_DATABASE_URL="${db}&search_path=$schema" THUMBD_SPREAD_IMAGES=$1 THUMBD_WORKERS=2 \
		/usr/bin/time -o "$work/time" -f "%U %S" "$work/thumbd" >"$work/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { echo "thumbd did not start:" >&2; cat "$work/log" >&2; exit 1; }
		curl -sf "$base/healthz" >/dev/null && break
		sleep 0.1
	done
	tok=$(curl -s -d api_key=bench-chunks-key "$base/v1/access_token" | json 'd["token"]')
	task=$(curl -s -d "token=$tok" "$base/v1/create_task" | json 'd["task_token"]')
	t0=$(date +%s.%N)
	curl -s --data-urlencode "task_token=$task" --data-urlencode \
		"query={\"query\":{\"source\":\"file://$work/long.mp4\",\"format\":[{\"output\":\"thumbnails\",\"interval\":0.1,\"width\":160,\"image_format\":\"jpg\"}]}}" \
		"$base/v1/start_encode2" >/dev/null
	while :; do
		st=$(curl -s -d "task_tokens=$task" "$base/v1/status" | json 'list(d["statuses"].values())[0]["status"]')
		[ "$st" = completed ] && break
		[ "$st" = error ] && { echo "the task failed:" >&2; cat "$work/log" >&2; exit 1; }
		sleep 0.05
	done
	t1=$(date +%s.%N)
	pkill -TERM -P "$pid" # thumbd, the child of time; time then writes its CPU
	wait "$pid" || true
	psql -q "$db" -c "DROP SCHEMA $schema CASCADE" 2>/dev/null
	echo "$t0 $t1 $(tail -1 "$work/time")" | awk '{printf "%.3f %.3f\n", $2 - $1, $3 + $4}'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
declare -A walls cpus
ways=(0 50 150)
for ((i = 0; i < runs; i++)); do
	for w in "${ways[@]}"; do
		read -r wall cpu < <(once "$w")
		walls[$w]+="$wall "
		cpus[$w]+="$cpu "
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
w0=$(echo "${walls[0]}" | median)
c0=$(echo "${cpus[0]}" | median)
echo
echo "| THUMBD_SPREAD_IMAGES | parts | wall (median of $runs) | CPU | wall ratio | CPU ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for w in "${ways[@]}"; do
	wall=$(echo "${walls[$w]}" | median)
	cpu=$(echo "${cpus[$w]}" | median)
	parts=1
	[ "$w" -gt 0 ] && parts=$(((600 + w - 1) / w))
	awk -v w="$w" -v p="$parts" -v wall="$wall" -v cpu="$cpu" -v w0="$w0" -v c0="$c0" \
		'BEGIN { printf "| %s | %d | %.2f s | %.2f s | %.2f | %.2f |\n", (w == 0 ? "0 (whole)" : w), p, wall, cpu, wall / w0, cpu / c0 }'
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
