package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"github.com/splicegen/splicegen/control"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/wire"
)

// controlPort is the server's default port.
const controlPort = "5499"

func cmdServer(args []string, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	listen := fs.String("listen", ":"+controlPort, "[HOST]:PORT to serve on")
	tokenFile := fs.String("token-file", "", "file holding the token (default $SPLICEGEN_TOKEN; neither: a random token, printed once)")
	noAuth := fs.Bool("no-auth", false, "serve anyone who connects (no token)")
	maxTests := fs.Int("max-tests", 4, "tests at once; a client over it gets \"busy\"")
	maxDur := fs.Duration("max-duration", time.Hour, "longest test: longer --time is cut, a count or byte test ends here")
	maxRate := fs.String("max-rate", "", "fastest pace per direction, e.g. 1G (default none); a faster or unpaced request is paced to it")
	maxStreams := fs.Int("max-streams", 64, "most streams per direction")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on [HOST]:PORT (/metrics): the bytes and messages of the server's sides, from their interval records")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: splicegen server [flags]\n\n%s", fs.FlagUsages())
			return 0, nil
		}
		return 0, usageErr{err.Error()}
	}
	if fs.NArg() != 0 {
		return 0, usagef("server takes no arguments (use --listen), got %q", fs.Args())
	}
	l := control.Limits{Tests: *maxTests, Duration: maxDur.Milliseconds(), Streams: *maxStreams}
	switch {
	case *maxTests < 1 || *maxTests > 1024:
		return 0, usagef("--max-tests %d out of range 1..1024", *maxTests)
	case *maxDur < time.Second:
		return 0, usagef("--max-duration %v: at least 1s", *maxDur)
	case *maxStreams < 1 || *maxStreams > 1024:
		return 0, usagef("--max-streams %d out of range 1..1024", *maxStreams)
	case *noAuth && (*tokenFile != "" || os.Getenv("SPLICEGEN_TOKEN") != ""):
		return 0, usagef("--no-auth with a token (--token-file or SPLICEGEN_TOKEN): give one or the other")
	}
	if *maxRate != "" {
		r, err := parseRate(*maxRate)
		if err != nil {
			return 0, usagef("--max-rate: %v", err)
		}
		l.Rate = r
	}
	addr, err := hostPortOr(*listen, false, controlPort)
	if err != nil {
		return 0, err
	}
	var token []byte
	if !*noAuth {
		t, err := control.LoadToken(*tokenFile)
		if err != nil {
			return 0, usageErr{err.Error()}
		}
		if t == "" {
			t = control.NewToken()
			fmt.Fprintf(stdout, "splicegen server: token %s (clients: SPLICEGEN_TOKEN=%s, or --token-file; shown once)\n", t, t)
		}
		token = []byte(t)
	}
	exe, err := os.Executable()
	if err != nil {
		return exitFailed, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return exitFailed, err
	}
	auth := "token (HMAC-SHA256 challenge-response)"
	if token == nil {
		auth = "NO AUTHENTICATION (--no-auth): anyone who reaches the port can run tests"
	}
	fmt.Fprintf(stdout, "splicegen server: listening on %s, %s; limits: %d tests, %v, %d streams, rate %s\n",
		ln.Addr(), auth, l.Tests, *maxDur, l.Streams, cmp(*maxRate, "unlimited"))
	env := report.ReadEnv()
	env.Splicegen = version()
	srv := &control.Server{Token: token, Limits: l, Exe: exe, Env: env, Log: &syncWriter{w: stdout}, Check: checkSide}
	if *metricsAddr != "" {
		var m serverMetrics
		if err := serveMetrics(*metricsAddr, &m); err != nil {
			return exitFailed, err
		}
		srv.Observe = m.observe
	}
	ctx, cancel := signalContext()
	defer cancel()
	return exitOK, srv.Serve(ctx, ln)
}

// checkSide runs a side's flags through send's or recv's own parser.
func checkSide(args []string) error {
	switch {
	case len(args) > 0 && args[0] == "send":
		_, _, err := parseSend(args[1:], io.Discard)
		return err
	case len(args) > 0 && args[0] == "recv":
		_, _, err := parseRecv(args[1:], io.Discard)
		return err
	}
	return fmt.Errorf("no such side %q", args)
}

