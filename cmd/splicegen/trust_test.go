package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/splicegen/splicegen/wire"
)

// Trust: each case below was an attack or accident that changed a verdict on main
// (issue "trustworthy verdicts"); each runs real processes and asserts the new rule.

// cli is a splicegen child process (this test binary re-executed as the command).
type cli struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	code           int
}

func startCLI(t *testing.T, files []*os.File, args ...string) *cli {
	t.Helper()
	return startCLIIn(t, "", files, args...)
}

// startCLIIn is startCLI in network namespace ns ("": this one).
func startCLIIn(t *testing.T, ns string, files []*os.File, args ...string) *cli {
	t.Helper()
	c := &cli{cmd: splicegenCmd(t, ns, args...), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.ExtraFiles = files
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.cmd.Wait()
		c.code = c.cmd.ProcessState.ExitCode()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// wait waits at most d for the process to exit.
func (c *cli) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("%v did not exit within %v; stderr %q", c.cmd.Args[1:], d, c.stderr.String())
	}
}

// recvChild starts a receiver on a fresh loopback endpoint of proto and returns it and
// the address to send to.
func recvChild(t *testing.T, protoName string, args ...string) (*cli, string) {
	t.Helper()
	addr, fd := listenFD(t, protoName, "127.0.0.1:0")
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	r := startCLI(t, []*os.File{f}, append([]string{"recv", "-p", protoName, "--listen-fd", "3", "-i", "0", "--json"}, args...)...)
	return r, addr
}

type verdictJSON struct {
	Receiver struct {
		Messages, Bytes, Lost, Corrupt, Duplicate, Stray uint64
		LossPct                                          float64 `json:"loss_pct"`
		RealMs                                           float64 `json:"real_ms"`
		Verdict                                          int
		VerdictWhy                                       string `json:"verdict_why"`
		Detail                                           struct {
			Stray map[string]uint64
		}
	}
	Sender struct {
		Messages, Bytes uint64
		Verdict         int `json:"receiver_verdict"`
		Proof           string
		Detail          struct{ Stalled bool }
	}
	Error string
}

func decodeV(t *testing.T, out string) verdictJSON {
	t.Helper()
	var v verdictJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	return v
}

// A sender killed mid-run: the receiver has no end frame and says "incomplete", exit 1
// (it used to print the messages that arrived and exit 0).
func TestSenderKilledIncomplete(t *testing.T) {
	r, addr := recvChild(t, "tcp", "--verify")
	s := startCLI(t, nil, "send", "--verify", "-t", "20s", "-i", "0", addr)
	time.Sleep(1500 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGKILL)
	r.wait(t, 10*time.Second)
	v := decodeV(t, r.stdout.String())
	if r.code != 1 || v.Receiver.Verdict != 1 || !strings.Contains(v.Receiver.VerdictWhy, "incomplete") || v.Receiver.Messages == 0 {
		t.Fatalf("exit %d: %+v", r.code, v.Receiver)
	}
}

