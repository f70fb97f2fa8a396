#!/usr/bin/env bash
# The page-reuse proof, measured: for several send/receive buffer settings, send 8192
# messages of 64 KiB with --verify through rings of increasing size (--unsafe-ring), and
# count what the receiver found corrupt; then the default ring (the rule) for each
# setting, an 8 GiB run with the default ring through a stalling receiver, and what
# clamping the buffers (small ring) costs in throughput. Prints markdown tables.
# Usage: scripts/ring-sweep.sh [QUICK=1 for a shorter run]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)"; exit 1; }
go build -o ./splicegen ./cmd/splicegen
sg=./splicegen
port=5700
count=${COUNT:-8192}
big=${BIG:-8GiB}
rings="64KiB 256KiB 512KiB 1MiB 2MiB 4MiB 8MiB 16MiB 32MiB 64MiB"
[ "${QUICK:-}" = 1 ] && { count=2048; big=1GiB; rings="64KiB 1MiB 4MiB 32MiB"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME "SENDER FLAGS" "RECEIVER FLAGS": one verified transfer; prints the JSON pair's
# key figures as: corrupt lost+dup ring_bytes sndbuf peer_rcvbuf gbit_s
run() {
  port=$((port + 1))
  $sg recv --cpu 1 --json -i 0 --verify $3 127.0.0.1:$port >"$tmp/r.json" 2>"$tmp/r.err" &
  local rp=$!
  sleep 0.2
  $sg send --cpu 0 --json -i 0 --verify $2 127.0.0.1:$port >"$tmp/s.json" 2>"$tmp/s.err" || true
  wait $rp || true
  jq -r '.receiver | "\(.corrupt) \(.lost + .duplicate)"' "$tmp/r.json" | tr '\n' ' '
  jq -r '.sender | "\(.ring_bytes) \(.detail.buffers.sndbuf) \(.detail.ring_rule.peer_rcvbuf) \(.gbit_s*100|floor/100)"' "$tmp/s.json"
}

mib() { awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%g MiB", b/1048576; else printf "%g KiB", b/1024 }'; }

configs=(
  "512K/512K|--sndbuf 256k|--rcvbuf 256k"
  "512K/4M, receiver stalls|--sndbuf 256k|--rcvbuf 2M --stall 1ms"
  "4M/512K|--sndbuf 2M|--rcvbuf 256k"
  "autotuned|| "
  "autotuned, receiver stalls||--stall 1ms"
)

echo "## Ring size vs corrupt messages ($count x 64 KiB per run, --verify)"
echo
echo "kernel $(uname -r), $(nproc) CPUs, sender CPU 0, receiver CPU 1; buffers are effective sizes (the kernel doubles a request)"
echo
printf '| sndbuf / peer rcvbuf |'; for r in $rings; do printf ' %s |' "$r"; done; printf ' default ring (rule) |\n'
printf '|---|'; for r in $rings; do printf -- '---|'; done; printf -- '---|\n'
for cfg in "${configs[@]}"; do
  IFS='|' read -r name sflags rflags <<<"$cfg"
  printf '| %s |' "$name"
  for r in $rings; do
    read -r corrupt gaps _ <<<"$(run x "$sflags -n $count -s 64KiB --ring $r --unsafe-ring" "$rflags")"
    printf ' %s |' "$((corrupt + gaps))"
  done
  read -r corrupt gaps ring snd peer _ <<<"$(run x "$sflags -n $count -s 64KiB" "$rflags")"
  printf ' %s bad, ring %s (sndbuf %s + peer %s) |\n' "$((corrupt + gaps))" "$(mib "$ring")" "$(mib "$snd")" "$(mib "$peer")"
done
echo
echo "Cells: messages the receiver found corrupt, missing or duplicated (0 = clean)."
echo "The seed's rule, 2 x send buffer: 1 MiB for 512K, 8 MiB for 4M; nettest's ring: 4 x 64 KiB = 256 KiB."
echo

echo "## $big with the default ring, autotuned buffers, receiver stalling 1 ms after every read"
echo
port=$((port + 1))
$sg recv --cpu 1 --json -i 0 --verify --stall 1ms 127.0.0.1:$port >"$tmp/r.json" &
rp=$!
sleep 0.2
$sg send --cpu 0 --json -i 0 --verify --bytes "$big" 127.0.0.1:$port >"$tmp/s.json"
wait $rp
jq -r '"sent \(.sender.bytes) bytes in \(.sender.messages) messages, ring \(.sender.ring_bytes) bytes per stream, sndbuf max seen \(.sender.detail.streams[0].sndbuf_max_seen)"' "$tmp/s.json"
jq -r '"received \(.receiver.bytes) bytes in \(.receiver.messages) messages: corrupt \(.receiver.corrupt), lost \(.receiver.lost), duplicate \(.receiver.duplicate), \(.receiver.gbit_s*100|floor/100) Gbit/s"' "$tmp/r.json"
echo

echo "## What clamping costs (compare -m splice, 64 KiB, 3 repeats, medians)"
echo
echo "| buffers | ring per stream | sender ms/GiB | receiver ms/GiB | Gbit/s |"
echo "|---|---|---|---|---|"
for clamp in "" "--sndbuf 256k --rcvbuf 256k" "--sndbuf 2M --rcvbuf 2M"; do
  $sg compare -m splice --bytes "${CLAMPBYTES:-2GiB}" --repeat 3 $clamp --json "$tmp/c.json" >/dev/null
  jq -r --arg c "${clamp:-autotuned}" '"| \($c) | \(.runs[0].sender.ring_bytes) | \(.summary[0].sender_cpu_ms_per_gib|floor) | \(.summary[0].receiver_cpu_ms_per_gib|floor) | \(.summary[0].gbit_s*100|floor/100) |"' "$tmp/c.json"
done
