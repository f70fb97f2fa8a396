package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The lab flags, proved by what a capture on the router sees (scripts/lab.sh, tcpdump;
// capture is in lab_test.go).

// ipv4 is what the tests check of a captured IPv4 header.
type ipv4 struct {
	tos, ttl int
	df, frag bool
	src      string
}

func v4(p packet) ipv4 {
	h := p.IP
	flags := binary.BigEndian.Uint16(h[6:])
	return ipv4{tos: int(h[1]), ttl: int(h[8]), df: flags&0x4000 != 0, frag: flags&0x2000 != 0 || flags&0x1fff != 0,
		src: net.IP(h[12:16]).String()}
}

// sh runs a shell command (lab plumbing), failing the test on error.
func sh(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// recvIn starts recv --json in namespace ns (it binds within 300 ms); wait returns its
// result.
func recvIn(t *testing.T, ns string, args ...string) (wait func() map[string]any) {
	t.Helper()
	c := startCLIIn(t, ns, nil, append([]string{"recv", "--json", "-i", "0"}, args...)...)
	time.Sleep(300 * time.Millisecond)
	return func() map[string]any {
		c.wait(t, time.Minute)
		var m map[string]any
		if err := json.Unmarshal(c.stdout.Bytes(), &m); err != nil {
			t.Fatalf("recv: exit %d, %v: %s %s", c.code, err, c.stdout.String(), c.stderr.String())
		}
		return m
	}
}

// TestLabFlags: one 10 s imix UDP run from the client with every marking flag, seen on
// the router's server-facing side (after forwarding: TTL one less); then TCP's --tos
// and --cport; then --bind, --bind-dev and --mark choosing a second path.
func TestLabFlags(t *testing.T) {
	lab := labUp(t)
	router, r1 := lab.router(), lab.routerIf("server")
	wait := recvIn(t, lab.server, "-p", "udp", lab.serverIP+":5600")
	var snd result
	ps := capture(t, router, r1, "udp and dst port 5600", func() {
		snd = runCLI(t, lab.client, nil, time.Minute, "send", "-p", "udp", "--size", "imix", "--pps", "20k", "-t", "10s",
			"--tos", "0xb8", "--ttl", "7", "--df", "--flows", "16", "--cport", "42000", "--bind", lab.clientIP,
			"--bind-dev", lab.name+"-c0", "-i", "0", lab.serverIP+":5600")
	})
	rcv := wait()
	if snd.code != 0 {
		t.Fatalf("send: exit %d: %s %s", snd.code, snd.stdout, snd.stderr)
	}
	if len(ps) < 2000 {
		t.Fatalf("captured %d packets", len(ps))
	}
	ports := map[int]int{}
	for _, p := range ps {
		if h := v4(p); h.tos>>2 != 46 || h.ttl != 6 || !h.df || h.frag || h.src != lab.clientIP {
			t.Fatalf("packet %+v: want DSCP 46, TTL 6 after the router, DF, from %s", h, lab.clientIP)
		}
		ports[int(p.SrcPort)]++
	}
	if len(ports) != 16 {
		t.Errorf("%d source ports, want 16: %v", len(ports), ports)
	}
	for port := 42000; port < 42016; port++ {
		if ports[port] == 0 {
			t.Errorf("source port %d unused: %v", port, ports)
		}
	}
	// The receiver's histogram: the simple IMIX's 7:4:1, within 2% of each share.
	v := rcv["receiver"].(map[string]any)
	sizes, _ := v["sizes"].(map[string]any)
	var total float64
	for _, n := range sizes {
		total += n.(float64)
	}
	for size, w := range map[string]float64{"48": 7, "548": 4, "1472": 1} {
		got, _ := sizes[size].(float64)
		if share := got / total; total < 150000 || share < w/12-0.02 || share > w/12+0.02 {
			t.Errorf("size %s: %.0f of %.0f messages (%.4f), want %.4f ± 0.02", size, got, total, share, w/12)
		}
	}
	t.Logf("imix over 10 s: %v", sizes)

	// --df: a datagram over the 1500-byte MTU fails clearly instead of fragmenting.
	r := runCLI(t, lab.client, nil, time.Minute, "send", "-p", "udp", "-s", "3000", "-n", "5", "--df", lab.serverIP+":5601")
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "larger than the path MTU") {
		t.Errorf("--df with 3000-byte datagrams: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	// TCP: the TOS on every packet, streams on consecutive source ports.
	wait = recvIn(t, lab.server, "-p", "tcp", lab.serverIP+":5602")
	ps = capture(t, router, r1, "tcp and dst port 5602", func() {
		snd = runCLI(t, lab.client, nil, time.Minute, "send", "-p", "tcp", "-P", "2", "-n", "200", "--tos", "0x28",
			"--cport", "43000", "-i", "0", lab.serverIP+":5602")
	})
	wait()
	ports = map[int]int{}
	for _, p := range ps {
		if h := v4(p); h.tos != 0x28 {
			t.Fatalf("tcp packet %+v: want TOS 0x28", h)
		}
		ports[int(p.SrcPort)]++
	}
	if len(ports) != 2 || ports[43000] == 0 || ports[43001] == 0 || snd.code != 0 {
		t.Errorf("tcp source ports %v (send exit %d: %s)", ports, snd.code, snd.stderr)
	}
	// --fq-rate: TCP paces itself to SO_MAX_PACING_RATE (no fq qdisc on this kernel).
	wait = recvIn(t, lab.server, "-p", "tcp", lab.serverIP+":5604")
	snd = runCLI(t, lab.client, nil, time.Minute, "send", "-p", "tcp", "-s", "16k", "--fq-rate", "100M", "-t", "3s", "-i", "0", lab.serverIP+":5604")
	g := wait()["receiver"].(map[string]any)["gbit_s"].(float64)
	if snd.code != 0 || g < 0.085 || g > 0.105 {
		t.Errorf("--fq-rate 100M: receiver %.3f Gbit/s (send exit %d: %s)", g, snd.code, snd.stderr)
	}
	t.Logf("tcp --fq-rate 100M: %.3f Gbit/s at the receiver", g)
	secondPath(t, lab)
}

// secondPath adds a second client–router link (10.77.3.0/24) that the default route
// does not use, then shows --bind-dev and --mark (policy routing) send through it and
// --bind picks the source address.
func secondPath(t *testing.T, lab lab) {
	n := lab.name
	sh(t, fmt.Sprintf(`ip link add %[1]s-c1 netns %[1]s-client type veth peer name %[1]s-r2 netns %[1]s-router &&
ip -n %[1]s-client addr add 10.77.3.2/24 dev %[1]s-c1 && ip -n %[1]s-router addr add 10.77.3.1/24 dev %[1]s-r2 &&
ip -n %[1]s-client link set %[1]s-c1 up && ip -n %[1]s-router link set %[1]s-r2 up &&
ip -n %[1]s-client route add 10.77.2.0/24 via 10.77.1.1 dev %[1]s-c0 metric 10 &&
ip -n %[1]s-client route add 10.77.2.0/24 via 10.77.3.1 dev %[1]s-c1 metric 100 &&
ip -n %[1]s-client route add 10.77.2.0/24 via 10.77.3.1 dev %[1]s-c1 table 7 &&
ip -n %[1]s-client rule add fwmark 7 table 7`, n))
	for _, c := range []struct {
		flags []string
		dev   string // the router interface the packets arrive on
		src   string
	}{
		{[]string{"--bind-dev", n + "-c1"}, n + "-r2", "10.77.3.2"},
		{[]string{"--mark", "7"}, n + "-r2", "10.77.3.2"},
		{[]string{"--bind", "10.77.3.2"}, n + "-r0", "10.77.3.2"},
		{nil, n + "-r0", lab.clientIP},
	} {
		wait := recvIn(t, lab.server, "-p", "udp", lab.serverIP+":5603")
		var snd result
		ps := capture(t, n+"-router", c.dev, "udp and dst port 5603", func() {
			snd = runCLI(t, lab.client, nil, time.Minute, append([]string{"send", "-p", "udp", "-s", "200", "--pps", "1000",
				"-n", "100", "-i", "0", lab.serverIP + ":5603"}, c.flags...)...)
		})
		wait()
		if snd.code != 0 || len(ps) < 50 {
			t.Fatalf("%v: send exit %d, %d packets on %s: %s", c.flags, snd.code, len(ps), c.dev, snd.stderr)
		}
		for _, p := range ps {
			if h := v4(p); h.src != c.src {
				t.Fatalf("%v: packet from %s on %s, want %s", c.flags, h.src, c.dev, c.src)
			}
		}
	}
}
