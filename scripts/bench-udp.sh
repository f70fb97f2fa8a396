#!/usr/bin/env bash
# UDP packet-rate benchmark: splicegen's UDP modes against Debian's iperf3 -u -b 0, in
# one run, alternating order, REPEAT repeats, medians. Sender pinned to CPU 0 and
# receiver to CPU 1 for every tool. Prints one table; raw results in out/bench-udp/.
#   NET=lo   (default) loopback
#   NET=veth two network namespaces joined by a veth pair (10.77.0.1 → 10.77.0.2), made
#            and removed by this script
#   scripts/bench-udp.sh                 # 64 B and 1472 B, 5 s per run, 3 repeats
#   T=10 REPEAT=5 SIZES=64 NET=veth scripts/bench-udp.sh
# Figures: sent pps from each sender's own count over its own time; received pps and loss
# from each receiver (iperf3: the server's count, as its client reports it); sender CPU
# from the sender's getrusage (iperf3: its host_total percent).
set -euo pipefail
cd "$(dirname "$0")/.."
T=${T:-5}
REPEAT=${REPEAT:-3}
SIZES=${SIZES:-"64 1472"}
MODES=${MODES:-"gso mmsg write splice"}
PORT=${PORT:-5211}
NET=${NET:-lo}
out=out/bench-udp
mkdir -p "$out"
rm -f "$out"/*.json "$out"/rows.txt

if ! command -v iperf3 >/dev/null || ! command -v jq >/dev/null; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 jq
fi
go build -buildvcs=false -o "$out/splicegen" ./cmd/splicegen
sg=$(realpath "$out/splicegen")

case $NET in
lo) dst=127.0.0.1 S="" R="" ;;
veth)
  A=sgbench-a B=sgbench-b dst=10.77.0.2
  cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
  trap cleanup EXIT
  cleanup
  ip netns add $A && ip netns add $B
  ip link add sgb0 netns $A type veth peer name sgb1 netns $B
  ip -n $A addr add 10.77.0.1/24 dev sgb0 && ip -n $B addr add 10.77.0.2/24 dev sgb1
  for n in $A $B; do ip -n $n link set lo up; done
  ip -n $A link set sgb0 up && ip -n $B link set sgb1 up
  S="ip netns exec $A" R="ip netns exec $B"
  ;;
*) echo "NET must be lo or veth" >&2; exit 2 ;;
esac

# One row per run: tool size rep sent_pps recv_pps loss_pct snd_cpu_ms_per_mpkt
run_sg() { # mode size rep
  local r="$out/sg-$1-$2-$3-recv.json" s="$out/sg-$1-$2-$3-send.json"
  $R timeout 60 "$sg" recv -p udp --cpu 1 --json "$dst:$PORT" >"$r" 2>"$out/recv.err" &
  local rp=$!
  sleep 0.5
  $S timeout 60 "$sg" send -p udp --cpu 0 -m "$1" -s "$2" -t "${T}s" --json "$dst:$PORT" >"$s" 2>"$out/send.err" ||
    { echo "splicegen send failed: $(cat "$out/send.err")" >&2; }
  wait "$rp" || true
  jq -r -n --arg t "splicegen-$1" --arg sz "$2" --arg rep "$3" --slurpfile s "$s" --slurpfile r "$r" \
    '($s[0].sender) as $x | ($r[0].receiver) as $y |
     "\($t) \($sz) \($rep) \($x.pps) \($y.pps) \($y.loss_pct) \(($x.usr_ms + $x.sys_ms) / ($x.messages / 1e6))"' >>"$out/rows.txt"
}
run_iperf() { # size rep
  local c="$out/iperf3-$1-$2.json"
  $R taskset -c 1 timeout 60 iperf3 -s -1 -p "$PORT" --json >"$out/iperf3-srv-$1-$2.json" &
  local srv=$!
  sleep 0.5
  $S taskset -c 0 timeout 60 iperf3 -c "$dst" -p "$PORT" -u -b 0 -l "$1" -t "$T" --json >"$c"
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
awk -v T="$T" -v R="$REPEAT" -v NET="$NET" '
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
  printf "UDP over %s, %s s per run, medians of %s, sender CPU 0, receiver CPU 1\n\n", NET == "lo" ? "loopback" : "a veth pair between two namespaces", T, R
  printf "| tool | size | sent pps | received pps | loss %% | sender CPU ms / Mpkt | sent pps / iperf3 |\n|---|---|---|---|---|---|---|\n"
  for (i = 1; i <= no; i++) { k = order[i]; split(k, f, " "); base = S["iperf3 " f[2]]
    printf "| %s | %s | %.0f | %.0f | %.3f | %.0f | %.2fx |\n", f[1], f[2], S[k], V[k], L[k], C[k], base ? S[k] / base : 0 }
}' <(sort -k2,2n -k1,1 "$out/rows.txt")
