package main

import (
	"os"
	"testing"

	"github.com/splicegen/splicegen/sink"
	"github.com/vishvananda/netlink"
)

// Tests with netem on loopback. This host's kernel has no netem: they run in the VM
// suite (scripts/vm loads sch_netem), which sets SPLICEGEN_REQUIRE_NETEM=1 so that they
// fail there rather than skip.

// netem puts a netem qdisc on lo for the test (delay in µs, loss in %).
func netem(t *testing.T, delayUs uint32, lossPct float32) { netemRate(t, delayUs, lossPct, 0) }

// netemRate is netem with a rate limit (bytes/s; 0: none).
func netemRate(t *testing.T, delayUs uint32, lossPct float32, rate uint64) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Handle: netlink.MakeHandle(1, 0),
			Parent: netlink.HANDLE_ROOT}, netlink.NetemQdiscAttrs{Latency: delayUs, Loss: lossPct, Limit: 100000, Rate64: rate})
		if err = netlink.QdiscAdd(q); err == nil {
			t.Cleanup(func() { netlink.QdiscDel(q) })
			return
		}
	}
	if os.Getenv("SPLICEGEN_REQUIRE_NETEM") == "1" {
		t.Fatalf("netem on lo: %v", err)
	}
	t.Skipf("netem on lo: %v (the VM suite in scripts/test.sh runs this test)", err)
}

type latencyJSON struct {
	Receiver struct {
		Messages, Lost uint64
		LossPct        float64 `json:"loss_pct"`
		Latency        *sink.Latency
	}
}

// With netem delay 20ms on lo, every packet waits 20 ms once: the one-way p50 of UDP and
// of TCP (--nodelay: Nagle would hold a small message for the previous one's ACK, a
// 40 ms round trip) is 20 ± 2 ms.
func TestNetemLatency(t *testing.T) {
	netem(t, 20000, 0)
	for _, c := range []struct {
		proto string
		send  []string
	}{
		{"udp", []string{"-s", "200", "--pps", "2k", "-n", "2000"}},
		{"tcp", []string{"-s", "2k", "--pps", "200", "-n", "400", "--nodelay"}},
	} {
		_, rcv := pairProto(t, c.proto, []string{"--json"}, c.send)
		var r latencyJSON
		mustJSON(t, rcv.stdout, &r)
		l := r.Receiver.Latency
		if l == nil || l.Samples < int64(r.Receiver.Messages) || l.P50Us < 18000 || l.P50Us > 22000 {
			t.Fatalf("%s: latency %+v, want p50 20 ± 2 ms: %s", c.proto, l, rcv.stdout)
		}
		t.Logf("%s with netem delay 20ms: p50 %d µs, p99 %d µs over %d messages", c.proto, l.P50Us, l.P99Us, l.Samples)
	}
}

// With netem delay 20ms on lo, a round trip crosses lo twice: --rtt 100's p50 is
// 40 ± 4 ms for UDP and for TCP (--nodelay, paced: the message is not held for an ACK).
func TestNetemRTT(t *testing.T) {
	netem(t, 20000, 0)
	for _, c := range []struct {
		proto string
		send  []string
	}{
		{"udp", []string{"-s", "200", "--pps", "2k", "-n", "8000"}},
		{"tcp", []string{"-s", "16k", "--pps", "500", "-n", "2000", "--nodelay"}},
	} {
		snd, rcv := pairProto(t, c.proto, []string{"--json"}, append([]string{"--json", "--rtt", "100"}, c.send...))
		var r rttJSON
		mustJSON(t, snd.stdout, &r)
		l := r.Sender.RTT
		if l == nil || l.Samples < int64(r.Sender.Messages/100)*9/10 || l.P50Us < 36000 || l.P50Us > 44000 {
			t.Errorf("%s: rtt %+v, want p50 40 ± 4 ms: %s %s", c.proto, l, snd.stdout, rcv.stdout)
			continue
		}
		t.Logf("%s with netem delay 20ms: rtt p50 %d µs, p99 %d µs over %d samples", c.proto, l.P50Us, l.P99Us, l.Samples)
	}
}

// With netem loss 1%, the UDP receiver's loss_pct over 200k datagrams is 1 ± 0.3.
func TestNetemLoss(t *testing.T) {
	netem(t, 0, 1)
	_, rcv := pairProto(t, "udp", []string{"--json"}, []string{"-s", "200", "-m", "mmsg", "--pps", "40k", "-n", "200000"})
	var r latencyJSON
	mustJSON(t, rcv.stdout, &r)
	v := r.Receiver
	if v.Messages+v.Lost < 199000 || v.LossPct < 0.7 || v.LossPct > 1.3 {
		t.Fatalf("netem loss 1%%: %d received, %d lost, loss_pct %.3f: %s", v.Messages, v.Lost, v.LossPct, rcv.stdout)
	}
	t.Logf("netem loss 1%%: %d received, %d lost, loss_pct %.3f", v.Messages, v.Lost, v.LossPct)
}

// A long path: 50 ms RTT (25 ms each way on lo) at 1 Gbit/s needs ~6 MiB in flight.
// The page ring must not be what limits it: splice (ring) against write (no ring), with
// the kernel's autotuned buffers and with 8 MiB ones.
func TestNetemLongPath(t *testing.T) {
	netemRate(t, 25000, 0, 125_000_000)
	for _, bufs := range [][]string{nil, {"--sndbuf", "8M"}} {
		g := map[string]float64{}
		for _, mode := range []string{"splice", "write"} {
			rargs := []string{"--json"}
			if bufs != nil {
				rargs = append(rargs, "--rcvbuf", "8M")
			}
			_, rcv := pairProto(t, "tcp", rargs, append([]string{"-m", mode, "-t", "5s"}, bufs...))
			var r struct {
				Receiver struct {
					GbitS float64 `json:"gbit_s"`
				}
			}
			mustJSON(t, rcv.stdout, &r)
			g[mode] = r.Receiver.GbitS
		}
		t.Logf("50 ms RTT, 1 Gbit/s, buffers %v: splice %.3f Gbit/s, write %.3f Gbit/s", bufs, g["splice"], g["write"])
		if g["splice"] < 0.8*g["write"] || g["splice"] <= 0 {
			t.Errorf("buffers %v: splice %.3f Gbit/s below 0.8 x write's %.3f: the ring caps the path", bufs, g["splice"], g["write"])
		}
	}
}
