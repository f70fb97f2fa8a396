#!/usr/bin/env bash
# The HTML report in a real browser: build splicegen, run a small real compare (tcp,udp ×
# splice,write,gso, 1 s per run, one repeat), re-render its JSON with `splicegen report`,
# then load both pages in headless Chromium (Debian's `chromium`): take a screenshot,
# dump the rendered DOM and check that it holds the charts and that the browser logged no
# console errors and fetched nothing. About 30 s.
#
#   scripts/browser-check.sh            # check; screenshot in out/browser/report.png
#   UPDATE_DOC=1 scripts/browser-check.sh   # also copy the screenshot to docs/report.png
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
out=out/browser
rm -rf "$out"; mkdir -p "$out"

if ! command -v chromium >/dev/null; then
  echo "browser-check: installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version

go build -o "$out/splicegen" ./cmd/splicegen
"$out/splicegen" compare --proto tcp,udp --mode splice,write,gso --time 1s --repeat 1 \
  --json "$out/r.json" --html "$out/compare.html" --csv "$out/compare.csv" | tee "$out/compare.txt"
"$out/splicegen" report "$out/r.json" --html "$out/r.html" --csv "$out/r.csv" > "$out/report.txt"
# report reproduces compare's table and CSV.
grep -v '^saved ' "$out/report.txt" > "$out/table.txt"
grep -v '^saved ' "$out/compare.txt" | tail -n "$(wc -l < "$out/table.txt")" | diff - "$out/table.txt" \
  || { echo "report's table differs from compare's"; exit 1; }
cmp "$out/compare.csv" "$out/r.csv" || { echo "report's CSV differs from compare's"; exit 1; }

browse() { # browse OUTFILE ARGS...: one headless Chromium with a fresh profile, no network extras
  local prof; prof=$(mktemp -d)
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
    --user-data-dir="$prof" --enable-logging=stderr --v=0 "${@:2}" >"$1" 2>"$1.log"
  rm -rf "$prof"
}
for page in compare r; do
  url="file://$PWD/$out/$page.html"
  browse "$out/$page.dom" --window-size=1280,2400 --virtual-time-budget=2000 --dump-dom "$url"
  browse "$out/$page.shot" --window-size=1280,2400 --hide-scrollbars --screenshot="$PWD/$out/$page.png" "$url"
  want=$(grep -o '<svg class="chart"' "$out/$page.html" | wc -l)
  got=$(grep -o '<svg class="chart"' "$out/$page.dom" | wc -l)
  bars=$(grep -o '<rect class="bar"' "$out/$page.dom" | wc -l)
  echo "browser-check: $page.html: $got charts rendered (file has $want), $bars bars"
  if [ "$want" -lt 6 ] || [ "$got" != "$want" ] || [ "$bars" -lt 10 ]; then
    echo "browser-check: the rendered page lacks its charts"; exit 1
  fi
  for text in "CPU per GiB by mode" "tcp, 65536 B: CPU per GiB" "udp, 1472 B: message rate" "unsupported" "Environment"; do
    grep -qF "$text" "$out/$page.dom" || { echo "browser-check: rendered page lacks \"$text\""; exit 1; }
  done
  # Console errors, failed loads, any fetch other than the page itself.
  if grep -hE 'CONSOLE|Uncaught|Failed to load|net::ERR_|Refused to' "$out/$page.dom.log" "$out/$page.shot.log"; then
    echo "browser-check: the browser logged errors for $page.html"; exit 1
  fi
  test -s "$out/$page.png" || { echo "browser-check: no screenshot"; exit 1; }
done
echo "browser-check: screenshot $out/compare.png ($(stat -c %s "$out/compare.png") bytes)"
if [ "${UPDATE_DOC:-}" = 1 ]; then
  cp "$out/compare.png" docs/report.png
  echo "browser-check: updated docs/report.png"
fi
echo "browser-check: ok"
