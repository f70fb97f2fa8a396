package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splicegen/splicegen/control"
)

// wireSide is a result side's application counts and wire object.
type wireSide struct {
	Messages, Bytes uint64
	Wire            *struct {
		Ifname string
		TxP    uint64 `json:"tx_packets"`
		TxB    uint64 `json:"tx_bytes"`
		RxP    uint64 `json:"rx_packets"`
		RxB    uint64 `json:"rx_bytes"`
	}
}

type wireRun struct{ Sender, Receiver *wireSide }

// Over loopback, UDP without GSO: both sides name "lo", and each datagram is a packet
// there, so the counters moved at least as much as the application's counts.
func TestWireLoopback(t *testing.T) {
	snd, rcv := pairProto(t, "udp", []string{"--json"}, []string{"--json", "-m", "write", "-s", "200", "-n", "20000"})
	var s, r wireRun
	mustJSON(t, snd.stdout, &s)
	mustJSON(t, rcv.stdout, &r)
	if s.Sender == nil || r.Receiver == nil {
		t.Fatalf("results: %s %s", snd.stdout, rcv.stdout)
	}
	sw, rw := s.Sender.Wire, r.Receiver.Wire
	switch {
	case sw == nil || rw == nil:
		t.Fatalf("no wire object: sender %s receiver %s (stderr %s %s)", snd.stdout, rcv.stdout, snd.stderr, rcv.stderr)
	case sw.Ifname != "lo" || rw.Ifname != "lo":
		t.Fatalf("interfaces %q and %q, want lo", sw.Ifname, rw.Ifname)
	case sw.TxP < s.Sender.Messages || sw.TxB < s.Sender.Bytes:
		t.Fatalf("lo tx %d packets %d bytes for %d datagrams %d bytes sent", sw.TxP, sw.TxB, s.Sender.Messages, s.Sender.Bytes)
	case rw.RxP < r.Receiver.Messages || rw.RxB < r.Receiver.Bytes:
		t.Fatalf("lo rx %d packets %d bytes for %d datagrams %d bytes received", rw.RxP, rw.RxB, r.Receiver.Messages, r.Receiver.Bytes)
	}
	t.Logf("udp write: sent %d datagrams, lo tx %d; received %d, lo rx %d", s.Sender.Messages, sw.TxP, r.Receiver.Messages, rw.RxP)

	// GSO over loopback, text: the wire line and the note that explains the difference.
	snd, _ = pairProto(t, "udp", nil, []string{"-m", "gso", "-s", "64", "-n", "50000", "--pps", "500k"})
	for _, want := range []string{"wire: lo tx ", "UDP GSO: ", "datagrams per packet", "the receiving socket splits it"} {
		if !strings.Contains(snd.stdout, want) {
			t.Fatalf("send text lacks %q:\n%s", want, snd.stdout)
		}
	}
}

// routerCounter is a link's counter in a namespace, read by iproute2 (not by splicegen).
func routerCounter(t *testing.T, ns, dev, dir string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("ip -n %s link show %s: %v", ns, dev, err)
	}
	var l []struct {
		Stats64 map[string]struct{ Packets uint64 } `json:"stats64"`
	}
	if err := json.Unmarshal(out, &l); err != nil || len(l) != 1 {
		t.Fatalf("ip -j: %v: %s", err, out)
	}
	return l[0].Stats64[dir].Packets
}

