#!/usr/bin/env bash
# run.sh installs ffmpeg if it is missing, then runs thumbd from source;
# arguments go to thumbd, e.g. scripts/run.sh -addr 127.0.0.1:8080.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh ffmpeg
# Sources, destinations and callbacks on this machine and the LAN are private
# addresses, which thumbd refuses by default: a development server reaches
# them (thumbd says so in its log). Set THUMBD_ALLOW_PRIVATE_NETWORKS=0 to try
# the default.
export THUMBD_ALLOW_PRIVATE_NETWORKS="${THUMBD_ALLOW_PRIVATE_NETWORKS:-1}"
exec go run ./cmd/thumbd "$@"
