package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/splicegen/splicegen/report"
)

// Exit statuses exactly as README's table says, one row per documented case.
func TestExitStatusTable(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"unknown command", []string{"transmit"}, 2},
		{"unknown flag", []string{"send", "--bogus", "127.0.0.1:1"}, 2},
		{"unknown protocol", []string{"send", "-p", "quic", "127.0.0.1:1"}, 2},
		{"size below the header", []string{"send", "-s", "10", "127.0.0.1:1"}, 2},
		{"too many streams", []string{"send", "-P", "2000", "127.0.0.1:1"}, 2},
		{"bad stall timeout", []string{"send", "--stall-timeout", "0s", "127.0.0.1:1"}, 2},
		{"stall timeout under 1ms", []string{"send", "--stall-timeout", "3ns", "127.0.0.1:1"}, 2},
		{"connection refused", []string{"send", "-n", "1", refused}, 1},
		{"recv bad idle", []string{"recv", "--idle", "0s", ":0"}, 2},
		{"recv sink the protocol lacks", []string{"recv", "-p", "udp", "--sink", "splice", ":0"}, 2},
		{"compare bad buffer", []string{"compare", "--sndbuf", "12"}, 2},
	} {
		r := runArgs(c.args...)
		if r.code != c.code || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s %q: exit %d (want %d), stderr %q", c.name, c.args, r.code, c.code, r.stderr)
		}
	}
}

// The ring caps are usage errors (exit 2) once the sender knows its buffers: a --ring
// over the 2 GiB per-stream cap, and -P whose rings exceed the 8 GiB total — refused
// after the first connection, before any other is opened.
func TestRingCapsAreUsage(t *testing.T) {
	var accepted atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer c.Close()
		}
	}()
	for _, args := range [][]string{
		{"send", "--ring", "3GiB", "-n", "1", "--format", "raw", ln.Addr().String()},
		{"send", "-P", "1024", "-t", "1s", "--format", "raw", ln.Addr().String()}, // a time, not a count: a count caps the ring at the test
	} {
		r := runArgs(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "cap") {
			t.Errorf("%q: exit %d %q", args, r.code, r.stderr)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := accepted.Load(); n > 2 {
		t.Fatalf("%d connections opened before the refusal (want one per command)", n)
	}
}

// --verify at the receiver against a sender without it: nothing was checkable, exit 3
// on both sides (the verdict goes back).
func TestVerifyNothingCheckable(t *testing.T) {
	snd, rcv := pair(t, []string{"--json", "--verify"}, []string{"--json", "-n", "100"})
	if rcv.code != 3 || snd.code != 3 || !strings.Contains(rcv.stdout, "nothing was checkable") {
		t.Fatalf("exit recv %d send %d: %s", rcv.code, snd.code, rcv.stdout)
	}
}

// compare's files are independent and atomic: an unwritable --json path does not cost
// the CSV and HTML.
func TestCompareFilesIndependent(t *testing.T) {
	t.Setenv("SPLICEGEN_TEST_AS_CLI", "1")
	dir := t.TempDir()
	r := runArgs("compare", "-m", "splice", "--bytes", "8MiB", "--repeat", "1",
		"--json", "/proc/splicegen-x.json", "--csv", dir+"/ok.csv", "--html", dir+"/ok.html")
	if r.code != 1 || !strings.Contains(r.stderr, "/proc/splicegen-x.json") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, f := range []string{"ok.csv", "ok.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if m, _ := filepath.Glob(dir + "/.*tmp*"); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// compare SIGKILLed after two runs: its JSON holds those runs (rewritten after every
// run) and report reads it; no child outlives it (PR_SET_PDEATHSIG).
func TestCompareKilledKeepsRuns(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/r.json"
	c := startCLI(t, nil, "compare", "-m", "splice,write", "--bytes", "64MiB", "--repeat", "20", "--json", file)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if f, err := report.ReadFile(file); err == nil && len(f.Runs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two runs saved: %s", c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	children := childPIDs(t, c.cmd.Process.Pid)
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.wait(t, 5*time.Second)
	f, err := report.ReadFile(file)
	if err != nil || len(f.Runs) < 2 {
		t.Fatalf("after SIGKILL: %v", err)
	}
	if r := runArgs("report", file); r.code != 0 {
		t.Fatalf("report: exit %d %s", r.code, r.stderr)
	}
	time.Sleep(500 * time.Millisecond)
	for _, pid := range children {
		if b, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("child %s survived its parent: %s", pid, b)
		}
	}
}

// childPIDs lists a process's children (from /proc/PID/task/*/children).
func childPIDs(t *testing.T, pid int) []string {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}
