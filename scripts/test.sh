#!/usr/bin/env bash
# test.sh installs missing test dependencies (scripts/deps.sh), then runs
# go vet and the whole test suite, with THUMBD_TEST_DATABASE_URL set to the
# PostgreSQL database deps.sh prepared. Extra arguments go to `go test` after the
# package list, e.g. scripts/test.sh -run TestE2E -v. TEST_PKGS overrides the
# package list (default ./...), e.g. TEST_PKGS=./vtt scripts/test.sh -update.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh

gobin="$(go env GOBIN)"
if [ -z "$gobin" ]; then
	gobin="$(go env GOPATH | cut -d: -f1)/bin"
fi
export PATH="$gobin:$PATH"
# The PostgreSQL that deps.sh set up; tests that need it skip without it.
export THUMBD_TEST_DATABASE_URL="${THUMBD_TEST_DATABASE_URL:-postgres://thumbd:thumbd@127.0.0.1:5432/thumbd_test?sslmode=disable}"

read -r -a pkgs <<<"${TEST_PKGS:-./...}"

echo "+ go vet ${pkgs[*]}" >&2
go vet "${pkgs[@]}"
echo "+ go test -count=1 -timeout 30m ${pkgs[*]} $*" >&2
go test -count=1 -timeout 30m "${pkgs[@]}" "$@"

FUZZTIME="${FUZZTIME:-3s}"
if [ "$FUZZTIME" != 0 ]; then
	while read -r dir; do
		for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir"/*_test.go 2>/dev/null); do
			echo "+ go test -run '^\$' -fuzz '^$target\$' -fuzztime $FUZZTIME $dir" >&2
			go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "$dir"
		done
	done < <(go list -f '{{.Dir}}' "${pkgs[@]}")
fi
