package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
)

func cmdSend(args []string, stdout, stderr io.Writer) (int, error) {
	c := newCommon("send")
	c.addOutput()
	var mode, bytesS, ringS, io_, rateS, ppsS string
	var batch int
	var count int64
	var dur time.Duration
	var unsafeRing, hot bool
	c.fs.StringVarP(&mode, "mode", "m", "splice", "send mode: splice, write, sendfile (tcp); splice, write, mmsg, gso (udp)")
	c.fs.StringVarP(&c.size, "size", "s", "64KiB", "message size, header included (udp: datagram size, default 1472)")
	c.fs.Int64VarP(&count, "count", "n", 0, "messages to send (all streams)")
	c.fs.StringVar(&bytesS, "bytes", "", "bytes to send (all streams), whole messages")
	c.fs.DurationVarP(&dur, "time", "t", 0, "how long to send (default 10s when no --count/--bytes)")
	c.fs.StringVar(&ringS, "ring", "", "page ring per stream (default: the safe size from the rule)")
	c.fs.BoolVar(&unsafeRing, "unsafe-ring", false, "allow --ring below the safe size (demonstrates the page-reuse hazard)")
	c.fs.BoolVar(&hot, "hot-buffer", false, "write mode: send every message from one cache-hot buffer instead of the page ring")
	c.fs.StringVarP(&rateS, "rate", "b", "", "pace to this many bits/s over all streams, e.g. 500M, 1Gbit, 2.5G")
	c.fs.StringVar(&ppsS, "pps", "", "pace to this many messages/s over all streams, e.g. 100k")
	c.fs.IntVar(&batch, "batch", 0, "datagrams per sendmmsg (mmsg, default 64) or segments per super-buffer (gso, default min(128, 65507/size))")
	c.fs.StringVar(&io_, "io", "poll", "data-path I/O: poll (netpoller) or block (blocking fd on a locked thread)")
	c.fs.MarkHidden("io")
	if done, err := c.parse(args, stdout, "splicegen send [flags] HOST[:PORT]"); done || err != nil {
		return 0, err
	}
	if c.fs.NArg() != 1 {
		return 0, usagef("want exactly one HOST[:PORT], got %d arguments", c.fs.NArg())
	}
	spec, err := sendSpec(c, mode, count, bytesS, dur, ringS, unsafeRing, io_)
	if err != nil {
		return 0, err
	}
	spec.HotBuffer = hot
	spec.Batch = batch
	if err := paceSpec(&spec, rateS, ppsS); err != nil {
		return 0, err
	}
	if err := spec.Validate(); err != nil {
		return 0, err
	}
	if spec.Unsafe {
		// On stderr, so --json output stays one object.
		fmt.Fprintln(stderr, "splicegen send: warning: --unsafe-ring: pages may be rewritten while the kernel still references them; expect corrupt messages")
	}
	plugin, err := proto.Lookup(c.proto)
	if err != nil {
		return 0, err
	}
	if err := plugin.Supports(mode); err != nil {
		return 0, usageErr{err.Error()}
	}
	opts, err := c.options()
	if err != nil {
		return 0, err
	}
	addr, err := hostPort(c.fs.Arg(0), true)
	if err != nil {
		return 0, err
	}
	if err := udpSendCheck(c, &spec, addr); err != nil {
		return 0, err
	}
	if err := c.pin(); err != nil {
		return 0, err
	}
	ctx, cancel := signalContext()
	defer cancel()

	conns := make([]proto.Conn, 0, spec.Streams)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range spec.Streams {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		cn, err := plugin.Dial(dctx, addr, opts)
		dcancel()
		if errors.Is(err, proto.ErrNoSCTP) {
			return exitUsage, err
		}
		if err != nil {
			return exitFailed, fmt.Errorf("connect %s: %w", addr, err)
		}
		conns = append(conns, cn)
	}
	s, err := gen.NewSender(spec, conns)
	if err != nil {
		return 0, err
	}
	defer s.Close()

	stop := make(chan struct{})
	go intervals(stdout, defaultInterval(c.interval, spec.Duration, c.json, stdout), stop, s.Progress)
	u0 := report.Now()
	st, runErr := s.Run(ctx)
	u1 := report.Now()
	close(stop)
	u1.At = u0.At.Add(st.Real) // the data's time: UDP's end datagrams linger after it

	r := &report.Run{Proto: c.proto, Mode: mode, Size: spec.Size, Streams: spec.Streams,
		Format: spec.Format.String(), Verify: spec.Verify, HotBuffer: hot, Interrupted: ctx.Err() != nil}
	b, m := st.Totals()
	snd := &report.Sender{RingBytes: st.RingBytes, Sndbuf: st.Buffers.SndBuf, Fallbacks: st.Fallbacks, Detail: st}
	snd.Fill(u0, u1, b, m)
	r.Sender = snd
	for _, ss := range st.Streams {
		if ss.Fallback != "" {
			fmt.Fprintf(stderr, "splicegen send: stream %d: %s\n", ss.Stream, ss.Fallback)
			break
		}
	}
	c.emit(stdout, r, runErr)
	if runErr != nil || r.Interrupted {
		return exitFailed, nil
	}
	return exitOK, nil
}

func sendSpec(c *common, mode string, count int64, bytesS string, dur time.Duration, ringS string, unsafeRing bool, io_ string) (gen.Spec, error) {
	format, err := gen.ParseFormat(c.format)
	if err != nil {
		return gen.Spec{}, usageErr{err.Error()}
	}
	size, err := parseSize(c.size)
	if err != nil {
		return gen.Spec{}, usageErr{"--size: " + err.Error()}
	}
	if size > gen.MaxMessage {
		return gen.Spec{}, usagef("--size %s exceeds the 64 MiB maximum", c.size)
	}
	spec := gen.Spec{Mode: mode, Size: int(size), Count: count, Duration: dur, Verify: c.verify,
		Format: format, Streams: c.streams, Unsafe: unsafeRing, IO: io_}
	if bytesS != "" {
		if spec.Bytes, err = parseSize(bytesS); err != nil || spec.Bytes == 0 {
			return spec, usagef("--bytes %q: want a positive size", bytesS)
		}
	}
	if ringS != "" {
		r, err := parseSize(ringS)
		if err != nil || r <= 0 || r > 1<<40 {
			return spec, usagef("--ring %q: want a positive size", ringS)
		}
		spec.Ring = int(min(r, 1<<40))
	}
	if unsafeRing && ringS == "" {
		return spec, usagef("--unsafe-ring needs --ring")
	}
	if c.fs.Changed("count") && count <= 0 {
		return spec, usagef("--count %d: want a positive number", count)
	}
	if c.fs.Changed("time") && dur <= 0 {
		return spec, usagef("--time %v: want a positive duration", dur)
	}
	if spec.Count == 0 && spec.Bytes == 0 && spec.Duration == 0 {
		spec.Duration = 10 * time.Second
	}
	return spec, spec.Validate()
}
