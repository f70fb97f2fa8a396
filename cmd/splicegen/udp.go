package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/sink"
)

// paceSpec fills the spec's --rate / --pps.
func paceSpec(spec *gen.Spec, rateS, ppsS string) error {
	if rateS != "" && ppsS != "" {
		return usagef("give one of --rate, --pps")
	}
	var err error
	if rateS != "" {
		if spec.Rate, err = parseRate(rateS); err != nil {
			return usagef("--rate: %v", err)
		}
	}
	if ppsS != "" {
		if spec.PPS, err = parseRate(ppsS); err != nil {
			return usagef("--pps: %v", err)
		}
	}
	return nil
}

// udpSendCheck applies UDP's defaults and limits before anything is sent: the default
// datagram size is 1472 (a 1500-byte MTU's payload), and a datagram larger than the
// address family allows (65507 IPv4, 65527 IPv6) is exit 2, not an EMSGSIZE mid-run.
func udpSendCheck(c *common, spec *gen.Spec, addr string) error {
	if c.proto != "udp" {
		return nil
	}
	if !c.fs.Changed("size") {
		spec.Size = 1472
	}
	if m := udp.MaxDatagram(addr); spec.Size > m {
		return usagef("--size %d exceeds the largest UDP datagram to %s, %d bytes", spec.Size, addr, m)
	}
	if spec.Format == gen.FormatNettest {
		return usagef("--format nettest is a byte-stream format: use native or raw over udp")
	}
	return spec.Validate()
}

// cmdRecvUDP is recv for datagram protocols: one bound socket, the mmsg sink.
func cmdRecvUDP(c *common, plugin proto.Plugin, cfg sink.Config, listenFD int, gro bool, stdout io.Writer) (int, error) {
	pp, ok := plugin.(proto.PacketPlugin)
	if !ok {
		return 0, usagef("%s is not a datagram protocol", c.proto)
	}
	if !c.fs.Changed("sink") {
		cfg.Sink = sink.SinkMmsg
	}
	opts, err := c.options()
	if err != nil {
		return 0, err
	}
	opts.GRO = gro
	if _, err := sink.NewDgramReceiver(cfg, nil, gro); err != nil {
		return 0, err
	}
	var pc proto.PacketConn
	if listenFD >= 0 {
		f := os.NewFile(uintptr(listenFD), "socket")
		pc, err = pp.FilePacketConn(f, opts)
		f.Close()
	} else {
		var arg string
		if arg, err = c.listenAddr(); err != nil {
			return 0, err
		}
		pc, err = pp.ListenPacket(arg, opts)
	}
	if err != nil {
		return exitFailed, err
	}
	if err := c.pin(); err != nil {
		pc.Close()
		return 0, err
	}
	rcv, err := sink.NewDgramReceiver(cfg, pc, gro)
	if err != nil {
		pc.Close()
		return 0, err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var u0 report.Usage
	stop := make(chan struct{})
	every := defaultInterval(c.interval, 0, c.json, stdout)
	st, runErr := rcv.Run(ctx, func() {
		u0 = report.Now()
		go lossIntervals(stdout, every, stop, rcv.Progress)
	})
	u1 := report.Now()
	close(stop)
	if u0.At.IsZero() {
		if ctx.Err() != nil {
			return exitFailed, fmt.Errorf("interrupted before any datagram arrived")
		}
		return exitFailed, runErr
	}
	if st.Real > 0 {
		u1.At = u0.At.Add(st.Real) // first to last datagram: not the --idle wait or the end datagrams' lingering
	}
	t := st.Totals()
	r := &report.Run{Proto: c.proto, Size: t.MsgSize, Streams: len(st.Streams), Format: cfg.Format.String(),
		Verify: cfg.Verify, Interrupted: ctx.Err() != nil}
	v := &report.Receiver{Lost: t.Lost, Reordered: t.Reordered, Duplicate: t.Duplicate, Corrupt: t.Corrupt,
		Unverified: t.Unverified, Late: t.Late, Sink: cfg.Sink, Detail: st}
	v.Fill(u0, u1, t.Bytes, t.Messages)
	if sent := t.Messages - t.Duplicate - t.Late + t.Lost; sent > 0 {
		v.LossPct = float64(t.Lost) / float64(sent) * 100
	}
	r.Receiver = v
	c.emit(stdout, r, runErr)
	switch {
	case cfg.Verify && t.Corrupt > 0: // loss is measured on UDP, not an integrity failure
		return exitIntegrity, nil
	case runErr != nil || r.Interrupted:
		return exitFailed, nil
	}
	return exitOK, nil
}

// lossIntervals prints receiver interval lines with datagram rate and loss.
func lossIntervals(w io.Writer, every time.Duration, stop <-chan struct{}, progress func() (uint64, uint64, uint64)) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	var lb, lm, ll uint64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			b, m, l := progress()
			sec := now.Sub(last).Seconds()
			dm, dl := m-lm, l-ll
			pct := 0.0
			if dm+dl > 0 {
				pct = float64(dl) / float64(dm+dl) * 100
			}
			fmt.Fprintf(w, "[%5.1fs] %8.2f Gbit/s %10.0f pps  lost %d (%.2f%%)  total %s\n", now.Sub(start).Seconds(),
				float64(b-lb)*8/sec/1e9, float64(dm)/sec, dl, pct, report.Human(b))
			lb, lm, ll, last = b, m, l, now
		}
	}
}
