package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
)

// pairSpec is one run: the protocol, the receiver's sink, the message size, the send flags.
type pairSpec struct {
	proto, sink string
	size        int
	sendArgs    []string
}

// recvArgs are the receiver child's flags for a run (addr "": the inherited socket, fd 3).
func recvArgs(ps pairSpec, c *common, cpuRcv, addr string) []string {
	a := []string{"--json", "-i", "0", "--sink", ps.sink, "-p", ps.proto, "--format", c.format, "--idle", "20s"}
	if c.verify {
		a = append(a, "--verify")
	}
	if c.rcvbuf != "" {
		a = append(a, "--rcvbuf", c.rcvbuf)
	}
	if cpuRcv != "" {
		a = append(a, "--cpu", cpuRcv)
	}
	if c.format != "native" && ps.size > 0 {
		a = append(a, "-s", strconv.Itoa(ps.size)) // nettest and raw: the receiver must be told
	}
	if addr == "" {
		return append(a, "--listen-fd", "3")
	}
	return append(a, addr)
}

// Child time limits: a run's own bound, and how long the receiver may take to finish
// after the sender has exited (its end of test is then already on the wire).
const (
	pairTimeout   = 10 * time.Minute
	recvAfterSend = 30 * time.Second
	recvAfterFail = 2 * time.Second // the sender failed: it may never have connected
	killAfterInt  = 5 * time.Second
)

// runPair runs one test with the receiver and the sender each in its own child process
// (so each side's getrusage is its own), the receiver on an inherited socket. It never
// waits for a receiver whose sender is gone: the receiver is interrupted (and killed if
// it does not stop), and the sender's error is returned.
func runPair(ctx context.Context, exe string, c *common, ps pairSpec, cpuSnd, cpuRcv string) (*report.Run, error) {
	// The children get SIGKILL when the thread that forked them dies (PR_SET_PDEATHSIG,
	// prctl(2): it follows the thread, not the process), so this goroutine keeps its
	// thread until both are reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	plugin, err := proto.Lookup(ps.proto)
	if err != nil {
		return nil, err
	}
	var opts proto.Options
	if err := c.buffers(&opts); err != nil {
		return nil, err
	}
	opts.SndBuf = 0 // the receiver's socket: --sndbuf is the sender's
	lf, addr, err := proto.Endpoint(plugin, "127.0.0.1:0", opts)
	if err != nil {
		return nil, err
	}
	defer lf.Close()

	rargs := append([]string{"recv"}, recvArgs(ps, c, cpuRcv, "")...)
	sargs := append([]string{"send", "--json", "-i", "0"}, ps.sendArgs...)
	if cpuSnd != "" {
		sargs = append(sargs, "--cpu", cpuSnd)
	}
	sargs = append(sargs, addr)

	cctx, cancel := context.WithTimeout(ctx, pairTimeout)
	defer cancel()
	var rout, rerr, sout, serr bytes.Buffer
	rc := child(cctx, exe, rargs, &rout, &rerr)
	rc.ExtraFiles = []*os.File{lf}
	err = rc.Start()
	// The child has its copy now. Close ours at once: a dup shares the open file
	// description, so for UDP (the data socket itself) every datagram would also wake
	// this process's epoll — measured: the parent at ~20% CPU and the sender's CPU paying
	// the wake-ups (UDP 64 B write 169k pps via compare vs 294k without the parent's copy).
	lf.Close()
	if err != nil {
		return nil, err
	}
	recvDone := make(chan error, 1)
	go func() { recvDone <- rc.Wait() }()
	sc := child(cctx, exe, sargs, &sout, &serr)
	sendErr := sc.Start()
	if sendErr == nil {
		sendErr = sc.Wait()
	}
	grace := recvAfterSend
	if sendErr != nil {
		grace = recvAfterFail
	}
	var recvErr error
	select {
	case recvErr = <-recvDone:
	case <-time.After(grace):
		rc.Process.Signal(os.Interrupt) // it prints what it measured
		select {
		case recvErr = <-recvDone:
		case <-time.After(killAfterInt):
			rc.Process.Kill()
			recvErr = <-recvDone
		}
	}

	run := &report.Run{}
	var rr report.Run
	if err := json.Unmarshal(sout.Bytes(), run); err != nil || run.Sender == nil {
		return nil, fmt.Errorf("sender %v: %v: %s", sargs, sendErr, strings.TrimSpace(serr.String()))
	}
	if err := json.Unmarshal(rout.Bytes(), &rr); err != nil || rr.Receiver == nil {
		return nil, fmt.Errorf("receiver %v: %v: %s", rargs, recvErr, strings.TrimSpace(rerr.String()))
	}
	run.Receiver = rr.Receiver
	run.Env = nil // the file's env names the host once
	if rr.Error != "" {
		run.Error = strings.TrimSpace(run.Error + " receiver: " + rr.Error)
	}
	run.Interrupted = run.Interrupted || rr.Interrupted
	return run, nil
}

// child is one side of a pair: interrupted (not killed) when ctx ends, so it still
// prints what it measured; killed if it has not exited 5 s later.
func child(ctx context.Context, exe string, args []string, stdout, stderr *bytes.Buffer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = killAfterInt
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no child outlives compare
	return cmd
}
