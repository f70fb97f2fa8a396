package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/wire"
)

// Server runs the far side of tests for authenticated clients, several at once.
type Server struct {
	Token  []byte // nil: --no-auth
	Limits Limits
	Exe    string     // this binary: sides run as its send and recv commands
	Env    report.Env // sent to clients: the far host's environment
	Log    io.Writer  // one line per test or refused connection
	// Check runs a side's flags through send's or recv's own parser (args[0] is the
	// command): the request is bounded by the same rules as the command line.
	Check func(args []string) error
	// Observe, if set, sees every interval record of the server's own sides and, final,
	// each side's result (--metrics).
	Observe func(req *Request, sd *Side, line json.RawMessage, final bool)

	once       sync.Once
	slots      chan struct{} // running tests (--max-tests)
	mu         sync.Mutex
	handshakes map[string]int // connections in the handshake, per client address
	pending    int
	logMu      sync.Mutex
	refusedAt  time.Time // rate-limits the log lines of refused connections
	refused    int
}

// Per-state read deadlines: nothing a client sends is waited for longer.
const (
	requestWait = 5 * time.Second  // the request after the welcome
	startWait   = 15 * time.Second // the client starts its sides
	testGrace   = 30 * time.Second // past the test's time: results and the client's stop
	writeWait   = 10 * time.Second // every frame the server writes
	endGrace    = 5 * time.Second  // past --max-duration: the sides' end of test
	// MaxRequest bounds a frame from a client: a request is a few hundred bytes.
	MaxRequest = 16 << 10
	// Connections in the handshake (each for at most its deadlines): per client address,
	// so one host with idle connections cannot lock others out, and in all.
	maxHandshakes      = 1024
	maxHandshakesPerIP = 8
)

func (s *Server) init() {
	s.once.Do(func() {
		s.slots = make(chan struct{}, max(s.Limits.Tests, 1))
		s.handshakes = map[string]int{}
	})
}

// Serve accepts control connections until ctx ends; each is served on its own.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	go func() { <-ctx.Done(); ln.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if strings.Contains(err.Error(), "too many open files") {
				time.Sleep(100 * time.Millisecond) // EMFILE: back off, keep serving
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Handle(ctx, c)
		}()
	}
}

// logf writes one log line. What a client sent may be in it: control characters are
// replaced, so no client can forge a line or drive the terminal.
func (s *Server) logf(f string, a ...any) {
	if s.Log == nil {
		return
	}
	line := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, fmt.Sprintf(f, a...))
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.Log, "%s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05Z"), line)
}

// refuse logs a refused connection, at most one line a second (with the count since):
// a flood must not flood the log.
func (s *Server) refuse(f string, a ...any) {
	s.logMu.Lock()
	s.refused++
	n, now := s.refused, time.Now()
	quiet := now.Sub(s.refusedAt) < time.Second
	if !quiet {
		s.refusedAt, s.refused = now, 0
	}
	s.logMu.Unlock()
	if !quiet {
		s.logf(f+" (%d refused in the last second)", append(a, n)...)
	}
}

// enter admits a connection to the handshake unless its address or the server is full.
func (s *Server) enter(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handshakes[ip] >= maxHandshakesPerIP || s.pending >= maxHandshakes {
		return false
	}
	s.handshakes[ip]++
	s.pending++
	return true
}

func (s *Server) leave(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	if s.handshakes[ip]--; s.handshakes[ip] == 0 {
		delete(s.handshakes, ip)
	}
}

