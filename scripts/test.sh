#!/usr/bin/env bash
# Every test splicegen has: format and vet, unit and end-to-end tests over loopback,
# brief fuzzing of the parsers, a benchmark smoke run (allocations), and the main job
# (compare) on a small volume. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad"; exit 1; fi

step "go vet"
go vet ./...

step "go test (host kernel $(uname -r))"
go test -count=1 -timeout 15m ./...

step "fuzz the header parser and the receive checker (${FUZZTIME:=15s} each)"
go test -run '^$' -fuzz '^FuzzParseHeader$' -fuzztime "$FUZZTIME" ./gen
go test -run '^$' -fuzz '^FuzzChecker$' -fuzztime "$FUZZTIME" ./sink

step "benchmark smoke: every send loop, 0 allocs/op"
out=$(go test -run '^$' -bench . -benchtime 300x ./gen)
echo "$out"
if echo "$out" | grep -E 'allocs/op' | grep -vE '\s0 allocs/op'; then
  echo "a send loop allocates per message"; exit 1
fi

step "main job: splicegen compare (small volume)"
go build -o ./splicegen ./cmd/splicegen
./splicegen probe
mkdir -p out
./splicegen compare --bytes 512MiB --repeat 1 --json out/compare-smoke.json 2>&1 || { echo "compare failed"; exit 1; }
test -s out/compare-smoke.json
./splicegen compare -p udp -s 64,1472 -t 1s --repeat 1 --verify --json out/compare-udp-smoke.json 2>&1 || { echo "udp compare failed"; exit 1; }
test -s out/compare-udp-smoke.json

echo
echo "all tests passed"
