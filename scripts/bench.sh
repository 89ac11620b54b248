#!/usr/bin/env bash
# bench.sh runs the extraction benchmark (bench/main.go). The first run
# generates its sources with ffmpeg into bench/.cache (git-ignored; about
# 3 GB, and some ten minutes on 2 cores for the 60-minute source); later
# runs reuse them. It then runs thumbd's planner and three ffmpeg-only
# baselines on each source and prints a Markdown table. Arguments go to the
# benchmark: scripts/bench.sh -sources clip30 -md results.md
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh ffmpeg
go run ./bench "$@"