// Handle serves one control connection to its end and closes it.
func (s *Server) Handle(ctx context.Context, nc net.Conn) {
	s.init()
	defer nc.Close()
	who := nc.RemoteAddr().String()
	ip, _, _ := net.SplitHostPort(who)
	c := NewConn(nc)
	c.Max = MaxRequest
	if !s.enter(ip) {
		s.refuse("%s refused: too many connections in the handshake (%d from it, %d in all)", who, maxHandshakesPerIP, maxHandshakes)
		c.Fail(ErrCodeBusy, "server busy: too many connections in the handshake")
		return
	}
	err := serverHandshake(c, s.Token, &Welcome{Server: s.Env.Splicegen, Env: s.Env, Limits: s.Limits})
	s.leave(ip)
	if err != nil {
		s.logf("%s closed in the handshake: %v", who, short(err))
		return
	}
	var req Request
	if err := c.Expect(requestWait, TRequest, &req); err != nil {
		s.logf("%s closed: %v", who, short(err))
		c.Fail(ErrCodeProtocol, "%v", short(err))
		return
	}
	what := fmt.Sprintf("%q %q %q %d B ×%d", req.Direction, req.Proto, req.Mode, req.Size, req.Streams)
	if err := req.Check(); err != nil {
		s.logf("%s refused %s: %v", who, what, c.Fail(ErrCodeRequest, "bad request: %v", err))
		return
	}
	notes, err := req.Bound(s.Limits)
	if err != nil {
		s.logf("%s refused %s: %v", who, what, c.Fail(ErrCodeLimit, "%v", err))
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.logf("%s refused %s: busy", who, what)
		c.Fail(ErrCodeBusy, "server busy: %d tests running (its --max-tests is %d); try again later", cap(s.slots), cap(s.slots))
		return
	}
	verdict, err := s.test(ctx, c, &req, notes)
	if err != nil {
		s.logf("%s %s: %v", who, what, short(err))
		return
	}
	s.logf("%s %s: %s", who, what, verdict)
}

