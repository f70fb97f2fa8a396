package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
)

// Client is an authenticated control connection to a server.
type Client struct {
	c       *Conn
	Welcome *Welcome
	// SendFlags go to this host's sender only (--bind, --bind-dev: its own addresses).
	SendFlags []string
}

// Dial connects to a server and authenticates both ways (token "": none).
func Dial(ctx context.Context, addr, token, version string) (*Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := NewConn(nc)
	w, err := clientHandshake(c, token, version)
	if err == nil && (w.Limits.Duration < 1 || w.Limits.Tests < 1) {
		err = fmt.Errorf("the server states no test duration limit: not a splicegen server")
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Client{c: c, Welcome: w}, nil
}

// Close closes the control connection.
func (cl *Client) Close() error { return cl.c.Close() }

// Outcome is a remote test's result: a run per direction, both sides filled in.
type Outcome struct {
	Runs  []*report.Run
	Notes []string // what the server's limits changed
}

// Grace periods of the client.
const (
	readyWait  = 30 * time.Second // the server starts its receiver before it answers
	afterLocal = 30 * time.Second // the server's sides finish after the client's
	afterStop  = 15 * time.Second
)

// Run runs one test (one control connection serves one test). The client's sides run
// as children of exe; rec gets every interval record, the server's (local false) and
// the client's own. ctx's end interrupts both hosts' sides, and what they measured is
// still returned.
func (cl *Client) Run(ctx context.Context, exe string, req Request, cpu string, rec func(local bool, r Record)) (*Outcome, error) {
	local, _, _ := net.SplitHostPort(cl.c.Net().LocalAddr().String())
	server, _, _ := net.SplitHostPort(cl.c.Net().RemoteAddr().String())
	var lf *os.File
	if req.Direction != DirForward { // the client receives: its socket exists before the request names it
		plugin, err := proto.Lookup(req.Proto)
		if err != nil {
			return nil, err
		}
		f, addr, err := proto.Endpoint(plugin, net.JoinHostPort(local, "0"), proto.Options{RcvBuf: req.RcvBuf, Lanes: max(req.Lanes, 1)})
		if err != nil {
			return nil, err
		}
		defer f.Close()
		lf = f
		_, port, _ := net.SplitHostPort(addr)
		req.DataPort, _ = strconv.Atoi(port)
	}
	if err := req.Check(); err != nil {
		return nil, err
	}
	if err := cl.c.Write(writeWait, TRequest, req); err != nil {
		return nil, err
	}
	var ready Ready
	if err := cl.c.Expect(readyWait, TReady, &ready); err != nil {
		return nil, err
	}
	// The server may have cut the time and rate to its limits; everything else is ours.
	b := ready.Request
	req.TimeMS, req.Rate, req.PPS, req.Sink = b.TimeMS, b.Rate, b.PPS, b.Sink
	if err := req.Check(); err != nil {
		return nil, fmt.Errorf("the server bounded the test to something invalid: %v", err)
	}

	// One entry per direction asked, each with a test id (a hostile server must not make
	// this host start sides it did not ask for).
	want := map[string]bool{DirForward: req.Direction != DirReverse, DirReverse: req.Direction != DirForward}
	if len(ready.Tests) != map[bool]int{false: 1, true: 2}[req.Direction == DirBidir] {
		return nil, fmt.Errorf("the server's ready has %d tests for a %s test", len(ready.Tests), req.Direction)
	}
	for _, t := range ready.Tests {
		if !want[t.Direction] || t.TestID == 0 || t.Direction == DirForward && (t.Port < 1 || t.Port > 65535) {
			return nil, fmt.Errorf("the server's ready names an unasked or malformed %q test", t.Direction)
		}
		want[t.Direction] = false
	}

	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer lcancel()
	var sides []*Side
	defer func() {
		lcancel()
		for _, sd := range sides {
			<-sd.Done()
		}
	}()
	line := func(sd *Side, l json.RawMessage) { rec(true, Record{Direction: sd.Direction, Role: sd.Role, Line: l}) }
	for _, t := range ready.Tests {
		var args []string
		var file *os.File
		var role string
		if t.Direction == DirForward {
			role, args = "sender", withFlags(SendArgs(&req, t.TestID, cpu, net.JoinHostPort(server, strconv.Itoa(t.Port))), cl.SendFlags)
		} else {
			role, args, file = "receiver", RecvArgs(&req, t.TestID, cpu), lf
		}
		sd, err := StartSide(lctx, exe, t.Direction, role, args, file, line)
		if err != nil {
			return nil, err
		}
		sides = append(sides, sd)
	}
	if lf != nil {
		lf.Close() // the receiving child has it
	}
	if err := cl.c.Write(writeWait, TStart, Start{}); err != nil {
		return nil, err
	}

	// The server's frames: intervals, a result per server side, done.
	type remote struct {
		results map[string]json.RawMessage
		errs    []error
	}
	var rm remote
	rm.results = map[string]json.RawMessage{}
	var rmu sync.Mutex
	srvDone := make(chan error, 1)
	go func() {
		wait := ms(cl.Welcome.Limits.Duration) // Dial checked it: every server bounds its tests
		if req.TimeMS > 0 {
			wait = min(wait, ms(req.TimeMS))
		}
		wait += testGrace + afterLocal
		end := time.Now().Add(wait)
		for {
			t, body, err := cl.c.Read(time.Until(end))
			if err != nil {
				srvDone <- err
				return
			}
			switch t {
			case TInterval, TResult:
				var r Record
				if err := Decode(t, body, t, &r); err != nil {
					srvDone <- err
					return
				}
				if t == TInterval {
					rec(false, r)
					continue
				}
				rmu.Lock()
				rm.results[r.Direction] = r.Line
				rmu.Unlock()
			case TError:
				err := Decode(t, body, TResult, nil)
				rmu.Lock()
				if len(rm.errs) < 4 { // a server has at most two sides to fail
					rm.errs = append(rm.errs, err)
				}
				rmu.Unlock()
			case TDone:
				srvDone <- nil
				return
			default:
				srvDone <- fmt.Errorf("protocol error: a %s frame during the test", t)
				return
			}
		}
	}()
	localDone := make(chan struct{})
	go func() {
		for _, sd := range sides {
			<-sd.Done()
		}
		close(localDone)
	}()

	var srvErr error
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cl.c.Write(writeWait, TStop, Stop{})
			lcancel()
		}
	}
	ctxDone := ctx.Done()
	var timeout <-chan time.Time
	serverOver, localOver := false, false
	for !serverOver || !localOver {
		select {
		case <-ctxDone:
			ctxDone = nil
			stop()
			timeout = time.After(afterStop)
		case srvErr = <-srvDone:
			serverOver = true
			if !localOver {
				timeout = time.After(afterLocal) // the server is done: the client's sides should be too
			}
		case <-localDone:
			localDone = nil
			localOver = true
			if !serverOver {
				timeout = time.After(afterLocal)
			}
		case <-timeout:
			if !stopped {
				stop()
				timeout = time.After(afterStop)
				continue
			}
			lcancel()
			if !serverOver {
				cl.c.Close() // the reader ends
				srvErr = <-srvDone
				serverOver = true
			}
			if !localOver {
				<-localDone
				localOver = true
			}
		}
	}

	out := &Outcome{Notes: ready.Notes}
	var errs []error
	rmu.Lock()
	errs = append(errs, rm.errs...)
	rmu.Unlock()
	if srvErr != nil {
		errs = append(errs, fmt.Errorf("server: %w", srvErr))
	}
	for _, dir := range []string{DirForward, DirReverse} {
		var mine *Side
		for _, sd := range sides {
			if sd.Direction == dir {
				mine = sd
			}
		}
		if mine == nil {
			continue
		}
		run := &report.Run{Proto: req.Proto, Mode: req.Mode, Size: req.Size, Streams: req.Streams, Format: "native",
			Verify: req.Verify, HotBuffer: req.HotBuffer, Direction: dir, Mix: req.Mix}
		var lr, rr report.Run
		res, err := mine.Wait()
		if err == nil {
			err = json.Unmarshal(res, &lr)
		}
		if err != nil {
			errs = append(errs, err)
		}
		rmu.Lock()
		theirs := rm.results[dir]
		rmu.Unlock()
		if theirs != nil {
			if err := json.Unmarshal(theirs, &rr); err != nil {
				errs = append(errs, fmt.Errorf("server %s result: %v", dir, err))
			}
		}
		snd, rcv := &lr, &rr
		if dir == DirReverse {
			snd, rcv = &rr, &lr
		}
		run.Sender, run.Receiver = snd.Sender, rcv.Receiver
		run.Interrupted = lr.Interrupted || rr.Interrupted || ctx.Err() != nil
		for _, e := range []string{snd.Error, rcv.Error} {
			if e != "" {
				run.Error = joinErr(run.Error, e)
			}
		}
		if run.Sender == nil || run.Receiver == nil {
			run.Error = joinErr(run.Error, "a side reported nothing")
		}
		out.Runs = append(out.Runs, run)
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
