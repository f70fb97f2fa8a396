package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The lab flags, proved by what a capture on the router sees (scripts/lab.sh, tcpdump).

// pkt is one captured IPv4 packet (tcpdump -v text).
type pkt struct {
	at                 float64 // seconds
	tos, ttl, length   int
	df, frag           bool
	src, dst           string
	sport, dport, plen int // plen: the UDP payload length (0 for TCP)
	proto              string
}

var (
	pktHead = regexp.MustCompile(`^(\d+\.\d+) IP \(tos (0x[0-9a-f]+)(?:,[^,]*)?, ttl (\d+), id \d+, offset (\d+), flags \[([^\]]*)\], proto (\w+) \(\d+\), length (\d+)`)
	pktAddr = regexp.MustCompile(`^\s+(\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): (?:UDP, length (\d+))?`)
)

// capture runs tcpdump in namespace ns on dev with a filter, runs fn once it listens,
// and returns the first count packets (fewer if fn's traffic ends; it waits 2 s after).
func capture(t *testing.T, ns, dev, filter string, count int, fn func()) []pkt {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("capture tests need tcpdump (scripts/test.sh installs it): %v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-n", "-v", "-l", "-tt",
		"--time-stamp-precision=nano", "-c", strconv.Itoa(count), "-s", "128", filter)
	var out bytes.Buffer
	cmd.Stdout = &out
	errp, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errp)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("tcpdump did not start")
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	fn()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	var ps []pkt
	lines := strings.Split(out.String(), "\n")
	for i := 0; i+1 < len(lines); i++ {
		h := pktHead.FindStringSubmatch(lines[i])
		if h == nil {
			continue
		}
		p := pkt{proto: h[6]}
		p.at, _ = strconv.ParseFloat(h[1], 64)
		tos, _ := strconv.ParseUint(h[2], 0, 8)
		p.tos = int(tos)
		p.ttl, _ = strconv.Atoi(h[3])
		p.df, p.frag = strings.Contains(h[5], "DF"), h[4] != "0" || strings.Contains(h[5], "+")
		p.length, _ = strconv.Atoi(h[7])
		if a := pktAddr.FindStringSubmatch(lines[i+1]); a != nil {
			p.src, p.dst = a[1], a[3]
			p.sport, _ = strconv.Atoi(a[2])
			p.dport, _ = strconv.Atoi(a[4])
			p.plen, _ = strconv.Atoi(a[5])
		}
		ps = append(ps, p)
	}
	return ps
}

// sh runs a shell command (lab plumbing), failing the test on error.
func sh(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// recvIn starts recv in namespace ns; wait returns its JSON result.
func recvIn(t *testing.T, ns string, args ...string) (wait func() map[string]any) {
	t.Helper()
	cmd := splicegenCmd(t, ns, append([]string{"recv", "--json", "-i", "0"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	time.Sleep(300 * time.Millisecond) // bound
	return func() map[string]any {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("recv did not end: %s %s", o.String(), e.String())
		}
		var m map[string]any
		if err := json.Unmarshal(o.Bytes(), &m); err != nil {
			t.Fatalf("recv: %v: %s %s", err, o.String(), e.String())
		}
		return m
	}
}

// TestLabFlags: one 10 s imix UDP run from the client with every marking flag, seen on
// the router's server-facing side (after forwarding: TTL one less); then TCP's --tos
// and --cport; then --bind, --bind-dev and --mark choosing a second path.
func TestLabFlags(t *testing.T) {
	lab := labUp(t)
	router, r1 := lab.name+"-router", lab.name+"-r1"
	wait := recvIn(t, lab.server, "-p", "udp", lab.serverIP+":5600")
	var snd result
	ps := capture(t, router, r1, "udp and dst port 5600", 3000, func() {
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
		if p.tos>>2 != 46 || p.ttl != 6 || !p.df || p.frag || p.src != lab.clientIP {
			t.Fatalf("packet %+v: want DSCP 46, TTL 6 after the router, DF, from %s", p, lab.clientIP)
		}
		ports[p.sport]++
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
	ps = capture(t, router, r1, "tcp and dst port 5602", 200, func() {
		snd = runCLI(t, lab.client, nil, time.Minute, "send", "-p", "tcp", "-P", "2", "-n", "200", "--tos", "0x28",
			"--cport", "43000", "-i", "0", lab.serverIP+":5602")
	})
	wait()
	ports = map[int]int{}
	for _, p := range ps {
		if p.tos != 0x28 {
			t.Fatalf("tcp packet %+v: want TOS 0x28", p)
		}
		ports[p.sport]++
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
		ps := capture(t, n+"-router", c.dev, "udp and dst port 5603", 50, func() {
			snd = runCLI(t, lab.client, nil, time.Minute, append([]string{"send", "-p", "udp", "-s", "200", "--pps", "1000",
				"-n", "100", "-i", "0", lab.serverIP + ":5603"}, c.flags...)...)
		})
		wait()
		if snd.code != 0 || len(ps) < 50 {
			t.Fatalf("%v: send exit %d, %d packets on %s: %s", c.flags, snd.code, len(ps), c.dev, snd.stderr)
		}
		for _, p := range ps {
			if p.src != c.src {
				t.Fatalf("%v: packet from %s on %s, want %s", c.flags, p.src, c.dev, c.src)
			}
		}
	}
}
