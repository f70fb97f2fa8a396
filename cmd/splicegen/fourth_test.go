package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	_ "github.com/splicegen/splicegen/proto/udplite" // the fourth protocol: registered here only
	"github.com/splicegen/splicegen/report"
)

// snmpUdpLite reads the kernel's UdpLite counters (/proc/net/snmp).
func snmpUdpLite(t *testing.T) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "UdpLite:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		m := map[string]uint64{}
		for i, v := range f[1:] {
			m[names[i]], _ = strconv.ParseUint(v, 10, 64)
		}
		return m
	}
	t.Fatal("no UdpLite line in /proc/net/snmp")
	return nil
}

// A fourth protocol registered by a test-only plugin (proto/udplite: UDP-Lite through
// the UDP plugin's code, its own traits) runs through send, recv and compare with no
// edit outside its folder: the command, the generator, the receiver and the report ask
// its traits. The kernel's UdpLite counters prove the datagrams really were UDP-Lite.
func TestFourthProtocol(t *testing.T) {
	before := snmpUdpLite(t)
	var sent uint64
	for _, mode := range []string{"mmsg", "write", "splice"} {
		snd, rcv := pairAt(t, "udplite", "127.0.0.1:0", []string{"--json", "--verify", "--idle", "3s"},
			[]string{"--json", "--verify", "-m", mode, "-s", "1000", "-n", "2000"})
		if snd.code != 0 || rcv.code != 0 {
			t.Fatalf("%s: exit send %d recv %d: %s %s\n%s", mode, snd.code, rcv.code, snd.stderr, rcv.stderr, rcv.stdout)
		}
		_, v := decodeUDP(t, rcv)
		if v.Messages+v.Lost != 2000 || v.Corrupt != 0 || !v.Detail.Ended {
			t.Fatalf("%s: receiver %+v", mode, v)
		}
		sent += 2000
	}
	after := snmpUdpLite(t)
	if d := after["OutDatagrams"] - before["OutDatagrams"]; d < sent {
		t.Fatalf("kernel UdpLite OutDatagrams grew by %d, want at least %d", d, sent)
	}
	// Refusals come from the plugin's traits, with its reason.
	r := runArgs("send", "-p", "udplite", "-m", "gso", "127.0.0.1:5500")
	if r.code != 2 || !strings.Contains(r.stderr, "EIO to UDP_SEGMENT sends on UDP-Lite") {
		t.Fatalf("gso on udplite: exit %d %q", r.code, r.stderr)
	}
	// compare: its own default matrix, the datagram tables, gso listed as unsupported.
	t.Setenv("SPLICEGEN_TEST_AS_CLI", "1")
	dir := t.TempDir()
	c := runArgs("compare", "-p", "udplite", "-m", "mmsg,gso", "-s", "64", "-t", "1s", "--repeat", "1", "--verify", "--json", dir+"/r.json")
	if c.code != 0 {
		t.Fatalf("compare: exit %d %s\n%s", c.code, c.stderr, c.stdout)
	}
	f, err := report.ReadFile(dir + "/r.json")
	if err != nil {
		t.Fatal(err)
	}
	var measured, unsupported int
	for _, s := range f.Summary {
		switch {
		case s.Unsupported && s.Mode == "gso":
			unsupported++
		case s.Proto == "udplite" && s.Mode == "mmsg" && s.Runs == 1 && s.RcvPPS > 0:
			measured++
		}
	}
	if measured != 1 || unsupported != 1 || !strings.Contains(c.stdout, "loss") {
		t.Fatalf("summary %+v\n%s", f.Summary, c.stdout)
	}
}
