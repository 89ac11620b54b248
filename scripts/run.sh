#!/usr/bin/env bash
# run.sh installs ffmpeg if it is missing, then runs thumbd from source;
# arguments go to thumbd, e.g. scripts/run.sh -addr 127.0.0.1:8080.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh ffmpeg
exec go run ./cmd/thumbd "$@"