func short(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// test runs one bounded request: the server's sides as children, their intervals and
// results forwarded as frames. The client's address is the only data peer: the server
// sends only to it and its receiver counts only the test id it gave it.
func (s *Server) test(ctx context.Context, c *Conn, req *Request, notes []string) (string, error) {
	local, _, _ := net.SplitHostPort(c.Net().LocalAddr().String())
	peer, _, _ := net.SplitHostPort(c.Net().RemoteAddr().String())
	plugin, err := proto.Lookup(req.Proto)
	if err != nil {
		return "", c.Fail(ErrCodeRequest, "%v", err)
	}
	req.Proto = plugin.Traits().Name
	if req.Direction != DirReverse && plugin.Traits().Kind == proto.KindDatagram && req.Sink == "" {
		req.Sink = plugin.Traits().DefaultSink()
	}
	type plan struct {
		dir, role string
		args      []string
		file      *os.File
	}
	var plans []plan
	ready := Ready{Request: *req, Notes: notes}
	defer func() {
		for _, p := range plans {
			if p.file != nil {
				p.file.Close()
			}
		}
	}()
	// The whole request goes through send's parser, whichever host sends: a mode or size
	// no sender could use is refused here, not found out by the client's side.
	if err := s.Check(SendArgs(req, 1, "", net.JoinHostPort(peer, "1"))); err != nil {
		return "", c.Fail(ErrCodeRequest, "%v", err)
	}
	if req.Direction != DirReverse { // the server receives
		id := wire.NewTestID()
		args := RecvArgs(req, id, req.ServerCPU)
		if err := s.Check(args); err != nil {
			return "", c.Fail(ErrCodeRequest, "%v", err)
		}
		f, addr, err := proto.Endpoint(plugin, net.JoinHostPort(local, "0"), proto.Options{RcvBuf: req.RcvBuf, Lanes: max(req.Lanes, 1)})
		if err != nil {
			return "", c.Fail(ErrCodeTest, "the server cannot receive %s: %v", req.Proto, err)
		}
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		plans = append(plans, plan{DirForward, "receiver", args, f})
		ready.Tests = append(ready.Tests, TestInfo{Direction: DirForward, TestID: id, Port: p})
	}
	if req.Direction != DirForward { // the server sends, to its client only
		id := wire.NewTestID()
		args := SendArgs(req, id, req.ServerCPU, net.JoinHostPort(peer, fmt.Sprint(req.DataPort)))
		if err := s.Check(args); err != nil {
			return "", c.Fail(ErrCodeRequest, "%v", err)
		}
		plans = append(plans, plan{DirReverse, "sender", args, nil})
		ready.Tests = append(ready.Tests, TestInfo{Direction: DirReverse, TestID: id})
	}

	// The test's bound: its time (or the server's --max-duration) and a grace period;
	// past it the sides are interrupted and report what they measured.
	bound := ms(req.TimeMS)
	if l := ms(s.Limits.Duration); l > 0 && (bound == 0 || bound > l) {
		bound = l
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wmu sync.Mutex
	send := func(t Type, v any) error {
		wmu.Lock()
		defer wmu.Unlock()
		return c.Write(writeWait, t, v)
	}
	var sides []*Side
	start := func(p plan) error {
		sd, err := StartSide(tctx, s.Exe, p.dir, p.role, p.args, p.file, func(sd *Side, line json.RawMessage) {
			if s.Observe != nil {
				s.Observe(req, sd, line, false)
			}
			send(TInterval, Record{Direction: sd.Direction, Role: sd.Role, Line: line})
		})
		if err != nil {
			return c.Fail(ErrCodeTest, "the server cannot start its %s: %v", p.role, err)
		}
		sides = append(sides, sd)
		return nil
	}
	defer func() {
		cancel()
		for _, sd := range sides {
			<-sd.Done()
		}
	}()
	// Receivers first: they are listening before the client is told to send.
	for i, p := range plans {
		if p.file != nil {
			if err := start(p); err != nil {
				return "", err
			}
			p.file.Close()
			plans[i].file = nil
		}
	}
	if err := send(TReady, ready); err != nil {
		return "", err
	}
	if err := c.Expect(startWait, TStart, &Start{}); err != nil {
		return "", fmt.Errorf("no start: %w", err)
	}
	for _, p := range plans {
		if p.role == "sender" {
			if err := start(p); err != nil {
				return "", err
			}
		}
	}
	// The client may stop the test (its user interrupted it); a client that vanishes
	// (EOF, reset, silence past the bound) ends it. Either way the sides are interrupted
	// and the results still go out to whoever is there.
	gone := make(chan error, 1)
	go func() {
		deadline := testGrace
		if bound > 0 {
			deadline += bound
		} else {
			deadline = 24 * time.Hour // an unbounded count/bytes test on a server without --max-duration
		}
		t, _, err := c.Read(deadline)
		if err == nil && t != TStop {
			err = fmt.Errorf("protocol error: a %s frame during the test", t)
		}
		gone <- err
	}()
	var timer <-chan time.Time
	if s.Limits.Duration > 0 {
		timer = time.After(bound + endGrace)
	}
	all := make(chan struct{})
	go func() {
		for _, sd := range sides {
			<-sd.Done()
		}
		close(all)
	}()
	var clientErr error
	select {
	case <-all:
	case err := <-gone:
		clientErr = err
		cancel()
	case <-timer:
		cancel() // --max-duration: a count or byte total that runs longer ends here
	case <-ctx.Done():
	}
	<-all
	var verdicts []string
	for _, sd := range sides {
		res, err := sd.Wait()
		if s.Observe != nil && err == nil {
			s.Observe(req, sd, res, true)
		}
		if err != nil {
			send(TError, Error{Code: ErrCodeTest, Message: "server " + err.Error()})
			verdicts = append(verdicts, err.Error())
			continue
		}
		send(TResult, Record{Direction: sd.Direction, Role: sd.Role, Line: res})
		verdicts = append(verdicts, sideVerdict(sd, res))
	}
	send(TDone, Done{})
	v := strings.Join(verdicts, "; ")
	if clientErr != nil && !errors.Is(clientErr, io.EOF) {
		v += " (client: " + short(clientErr) + ")"
	} else if clientErr != nil {
		v += " (client gone)"
	}
	return v, nil
}

// sideVerdict summarises a side's result for the log.
func sideVerdict(sd *Side, res json.RawMessage) string {
	var r report.Run
	if json.Unmarshal(res, &r) != nil {
		return sd.Role + " result unreadable"
	}
	switch {
	case r.Receiver != nil:
		return fmt.Sprintf("receiver %s in %.2fs, %.2f Gbit/s, verdict %d %s", report.Human(r.Receiver.Bytes),
			r.Receiver.RealMs/1e3, r.Receiver.GbitS, r.Receiver.Verdict, r.Receiver.VerdictWhy)
	case r.Sender != nil:
		return fmt.Sprintf("sender %s in %.2fs, %.2f Gbit/s, receiver verdict %d %s", report.Human(r.Sender.Bytes),
			r.Sender.RealMs/1e3, r.Sender.GbitS, r.Sender.Verdict, r.Error)
	}
	return sd.Role + " result empty"
}
