package report

import (
	"fmt"
	"io"
	"math"

	"github.com/splicegen/splicegen/proto"
)

// SendWire is the sender's egress interface (the route to the receiver) and the change
// of its transmit counters over the data phase. The counters are the whole interface's.
type SendWire struct {
	Ifname    string `json:"ifname"`
	TxPackets uint64 `json:"tx_packets"`
	TxBytes   uint64 `json:"tx_bytes"`
}

// RecvWire is the receiver's interface of the route back to the sender (where the
// sender's packets arrive) and the change of its receive counters over the data phase.
type RecvWire struct {
	Ifname    string `json:"ifname"`
	RxPackets uint64 `json:"rx_packets"`
	RxBytes   uint64 `json:"rx_bytes"`
}

// wireOff is how far wire packets may stray from the application's count unremarked.
const wireOff = 0.01

// wireText writes a side's wire line, and a note when its packet count differs from the
// application's messages by more than 1%, with the protocol's reason.
func wireText(w io.Writer, r *Run, dir, ifname string, pkts, bytes, msgs, appBytes uint64) {
	fmt.Fprintf(w, "          wire: %s %s %d packets, %s (whole interface, other traffic included%s)\n",
		ifname, dir, pkts, Human(bytes), map[bool]string{true: "; on lo tx and rx count the same packets", false: ""}[ifname == "lo"])
	if msgs == 0 || math.Abs(float64(pkts)-float64(msgs)) <= wireOff*float64(msgs) {
		return
	}
	what := "messages"
	if datagram(r.Proto) {
		what = "datagrams"
	}
	fmt.Fprintf(w, "note: %s counted %d packets for %d %s (%s): ", ifname, pkts, msgs, what, pct(pkts, msgs))
	avg := 0.0 // datagrams per packet: a receiver's lost ones crossed the interface too
	if v := r.Receiver; pkts > 0 && dir == "rx" && v != nil {
		avg = float64(msgs+v.Lost) / float64(pkts)
	} else if pkts > 0 {
		avg = float64(msgs) / float64(pkts)
	}
	switch {
	case traitsOf(r.Proto).Kind == proto.KindStream:
		fmt.Fprintf(w, "TCP segments are not messages (a byte stream; TSO/GSO hands the device up to 64 KiB per packet): compare bytes: %s sent, %s on the wire (%s) with headers%s\n",
			Human(appBytes), Human(bytes), pct(bytes, appBytes), map[bool]string{true: " and the ACKs", false: ""}[ifname == "lo"])
	case traitsOf(r.Proto).Kind == proto.KindMessage:
		fmt.Fprintf(w, "SCTP packets are not messages (small ones are bundled, large ones fragmented, GSO joins packets): compare bytes: %s sent, %s on the wire (%s) with headers and SACKs\n",
			Human(appBytes), Human(bytes), pct(bytes, appBytes))
	case pkts < msgs && (r.Mode == "gso" || dir == "rx"):
		gso := "UDP GSO"
		if r.Mode != "gso" {
			gso = "UDP GSO super-buffers (sender -m gso)"
		}
		fmt.Fprintf(w, "%s: %.1f datagrams per packet: veth and loopback carry each super-buffer whole, counted once, and the receiving socket splits it (udp(7) UDP_SEGMENT); where a device segments it (no UDP segmentation offload) each datagram is a packet\n", gso, avg)
	case pkts < msgs:
		fmt.Fprintln(w, "fewer packets than datagrams: dropped before the device (qdisc, full socket), or a route over another interface")
	default:
		fmt.Fprintln(w, "more packets than datagrams: other traffic on the interface, or IP fragments (datagrams above the path MTU)")
	}
}

// pinNote suggests --cpu when an unpaced UDP run lost datagrams with a side unpinned:
// where the scheduler puts the sender, the receiver and the softirq work (on veth and
// loopback, the sending CPU's: netif_rx queues to the current CPU's backlog) then
// decides the loss, which changes from run to run (docs/kernel.md#wire-truth).
func pinNote(w io.Writer, r *Run) {
	v, s := r.Receiver, r.Sender
	if v == nil || v.Lost == 0 || !datagram(r.Proto) {
		return
	}
	const why = "where the scheduler puts sender, receiver and softirq work decides the loss from run to run"
	switch {
	case s == nil && v.CPU == "":
		fmt.Fprintf(w, "note: %d datagrams lost with this receiver unpinned: if the sender ran at max rate (no --rate/--pps), %s: pin both sides with --cpu to make it repeatable, or pace the sender\n", v.Lost, why)
	case s != nil && !s.Paced && (s.CPU == "" || v.CPU == ""):
		fmt.Fprintf(w, "note: %d datagrams lost at max rate with %s unpinned: %s: pin with --cpu (run: --cpu here, --server-cpu there) to make it repeatable, or pace with --rate/--pps\n",
			v.Lost, unpinned(s.CPU, v.CPU), why)
	}
}

func unpinned(snd, rcv string) string {
	switch {
	case snd == "" && rcv == "":
		return "sender and receiver"
	case snd == "":
		return "the sender"
	}
	return "the receiver"
}

// pct is a against b as a signed percentage.
func pct(a, b uint64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", (float64(a)/float64(b)-1)*100)
}
