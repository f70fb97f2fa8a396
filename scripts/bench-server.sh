#!/usr/bin/env bash
# The server's cost: direct send/recv against run through the server, between two
# network namespaces one routed hop apart (scripts/lab.sh), interleaved, 3 repeats of
# 5 s, sender on CPU 0 and receiver on CPU 1 both ways. Prints Gbit/s and usr+sys ms of
# each side (and UDP loss %). Needs root, iproute2, jq.
#   scripts/bench-server.sh
set -u
cd "$(dirname "$0")/.."
go build -o /tmp/sgb ./cmd/splicegen
LAB=sgb LAB_NET=10.88 scripts/lab.sh up >/dev/null
ip netns exec sgb-server /tmp/sgb server --no-auth --listen 10.88.2.2:5499 > /tmp/labbench-server.log 2>&1 &
sleep 0.5
for rep in 1 2 3; do
  for proto in tcp udp; do
    extra=""; [ $proto = udp ] && extra="-m mmsg -s 1400 -b 2G"
    # direct
    ip netns exec sgb-server /tmp/sgb recv -p $proto --json -i 0 --cpu 1 10.88.2.2:6000 > /tmp/lb-r.json & rp=$!
    sleep 0.3
    ip netns exec sgb-client /tmp/sgb send -p $proto $extra --json -i 0 -t 5s --cpu 0 10.88.2.2:6000 > /tmp/lb-s.json
    wait $rp
    echo "direct $proto rep$rep $(jq -r '[.sender.gbit_s, .sender.usr_ms+.sender.sys_ms] | @tsv' /tmp/lb-s.json) $(jq -r '[.receiver.gbit_s, .receiver.usr_ms+.receiver.sys_ms, .receiver.loss_pct] | @tsv' /tmp/lb-r.json)"
    ip netns exec sgb-client /tmp/sgb run -p $proto $extra --json -i 0 -t 5s --cpu 0 --server-cpu 1 10.88.2.2 > /tmp/lb-run.json
    echo "server $proto rep$rep $(jq -r '.runs[0] | [.sender.gbit_s, .sender.usr_ms+.sender.sys_ms, .receiver.gbit_s, .receiver.usr_ms+.receiver.sys_ms, .receiver.loss_pct] | @tsv' /tmp/lb-run.json)"
  done
done
kill %1; wait
LAB=sgb LAB_NET=10.88 scripts/lab.sh down >/dev/null
