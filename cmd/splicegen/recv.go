package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/splicegen/splicegen/ifstat"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/sink"
	"github.com/splicegen/splicegen/wire"
)

// recvJob is one receive, parsed and checked.
type recvJob struct {
	c        *common
	cfg      sink.Config
	plugin   proto.Plugin
	opts     proto.Options
	addr     string
	listenFD int
	keep     bool
	metrics  string
	m        *metrics
}

// parseRecv is the one parser of recv's flags. done: help was printed.
func parseRecv(args []string, stdout io.Writer) (j *recvJob, done bool, err error) {
	c := newCommon("recv")
	c.addOutput()
	j = &recvJob{c: c}
	cfg := &j.cfg
	c.fs.StringVar(&cfg.Sink, "sink", "", "sink: read (read(2)) or splice (socket → pipe → /dev/null) for tcp; mmsg (recvmmsg(2)) for udp; read for sctp (default: the protocol's first)")
	c.fs.BoolVar(&cfg.GRO, "gro", false, "udp: UDP_GRO (coalesced datagrams, split by the receiver)")
	c.fs.StringVarP(&c.size, "size", "s", "", "message size (needed for --format nettest/raw; native learns it)")
	c.fs.DurationVar(&cfg.Idle, "idle", 30*time.Second, "end a started test when nothing arrives for this long")
	c.fs.DurationVar(&cfg.Stall, "stall", 0, "sleep this long after every read (a slow reader; the page-reuse proof)")
	c.fs.BoolVar(&j.keep, "keep", false, "serve test after test until interrupted (one result each; exit status: the worst verdict)")
	c.fs.StringVar(&j.metrics, "metrics", "", "serve Prometheus metrics on [HOST]:PORT (/metrics)")
	c.fs.IntVar(&j.listenFD, "listen-fd", -1, "use this inherited listening socket (compare's children)")
	c.fs.MarkHidden("listen-fd")
	c.fs.Lookup("streams").DefValue = "0"
	c.streams = 0
	c.fs.Lookup("streams").Usage = "connections to wait for (default: from the native header, else 1)"
	if done, err := c.parse(args, stdout, "splicegen recv [flags] [HOST]:PORT"); done || err != nil {
		return nil, done, err
	}
	if c.fs.NArg() > 1 {
		return nil, false, usagef("want at most one [HOST]:PORT, got %d arguments", c.fs.NArg())
	}
	if j.plugin, j.opts, err = c.plugin(); err != nil {
		return nil, false, err
	}
	t := j.plugin.Traits()
	if cfg.Format, err = wire.ParseFormat(c.format); err != nil {
		return nil, false, usageErr{err.Error()}
	}
	if cfg.Sink == "" {
		cfg.Sink = t.DefaultSink()
	}
	cfg.Verify, cfg.Streams = c.verify, c.streams
	if cfg.TestID, err = c.parseTestID(); err != nil {
		return nil, false, err
	}
	if c.size != "" {
		n, err := parseSize(c.size)
		if err != nil {
			return nil, false, usageErr{"--size: " + err.Error()}
		}
		if n < 1 {
			return nil, false, usagef("--size %s: want a positive size", c.size)
		}
		cfg.Size = int(min(n, 1<<40))
	}
	if err := cfg.Check(t); err != nil {
		return nil, false, err
	}
	if _, err := c.cpus(); err != nil {
		return nil, false, err
	}
	if j.listenFD < 0 {
		arg := ":5500"
		if c.fs.NArg() == 1 {
			arg = c.fs.Arg(0)
		}
		if j.addr, err = hostPort(arg, false); err != nil {
			return nil, false, err
		}
	}
	return j, false, nil
}

