package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splicegen/splicegen/control"
)

// Server tests: real processes (this test binary re-executed as splicegen), the server
// on loopback here; the two-host tests (two network namespaces, scripts/lab.sh) are in
// TestServerTwoHosts.

// srv is a running splicegen server.
type srv struct {
	cmd   *exec.Cmd
	addr  string // HOST:PORT it listens on
	token string // printed when it made one
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
}

// splicegenCmd is this test binary as splicegen, in network namespace ns ("": here).
func splicegenCmd(t testing.TB, ns string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if ns == "" {
		cmd = exec.Command(exe, args...)
	} else {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, exe}, args...)...)
	}
	cmd.Env = append(os.Environ(), "SPLICEGEN_TEST_AS_CLI=1")
	return cmd
}

func startServer(t testing.TB, ns string, args ...string) *srv {
	t.Helper()
	s := &srv{done: make(chan struct{})}
	s.cmd = splicegenCmd(t, ns, append([]string{"server"}, args...)...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			s.mu.Lock()
			s.log.WriteString(l + "\n")
			if m := regexp.MustCompile(`token ([0-9a-f]{64}) `).FindStringSubmatch(l); m != nil {
				s.token = m[1]
			}
			if m := regexp.MustCompile(`listening on (\S+),`).FindStringSubmatch(l); m != nil {
				s.addr = m[1]
				close(up)
			}
			s.mu.Unlock()
		}
		s.cmd.Wait()
	}()
	select {
	case <-up:
	case <-s.done:
		t.Fatalf("server exited: %s", s.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("server not up: %s", s.Log())
	}
	t.Cleanup(func() {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	return s
}

func (s *srv) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// runCLI runs splicegen to its end (at most d) and returns its exit status and output.
func runCLI(t testing.TB, ns string, env []string, d time.Duration, args ...string) result {
	t.Helper()
	cmd := splicegenCmd(t, ns, args...)
	cmd.Env = append(cmd.Env, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not end within %v: %s %s", args, d, o.String(), e.String())
	}
	return result{cmd.ProcessState.ExitCode(), o.String(), e.String()}
}

// runFile is what run --json prints (the results file schema).
type runFile struct {
	Env struct {
		Host   string
		Server *struct{ Host, Kernel string }
	}
	Runs []struct {
		Direction, Error string
		Interrupted      bool
		Sender           *struct {
			Bytes, Messages uint64
			UsrMs           float64 `json:"usr_ms"`
			SysMs           float64 `json:"sys_ms"`
			RealMs          float64 `json:"real_ms"`
			GbitS           float64 `json:"gbit_s"`
			Verdict         int     `json:"receiver_verdict"`
		}
		Receiver *struct {
			Bytes, Messages, Lost, Corrupt, Duplicate, Stray uint64
			UsrMs                                            float64 `json:"usr_ms"`
			SysMs                                            float64 `json:"sys_ms"`
			RealMs                                           float64 `json:"real_ms"`
			GbitS                                            float64 `json:"gbit_s"`
			Verdict                                          int
		}
	}
}

// clean checks a run --json result: every direction complete and intact, both sides'
// figures present, and the receiver counted what the sender sent.
func clean(t *testing.T, what string, r result, lossy bool, dirs ...string) runFile {
	t.Helper()
	var f runFile
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("%s: exit %d, not JSON (%v): %s %s", what, r.code, err, r.stdout, r.stderr)
	}
	if r.code != 0 || len(f.Runs) != len(dirs) {
		t.Fatalf("%s: exit %d, %d runs: %s %s", what, r.code, len(f.Runs), r.stdout, r.stderr)
	}
	for i, run := range f.Runs {
		s, v := run.Sender, run.Receiver
		switch {
		case run.Direction != dirs[i] || s == nil || v == nil || run.Error != "":
			t.Fatalf("%s: run %d: %+v", what, i, run)
		case v.Corrupt+v.Duplicate != 0 || v.Verdict != 0 || !lossy && (v.Lost != 0 || v.Bytes != s.Bytes):
			t.Fatalf("%s %s: sender %+v receiver %+v", what, run.Direction, *s, *v)
		case s.UsrMs+s.SysMs <= 0 || v.UsrMs+v.SysMs <= 0 || s.Messages == 0:
			t.Fatalf("%s %s: a side without CPU figures: sender %+v receiver %+v", what, run.Direction, *s, *v)
		}
	}
	if f.Env.Server == nil || f.Env.Server.Kernel == "" {
		t.Fatalf("%s: no server env: %s", what, r.stdout)
	}
	return f
}

func TestServerRunLoopback(t *testing.T) {
	s := startServer(t, "", "--listen", "127.0.0.1:0", "--no-auth")
	for _, c := range []struct {
		proto string
		flags []string
		dirs  []string
	}{
		{"tcp", nil, []string{"forward"}},
		{"tcp", []string{"-R", "--server-cpu", "0"}, []string{"reverse"}},
		{"tcp", []string{"--bidir", "-m", "write"}, []string{"forward", "reverse"}},
		{"udp", []string{"-R", "-s", "1400", "-b", "200M"}, []string{"reverse"}},
	} {
		args := append([]string{"run", s.addr, "-p", c.proto, "--verify", "--json", "--bytes", "16MiB"}, c.flags...)
		clean(t, fmt.Sprint(args), runCLI(t, "", nil, time.Minute, args...), c.proto == "udp", c.dirs...)
	}
}

// Wrong token, garbage, an HTTP request, a 1 GiB length prefix and a silent connection:
// each is closed within its deadline and the server keeps serving.
func TestServerHostileClients(t *testing.T) {
	tokFile := t.TempDir() + "/token"
	os.WriteFile(tokFile, []byte("the right token, 24 chars\n"), 0o600)
	s := startServer(t, "", "--listen", "127.0.0.1:0", "--token-file", tokFile)
	if s.token != "" {
		t.Fatal("a server with a token file printed a token")
	}
	r := runCLI(t, "", []string{"SPLICEGEN_TOKEN=the wrong token, 24 chars"}, 30*time.Second, "run", s.addr, "-n", "10")
	if r.code != exitFailed || !strings.Contains(r.stderr, "authentication failed") {
		t.Fatalf("wrong token: exit %d: %s", r.code, r.stderr)
	}
	r = runCLI(t, "", nil, 30*time.Second, "run", s.addr, "-n", "10")
	if r.code != exitFailed || !strings.Contains(r.stderr, "authentication failed") {
		t.Fatalf("no token: exit %d: %s", r.code, r.stderr)
	}
	for _, c := range []struct {
		name string
		in   []byte
		max  time.Duration
	}{
		{"garbage", []byte("\x00\x01\x02garbage garbage garbage"), time.Second},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), time.Second},
		{"1 GiB length", []byte{'S', 'G', 1, 1, 0x40, 0, 0, 0}, time.Second},
		{"silent", nil, 7 * time.Second}, // the first frame within 5 s
		{"hello then silent", helloFrame(), 7 * time.Second},
	} {
		c0, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		c0.Write(c.in)
		c0.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, _ := io.Copy(io.Discard, c0) // until the server closes
		if el := time.Since(t0); el > c.max {
			t.Errorf("%s: closed after %v, want within %v", c.name, el, c.max)
		}
		c0.Close()
		t.Logf("%s: closed after %v (%d bytes answered)", c.name, time.Since(t0).Round(time.Millisecond), n)
	}
	// A host holding idle connections (20, over the per-address cap of 8 in the
	// handshake) does not lock out another host.
	_, port, _ := net.SplitHostPort(s.addr)
	var idle []net.Conn
	for range 20 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
		if c, err := d.Dial("tcp", "127.0.0.1:"+port); err == nil {
			idle = append(idle, c)
		}
	}
	r = runCLI(t, "", []string{"SPLICEGEN_TOKEN=the right token, 24 chars"}, time.Minute, "run", s.addr, "--json", "--verify", "--bytes", "8MiB")
	clean(t, "after the attacks, with 20 idle connections from another host", r, false, "forward")
	for _, c := range idle {
		c.Close()
	}
}

