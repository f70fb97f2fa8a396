// Package gen is the generator core: the test spec, message framing, the payload, and
// the send loops that push messages through vmsplice → pipe → splice (and the other
// modes) into a proto.Conn.
package gen

import (
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
)

// Send modes.
const (
	ModeSplice   = "splice"   // vmsplice(2) ring pages into a pipe, splice(2) the pipe into the socket
	ModeWrite    = "write"    // write(2): the copy baseline
	ModeSendfile = "sendfile" // sendfile(2) from the ring's memfd
	ModeMmsg     = "mmsg"     // sendmmsg(2) batches (datagrams)
	ModeGSO      = "gso"      // UDP_SEGMENT super-buffers: one write(2), many datagrams
)

// Modes lists every mode name the command line accepts (some protocols support fewer).
var Modes = []string{ModeSplice, ModeWrite, ModeSendfile, "zerocopy", "mmsg", "gso"}

// Spec is one test as the user asked for it.
type Spec struct {
	Mode     string
	Size     int           // message size on the wire, header included (a mix: its largest)
	Mix      []int         // a size mix's cycle (mix.go; nil: every message is Size)
	Count    int64         // total messages over all streams (0: no limit)
	Bytes    int64         // total bytes over all streams (0: no limit)
	Duration time.Duration // wall-clock limit (0: none)
	Verify   bool          // per-message payload + checksum the receiver can check
	Format   wire.Format
	Streams  int
	Ring     int    // page ring bytes per stream (0: the safe size from the rule)
	Unsafe   bool   // allow Ring below the safe size (to demonstrate the hazard)
	IO       string // data-path I/O: "poll" (netpoller, default) or "block"
	// HotBuffer: write mode sends every message from one buffer (cache-hot) instead of
	// the ring. Only write may: it copies, so rewriting the buffer at once is safe.
	HotBuffer bool
	// Pacing: Rate in bits/s of messages (header included, not IP/UDP headers) or PPS in
	// messages/s, over all streams (each stream paces its share). 0: as fast as possible.
	Rate float64
	PPS  float64
	// Pattern: bursts, on/off cycles, a ramp (per stream; Burst and Ramp need a pace).
	Pattern
	// Batch: datagrams per sendmmsg (mmsg) or segments per super-buffer (gso); 0: default.
	Batch int
	// Flows: datagram streams only: each stream's datagrams go round-robin over this many
	// connected sockets (consecutive source ports: RSS/ECMP tests); 0 or 1: one.
	Flows int
	// TestID is carried by every native header (0: NewSender picks a random one).
	TestID uint64
	// RTT: the receiver reflects every RTT-th message's header (FlagRTT) and the sender
	// times the round trip (rtt.go); 0: off.
	RTT int
	// StallTimeout ends the test as "peer stalled" when a stream waits for its socket
	// this long (0: DefaultStallTimeout); it also bounds the wait for the verdict.
	StallTimeout time.Duration
}

// MinPerStreamRate is the slowest pace a stream accepts, in messages per second.
const MinPerStreamRate = 1e-3

// Check is the one validation of a send spec: its own rules (Validate) and those of the
// protocol it is sent over, to addr (host:port; it bounds datagram sizes). Commands call
// it once, before anything is connected; NewSender takes a checked spec.
func (s *Spec) Check(t proto.Traits, addr string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := t.Mode(s.Mode); err != nil {
		return err
	}
	if err := t.Wire(s.Format, s.Verify); err != nil {
		return err
	}
	if s.RTT > 0 && t.Kind == proto.KindMessage {
		return proto.Usagef("--rtt is for tcp and udp: echoes over %s's sub-streams are not built", t.Name)
	}
	if s.Flows > 1 && t.Kind != proto.KindDatagram {
		return proto.Usagef("--flows is for datagram protocols (udp): a %s stream is one connection; use --streams", t.Name)
	}
	return t.Size(s.Size, addr)
}

