#!/usr/bin/env bash
# Runs the fault and load suite (scripts/loadtest) from the module root,
# keeping its exit status (go run turns every failure into 1): 0 nothing
# found, 1 a crash, leak or unexpected 5xx found, 2 cannot run.
#   scripts/loadtest.sh -scenario concurrent -instances 200 -duration 10s
#   scripts/loadtest.sh -h    # scenarios and their defaults
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/loadtest" ./scripts/loadtest
"$tmp/loadtest" "$@"