// syncWriter serialises writes (the server's log from many tests).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// remoteFlags are run's flags beyond send's.
type remoteFlags struct {
	reverse, bidir  bool
	serverCPU, sink string
	tokenFile       string
}

func (r *remoteFlags) add(fs *pflag.FlagSet) {
	fs.BoolVarP(&r.reverse, "reverse", "R", false, "the server sends, this host receives")
	fs.BoolVar(&r.bidir, "bidir", false, "both directions at once")
	fs.StringVar(&r.serverCPU, "server-cpu", "", "pin the server's side to these CPUs (of the server)")
	fs.StringVar(&r.sink, "sink", "", "the receiver's sink (read, splice for tcp; default: the protocol's first)")
	fs.StringVar(&r.tokenFile, "token-file", "", "file holding the server's token (default $SPLICEGEN_TOKEN)")
	for _, f := range []string{"ring", "unsafe-ring", "stall-timeout", "format"} {
		fs.MarkHidden(f) // both hosts size their rings by the rule; a server test is native
	}
}

// requestOf turns a parsed send into a control request.
func requestOf(j *sendJob, dir, sink, serverCPU string) (control.Request, error) {
	s := j.spec
	if s.Format != wire.FormatNative {
		return control.Request{}, usagef("--format %s: a server test needs the native format (its test id keeps strangers' data out)", s.Format)
	}
	if s.Ring != 0 {
		return control.Request{}, usagef("--ring applies to send, not to a server test (both hosts use the safe ring)")
	}
	r := control.Request{Direction: dir, Proto: j.c.proto, Mode: s.Mode, HotBuffer: s.HotBuffer, Size: s.Size,
		Count: s.Count, Bytes: s.Bytes, Rate: s.Rate, PPS: s.PPS, Streams: s.Streams, Verify: s.Verify,
		SndBuf: j.opts.SndBuf, RcvBuf: j.opts.RcvBuf, NoDelay: j.opts.NoDelay, PPID: j.opts.PPID, Batch: s.Batch,
		Sink: sink, ServerCPU: serverCPU, Burst: s.Burst, OnMS: wholeMS(s.On), OffMS: wholeMS(s.Off), RampMS: wholeMS(s.Ramp)}
	pa := j.opts.Path
	r.Mix, r.RTT = mixOf(s), s.RTT
	r.TOS, r.TTL, r.DF, r.Mark, r.CPort, r.Flows, r.FQRate = pa.TOS, pa.TTL, pa.DF, pa.Mark, pa.Port, s.Flows, float64(pa.FQRate*8)
	if (pa.Bind != nil || pa.Dev != "") && dir == control.DirReverse {
		return r, usagef("--bind and --bind-dev name this host's address and interface: with -R the server sends")
	}
	if j.opts.Lanes > 1 {
		r.Lanes = j.opts.Lanes
	}
	if s.Duration > 0 && s.Count == 0 && s.Bytes == 0 {
		r.TimeMS = max(1, s.Duration.Milliseconds())
	}
	if iv := j.c.interval; iv > 0 {
		r.IntervalMS = max(100, iv.Milliseconds())
	}
	chk := r
	chk.DataPort = 1 // the client's receiving port is made when the test runs
	if err := chk.Check(); err != nil {
		return r, usageErr{err.Error()}
	}
	return r, nil
}

// wholeMS is d in ms for a request, at least 1 when d > 0 (0: not set).
func wholeMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(1, d.Round(time.Millisecond).Milliseconds())
}