func helloFrame() []byte {
	b := []byte(`{"version":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","client":"x"}`)
	return append([]byte{'S', 'G', 1, 1, 0, 0, 0, byte(len(b))}, b...)
}

// --max-tests 2 with 3 clients: the third is told "busy"; --max-duration 2s bounds -t 10s.
func TestServerLimits(t *testing.T) {
	s := startServer(t, "", "--listen", "127.0.0.1:0", "--no-auth", "--max-tests", "2", "--max-duration", "2s")
	var wg sync.WaitGroup
	res := make([]result, 2)
	t0 := time.Now()
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runCLI(t, "", nil, time.Minute, "run", s.addr, "-t", "10s", "-b", "100M", "--json")
		}()
	}
	time.Sleep(700 * time.Millisecond)
	r := runCLI(t, "", nil, 30*time.Second, "run", s.addr, "-n", "10")
	if r.code != exitFailed || !strings.Contains(r.stderr, "busy") {
		t.Errorf("third client: exit %d: %s", r.code, r.stderr)
	}
	wg.Wait()
	if el := time.Since(t0); el > 8*time.Second {
		t.Errorf("-t 10s against --max-duration 2s took %v", el)
	}
	for _, r := range res {
		f := clean(t, "bounded", r, false, "forward")
		if ms := f.Runs[0].Sender.RealMs; ms < 1900 || ms > 2500 {
			t.Errorf("bounded run lasted %.0f ms, want about 2000", ms)
		}
		if !strings.Contains(r.stderr, "time cut from 10s to the server's --max-duration 2s") {
			t.Errorf("no note on the cut: %s", r.stderr)
		}
	}
}

