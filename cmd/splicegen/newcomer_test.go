package main

import (
	"bytes"
	"encoding/json"
	"io"
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