func cmdRun(args []string, stdout, stderr io.Writer) (int, error) {
	var rf remoteFlags
	j, done, err := parseSendAs("run", args, stdout, rf.add)
	if done || err != nil {
		return 0, err
	}
	c := j.c
	if rf.reverse && rf.bidir {
		return 0, usagef("give one of -R, --bidir")
	}
	dir := control.DirForward
	if rf.reverse {
		dir = control.DirReverse
	} else if rf.bidir {
		dir = control.DirBidir
	}
	server, err := hostPortOr(c.fs.Arg(0), true, controlPort)
	if err != nil {
		return 0, err
	}
	req, err := requestOf(j, dir, rf.sink, rf.serverCPU)
	if err != nil {
		return 0, err
	}
	if c.interval < 0 && !c.json && (req.TimeMS == 0 || req.TimeMS > 2000) {
		req.IntervalMS = 1000 // like iperf3: interval lines whenever the output is text or a stream
	}
	token, err := control.LoadToken(rf.tokenFile)
	if err != nil {
		return 0, usageErr{err.Error()}
	}
	exe, err := os.Executable()
	if err != nil {
		return exitFailed, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	cl, err := control.Dial(ctx, server, token, version())
	if err != nil {
		return exitFailed, fmt.Errorf("%s: %w", server, err)
	}
	defer cl.Close()
	var mu sync.Mutex
	cl.SendFlags = j.lab.localFlags()
	out, runErr := cl.Run(ctx, exe, req, c.cpu, func(local bool, r control.Record) {
		mu.Lock()
		defer mu.Unlock()
		printRecord(stdout, c, local, r)
	})
	if out == nil {
		var re *control.RemoteError
		if errors.As(runErr, &re) {
			return exitFailed, fmt.Errorf("server: %s", re.E.Message)
		}
		return exitFailed, runErr
	}
	for _, n := range out.Notes {
		fmt.Fprintln(stderr, "splicegen run: server: "+n)
	}
	env := report.ReadEnv()
	env.Server = &cl.Welcome.Env
	now := time.Now().UTC().Format(time.RFC3339)
	for _, r := range out.Runs {
		r.Time = now
		if runErr != nil && r.Error == "" {
			r.Error = oneLine(runErr)
		}
	}
	f := &report.File{Env: env, Args: append([]string{"run"}, args...), Runs: out.Runs, Summary: report.Summarize(out.Runs, nil)}
	switch {
	case c.stream:
		b, _ := json.Marshal(struct {
			Type string `json:"type"`
			*report.File
		}{"result", f})
		stdout.Write(append(b, '\n'))
	case c.json:
		printJSON(stdout, f)
	default:
		for _, r := range out.Runs {
			fmt.Fprintf(stdout, "%s (%s):\n", r.Direction, directionWords(r.Direction))
			report.Text(stdout, r)
		}
	}
	code := exitOK
	for _, r := range out.Runs {
		switch {
		case r.Receiver != nil && r.Receiver.Verdict == exitIntegrity:
			code = exitIntegrity
		case code == exitOK && (r.Error != "" || r.Interrupted || r.Receiver == nil || r.Receiver.Verdict != 0):
			code = exitFailed
		}
	}
	if runErr != nil && code == exitOK {
		code = exitFailed
	}
	return code, nil
}

func directionWords(dir string) string {
	if dir == control.DirReverse {
		return "server → client"
	}
	return "client → server"
}

// printRecord prints an interval record of either host: a text line prefixed with its
// host and role, or (--json-stream) one JSON object.
func printRecord(w io.Writer, c *common, local bool, r control.Record) {
	host := "server"
	if local {
		host = "client"
	}
	if c.stream {
		b, _ := json.Marshal(struct {
			Type      string          `json:"type"`
			Host      string          `json:"host"`
			Direction string          `json:"direction"`
			Role      string          `json:"role"`
			Record    json.RawMessage `json:"record"`
		}{"interval", host, r.Direction, r.Role, r.Line})
		w.Write(append(b, '\n'))
		return
	}
	if c.json {
		return
	}
	var iv report.Interval
	if json.Unmarshal(r.Line, &iv) == nil {
		iv.Line(w, fmt.Sprintf("%-7s %-6s %-8s ", r.Direction, host, iv.Role))
	}
}

// remoteRun runs one compare cell through a server: a fresh control connection per
// run, the far side's figures measured on the far host.
func remoteRun(ctx context.Context, exe, server, token string, sendArgs []string, sink, cpuSnd, cpuRcv string) (*report.Run, *report.Env, error) {
	sargs := append(append([]string{}, sendArgs...), server)
	j, _, err := parseSend(sargs, io.Discard)
	if err != nil {
		return nil, nil, err
	}
	req, err := requestOf(j, control.DirForward, sink, cpuRcv)
	if err != nil {
		return nil, nil, err
	}
	cl, err := control.Dial(ctx, server, token, version())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", server, err)
	}
	defer cl.Close()
	out, err := cl.Run(ctx, exe, req, cpuSnd, func(bool, control.Record) {})
	if out == nil || len(out.Runs) != 1 {
		return nil, nil, err
	}
	r := out.Runs[0]
	if err != nil && r.Error == "" {
		r.Error = oneLine(err)
	}
	return r, &cl.Welcome.Env, nil
}
