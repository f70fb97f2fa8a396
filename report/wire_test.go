package report

import (
	"bytes"
	"strings"
	"testing"
)

// The wire line and its note: silent within 1%, the protocol's reason beyond.
func TestWireNotes(t *testing.T) {
	snd := func(mode string, msgs, pkts uint64) *Run {
		return &Run{Proto: "udp", Mode: mode, Size: 64, Streams: 1,
			Sender: &Sender{Side: Side{Messages: msgs, Bytes: msgs * 64}, Paced: true,
				Wire: &SendWire{Ifname: "veth0", TxPackets: pkts, TxBytes: pkts * 1000}}}
	}
	for _, c := range []struct {
		name string
		r    *Run
		want []string
		not  []string
	}{
		{"udp write, equal", snd("write", 1000, 1005), []string{"wire: veth0 tx 1005 packets"}, []string{"note:"}},
		{"udp gso", snd("gso", 100000, 1000), []string{"note: veth0 counted 1000 packets for 100000 datagrams (-99.0%)", "UDP GSO: 100.0 datagrams per packet"}, nil},
		{"udp write, more packets", snd("write", 1000, 2000), []string{"other traffic on the interface, or IP fragments"}, []string{"GSO"}},
		{"tcp", &Run{Proto: "tcp", Mode: "splice", Sender: &Sender{Side: Side{Messages: 100, Bytes: 6553600},
			Wire: &SendWire{Ifname: "lo", TxPackets: 150, TxBytes: 6600000}}}, []string{"TCP segments are not messages", "compare bytes", "(+0.7%)", "and the ACKs", "on lo tx and rx count the same packets"}, nil},
		{"receiver of gso", &Run{Proto: "udp", Receiver: &Receiver{Side: Side{Messages: 12800},
			Wire: &RecvWire{Ifname: "eth0", RxPackets: 100}}}, []string{"wire: eth0 rx 100 packets", "UDP GSO super-buffers (sender -m gso): 128.0 datagrams per packet"}, nil},
	} {
		var b bytes.Buffer
		Text(&b, c.r)
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: no %q in\n%s", c.name, w, b.String())
			}
		}
		for _, w := range c.not {
			if strings.Contains(b.String(), w) {
				t.Errorf("%s: %q in\n%s", c.name, w, b.String())
			}
		}
	}
}

// --cpu is suggested only for lost datagrams at max rate with a side unpinned.
func TestPinNote(t *testing.T) {
	run := func(paced bool, sndCPU, rcvCPU string, lost uint64, both bool) *Run {
		r := &Run{Proto: "udp", Mode: "gso", Receiver: &Receiver{Lost: lost, Side: Side{Messages: 1000, CPU: rcvCPU}}}
		if both {
			r.Sender = &Sender{Side: Side{Messages: 1000, CPU: sndCPU}, Paced: paced}
		}
		return r
	}
	for _, c := range []struct {
		name string
		r    *Run
		want string // "": no note
	}{
		{"unpaced, unpinned, lossy", run(false, "", "", 10, true), "pin with --cpu"},
		{"unpaced, sender unpinned", run(false, "", "1", 10, true), "with the sender unpinned"},
		{"paced", run(true, "", "", 10, true), ""},
		{"pinned", run(false, "0", "1", 10, true), ""},
		{"no loss", run(false, "", "", 0, true), ""},
		{"receiver alone, unpinned", run(false, "", "", 10, false), "if the sender ran at max rate"},
		{"receiver alone, pinned", run(false, "", "1", 10, false), ""},
	} {
		var b bytes.Buffer
		Text(&b, c.r)
		got := strings.Contains(b.String(), "--cpu")
		if got != (c.want != "") || c.want != "" && !strings.Contains(b.String(), c.want) {
			t.Errorf("%s: want %q, got\n%s", c.name, c.want, b.String())
		}
	}
}
