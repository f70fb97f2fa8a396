#!/usr/bin/env bash
# A client – router – server lab of three network namespaces joined by veth pairs, the
# router forwarding between them: two "hosts" one routed hop apart, on one machine.
#
#   scripts/lab.sh up     create it (idempotent: an old lab of the same name is removed first)
#   scripts/lab.sh down   remove it
#
#   client  ${P}.1.2/24 ──veth── ${P}.1.1 router ${P}.2.1 ──veth── ${P}.2.2/24  server
#
# Namespaces: ${LAB:-sg}-client, -router, -server. LAB and LAB_NET (default 10.9, the
# first two octets) let several labs coexist. Run a command on a host with
#   ip netns exec sg-server splicegen server --listen 10.9.2.2:5499
#   ip netns exec sg-client splicegen run 10.9.2.2
# Needs root and iproute2.
set -euo pipefail
L=${LAB:-sg}
P=${LAB_NET:-10.9}
down() {
  for n in client router server; do ip netns del "$L-$n" 2>/dev/null || true; done
}
case "${1:-}" in
up)
  down
  for n in client router server; do
    ip netns add "$L-$n"
    ip -n "$L-$n" link set lo up
  done
  ip link add "$L-c0" netns "$L-client" type veth peer name "$L-r0" netns "$L-router"
  ip link add "$L-s0" netns "$L-server" type veth peer name "$L-r1" netns "$L-router"
  ip -n "$L-client" addr add "$P.1.2/24" dev "$L-c0"
  ip -n "$L-router" addr add "$P.1.1/24" dev "$L-r0"
  ip -n "$L-router" addr add "$P.2.1/24" dev "$L-r1"
  ip -n "$L-server" addr add "$P.2.2/24" dev "$L-s0"
  for d in "client $L-c0" "router $L-r0" "router $L-r1" "server $L-s0"; do
    set -- $d
    ip -n "$L-$1" link set "$2" up
  done
  ip -n "$L-client" route add default via "$P.1.1"
  ip -n "$L-server" route add default via "$P.2.1"
  ip netns exec "$L-router" sh -c "echo 1 > /proc/sys/net/ipv4/ip_forward"
  echo "lab $L up: client $P.1.2 → router → server $P.2.2"
  ;;
down)
  down
  echo "lab $L down"
  ;;
*)
  echo "usage: scripts/lab.sh up|down   (env LAB=name LAB_NET=10.9)" >&2
  exit 2
  ;;
esac