// Four clients at once, each paced differently: each gets its own figures.
func TestServerConcurrentClients(t *testing.T) {
	s := startServer(t, "", "--listen", "127.0.0.1:0", "--no-auth")
	var wg sync.WaitGroup
	rates := []float64{100, 200, 300, 400} // Mbit/s
	res := make([]result, len(rates))
	for i, rate := range rates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runCLI(t, "", nil, time.Minute, "run", s.addr, "-t", "2s", "-b", fmt.Sprintf("%.0fM", rate), "--verify", "--json", "-s", "16k")
		}()
	}
	wg.Wait()
	for i, r := range res {
		f := clean(t, fmt.Sprintf("client %d", i), r, false, "forward")
		got := f.Runs[0].Receiver.GbitS * 1000
		if got < rates[i]*0.9 || got > rates[i]*1.1 {
			t.Errorf("client %d at %.0f Mbit/s: the server measured %.1f Mbit/s", i, rates[i], got)
		}
	}
}

// 1,000 short tests in a row: the server's RSS and open fds stay flat.
func TestServerManyTests(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 50
	}
	s := startServer(t, "", "--listen", "127.0.0.1:0", "--no-auth")
	pid := s.cmd.Process.Pid
	warm := 20
	var rss0, fd0, rssMid int
	t0 := time.Now()
	for i := range n {
		if i == warm {
			rss0, fd0 = rssKiB(t, pid), fds(t, pid)
		}
		if i == n/2 {
			rssMid = rssKiB(t, pid)
		}
		r := runCLI(t, "", nil, 30*time.Second, "run", s.addr, "-n", "4", "-s", "4k", "--json", "-i", "0")
		if r.code != 0 {
			t.Fatalf("test %d: exit %d: %s", i, r.code, r.stderr)
		}
	}
	rss1, fd1 := rssKiB(t, pid), fds(t, pid)
	// Printed for the record (scripts/test.sh shows it). The Go heap settles after the
	// first tests; flat means no growth from the middle to the end, and no fd left over.
	fmt.Printf("server flatness: %d tests in %v: RSS %d KiB after %d tests, %d after %d, %d after %d; fds %d → %d\n",
		n, time.Since(t0).Round(time.Second), rss0, warm, rssMid, n/2, rss1, n, fd0, fd1)
	if fd1 > fd0 || rss1 > rssMid+rssMid/10+1024 {
		t.Fatalf("server grew: RSS %d → %d KiB, fds %d → %d", rss0, rss1, fd0, fd1)
	}
}

func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var kib int
	if m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b); m != nil {
		fmt.Sscan(string(m[1]), &kib)
	}
	return kib
}

