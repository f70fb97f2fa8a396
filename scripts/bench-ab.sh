#!/usr/bin/env bash
# A/B benchmark of two splicegen binaries (A = before a change, B = after) on the figures
# the README quotes, interleaved in one run: each repeat runs every benchmark with A then B
# (odd repeats) or B then A (even repeats). Loopback only; sender on CPU 0, receiver on
# CPU 1; every run is bounded by timeout. Raw JSON goes to out/bench-ab/; prints one
# Markdown table of medians over the repeats, B/A ratios and min–max spreads.
#   A=/tmp/base/splicegen B=./splicegen scripts/bench-ab.sh
#   A=old B=new REPEAT=5 scripts/bench-ab.sh
#   A=old B=new QUICK=1 REPEAT=1 scripts/bench-ab.sh   # smaller TCP transfers, a smoke run
# Benchmarks: tcp 64KiB (splice,write,write-hot, 4GiB), tcp 64KiB --sink splice (splice,
# write), tcp 1MiB (splice,write,sendfile, 2GiB), udp (gso,mmsg,write,splice × 64,1472,
# 3 s), pacing (send/recv: mmsg 64 B --pps 100k and write 1472 B --rate 1G, 5 s).
# Any run that fails or times out stops the script (its JSON stays in out/bench-ab/).
set -euo pipefail
: "${A:?set A=path to the before binary}" "${B:?set B=path to the after binary}"
REPEAT=${REPEAT:-3}
QUICK=${QUICK:-}
PORT=${PORT:-5311}
cd "$(dirname "$0")/.."
A=$(realpath "$A") B=$(realpath "$B")
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
if ! command -v jq >/dev/null; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y jq
fi
if ss -Hlun "sport = :$PORT" | grep -q .; then echo "UDP port $PORT is in use; set PORT=" >&2; exit 2; fi
out=out/bench-ab
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.log "$out"/rows.tsv
rows=$out/rows.tsv
if [ -n "$QUICK" ]; then big=1GiB mid=1GiB; else big=4GiB mid=2GiB; fi