func cmdRecv(args []string, stdout, stderr io.Writer) (int, error) {
	j, done, err := parseRecv(args, stdout)
	if done || err != nil {
		return 0, err
	}
	if j.metrics != "" {
		j.m = &metrics{proto: j.plugin.Traits().Name, mode: j.cfg.Sink}
		if err := serveMetrics(j.metrics, j.m); err != nil {
			return exitFailed, err
		}
	}
	j.cfg.Connect = !j.keep // one test: a UDP socket connects to its source (sink.Config)
	ep, err := sink.Open(j.plugin, j.cfg, j.opts, j.addr, j.listenFD)
	if err != nil {
		return exitFailed, err
	}
	defer ep.Close()
	if err := j.c.pin(); err != nil {
		return 0, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	if !j.keep {
		return j.test(ctx, ep.Test(), stdout, stderr)
	}
	// --keep: test after test until interrupted; the exit status is the worst verdict
	// (3 over 1 over 0) of the tests that ran.
	worst := exitOK
	for ctx.Err() == nil {
		code, err := j.test(ctx, ep.Test(), stdout, stderr)
		if err != nil && ctx.Err() != nil {
			break // interrupted while waiting for the next test: nothing measured, no error
		}
		if err != nil {
			fmt.Fprintf(stderr, "splicegen recv: %s\n", oneLine(err))
			return max(worst, exitFailed), nil
		}
		if code == exitIntegrity || worst != exitIntegrity && code > worst {
			worst = code
		}
	}
	return worst, nil
}

// test receives one test and prints its result.
func (j *recvJob) test(ctx context.Context, rcv sink.Runner, stdout, stderr io.Writer) (int, error) {
	c, cfg, t := j.c, j.cfg, j.plugin.Traits()
	var u0 report.Usage
	var k0 map[string]uint64
	var w0 map[int]ifstat.Counters
	stop := func() {}
	every := c.defaultInterval(0)
	pre := startPreRead()
	defer pre.stop()
	if j.m != nil {
		defer j.m.receiving(rcv)()
	}
	st, runErr := rcv.Run(ctx, func() {
		w0 = pre.before()
		u0 = report.Now()
		if t.Counters != nil {
			k0 = t.Counters()
		}
		stop = c.intervals(stdout, stderr, every, "receiver", !t.LossFails, rcv.Progress)
	})
	u1 := report.Now()
	w1 := readAll()
	stop()
	if u0.At.IsZero() { // nothing measured: interrupted (or the socket failed) before any data
		if ctx.Err() != nil {
			return exitFailed, fmt.Errorf("interrupted before any sender connected")
		}
		return exitFailed, runErr
	}
	if st.Real > 0 {
		u1.At = u0.At.Add(st.Real) // the data's time: not an --idle wait or lingering end datagrams
	}
	tot := st.Totals()
	r := &report.Run{Proto: t.Name, Size: tot.MsgSize, Streams: len(st.Streams), Format: cfg.Format.String(),
		Verify: cfg.Verify, Interrupted: ctx.Err() != nil}
	v := &report.Receiver{Lost: tot.Lost, Reordered: tot.Reordered, Duplicate: tot.Duplicate, Corrupt: tot.Corrupt,
		Unverified: tot.Unverified, Truncated: tot.Truncated, Late: tot.Late, Sink: cfg.Sink, Detail: st,
		Stray: st.Strays.Total(), Verdict: st.Code, VerdictWhy: st.Why, Sizes: tot.Sizes, Latency: st.Latency}
	v.Fill(u0, u1, tot.Bytes, tot.Messages)
	v.CPU, v.Wire = c.cpu, recvWire(st.Peer, w0, w1, stderr)
	if t.Counters != nil {
		v.Counters(k0, t.Counters())
	}
	if sent := tot.Messages - tot.Duplicate - tot.Late + tot.Lost; !t.LossFails && sent > 0 {
		v.LossPct = float64(tot.Lost) / float64(sent) * 100
	}
	if len(tot.Sizes) > 1 {
		r.Size, r.Mix = 0, "mixed"
		for k := range tot.Sizes {
			r.Size = max(r.Size, k)
		}
	}
	r.Receiver = v
	c.emit(stdout, r, runErr)
	switch {
	case st.Code == exitIntegrity: // sink.Stats.Verdict: loss on a lossy protocol is measured, not a failure
		return exitIntegrity, nil
	case st.Code != 0 || runErr != nil || r.Interrupted:
		return exitFailed, nil
	}
	return exitOK, nil
}
