package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/sink"
)

func cmdRecv(args []string, stdout, stderr io.Writer) (int, error) {
	c := newCommon("recv")
	c.addOutput()
	var sinkName string
	var listenFD int
	var idle, stall time.Duration
	var gro bool
	c.fs.StringVar(&sinkName, "sink", "read", "sink: read (read(2)) or splice (socket → pipe → /dev/null); udp: mmsg (recvmmsg(2), its default)")
	c.fs.BoolVar(&gro, "gro", false, "udp: UDP_GRO (coalesced datagrams, split by the receiver)")
	c.fs.StringVarP(&c.size, "size", "s", "", "message size (needed for --format nettest/raw; native learns it)")
	c.fs.DurationVar(&idle, "idle", 30*time.Second, "end a started test when nothing arrives for this long")
	c.fs.DurationVar(&stall, "stall", 0, "sleep this long after every read (a slow reader; the page-reuse proof)")
	c.fs.IntVar(&listenFD, "listen-fd", -1, "use this inherited listening socket (compare's children)")
	c.fs.MarkHidden("listen-fd")
	c.fs.Lookup("streams").DefValue = "0"
	c.streams = 0
	c.fs.Lookup("streams").Usage = "connections to wait for (default: from the native header, else 1)"
	if done, err := c.parse(args, stdout, "splicegen recv [flags] [HOST]:PORT"); done || err != nil {
		return 0, err
	}
	if c.fs.NArg() > 1 {
		return 0, usagef("want at most one [HOST]:PORT, got %d arguments", c.fs.NArg())
	}
	format, err := gen.ParseFormat(c.format)
	if err != nil {
		return 0, usageErr{err.Error()}
	}
	cfg := sink.Config{Sink: sinkName, Verify: c.verify, Format: format, Streams: c.streams, Idle: idle, Stall: stall}
	if c.size != "" {
		n, err := parseSize(c.size)
		if err != nil {
			return 0, usageErr{"--size: " + err.Error()}
		}
		if n < 1 || n > gen.MaxMessage {
			return 0, usagef("--size %s out of range 1..64MiB", c.size)
		}
		cfg.Size = int(n)
	}
	if c.proto == "sctp" && sinkName == sink.SinkSplice {
		return 0, usagef("--sink splice is not available for sctp: the receiver needs recvmsg for message boundaries and stream ids")
	}
	if idle <= 0 {
		return 0, usagef("--idle %v: want a positive duration", idle)
	}
	plugin, err := proto.Lookup(c.proto)
	if err != nil {
		return 0, err
	}
	if _, ok := plugin.(proto.PacketPlugin); ok {
		return cmdRecvUDP(c, plugin, cfg, listenFD, gro, stdout)
	}
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	opts, err := c.options()
	if err != nil {
		return 0, err
	}
	var ln proto.Listener
	if listenFD >= 0 {
		f := os.NewFile(uintptr(listenFD), "listener")
		ln, err = plugin.FileListener(f, opts)
		f.Close()
	} else {
		var arg string
		if arg, err = c.listenAddr(); err != nil {
			return 0, err
		}
		ln, err = plugin.Listen(arg, opts)
	}
	if err != nil {
		return exitFailed, err
	}
	if err := c.pin(); err != nil {
		ln.Close()
		return 0, err
	}
	rcv, err := sink.NewReceiver(cfg, ln)
	if err != nil {
		ln.Close()
		return 0, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var u0 report.Usage
	stop := make(chan struct{})
	every := defaultInterval(c.interval, 0, c.json, stdout)
	st, runErr := rcv.Run(ctx, func() {
		u0 = report.Now()
		go intervals(stdout, every, stop, func() (uint64, uint64) { return rcv.Progress(), 0 })
	})
	u1 := report.Now()
	close(stop)
	if u0.At.IsZero() { // nothing measured: interrupted (or the listener failed) before any connection
		if ctx.Err() != nil {
			return exitFailed, fmt.Errorf("interrupted before any sender connected")
		}
		return exitFailed, runErr
	}
	t := st.Totals()
	r := &report.Run{Proto: c.proto, Mode: "", Size: t.MsgSize, Streams: len(st.Streams), Format: format.String(),
		Verify: c.verify, Interrupted: ctx.Err() != nil}
	v := &report.Receiver{Lost: t.Lost, Reordered: t.Reordered, Duplicate: t.Duplicate, Corrupt: t.Corrupt,
		Unverified: t.Unverified, Truncated: t.Truncated, Sink: sinkName, Detail: st}
	v.Fill(u0, u1, t.Bytes, t.Messages)
	r.Receiver = v
	c.emit(stdout, r, runErr)
	switch {
	case c.verify && (t.Corrupt > 0 || t.Lost > 0 || t.Duplicate > 0 || t.Reordered > 0):
		return exitIntegrity, nil
	case runErr != nil || r.Interrupted:
		return exitFailed, nil
	}
	return exitOK, nil
}

// listenAddr is recv's [HOST]:PORT argument, default :5500.
func (c *common) listenAddr() (string, error) {
	arg := ":5500"
	if c.fs.NArg() == 1 {
		arg = c.fs.Arg(0)
	}
	return hostPort(arg, false)
}