// Over the lab (client – router – server), UDP GSO at 64 B: the sender's wire.tx_packets
// is what the router's client-facing veth received (within 1%), far fewer than the
// datagrams sent, and the text says why. The receiver's rx matches what the router sent.
func TestWireLab(t *testing.T) {
	lab := labUp(t)
	router, r0, r1 := lab.router(), lab.routerIf("client"), lab.routerIf("server")

	rcv := splicegenCmd(t, lab.server, "recv", "-p", "udp", "--keep", "--json-stream", "-i", "0", "--cpu", "1", lab.serverIP+":5500")
	out, err := rcv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(); err != nil {
		t.Fatal(err)
	}
	results := make(chan wireRun, 4)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var r wireRun
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Receiver != nil {
				results <- r
			}
		}
	}()
	t.Cleanup(func() { rcv.Process.Kill(); wg.Wait(); rcv.Wait() })
	time.Sleep(300 * time.Millisecond) // the receiver binds

	within := func(a, b uint64) bool { return math.Abs(float64(a)-float64(b)) <= 0.01*float64(b) }
	send := []string{"send", "-p", "udp", "-m", "gso", "-s", "64", "--pps", "200k", "-t", "3s", "--cpu", "0", lab.serverIP + ":5500"}
	for _, text := range []bool{false, true} {
		in0, out0 := routerCounter(t, router, r0, "rx"), routerCounter(t, router, r1, "tx")
		args := append([]string(nil), send...)
		if !text {
			args = append(args, "--json")
		}
		res := runCLI(t, lab.client, nil, time.Minute, args...)
		in, fwd := routerCounter(t, router, r0, "rx")-in0, routerCounter(t, router, r1, "tx")-out0
		if res.code != 0 {
			t.Fatalf("%v: exit %d: %s %s", args, res.code, res.stdout, res.stderr)
		}
		var v wireRun
		select {
		case v = <-results:
		case <-time.After(30 * time.Second):
			t.Fatal("no receiver result")
		}
		var pkts, msgs uint64
		if text {
			m := regexp.MustCompile(`wire: (\S+) tx (\d+) packets`).FindStringSubmatch(res.stdout)
			n := regexp.MustCompile(`in (\d+) messages`).FindStringSubmatch(res.stdout)
			if m == nil || n == nil || m[1] != lab.name+"-c0" {
				t.Fatalf("text output without the wire line of the client's veth:\n%s", res.stdout)
			}
			pkts, _ = strconv.ParseUint(m[2], 10, 64)
			msgs, _ = strconv.ParseUint(n[1], 10, 64)
			for _, want := range []string{"note: ", "UDP GSO: ", "datagrams per packet", "the receiving socket splits it"} {
				if !strings.Contains(res.stdout, want) {
					t.Fatalf("text output does not explain the difference (%q):\n%s", want, res.stdout)
				}
			}
		} else {
			var s wireRun
			mustJSON(t, res.stdout, &s)
			if s.Sender == nil || s.Sender.Wire == nil {
				t.Fatalf("no sender wire object: %s %s", res.stdout, res.stderr)
			}
			pkts, msgs = s.Sender.Wire.TxP, s.Sender.Messages
		}
		t.Logf("text=%v: %d datagrams sent, wire.tx_packets %d, router %s rx %d; receiver got %d, wire.rx_packets %d (%v), router %s tx %d",
			text, msgs, pkts, r0, in, v.Receiver.Messages, wireOf(v.Receiver), ifOf(v.Receiver), r1, fwd)
		switch {
		case !within(pkts, in):
			t.Fatalf("sender's wire.tx_packets %d, router's %s rx_packets %d: more than 1%% apart", pkts, r0, in)
		case msgs < 10*pkts:
			t.Fatalf("%d datagrams in %d packets: GSO should put many datagrams in one packet", msgs, pkts)
		case v.Receiver.Wire == nil || !within(v.Receiver.Wire.RxP, fwd):
			t.Fatalf("receiver's wire %+v, router's %s tx_packets %d", v.Receiver.Wire, r1, fwd)
		}
	}

	// Through a server: run prints both sides' wire lines (from their JSON) and the note.
	tokFile := t.TempDir() + "/token"
	os.WriteFile(tokFile, []byte(control.NewToken()), 0o600)
	startServer(t, lab.server, "--listen", lab.serverIP+":5499", "--token-file", tokFile)
	res := runCLI(t, lab.client, nil, time.Minute, "run", lab.serverIP, "--token-file", tokFile,
		"-p", "udp", "-m", "gso", "-s", "64", "--pps", "200k", "-t", "2s", "--cpu", "0", "--server-cpu", "1")
	for _, want := range []string{"wire: " + lab.name + "-c0 tx ", "wire: " + lab.name + "-s0 rx ", "UDP GSO: ", "datagrams per packet"} {
		if res.code != 0 || !strings.Contains(res.stdout, want) {
			t.Fatalf("run: exit %d, no %q in:\n%s%s", res.code, want, res.stdout, res.stderr)
		}
	}
}

func wireOf(s *wireSide) uint64 {
	if s.Wire == nil {
		return 0
	}
	return s.Wire.RxP
}

func ifOf(s *wireSide) string {
	if s.Wire == nil {
		return "no wire"
	}
	return s.Wire.Ifname
}
