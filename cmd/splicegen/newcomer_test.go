package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recv --keep serves test after test until interrupted: one result each, exit 0 when
// all were clean (TCP and UDP; a UDP test's late end datagrams are strays of the next).
func TestRecvKeep(t *testing.T) {
	for _, p := range []string{"tcp", "udp"} {
		r, addr := recvChild(t, p, "--keep", "--verify", "--idle", "5s")
		for range 3 {
			if s := runArgs("send", "-p", p, "-i", "0", "--verify", "-n", "500", "-s", "1000", addr); s.code != 0 {
				t.Fatalf("%s: send exit %d %s", p, s.code, s.stderr)
			}
		}
		time.Sleep(300 * time.Millisecond)
		r.cmd.Process.Signal(syscall.SIGINT)
		r.wait(t, 10*time.Second)
		dec := json.NewDecoder(bytes.NewReader(r.stdout.Bytes()))
		n := 0
		for {
			var v verdictJSON
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v\n%s", p, err, r.stdout.String())
			}
			if v.Receiver.Messages != 500 || v.Receiver.Verdict != 0 {
				t.Fatalf("%s test %d: %+v", p, n, v.Receiver)
			}
			n++
		}
		if r.code != 0 || n != 3 || strings.Contains(r.stderr.String(), "error") {
			t.Fatalf("%s: exit %d, %d results, stderr %q", p, r.code, n, r.stderr.String())
		}
	}
}

// Every command's help, held against testdata/help/*.txt (UPDATE_GOLDEN=1 rewrites them):
// a flag added, renamed or described differently shows up in review.
func TestHelpGolden(t *testing.T) {
	for _, cmd := range [][]string{{"--help"}, {"send", "--help"}, {"recv", "--help"}, {"server", "--help"}, {"run", "--help"}, {"compare", "--help"}, {"report", "--help"}, {"probe", "--help"}} {
		r := runArgs(cmd...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%q: exit %d %q", cmd, r.code, r.stderr)
		}
		name := filepath.Join("testdata", "help", strings.TrimPrefix(cmd[0], "--")+".txt")
		if os.Getenv("UPDATE_GOLDEN") == "1" {
			os.MkdirAll(filepath.Dir(name), 0o755)
			os.WriteFile(name, []byte(r.stdout), 0o644)
			continue
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if r.stdout != string(want) {
			t.Errorf("%q help differs from %s (UPDATE_GOLDEN=1 go test -run TestHelpGolden rewrites it):\n%s", cmd, name, r.stdout)
		}
	}
	for file, words := range map[string][]string{"send": {"zerocopy", "--stall-timeout"}, "recv": {"--keep"}, "help": {"--version"}} {
		b, _ := os.ReadFile(filepath.Join("testdata", "help", file+".txt"))
		for _, w := range words {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s help lacks %s", file, w)
			}
		}
	}
}

// The rough edges a newcomer hit: protocol names in any case (the report says udp),
// recv with a bare port, --batch where it means nothing, --version.
func TestNewcomerEdges(t *testing.T) {
	snd, rcv := pairProto(t, "udp", []string{"--json"}, []string{"-p", "UDP", "--json", "-n", "100"})
	if snd.code != 0 || rcv.code != 0 || !strings.Contains(snd.stdout, `"proto": "udp"`) {
		t.Fatalf("-p UDP: exit %d/%d %s %s", snd.code, rcv.code, snd.stderr, snd.stdout)
	}
	if a, err := hostPort("6900", false); err != nil || a != ":6900" {
		t.Fatalf("recv 6900: %q %v", a, err)
	}
	if r := runArgs("recv", "--idle", "1ms", "no-such-host.invalid"); r.code != 2 || !strings.Contains(r.stderr, ":PORT") {
		t.Fatalf("bad host: exit %d %q", r.code, r.stderr)
	}
	if r := runArgs("send", "--batch", "8", "127.0.0.1:9"); r.code != 2 || !strings.Contains(r.stderr, "--batch applies to") {
		t.Fatalf("--batch on splice: exit %d %q", r.code, r.stderr)
	}
	if r := runArgs("--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "splicegen ") {
		t.Fatalf("--version: exit %d %q", r.code, r.stdout)
	}
}

// The default format to a sink that is not splicegen (nc -l, socat): one line on stderr
// says why the start waited and what to use instead; the run completes (exit 0) and says
// completeness was not provable.
func TestNativeToPlainSinkNotice(t *testing.T) {
	r := runArgs("send", "--json", "-i", "0", "-n", "100", plainSink(t, nil))
	if r.code != 0 || !strings.Contains(r.stderr, "notice: no receiver report within 2s") || !strings.Contains(r.stdout, "not provable") ||
		strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("exit %d: %q %s", r.code, r.stderr, r.stdout)
	}
}

// --json with interval lines: stdout holds only the JSON object (valid), the interval
// lines go to stderr; the object says when the run ended.
func TestJSONWithIntervals(t *testing.T) {
	addr, fd := listenFD(t, "tcp", "127.0.0.1:0")
	done := make(chan result, 1)
	go func() {
		done <- runArgs("recv", "--listen-fd", fmt.Sprint(fd), "--json", "-i", "200ms", "--idle", "10s")
	}()
	snd := runArgs("send", "--json", "-i", "200ms", "-t", "1s", addr)
	rcv := <-done
	for _, r := range []result{snd, rcv} {
		var v struct{ Time string }
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Time == "" || !strings.Contains(r.stderr, "Gbit/s") {
			t.Fatalf("exit %d: %v\nstdout %s\nstderr %s", r.code, err, r.stdout, r.stderr)
		}
	}
}