// Validate checks the spec on its own (not against a protocol).
func (s *Spec) Validate() error {
	known := false
	for _, m := range Modes {
		known = known || m == s.Mode
	}
	if !known {
		return proto.Usagef("unknown mode %q (want one of splice, write, sendfile, zerocopy, mmsg, gso)", s.Mode)
	}
	if min := max(1, s.Format.HeaderSize()); s.Size < min {
		return proto.Usagef("--size %d is below the %s format's minimum of %d bytes", s.Size, s.Format, min)
	}
	if s.Streams < 1 || s.Streams > 1024 {
		return proto.Usagef("--streams %d out of range 1..1024", s.Streams)
	}
	if s.Format == wire.FormatNative && s.Streams > 65535 {
		return proto.Usagef("native format carries at most 65535 streams")
	}
	if s.Count < 0 || s.Bytes < 0 || s.Duration < 0 {
		return proto.Usagef("negative --count, --bytes or --time")
	}
	if s.StallTimeout < 0 || s.StallTimeout > 0 && s.StallTimeout < time.Millisecond {
		return proto.Usagef("--stall-timeout %v: want at least 1ms", s.StallTimeout)
	}
	limits := 0
	for _, set := range []bool{s.Count > 0, s.Bytes > 0, s.Duration > 0} {
		if set {
			limits++
		}
	}
	if limits != 1 {
		return proto.Usagef("give exactly one of --count, --bytes, --time")
	}
	if err := s.checkMix(); err != nil {
		return err
	}
	if s.Ring < 0 {
		return proto.Usagef("negative --ring")
	}
	if s.RTT < 0 || s.RTT > MaxRTT {
		return proto.Usagef("--rtt %d out of range 1..%d", s.RTT, MaxRTT)
	}
	if s.RTT > 0 && s.Format != wire.FormatNative {
		return proto.Usagef("--rtt needs --format native: the receiver reflects the native header")
	}
	if s.HotBuffer && s.Mode != ModeWrite && s.Mode != ModeMmsg && s.Mode != ModeGSO {
		return proto.Usagef("--hot-buffer is for the copying modes (write, mmsg, gso) only: %s hands pages to the kernel by reference", s.Mode)
	}
	if r := s.perStream(); r > 0 && r < MinPerStreamRate {
		return proto.Usagef("pace of %.3g messages/s per stream is below the floor of %g (one message per 1000 s)", r, MinPerStreamRate)
	}
	if s.Rate < 0 || s.PPS < 0 || (s.Rate > 0 && s.PPS > 0) {
		return proto.Usagef("give at most one of --rate, --pps, positive")
	}
	if err := s.validatePattern(); err != nil {
		return err
	}
	if s.Batch < 0 || s.Batch > 1024 {
		return proto.Usagef("--batch %d out of range 1..1024", s.Batch)
	}
	if s.Batch > 0 && s.Mode != ModeMmsg && s.Mode != ModeGSO {
		return proto.Usagef("--batch applies to --mode mmsg and gso only (mode %s sends one message per call)", s.Mode)
	}
	if s.Flows < 0 || s.Flows > 1024 || s.Flows*s.Streams > 4096 {
		return proto.Usagef("--flows %d: want 1..1024, and at most 4096 sockets over all streams", s.Flows)
	}
	if s.Flows > 1 && (s.Mode == ModeZerocopy || s.IO == "block") {
		return proto.Usagef("--flows needs --io poll and a mode other than zerocopy (completions are per socket)")
	}
	if s.IO == "block" && s.Mode == ModeZerocopy {
		return proto.Usagef("--io block does not support --mode zerocopy (completions are waited for in the poller)")
	}
	if s.IO != "" && s.IO != "poll" && s.IO != "block" {
		return proto.Usagef("--io %q: want poll or block", s.IO)
	}
	return nil
}

// MaxRTT bounds --rtt (every Nth message).
const MaxRTT = 1 << 30

// MaxPatternTime bounds --on, --off and --ramp (as a server bounds a test's time).
const MaxPatternTime = 365 * 24 * time.Hour

// validatePattern checks --burst, --on/--off and --ramp.
func (s *Spec) validatePattern() error {
	paced := s.Rate > 0 || s.PPS > 0
	switch {
	case s.Burst < 0 || s.Burst > 1<<20:
		return proto.Usagef("--burst %d out of range 1..%d", s.Burst, 1<<20)
	case s.Burst > 0 && !paced:
		return proto.Usagef("--burst needs a pace (--rate or --pps): a burst goes out per pacing tick")
	case s.On < 0 || s.Off < 0 || s.Ramp < 0:
		return proto.Usagef("negative --on, --off or --ramp")
	case (s.On > 0) != (s.Off > 0):
		return proto.Usagef("--on and --off go together (on %v, off %v)", s.On, s.Off)
	case s.On > 0 && (s.On < time.Millisecond || s.Off < time.Millisecond):
		return proto.Usagef("--on %v --off %v: want at least 1ms each", s.On, s.Off)
	case s.On > MaxPatternTime || s.Off > MaxPatternTime || s.Ramp > MaxPatternTime:
		return proto.Usagef("--on, --off or --ramp over %v", MaxPatternTime)
	case s.Ramp > 0 && !paced:
		return proto.Usagef("--ramp needs a pace (--rate or --pps) to climb to")
	case s.Ramp > 0 && s.Duration > 0 && s.Ramp > s.Duration:
		return proto.Usagef("--ramp %v is longer than --time %v: the rate would never be reached", s.Ramp, s.Duration)
	}
	return nil
}

// messages is the message limit of stream i (-1: none). --bytes counts whole messages,
// rounded up; totals are split evenly, the remainder to the first streams.
func (s *Spec) messages(i int) int64 {
	total := s.Count
	if s.Bytes > 0 {
		mean := s.meanSize() // a mix: whole messages of its mean size
		total = int64((float64(s.Bytes) + mean - 1) / mean)
	}
	if total == 0 {
		return -1
	}
	n := total / int64(s.Streams)
	if int64(i) < total%int64(s.Streams) {
		n++
	}
	return n
}