// Strangers: a bare connect+close and a garbage connection before the test, the same
// and a second sender during it. Each is a stray; the test completes with its own
// figures, exit 0 on both sides. The second sender's connection is refused as another
// test's, so it fails (no verdict comes back to it).
func TestStraysNeverChangeAVerdict(t *testing.T) {
	r, addr := recvChild(t, "tcp", "--verify", "--idle", "10s")
	strange := func() {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close() // a port scan or health check
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Write([]byte("GET / HTTP/1.1\r\nHost: splicegen.example\r\n\r\n and some more garbage bytes"))
			c.Close()
		}
	}
	strange()
	time.Sleep(200 * time.Millisecond)
	s := startCLI(t, nil, "send", "--verify", "--json", "-i", "0", "--pps", "20k", "-n", "40000", "-s", "1000", addr)
	time.Sleep(500 * time.Millisecond)
	strange()
	second := startCLI(t, nil, "send", "--json", "-i", "0", "-n", "1000", "--stall-timeout", "3s", addr)
	s.wait(t, 30*time.Second)
	r.wait(t, 10*time.Second)
	second.wait(t, 10*time.Second)
	vr, vs := decodeV(t, r.stdout.String()), decodeV(t, s.stdout.String())
	if r.code != 0 || s.code != 0 || vr.Receiver.Messages != 40000 || vr.Receiver.Messages != vs.Sender.Messages || vs.Sender.Verdict != 0 {
		t.Fatalf("exit recv %d send %d: receiver %+v sender %+v\n%s", r.code, s.code, vr.Receiver, vs.Sender, s.stderr.String())
	}
	st := vr.Receiver.Detail.Stray
	if st["closed"] < 2 || st["garbage"] < 2 || st["other_test"] < 1 || vr.Receiver.Stray != st["closed"]+st["garbage"]+st["other_test"]+st["silent"]+st["extra"]+st["refused"] {
		t.Fatalf("strays %+v (total %d)", st, vr.Receiver.Stray)
	}
	if second.code != 1 {
		t.Fatalf("second sender: exit %d %s", second.code, second.stderr.String())
	}
}

// Forged datagrams during a UDP test — a data datagram of stream 0 with seq 2^63-1 and
// an end datagram, neither with the test's id — never change the verdict: no loss, and
// the test runs its full time (they used to make 9.2e18 lost and to end the test). A
// recv of one test connects its socket to the test's source, so the kernel refuses them
// (no strays reach it); a --keep receiver stays unconnected and counts them as strays.
func TestUDPForgedDatagrams(t *testing.T) {
	for _, keep := range []bool{false, true} {
		args := []string{"--verify", "--idle", "5s"}
		if keep {
			args = append(args, "--keep")
		}
		r, addr := recvChild(t, "udp", args...)
		s := startCLI(t, nil, "send", "-p", "udp", "--verify", "--json", "-i", "0", "-t", "2s", "--pps", "20k", addr)
		time.Sleep(500 * time.Millisecond)
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 1472)
		(&wire.Header{Streams: 1, Length: uint32(len(data) - wire.HeaderLen), Seq: 1<<63 - 1, TestID: 12345}).Put(data)
		end := make([]byte, wire.EndLen)
		wire.PutEnd(end, wire.Header{Streams: 1, TestID: 12345}, 1, 1472)
		garbage := []byte("not a header at all, just bytes on the port")
		for _, b := range [][]byte{data, end, garbage} {
			c.Write(b)
		}
		c.Close()
		s.wait(t, 20*time.Second)
		if keep {
			time.Sleep(300 * time.Millisecond)
			r.cmd.Process.Signal(syscall.SIGINT)
		}
		r.wait(t, 20*time.Second)
		v := decodeV(t, r.stdout.String())
		st := v.Receiver.Detail.Stray
		strays := st["other_test"] == 2 && st["garbage"] == 1
		if !keep {
			strays = v.Receiver.Stray == 0 // refused by the connected socket
		}
		if r.code != 0 || s.code != 0 || v.Receiver.Lost != 0 || v.Receiver.RealMs < 1800 || !strays {
			t.Fatalf("keep %v: exit recv %d send %d: %+v", keep, r.code, s.code, v.Receiver)
		}
	}
}

// 2,000 idle connections before the test: the receiver stays small (each waits for its
// first header with a few KiB, not a sink buffer) and the real test completes.
func TestIdleConnectionsBounded(t *testing.T) {
	r, addr := recvChild(t, "tcp", "--verify", "--idle", "20s")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 2000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	time.Sleep(time.Second)
	rss := vmRSS(t, r.cmd.Process.Pid)
	s := startCLI(t, nil, "send", "--verify", "--json", "-i", "0", "-n", "2000", addr)
	s.wait(t, 30*time.Second)
	r.wait(t, 30*time.Second)
	v := decodeV(t, r.stdout.String())
	t.Logf("receiver RSS with 2000 idle connections: %d KiB", rss>>10)
	if r.code != 0 || s.code != 0 || v.Receiver.Messages != 2000 || rss > 64<<20 {
		t.Fatalf("exit recv %d send %d, RSS %d KiB: %+v", r.code, s.code, rss>>10, v.Receiver)
	}
}

