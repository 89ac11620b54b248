#!/usr/bin/env bash
# deps.sh installs what thumbd's tests need, and only what is missing, so a
# second run takes well under a second:
#   ffmpeg   ffmpeg + ffprobe from Debian (apt-get update at most once a run)
#   s3       versitygw v1.8.0, the S3-compatible server the tests start, via
#            go install into $(go env GOBIN) or $(go env GOPATH)/bin
#   node     node + npm (from Debian if missing), then `npm ci` in e2e/node
#            when node_modules is missing or older than package-lock.json
#   pg       PostgreSQL from Debian (postgresql) if missing, a running
#            cluster (pg_lsclusters / pg_ctlcluster), and the role and
#            database the tests use: thumbd / thumbd on 127.0.0.1:5432,
#            database thumbd_test (scripts/test.sh exports
#            THUMBD_TEST_DATABASE_URL for them)
#   compose  docker-compose from Debian (`docker-compose config` checks
#            docker-compose.yml; no Docker engine needed) and curl with
#            --aws-sigv4 (runs the compose file's bucket step); skipped
#            when the docker compose plugin is there instead
#   chromium Debian's chromium, the browser the console's tests drive
#            (chromedp); skipped when a chromium or chrome binary is found
# With no arguments it installs everything; name components to install only
# those (scripts/run.sh runs `deps.sh ffmpeg`).
# Works as root, or as a user with sudo for the apt-get steps; go install and
# npm never use sudo. Meant for Debian 12; elsewhere install ffmpeg and node
# yourself and the checks will pass.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSITYGW_VERSION=v1.8.0

log() { printf 'deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	fi
fi

apt_updated=0
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "need to install $*, but apt-get is missing; install them yourself"
	if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
		die "need root or sudo to install $*"
	fi
	if [ "$apt_updated" -eq 0 ]; then
		log "apt-get update"
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	log "apt-get install $*"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

need_ffmpeg() {
	if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then
		return
	fi
	apt_install ffmpeg
	command -v ffprobe >/dev/null 2>&1 || die "ffprobe still missing after installing ffmpeg"
}

gobin() {
	local d
	d="$(go env GOBIN)"
	if [ -z "$d" ]; then
		d="$(go env GOPATH | cut -d: -f1)/bin"
	fi
	printf '%s\n' "$d"
}

need_versitygw() {
	command -v go >/dev/null 2>&1 || die "go is not on PATH (thumbd needs Go 1.26: https://go.dev/dl/)"
	local bin have
	bin="$(gobin)/versitygw"
	if [ -x "$bin" ]; then
		have="$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" {print $3}' || true)"
		if [ "$have" = "$VERSITYGW_VERSION" ]; then
			return
		fi
		log "versitygw at $bin is ${have:-unknown}, want $VERSITYGW_VERSION"
	fi
	log "go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION (a few minutes the first time)"
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	case ":$PATH:" in
	*":$(gobin):"*) ;;
	*) log "hint: add $(gobin) to PATH for later steps: export PATH=\"$(gobin):\$PATH\"" ;;
	esac
}

need_node() {
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		apt_install nodejs npm
	fi
	local major
	major="$(node -p 'process.versions.node.split(".")[0]')"
	if [ "$major" -lt 18 ]; then
		die "node $(node --version) is too old; tus-js-client 4 needs node >= 18"
	fi
	local dir=e2e/node
	[ -f "$dir/package.json" ] || { log "no $dir/package.json; skipping npm"; return; }
	if [ -f "$dir/package-lock.json" ]; then
		# npm rewrites node_modules/.package-lock.json on every install, so
		# its age says when node_modules was last brought in line.
		if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
			[ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
			log "npm ci in $dir"
			(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
		fi
	elif [ ! -d "$dir/node_modules" ]; then
		log "npm install in $dir (no package-lock.json)"
		(cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
	fi
}

need_compose() {
	local pkgs=()
	if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
		pkgs+=(docker-compose)
	fi
	if ! curl --help all 2>/dev/null | grep -- --aws-sigv4 >/dev/null; then
		pkgs+=(curl)
	fi
	if [ "${#pkgs[@]}" -gt 0 ]; then
		apt_install "${pkgs[@]}"
	fi
}

# as_postgres runs a command as the postgres superuser (root: runuser;
# otherwise sudo -u).
as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	elif [ "$(id -un)" = postgres ]; then
		"$@"
	elif [ "${#SUDO[@]}" -gt 0 ]; then
		sudo -u postgres -- "$@"
	else
		die "need root or sudo to run $1 as postgres"
	fi
}

need_pg() {
	if ! command -v pg_lsclusters >/dev/null 2>&1; then
		apt_install postgresql
	fi
	command -v pg_lsclusters >/dev/null 2>&1 || die "pg_lsclusters still missing after installing postgresql"
	# The first cluster listed (Debian creates <version> main on install).
	local ver name status
	read -r ver name status < <(pg_lsclusters --no-header | awk 'NR == 1 {print $1, $2, $4}') || true
	if [ -z "${ver:-}" ]; then
		ver="$(ls /usr/lib/postgresql | sort -n | tail -1)"
		name=main
		log "pg_createcluster $ver $name"
		"${SUDO[@]}" pg_createcluster "$ver" "$name"
		status=down
	fi
	if [ "$status" != online ]; then
		log "pg_ctlcluster $ver $name start"
		"${SUDO[@]}" pg_ctlcluster "$ver" "$name" start
	fi
	local port
	port="$(pg_lsclusters --no-header | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n {print $3}')"
	[ "$port" = 5432 ] || log "warning: cluster $ver/$name listens on port $port; the tests expect 5432"
	# Idempotent: the role (password auth over TCP: Debian's pg_hba asks
	# 127.0.0.1 for scram-sha-256) and the test database.
	as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres <<-'SQL'
		SELECT 'CREATE ROLE thumbd LOGIN PASSWORD ''thumbd'''
		WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'thumbd')\gexec
		SELECT 'CREATE DATABASE thumbd_test OWNER thumbd'
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'thumbd_test')\gexec
	SQL
}

need_chromium() {
	local b
	for b in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$b" >/dev/null 2>&1; then
			return
		fi
	done
	apt_install chromium
	command -v chromium >/dev/null 2>&1 || die "chromium still missing after installing it"
}

if [ "$#" -eq 0 ]; then
	set -- ffmpeg s3 node pg compose chromium
fi
for c in "$@"; do
	case "$c" in
	ffmpeg) need_ffmpeg ;;
	s3 | versitygw) need_versitygw ;;
	node | npm) need_node ;;
	pg | postgres | postgresql) need_pg ;;
	compose) need_compose ;;
	chromium | chrome | browser) need_chromium ;;
	*) die "unknown component $c (want ffmpeg, s3, node, pg, compose, chromium)" ;;
	esac
done