func fds(t *testing.T, pid int) int {
	e, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

// Two hosts: the client and the server in their own network namespaces, one routed hop
// apart (scripts/lab.sh). Needs root and iproute2; scripts/test.sh sets
// SPLICEGEN_REQUIRE_NETNS=1 so that it fails there instead of skipping.
func TestServerTwoHosts(t *testing.T) {
	lab := labUp(t)
	tokFile := t.TempDir() + "/token"
	os.WriteFile(tokFile, []byte(control.NewToken()), 0o600)
	s := startServer(t, lab.server, "--listen", lab.serverIP+":5499", "--token-file", tokFile)
	env := []string{}
	for _, c := range []struct {
		proto string
		flags []string
		dirs  []string
	}{
		{"tcp", nil, []string{"forward"}},
		{"tcp", []string{"-R"}, []string{"reverse"}},
		{"tcp", []string{"--bidir"}, []string{"forward", "reverse"}},
		{"udp", []string{"-s", "1400", "-b", "100M"}, []string{"forward"}},
		{"udp", []string{"-s", "1400", "-b", "100M", "-R"}, []string{"reverse"}},
		{"udp", []string{"-s", "1400", "-b", "100M", "--bidir"}, []string{"forward", "reverse"}},
	} {
		args := append([]string{"run", lab.serverIP, "--token-file", tokFile, "-p", c.proto, "--verify", "--json", "-t", "1s"}, c.flags...)
		f := clean(t, fmt.Sprint(args), runCLI(t, lab.client, env, time.Minute, args...), c.proto == "udp", c.dirs...)
		for _, r := range f.Runs {
			t.Logf("%s %s: sender %.2f Gbit/s, receiver %.2f Gbit/s, lost %d, receiver CPU %.0f ms (far host for forward)",
				c.proto, r.Direction, r.Sender.GbitS, r.Receiver.GbitS, r.Receiver.Lost, r.Receiver.UsrMs+r.Receiver.SysMs)
		}
	}

	// compare --server: JSON, CSV and HTML that report reads, the far side's CPU in every run.
	dir := t.TempDir()
	r := runCLI(t, lab.client, nil, 5*time.Minute, "compare", "--server", lab.serverIP, "--token-file", tokFile,
		"-p", "tcp,udp", "-m", "splice,write", "-s", "1400", "-t", "1s", "--repeat", "1",
		"--json", dir+"/c.json", "--csv", dir+"/c.csv", "--html", dir+"/c.html")
	if r.code != 0 {
		t.Fatalf("compare --server: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	rep := runArgs("report", dir+"/c.json")
	if rep.code != 0 || !strings.Contains(rep.stdout, "udp") {
		t.Fatalf("report: exit %d: %s %s", rep.code, rep.stdout, rep.stderr)
	}
	var f runFile
	b, _ := os.ReadFile(dir + "/c.json")
	if err := json.Unmarshal(b, &f); err != nil || len(f.Runs) != 4 || f.Env.Server == nil {
		t.Fatalf("compare file: %v, %d runs: %s", err, len(f.Runs), b)
	}
	for _, run := range f.Runs {
		if run.Receiver == nil || run.Receiver.UsrMs+run.Receiver.SysMs <= 0 || run.Error != "" {
			t.Fatalf("a run without the far side's CPU: %+v", run)
		}
	}
	for _, name := range []string{"c.csv", "c.html"} {
		if st, err := os.Stat(dir + "/" + name); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if !strings.Contains(s.Log(), lab.clientIP) {
		t.Fatalf("the server did not log its client %s: %s", lab.clientIP, s.Log())
	}
}

type lab struct{ client, server, clientIP, serverIP, name string }

// labUp makes the client – router – server namespaces with scripts/lab.sh.
func labUp(t *testing.T) lab {
	t.Helper()
	_, ipErr := exec.LookPath("ip")
	if os.Geteuid() != 0 || ipErr != nil {
		if os.Getenv("SPLICEGEN_REQUIRE_NETNS") == "1" {
			t.Fatalf("two-host tests need root and iproute2 (euid %d, ip: %v)", os.Geteuid(), ipErr)
		}
		t.Skip("two-host tests need root and iproute2 (scripts/test.sh requires them)")
	}
	name := fmt.Sprintf("sgt%d", os.Getpid()%100000)
	script := "../../scripts/lab.sh"
	env := append(os.Environ(), "LAB="+name, "LAB_NET=10.77")
	up := exec.Command(script, "up")
	up.Env = env
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("lab up: %v: %s", err, out)
	}
	t.Cleanup(func() {
		down := exec.Command(script, "down")
		down.Env = env
		down.Run()
	})
	return lab{name + "-client", name + "-server", "10.77.1.2", "10.77.2.2", name}
}