# Rows: benchmark <TAB> metric <TAB> side <TAB> value.
# compare: $1 side, $2 bench label, $3 file tag, rest = compare flags.
run_compare() {
  local side=$1 label=$2 tag=$3 bin f; shift 3
  bin=$([ "$side" = A ] && echo "$A" || echo "$B")
  f=$out/$tag-$side-$rep.json
  echo "rep $rep $side: $label" >&2
  timeout --kill-after=10 "${CMP_TIMEOUT:-300}" "$bin" compare "$@" --repeat 1 --json "$f" >"${f%.json}.log" 2>&1 ||
    { echo "FAILED ($?): $bin compare $* (see ${f%.json}.log)" >&2; exit 1; }
  jq -r --arg b "$label" --arg s "$side" '.summary[] |
    if .unsupported then empty
    elif (.runs == 0 or (.failed // 0) > 0 or .corrupt > 0) then
      "WARN \($b) \(.mode) \(.size): runs=\(.runs) failed=\(.failed // 0) corrupt=\(.corrupt)"
    else (if .proto == "udp" then "\(.mode) \(.size) B" else .mode end) as $c |
      (if .proto == "udp" then
        [["sent pps", .sender_pps], ["recv pps", .receiver_pps], ["loss %", .loss_pct],
         ["snd ms/Mpkt", .sender_cpu_ms_per_mpkt]]
      else
        [["snd ms/GiB", .sender_cpu_ms_per_gib], ["rcv ms/GiB", .receiver_cpu_ms_per_gib],
         ["Gbit/s", .gbit_s]]
      end)[] | [$b, "\($c) \(.[0])", $s, .[1]] | @tsv end' "$f" >"$out/tmp"
  grep '^WARN' "$out/tmp" >&2 || true
  grep -v '^WARN' "$out/tmp" >>"$rows" || true
}
# pacing: $1 side, $2 bench label, $3 file tag, rest = send flags.
run_pace() {
  local side=$1 label=$2 tag=$3 bin f r; shift 3
  bin=$([ "$side" = A ] && echo "$A" || echo "$B")
  f=$out/$tag-$side-$rep.json r=$out/$tag-$side-$rep-recv.json
  echo "rep $rep $side: $label" >&2
  timeout --kill-after=5 30 "$bin" recv -p udp --json -i 0 --cpu 1 "127.0.0.1:$PORT" >"$r" &
  local rpid=$!
  sleep 0.5
  timeout --kill-after=5 30 "$bin" send -p udp "$@" -t 5s --json -i 0 --cpu 0 "127.0.0.1:$PORT" >"$f" ||
    { echo "FAILED ($?): $bin send $*" >&2; kill "$rpid" 2>/dev/null; exit 1; }
  wait "$rpid" || { echo "FAILED: $bin recv for $label" >&2; exit 1; }
  jq -r --arg b "$label" --arg s "$side" --slurpfile rv "$r" '.sender as $x | $rv[0].receiver as $y |
    [["sent pps", $x.pps], ["recv pps", $y.pps], ["sent Gbit/s", $x.gbit_s], ["loss %", ($y.loss_pct // 0)],
     ["snd CPU %", ($x.usr_ms + $x.sys_ms) / $x.real_ms * 100]][] | [$b, .[0], $s, .[1]] | @tsv' "$f" >>"$rows"
}
bench_all() { # side
  run_compare "$1" "tcp 64KiB $big" tcp64k -p tcp -s 64KiB -m splice,write,write-hot --bytes "$big"
  run_compare "$1" "tcp 64KiB $big sink splice" tcp64k-sink -p tcp -s 64KiB -m splice,write --bytes "$big" --sink splice
  run_compare "$1" "tcp 1MiB $mid" tcp1m -p tcp -s 1MiB -m splice,write,sendfile --bytes "$mid"
  CMP_TIMEOUT=180 run_compare "$1" "udp 3s" udp -p udp -m gso,mmsg,write,splice -s 64,1472 -t 3s
  run_pace "$1" "pace mmsg 64 B 100k pps" pace-mmsg -m mmsg -s 64 --pps 100k
  run_pace "$1" "pace write 1472 B 1G" pace-write -m write -s 1472 --rate 1G
}

start=$SECONDS
for rep in $(seq 1 "$REPEAT"); do
  if [ $((rep % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do bench_all "$side"; done
done
rm -f "$out/tmp"
echo "done in $((SECONDS - start)) s" >&2

echo "A: $A ($(sha256sum "$A" | cut -c1-12))"
echo "B: $B ($(sha256sum "$B" | cut -c1-12))"
echo "$(uname -r), $(nproc) CPUs, ${QUICK:+QUICK, }$REPEAT repeat(s), A/B order alternating; medians"
echo
awk -F'\t' '
function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function f(x,   ax) { ax = x < 0 ? -x : x; return sprintf(ax >= 100 ? "%.0f" : ax >= 1 ? "%.2f" : "%.3f", x) }
function stat(k, s,   i, a, n) { n = cnt[k, s]; if (!n) { M = ""; SP = "—"; return }
  for (i = 1; i <= n; i++) a[i] = v[k, s, i]
  M = med(a, n); SP = f(a[1]) "–" f(a[n]) }
{ k = $1 SUBSEP $2; if (!(k in seen)) { seen[k] = 1; order[++no] = k }
  v[k, $3, ++cnt[k, $3]] = $4 + 0 }
END {
  print "| benchmark | metric | A median | B median | B/A | A spread (min–max) | B spread |"
  print "|---|---|---|---|---|---|---|"
  for (i = 1; i <= no; i++) { k = order[i]; split(k, p, SUBSEP)
    stat(k, "A"); ma = M; sa = SP; stat(k, "B"); mb = M; sb = SP
    r = (ma != "" && mb != "" && ma != 0) ? sprintf("%.3f", mb / ma) : "—"
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", p[1], p[2], ma == "" ? "—" : f(ma), mb == "" ? "—" : f(mb), r, sa, sb }
}' "$rows"