func vmRSS(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A frozen receiver (SIGSTOP): the sender ends as "peer stalled", exit 1, within its
// --stall-timeout (it used to block forever with --bytes).
func TestSenderStallTimeout(t *testing.T) {
	r, addr := recvChild(t, "tcp")
	s := startCLI(t, nil, "send", "--json", "-i", "0", "--bytes", "100GiB", "--stall-timeout", "3s", addr)
	time.Sleep(time.Second)
	r.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	defer r.cmd.Process.Signal(syscall.SIGCONT)
	s.wait(t, 15*time.Second)
	took := time.Since(stopped)
	v := decodeV(t, s.stdout.String())
	if s.code != 1 || !v.Sender.Detail.Stalled || !strings.Contains(v.Error, "peer stalled") || took > 5*time.Second {
		t.Fatalf("exit %d after %v: %s", s.code, took, s.stdout.String())
	}
}

// A receiver report claiming more than a socket on this host can hold (1 TiB) is capped
// to the local worst case, said in the ring rule, and no usage error blames the user
// (it used to map 1.26 GiB per stream for a 1 GiB claim, and exit 2 for 1 TiB).
func TestPeerReportCapped(t *testing.T) {
	var h [wire.HelloLen]byte
	wire.PutHello(h[:], 1<<40)
	r := runArgs("send", "--json", "-i", "0", "--bytes", "1MiB", "--stall-timeout", "2s", plainSink(t, h[:]))
	var v struct {
		Sender struct {
			RingBytes int `json:"ring_bytes"`
			Detail    struct {
				Rule struct{ Why string } `json:"ring_rule"`
			}
		}
	}
	mustJSON(t, r.stdout, &v)
	if r.code != 1 || v.Sender.RingBytes > 64<<20 || !strings.Contains(v.Sender.Detail.Rule.Why, "capped") {
		t.Fatalf("exit %d (want 1: no verdict from this fake receiver), ring %d: %s", r.code, v.Sender.RingBytes, r.stdout)
	}
}

// report reads any results file without panicking, e.g. a null run with --csv.
func TestReportNullRun(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/r.json", []byte(`{"runs":[null]}`), 0o644)
	if r := runArgs("report", dir+"/r.json", "--csv", dir+"/r.csv"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// Streams that send no message (more streams than messages) still end with their end
// frame, are admitted on it, and the test completes.
func TestStreamsWithoutMessages(t *testing.T) {
	for _, sink := range []string{"read", "splice"} {
		for _, verify := range []string{"--verify", "--verify=false"} {
			snd, rcv := pairProto(t, "tcp", []string{"--json", "--sink", sink, verify}, []string{"--json", verify, "-P", "4", "-n", "2"})
			if snd.code != 0 || rcv.code != 0 || !strings.Contains(rcv.stdout, `"messages": 2,`) {
				t.Fatalf("sink %s %s: exit send %d recv %d: %s %s", sink, verify, snd.code, rcv.code, rcv.stdout, snd.stderr)
			}
		}
	}
}

// Review findings, each a regression test.

// A header with a stream id beyond its stream count is a stray that does not claim the
// test: the real sender that follows completes (it used to be locked out for good).
func TestBadStreamIDCannotLockTest(t *testing.T) {
	r, addr := recvChild(t, "tcp", "--idle", "10s")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1000)
	(&wire.Header{Streams: 1, Stream: 5, Length: uint32(len(b) - wire.HeaderLen), TestID: 777}).Put(b)
	c.Write(b)
	defer c.Close()
	time.Sleep(300 * time.Millisecond)
	s := runArgs("send", "-n", "10", "-s", "1000", addr)
	r.wait(t, 15*time.Second)
	v := decodeV(t, r.stdout.String())
	if s.code != 0 || r.code != 0 || v.Receiver.Messages != 10 || v.Receiver.Detail.Stray["extra"] != 1 {
		t.Fatalf("exit send %d recv %d: %s %s", s.code, r.code, r.stdout.String(), s.stderr)
	}
}

// A receiver told --streams 2 against a sender of 4: incomplete on both sides, never a
// clean verdict for half the data.
func TestStreamCountMismatch(t *testing.T) {
	r, addr := recvChild(t, "tcp", "-P", "2", "--idle", "10s")
	s := runArgs("send", "--json", "-i", "0", "-P", "4", "-n", "8", "-s", "1000", addr)
	r.wait(t, 15*time.Second)
	v := decodeV(t, r.stdout.String())
	if s.code != 1 || r.code != 1 || !strings.Contains(v.Receiver.VerdictWhy, "announced 4") {
		t.Fatalf("exit send %d recv %d: %s %s", s.code, r.code, r.stdout.String(), s.stderr)
	}
}

// A slow receiver that keeps reading is not a stalled one, even when one message takes
// longer than --stall-timeout to go out.
func TestSlowPeerIsNotStalled(t *testing.T) {
	r, addr := recvChild(t, "tcp", "--stall", "100ms", "--rcvbuf", "256k")
	s := runArgs("send", "--json", "-i", "0", "-s", "8MiB", "-n", "1", "--sndbuf", "256k", "--stall-timeout", "2s", addr)
	r.wait(t, 30*time.Second)
	if s.code != 0 || r.code != 0 {
		t.Fatalf("exit send %d recv %d: %s %s", s.code, r.code, s.stdout, s.stderr)
	}
}

// The splice sink reports what arrived when the test ends early (interrupt).
func TestSpliceSinkCountsOnInterrupt(t *testing.T) {
	r, addr := recvChild(t, "tcp", "--sink", "splice")
	startCLI(t, nil, "send", "-t", "20s", "-i", "0", "-s", "4097", addr)
	time.Sleep(time.Second)
	r.cmd.Process.Signal(syscall.SIGINT)
	r.wait(t, 10*time.Second)
	v := decodeV(t, r.stdout.String())
	if r.code != 1 || v.Receiver.Messages == 0 || v.Receiver.Bytes == 0 {
		t.Fatalf("exit %d: %+v", r.code, v.Receiver)
	}
}

// plainSink is a TCP peer that is not splicegen: it writes greeting (the receiver report
// a fake receiver would claim, or nothing), then reads everything, once. It returns its
// address.
func plainSink(t *testing.T, greeting []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(greeting)
		io.Copy(io.Discard, c)
	}()
	return ln.Addr().String()
}

// A receiver given its test id (the server's sides: the id it gave its authenticated
// client) counts nothing else: a stranger who comes first with another test id is a
// stray and cannot claim the test.
func TestPresetTestIDOnlyCounts(t *testing.T) {
	for _, p := range []string{"tcp", "udp"} {
		r, addr := recvChild(t, p, "--test-id", "5eed")
		stranger := runArgs("send", "-p", p, "-n", "5", "-s", "1000", "--test-id", "bad", "-i", "0", "--stall-timeout", "1s", addr)
		time.Sleep(100 * time.Millisecond)
		snd := runArgs("send", "-p", p, "-n", "200", "-s", "1000", "--verify", "--test-id", "5eed", "-i", "0", "--json", addr)
		r.wait(t, 30*time.Second)
		var v verdictJSON
		mustJSON(t, r.stdout.String(), &v)
		if r.code != 0 || snd.code != 0 || v.Receiver.Messages != 200 || v.Receiver.Stray == 0 {
			t.Fatalf("%s: exit recv %d send %d (stranger %d): %s %s", p, r.code, snd.code, stranger.code, r.stdout.String(), snd.stderr)
		}
	}
}
