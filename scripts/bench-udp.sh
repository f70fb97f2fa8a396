#!/usr/bin/env bash
# UDP packet-rate benchmark: splicegen's UDP modes against Debian's iperf3 -u -b 0, in
# one run, alternating order, REPEAT repeats, medians. Loopback only; sender pinned to
# CPU 0 and receiver to CPU 1 for every tool. Prints one table; raw results in out/bench-udp/.
#   scripts/bench-udp.sh                 # 64 B and 1472 B, 5 s per run, 3 repeats
#   T=10 REPEAT=5 scripts/bench-udp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-5}
REPEAT=${REPEAT:-3}
SIZES=${SIZES:-"64 1472"}
MODES=${MODES:-"gso mmsg write splice"}
PORT=${PORT:-5211}
out=out/bench-udp
mkdir -p "$out"
rm -f "$out"/*.json "$out"/rows.txt

if ! command -v iperf3 >/dev/null || ! command -v jq >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 jq
fi
go build -buildvcs=false -o ./splicegen ./cmd/splicegen

# One row per run: tool size rep sent_pps recv_pps loss_pct snd_cpu_ms_per_mpkt
run_sg() { # mode size rep
  local f="$out/sg-$1-$2-$3.json"
  ./splicegen compare -p udp -m "$1" -s "$2" -t "${T}s" --repeat 1 --json "$f" >/dev/null
  jq -r --arg t "splicegen-$1" --arg s "$2" --arg r "$3" \
    '.summary[0] | "\($t) \($s) \($r) \(.sender_pps) \(.receiver_pps) \(.loss_pct) \(.sender_cpu_ms_per_mpkt)"' "$f" >>"$out/rows.txt"
}
run_iperf() { # size rep
  local c="$out/iperf3-$1-$2.json" s="$out/iperf3-srv-$1-$2.json"
  taskset -c 1 iperf3 -s -1 -p "$PORT" --json >"$s" &
  local srv=$!
  sleep 0.5
  taskset -c 0 iperf3 -c 127.0.0.1 -p "$PORT" -u -b 0 -l "$1" -t "$T" --json >"$c"
  wait "$srv" || true
  # iperf3's own end sum: packets sent, lost (as the server counted), sender CPU %.
  jq -r --arg s "$1" --arg r "$2" '.end as $e | ($e.sum.seconds) as $sec |
    "iperf3 \($s) \($r) \($e.sum.packets/$sec) \(($e.sum.packets-$e.sum.lost_packets)/$sec) \($e.sum.lost_percent) \(($e.cpu_utilization_percent.host_total/100*$sec*1000)/($e.sum.packets/1e6))"' \
    "$c" >>"$out/rows.txt"
}

for rep in $(seq 1 "$REPEAT"); do
  for size in $SIZES; do
    jobs=("iperf")
    for m in $MODES; do jobs+=("$m"); done
    if [ $((rep % 2)) -eq 0 ]; then jobs=($(printf '%s\n' "${jobs[@]}" | tac)); fi
    for j in "${jobs[@]}"; do
      echo "rep $rep size $size $j" >&2
      if [ "$j" = iperf ]; then run_iperf "$size" "$rep"; else run_sg "$j" "$size" "$rep"; fi
    done
  done
done

# Medians per tool and size, and ratios against iperf3's median sent pps.
awk -v T="$T" -v R="$REPEAT" '
function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{ k = $1 " " $2; n[k]++; if (!(k in seen)) { seen[k] = 1; order[++no] = k }
  sp[k, n[k]] = $4; rp[k, n[k]] = $5; lp[k, n[k]] = $6; cp[k, n[k]] = $7 }
END {
  for (i = 1; i <= no; i++) { k = order[i]
    for (j = 1; j <= n[k]; j++) { a[j] = sp[k, j] } S[k] = med(a, n[k])
    for (j = 1; j <= n[k]; j++) { a[j] = rp[k, j] } V[k] = med(a, n[k])
    for (j = 1; j <= n[k]; j++) { a[j] = lp[k, j] } L[k] = med(a, n[k])
    for (j = 1; j <= n[k]; j++) { a[j] = cp[k, j] } C[k] = med(a, n[k]) }
  printf "UDP on loopback, %s s per run, medians of %s, sender CPU 0, receiver CPU 1\n\n", T, R
  printf "| tool | size | sent pps | received pps | loss %% | sender CPU ms / Mpkt | sent pps / iperf3 |\n|---|---|---|---|---|---|---|\n"
  for (i = 1; i <= no; i++) { k = order[i]; split(k, f, " "); base = S["iperf3 " f[2]]
    printf "| %s | %s | %.0f | %.0f | %.3f | %.0f | %.2fx |\n", f[1], f[2], S[k], V[k], L[k], C[k], base ? S[k] / base : 0 }
}' <(sort -k2,2n -k1,1 "$out/rows.txt")
