package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/pflag"
	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/sink"
	"github.com/splicegen/splicegen/wire"
)

// sendJob is one send, parsed and checked: everything needed to connect and run.
type sendJob struct {
	c       *common
	spec    gen.Spec
	plugin  proto.Plugin
	opts    proto.Options
	addr    string
	lab     labFlags
	metrics string
}

// parseSend is the one parser of send's flags: send uses it, and compare checks every
// cell of its matrix with it before running anything. done: help was printed.
func parseSend(args []string, stdout io.Writer) (j *sendJob, done bool, err error) {
	return parseSendAs("send", args, stdout, nil)
}

// parseSendAs parses send's flags for a command (send, run) that may add its own.
func parseSendAs(cmd string, args []string, stdout io.Writer, extra func(*pflag.FlagSet)) (j *sendJob, done bool, err error) {
	c := newCommon(cmd)
	c.addOutput()
	var mode, bytesS, ringS, io_, rateS, ppsS string
	var count int64
	var dur time.Duration
	var unsafeRing bool
	spec := gen.Spec{}
	c.fs.StringVarP(&mode, "mode", "m", "splice", "send mode: splice, write, sendfile, zerocopy (tcp); splice, write, mmsg, gso, zerocopy (udp); splice, write (sctp)")
	c.fs.StringVarP(&c.size, "size", "s", "", "message size, header included (default per protocol: tcp/sctp 64KiB, udp 1472); a mix: 64:7,594:4,1518:1 or imix")
	c.fs.Int64VarP(&count, "count", "n", 0, "messages to send (all streams)")
	c.fs.StringVar(&bytesS, "bytes", "", "bytes to send (all streams), whole messages")
	c.fs.DurationVarP(&dur, "time", "t", 0, "how long to send (default 10s when no --count/--bytes)")
	c.fs.StringVar(&ringS, "ring", "", "page ring per stream (default: the safe size from the rule)")
	c.fs.BoolVar(&unsafeRing, "unsafe-ring", false, "allow --ring below the safe size (demonstrates the page-reuse hazard)")
	c.fs.BoolVar(&spec.HotBuffer, "hot-buffer", false, "write mode: send every message from one cache-hot buffer instead of the page ring")
	c.fs.StringVarP(&rateS, "rate", "b", "", "pace to this many bits/s over all streams, e.g. 500M, 1Gbit, 2.5G")
	c.fs.StringVar(&ppsS, "pps", "", "pace to this many messages/s over all streams, e.g. 100k")
	c.fs.IntVar(&spec.Burst, "burst", 0, "with --rate/--pps: send N messages back to back per pacing tick, a tick every N intervals (per stream)")
	c.fs.DurationVar(&spec.On, "on", 0, "on/off cycles: send for this long, then nothing for --off, repeating (with or without a pace)")
	c.fs.DurationVar(&spec.Off, "off", 0, "on/off cycles: the pause after each --on period")
	c.fs.DurationVar(&spec.Ramp, "ramp", 0, "with --rate/--pps: climb linearly from ~0 to the rate over this long, then hold (at most --time)")
	c.fs.IntVar(&spec.Batch, "batch", 0, "datagrams per sendmmsg (mmsg, default 64) or segments per super-buffer (gso, default min(128, 65507/size))")
	c.fs.IntVar(&spec.RTT, "rtt", 0, "round-trip time: the receiver reflects every Nth message's header, the sender reports the RTT percentiles (tcp, udp)")
	c.fs.DurationVar(&spec.StallTimeout, "stall-timeout", gen.DefaultStallTimeout, "end the test as \"peer stalled\" (exit 1) when the socket stays full this long; also bounds the wait for the receiver's verdict")
	c.fs.StringVar(&io_, "io", "poll", "data-path I/O: poll (netpoller) or block (blocking fd on a locked thread)")
	c.fs.MarkHidden("io")
	var lab labFlags
	lab.add(c.fs)
	var metricsAddr string
	if cmd == "send" {
		c.fs.StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics on [HOST]:PORT (/metrics) during the run")
	}
	if extra != nil {
		extra(c.fs)
	}
	if done, err := c.parse(args, stdout, "splicegen "+cmd+" [flags] HOST[:PORT]"); done || err != nil {
		return nil, done, err
	}
	if c.fs.NArg() != 1 {
		return nil, false, usagef("want exactly one HOST[:PORT], got %d arguments", c.fs.NArg())
	}
	j = &sendJob{c: c}
	if j.plugin, j.opts, err = c.plugin(); err != nil {
		return nil, false, err
	}
	t := j.plugin.Traits()
	if j.addr, err = hostPort(c.fs.Arg(0), true); err != nil {
		return nil, false, err
	}
	if _, err := c.cpus(); err != nil {
		return nil, false, err
	}
	spec.Mode, spec.Count, spec.Duration, spec.Verify, spec.Streams, spec.Unsafe, spec.IO =
		mode, count, dur, c.verify, c.streams, unsafeRing, io_
	if spec.Format, err = wire.ParseFormat(c.format); err != nil {
		return nil, false, usageErr{err.Error()}
	}
	spec.Size = t.DefaultSize
	host, _, _ := net.SplitHostPort(j.addr)
	ip := net.ParseIP(host) // a host name: imix takes IPv4's headers
	if spec.Mix, err = gen.ParseMix(c.size, ip != nil && ip.To4() == nil, parseSize); err != nil {
		return nil, false, err
	}
	if spec.Mix != nil {
		spec.Size = slices.Max(spec.Mix)
	} else if c.size != "" {
		n, err := parseSize(c.size)
		if err != nil {
			return nil, false, usageErr{"--size: " + err.Error()}
		}
		spec.Size = int(min(n, 1<<40))
	}
	if bytesS != "" {
		if spec.Bytes, err = parseSize(bytesS); err != nil || spec.Bytes == 0 {
			return nil, false, usagef("--bytes %q: want a positive size", bytesS)
		}
	}
	if ringS != "" {
		r, err := parseSize(ringS)
		if err != nil || r <= 0 || r > 1<<40 {
			return nil, false, usagef("--ring %q: want a positive size", ringS)
		}
		spec.Ring = int(r)
	}
	switch {
	case unsafeRing && ringS == "":
		return nil, false, usagef("--unsafe-ring needs --ring")
	case c.fs.Changed("count") && count <= 0:
		return nil, false, usagef("--count %d: want a positive number", count)
	case c.fs.Changed("time") && dur <= 0:
		return nil, false, usagef("--time %v: want a positive duration", dur)
	case spec.StallTimeout <= 0:
		return nil, false, usagef("--stall-timeout %v: want a positive duration", spec.StallTimeout)
	case rateS != "" && ppsS != "":
		return nil, false, usagef("give one of --rate, --pps")
	case c.fs.Changed("burst") && spec.Burst < 1:
		return nil, false, usagef("--burst %d: want at least 1", spec.Burst)
	case c.fs.Changed("rtt") && spec.RTT < 1:
		return nil, false, usagef("--rtt %d: want every Nth message, N at least 1", spec.RTT)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"on", spec.On}, {"off", spec.Off}, {"ramp", spec.Ramp}} {
		if c.fs.Changed(f.name) && f.d <= 0 {
			return nil, false, usagef("--%s %v: want a positive duration", f.name, f.d)
		}
	}
	if spec.Count == 0 && spec.Bytes == 0 && spec.Duration == 0 {
		spec.Duration = 10 * time.Second
	}
	if rateS != "" {
		if spec.Rate, err = parseRate(rateS); err != nil {
			return nil, false, usagef("--rate: %v", err)
		}
	}
	if ppsS != "" {
		if spec.PPS, err = parseRate(ppsS); err != nil {
			return nil, false, usagef("--pps: %v", err)
		}
	}
	if spec.TestID, err = c.parseTestID(); err != nil {
		return nil, false, err
	}
	if err := lab.apply(&j.opts, &spec); err != nil {
		return nil, false, err
	}
	j.lab, j.metrics = lab, metricsAddr
	if err := spec.Check(t, j.addr); err != nil {
		return nil, false, err
	}
	j.spec = spec
	return j, false, nil
}

