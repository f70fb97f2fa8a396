#!/usr/bin/env bash
# TCP CPU per GiB against iperf3 and the syscall floor, in one run: sender pinned to CPU
# 0, receiver to CPU 1, BYTES per run, configurations interleaved (order reversed every
# other repeat), REPEAT repeats, medians and spreads ((max-min)/median). CPU is the
# whole process's usr+sys from /usr/bin/time (not the tools' own figures); Gbit/s from
# the sender's elapsed time. Loopback only. Raw rows in out/bench-tcp/rows.txt.
#   scripts/bench-tcp.sh                    # 4 GiB, 5 repeats
#   BYTES=1073741824 REPEAT=3 scripts/bench-tcp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${BYTES:-4294967296}
REPEAT=${REPEAT:-5}
PORT=${PORT:-5311}
out=out/bench-tcp
mkdir -p "$out"
rm -f "$out"/rows.txt
need=()
for c in iperf3:iperf3 jq:jq cc:gcc /usr/bin/time:time; do command -v "${c%%:*}" >/dev/null || need+=("${c#*:}"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
go build -buildvcs=false -o "$out/splicegen" ./cmd/splicegen
cc -O2 -o "$out/floor" scripts/floor/floor.c
sg="$out/splicegen"
T="/usr/bin/time -f %U\ %S\ %e -o"

# run NAME RECV-CMD SEND-CMD: one row "NAME rep snd_usr snd_sys snd_real rcv_usr rcv_sys"
run() {
  local name=$1 rcmd=$2 scmd=$3
  eval "$T $out/r.time $rcmd" >/dev/null 2>"$out/r.err" & local rp=$!
  sleep 0.3
  eval "$T $out/s.time $scmd" >/dev/null 2>"$out/s.err" || { echo "$name: sender failed: $(cat "$out/s.err")"; }
  wait $rp || true
  echo "$name $rep $(tail -1 "$out/s.time") $(tail -1 "$out/r.time" | cut -d' ' -f1,2)" >>"$out/rows.txt"
}
configs=(sg-splice sg-write sg-write-hot sg-sendfile iperf3 iperf3-64K floor)
for rep in $(seq "$REPEAT"); do
  order=("${configs[@]}")
  [ $((rep % 2)) = 0 ] && order=($(printf '%s\n' "${configs[@]}" | tac))
  for c in "${order[@]}"; do
    case $c in
    sg-*) m=${c#sg-}; extra="-m $m"; [ "$m" = write-hot ] && extra="-m write --hot-buffer"
      run "$c" "$sg recv -i 0 --cpu 1 127.0.0.1:$PORT" "$sg send -i 0 --cpu 0 --bytes $BYTES $extra 127.0.0.1:$PORT" ;;
    iperf3) run "$c" "iperf3 -s -1 -A 1 -p $PORT" "iperf3 -c 127.0.0.1 -A 0 -p $PORT -n $BYTES" ;;
    iperf3-64K) run "$c" "iperf3 -s -1 -A 1 -p $PORT" "iperf3 -c 127.0.0.1 -A 0 -p $PORT -n $BYTES -l 64K" ;;
    floor) run "$c" "taskset -c 1 $out/floor recv $PORT" "taskset -c 0 $out/floor send 127.0.0.1 $PORT $BYTES" ;;
    esac
  done
done

awk -v bytes="$BYTES" '
BEGIN { gib = bytes / 1073741824 }
function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function spread(a, n, m,   i, lo, hi) { lo = hi = a[1]; for (i = 2; i <= n; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] } return m ? (hi - lo) / m * 100 : 0 }
{ n[$1]++; k = n[$1]; S[$1, k] = ($3 + $4) * 1000 / gib; R[$1, k] = ($6 + $7) * 1000 / gib; G[$1, k] = bytes * 8 / $5 / 1e9
  if (!($1 in seen)) { seen[$1] = 1; order[++no] = $1 } }
END {
  printf "%-14s %9s %7s %9s %7s %9s %8s\n", "config", "snd ms/GiB", "spread", "rcv ms/GiB", "spread", "total", "Gbit/s"
  for (o = 1; o <= no; o++) { c = order[o]
    for (i = 1; i <= n[c]; i++) { s[i] = S[c, i]; r[i] = R[c, i]; g[i] = G[c, i] }
    ms = med(s, n[c]); mr = med(r, n[c]); mg = med(g, n[c]); snd[c] = ms; rcv[c] = mr; gb[c] = mg
    printf "%-14s %9.0f %6.0f%% %9.0f %6.0f%% %9.0f %8.2f\n", c, ms, spread(s, n[c], ms), mr, spread(r, n[c], mr), ms + mr, mg }
  printf "\nratios of medians (this run):\n"
  printf "  splice sender / iperf3 client (default 128 KiB writes) %.2f\n", snd["sg-splice"] / snd["iperf3"]
  printf "  splice sender / iperf3 client (-l 64K)                 %.2f\n", snd["sg-splice"] / snd["iperf3-64K"]
  printf "  receiver / iperf3 server                               %.2f\n", rcv["sg-splice"] / rcv["iperf3"]
  printf "  splice Gbit/s / iperf3 Gbit/s                          %.2f\n", gb["sg-splice"] / gb["iperf3"]
  printf "  splice sender / floor sender                           %.2f\n", snd["sg-splice"] / snd["floor"]
  printf "  splice sender / write sender                           %.2f\n", snd["sg-splice"] / snd["sg-write"]
  printf "  splice sender / write-hot sender                       %.2f\n", snd["sg-splice"] / snd["sg-write-hot"]
  printf "  receiver / floor receiver                              %.2f\n", rcv["sg-splice"] / rcv["floor"]
}' "$out/rows.txt"
