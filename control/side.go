package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A side (one direction's sender or receiver) is a child process: its own getrusage is
// its CPU figure, the same measurement as loopback compare's; a failing or killed test
// cannot take the server with it; and ending the child frees everything the test held
// (sockets, pipes, rings, threads), which keeps a long-running server flat.

// Side is one running side.
type Side struct {
	Direction, Role string
	args            []string
	cmd             *exec.Cmd
	stderr          tail
	result          json.RawMessage
	done            chan struct{}
	err             error
}

// killAfter is how long an interrupted side has to print its result before SIGKILL.
const killAfter = 5 * time.Second

// maxLine bounds one line of a side's output (a result with per-stream detail).
const maxLine = 4 << 20

// StartSide starts exe with args; file, when not nil, is the child's fd 3 (the data
// socket; the caller closes its copy). Each interval line goes to line; the result line
// is kept. ctx's end interrupts the child (it still prints what it measured).
func StartSide(ctx context.Context, exe, dir, role string, args []string, file *os.File, line func(*Side, json.RawMessage)) (*Side, error) {
	s := &Side{Direction: dir, Role: role, args: args, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, exe, args...)
	s.cmd.Env = append(os.Environ(), "SPLICEGEN_TEST_AS_CLI=1") // harmless outside the tests
	s.cmd.Stderr = &s.stderr
	s.cmd.Cancel = func() error { return s.cmd.Process.Signal(os.Interrupt) }
	s.cmd.WaitDelay = killAfter
	// No side outlives its parent (PR_SET_PDEATHSIG, prctl(2)). It follows the thread that
	// forked: the goroutines that start sides are not locked, so a side may get SIGKILL
	// early only when Go retires that thread, which it does not do for unlocked threads.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if file != nil {
		s.cmd.ExtraFiles = []*os.File{file}
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for sc.Scan() {
			b := sc.Bytes()
			var t struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(b, &t) != nil {
				continue
			}
			switch t.Type {
			case "result":
				s.result = append(json.RawMessage(nil), b...)
			case "interval":
				if line != nil {
					line(s, append(json.RawMessage(nil), b...))
				}
			}
		}
		s.err = s.cmd.Wait()
	}()
	return s, nil
}

// Wait waits for the side to end and returns its result line (nil and an error naming
// the side and its last stderr when it printed none).
func (s *Side) Wait() (json.RawMessage, error) {
	<-s.done
	if s.result == nil {
		return nil, fmt.Errorf("%s %s printed no result (%v): %s", s.Direction, s.Role, s.err, s.stderr.String())
	}
	return s.result, nil
}

// Done is closed when the side has exited.
func (s *Side) Done() <-chan struct{} { return s.done }

// tail keeps the last 2 KiB written (a side's stderr, for error messages).
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	return strings.TrimSpace(string(bytes.ReplaceAll(t.b, []byte("\n"), []byte("; "))))
}