func cmdSend(args []string, stdout, stderr io.Writer) (int, error) {
	j, done, err := parseSend(args, stdout)
	if done || err != nil {
		return 0, err
	}
	c, spec := j.c, j.spec
	if spec.Unsafe {
		// On stderr, so --json output stays one object.
		fmt.Fprintln(stderr, "splicegen send: warning: --unsafe-ring: pages may be rewritten while the kernel still references them; expect corrupt messages")
	}
	if err := c.pin(); err != nil {
		return 0, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var pm *metrics
	if j.metrics != "" {
		pm = &metrics{proto: c.proto, mode: spec.Mode}
		if err := serveMetrics(j.metrics, pm); err != nil {
			return exitFailed, err
		}
	}

	// Connections are made one by one as the sender prepares each stream: stream 0's ring
	// decides whether all of them fit under the cap before any other is opened.
	var first proto.Conn // stream 0's: its route gives the wire interface
	s, err := gen.NewSender(spec, func(i int) (proto.Conn, error) {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		o := j.opts
		o.Path = portOf(o.Path, i)
		cn, err := j.plugin.Dial(dctx, j.addr, o)
		if err != nil && !errors.Is(err, proto.ErrKernel) {
			return nil, fmt.Errorf("connect %s: %w", j.addr, err)
		}
		if i == 0 {
			first = cn
		}
		return cn, err
	})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if pm != nil {
		pm.sender(s)
	}
	for _, w := range s.Warnings() {
		fmt.Fprintln(stderr, "splicegen send: warning: "+w)
	}
	if s.NoReport() {
		fmt.Fprintln(stderr, "splicegen send: notice: no receiver report within 2s: the peer is not a splicegen receiver (use --format raw for plain sinks); ring sized for the worst case, completeness not provable")
	}

	stop := c.intervals(stdout, stderr, c.defaultInterval(spec.Duration), "sender", false, func() sink.Progress {
		b, m := s.Progress()
		return sink.Progress{Bytes: b, Messages: m}
	})
	var k0 map[string]uint64
	if f := j.plugin.Traits().Counters; f != nil {
		k0 = f()
	}
	wm := startSend(first)
	u0 := report.Now()
	st, runErr := s.Run(ctx)
	u1 := report.Now()
	onWire := wm.result(stderr)
	stop()
	u1.At = u0.At.Add(st.Real) // the data's time: end-of-test datagrams linger after it

	r := &report.Run{Proto: c.proto, Mode: spec.Mode, Size: spec.Size, Mix: mixOf(spec), Streams: spec.Streams,
		Format: spec.Format.String(), Verify: spec.Verify, HotBuffer: spec.HotBuffer, Interrupted: ctx.Err() != nil}
	b, m := st.Totals()
	snd := &report.Sender{RingBytes: st.RingBytes, RingHuge: st.RingHuge, Sndbuf: st.Buffers.SndBuf, Fallbacks: st.Fallbacks, Detail: st, Verdict: -1,
		Paced: spec.Rate > 0 || spec.PPS > 0, Wire: onWire, RTT: st.RTT}
	snd.CPU = c.cpu
	snd.Fill(u0, u1, b, m)
	if f := j.plugin.Traits().Counters; f != nil {
		snd.Counters(k0, f())
	}
	r.Sender = snd
	for _, ss := range st.Streams {
		snd.RingRenewed += ss.RingRenewed
	}
	for _, ss := range st.Streams {
		if ss.Fallback != "" {
			fmt.Fprintf(stderr, "splicegen send: stream %d: %s\n", ss.Stream, ss.Fallback)
			break
		}
	}
	if v := st.Receiver; v != nil {
		snd.Verdict = int(v.Code)
	}
	if snd.RateShortfallPct = st.RateShortfallPct; snd.RateShortfallPct != nil && *snd.RateShortfallPct > 1 {
		fmt.Fprintf(stderr, "splicegen send: warning: sent %.1f%% below the asked rate (over the time meant for sending); the sender could not keep up: pin it with --cpu, or lower the rate\n",
			*snd.RateShortfallPct)
	}
	snd.Proof = st.Proof
	c.emit(stdout, r, runErr)
	switch {
	case st.Receiver != nil && st.Receiver.Code == exitIntegrity:
		return exitIntegrity, nil // the receiver's verdict: both sides exit alike
	case runErr != nil || r.Interrupted || st.Receiver != nil && st.Receiver.Code != 0:
		return exitFailed, nil
	}
	return exitOK, nil
}

// cpus parses --cpu (nil: not given).
func (c *common) cpus() ([]int, error) {
	if c.cpu == "" {
		return nil, nil
	}
	cpus, err := parseCPUList(c.cpu, runtime.NumCPU())
	if err != nil {
		return nil, usageErr{err.Error()}
	}
	return cpus, nil
}
