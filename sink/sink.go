// Package sink is the receiver: it accepts a test's connections, drains them through a
// read or splice sink, and checks what arrived (sequence, framing, and with --verify
// every payload byte).
package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
)

// Sinks (a protocol's traits list the ones its receiver has).
const (
	SinkRead   = "read"   // read(2) into a buffer
	SinkSplice = "splice" // splice(2) socket → pipe → /dev/null (with --verify: → read from the pipe)
	SinkMmsg   = "mmsg"   // recvmmsg(2) batches from one bound datagram socket
)

// Config is one receive test.
type Config struct {
	Sink    string
	Verify  bool
	Format  wire.Format
	Size    int // message size; needed for nettest/raw, learned from the header for native
	Streams int // connections to wait for; 0: from the native header, else 1
	// Idle ends a started test when no byte arrives for this long (peer gone). Check wants
	// it positive; NewReceiver and NewDgramReceiver (for callers that skip Check) take 0 as 30s.
	Idle time.Duration
	// Stall makes the read sink sleep after every read: a slow reader whose queue stays
	// full, the worst case for the sender's page reuse.
	Stall time.Duration
	// TestID, when set, is the only test counted (the server's children: the id it gave
	// its authenticated client); 0 admits the first native header's.
	TestID uint64
	// GRO asks a datagram receiver for UDP_GRO (coalesced datagrams, split here).
	GRO bool
	// Connect lets a datagram receiver serving one test connect its socket to the test's
	// source (DgramReceiver.pin). Not for a socket that serves test after test: the next
	// sender's first datagrams can arrive before this test's end is read, and a connected
	// socket refuses them (the sender sees ECONNREFUSED).
	Connect bool
}

// Check is the one validation of a receive config, against the protocol's traits.
// Commands call it before anything is bound; the receivers take a checked config.
func (cfg *Config) Check(t proto.Traits) error {
	if err := t.Sink(cfg.Sink); err != nil {
		return err
	}
	if err := t.Wire(cfg.Format, cfg.Verify); err != nil {
		return err
	}
	if cfg.Format == wire.FormatNettest && cfg.Size < wire.NettestHeaderLen {
		return proto.Usagef("--format nettest needs --size (the same as the sender's, at least %d)", wire.NettestHeaderLen)
	}
	if cfg.Size < 0 || cfg.Size > t.MaxFor("") {
		return proto.Usagef("--size %d out of range 1..%d", cfg.Size, t.MaxFor(""))
	}
	if cfg.Stall < 0 || cfg.Stall > time.Second {
		return proto.Usagef("--stall %v out of range 0..1s", cfg.Stall)
	}
	if cfg.Stall > 0 && cfg.Sink != SinkRead {
		return proto.Usagef("--stall needs --sink read")
	}
	if cfg.Streams < 0 || cfg.Streams > maxStreams {
		return proto.Usagef("--streams %d out of range 0..%d", cfg.Streams, maxStreams)
	}
	if cfg.Idle <= 0 {
		return proto.Usagef("--idle %v: want a positive duration", cfg.Idle)
	}
	return nil
}

// maxStreams is the most streams a test may have (the sender's --streams limit).
const maxStreams = 1024

// Runner is the receiver of one test, whatever the protocol's kind.
type Runner interface {
	// Run receives until the test ends; started is called when the first data arrives
	// (the measurement window opens there).
	Run(ctx context.Context, started func()) (*Stats, error)
	// Progress is the running totals, for interval lines.
	Progress() Progress
	// Latency is a copy of the one-way latency samples so far (µs; nil: none).
	Latency() *hdrhistogram.Histogram
}

// Progress is a receiver's running totals.
type Progress struct {
	Bytes, Messages, Lost, Corrupt uint64
}

// Endpoint is a protocol's receiving end — a listener for byte streams and messages,
// one bound socket for datagrams — serving one test, or test after test (recv --keep).
type Endpoint struct {
	cfg       Config
	lossFails bool
	pc        proto.PacketConn // datagrams
	acc       *acceptor        // byte streams and messages
}

// Open makes the receiving end on addr, or on the inherited socket fd (fd >= 0:
// compare's children). cfg must have passed Check. Connections are accepted and
// admitted from here on, between tests too.
func Open(p proto.Plugin, cfg Config, o proto.Options, addr string, fd int) (*Endpoint, error) {
	if cfg.Idle == 0 {
		cfg.Idle = 30 * time.Second
	}
	e := &Endpoint{cfg: cfg, lossFails: p.Traits().LossFails}
	var f *os.File
	if fd >= 0 {
		f = os.NewFile(uintptr(fd), "inherited socket")
		defer f.Close() // the plugins dup it
	}
	var err error
	if pp, ok := p.(proto.PacketPlugin); ok {
		o.GRO = cfg.GRO
		if f != nil {
			e.pc, err = pp.FilePacketConn(f, o)
		} else {
			e.pc, err = pp.ListenPacket(addr, o)
		}
		return e, err
	}
	var ln proto.Listener
	if f != nil {
		ln, err = p.FileListener(f, o)
	} else {
		ln, err = p.Listen(addr, o)
	}
	if err != nil {
		return nil, err
	}
	e.acc = newAcceptor(ln, cfg)
	return e, nil
}

// Test is the receiver of the endpoint's next test.
func (e *Endpoint) Test() Runner {
	if e.pc != nil {
		return &DgramReceiver{cfg: e.cfg, pc: e.pc, gro: e.pc.GRO()}
	}
	return &Receiver{cfg: e.cfg, lossFails: e.lossFails, acc: e.acc}
}

// Close closes the socket; connections still waiting for admission are closed too.
func (e *Endpoint) Close() error {
	if e.pc != nil {
		return e.pc.Close()
	}
	return e.acc.close()
}

// Stats are a whole receive's figures.
type Stats struct {
	Streams   []StreamStats `json:"streams"`
	Real      time.Duration `json:"-"` // the data's time: first to last data (datagrams), first accept to end (streams)
	Sink      string        `json:"sink"`
	Expected  int           `json:"expected_streams,omitempty"`  // announced by the first header, or --streams
	Announced int           `json:"announced_streams,omitempty"` // what the sender's header said
	Strays    Strays        `json:"stray"`
	Ended     bool          `json:"ended,omitempty"` // datagrams: every stream's end datagram arrived
	// Echoes reflected for the sender's --rtt, and those dropped: the reverse path was
	// full, or (datagrams) the source was not the test's.
	Echoes    uint64   `json:"rtt_echoes,omitempty"`
	EchoDrops uint64   `json:"rtt_echo_drops,omitempty"`
	Latency   *Latency `json:"-"` // one-way latency (native format; nil: no sample)
	// The verdict (Verdict): the receiver's exit status, and why when it is not 0. A byte
	// stream or message test sends it back to the sender.
	Code        int    `json:"verdict"`
	Why         string `json:"verdict_why,omitempty"`
	Interrupted bool   `json:"-"`

	Peer net.IP `json:"-"` // the source of the test's first connection or datagram
}

// Strays count what reached the receiver but was not its test's: counted, never part of
// the test's figures or verdict (docs/design.md#trust).
type Strays struct {
	Closed    uint64 `json:"closed"`     // connections that closed (or failed) before a first header
	Silent    uint64 `json:"silent"`     // connections that sent nothing within --idle
	Garbage   uint64 `json:"garbage"`    // connections or datagrams that do not start with a header of the format
	OtherTest uint64 `json:"other_test"` // valid headers of another test id
	Extra     uint64 `json:"extra"`      // the test's streams beyond those announced, or a stream id twice
	Refused   uint64 `json:"refused"`    // over the cap of connections waiting for admission, or out of fds
}

// strayCounts are Strays counted by several goroutines.
type strayCounts struct {
	closed, silent, garbage, otherTest, extra, refused atomic.Uint64
}

func (c *strayCounts) snapshot() Strays {
	return Strays{c.closed.Load(), c.silent.Load(), c.garbage.Load(), c.otherTest.Load(), c.extra.Load(), c.refused.Load()}
}

func (s Strays) minus(b Strays) Strays {
	return Strays{s.Closed - b.Closed, s.Silent - b.Silent, s.Garbage - b.Garbage, s.OtherTest - b.OtherTest,
		s.Extra - b.Extra, s.Refused - b.Refused}
}

// Total is every stray counted.
func (s Strays) Total() uint64 {
	return s.Closed + s.Silent + s.Garbage + s.OtherTest + s.Extra + s.Refused
}

// Totals sums the streams into one.
func (s *Stats) Totals() StreamStats {
	var t StreamStats
	for _, st := range s.Streams {
		t.add(st)
		if st.SizeMin > 0 && (t.SizeMin == 0 || st.SizeMin < t.SizeMin) {
			t.SizeMin = st.SizeMin
		}
		t.SizeMax = max(t.SizeMax, st.SizeMax)
		t.MsgSize = max(t.MsgSize, st.MsgSize)
		if t.Error == "" {
			t.Error = st.Error
		}
	}
	return t
}

// Verdict is the test's outcome as this receiver saw it, as an exit status: 3 integrity
// failure (corrupt data, a sequence gap on a reliable protocol, totals that disagree
// with the sender's end frame, or --verify with nothing checkable), 1 incomplete (a
// stream without its end frame, fewer streams than announced, interrupted), 0 complete
// and intact. why says what decided it. Native byte streams and messages prove
// completeness with end frames; datagrams with end datagrams; nettest and raw cannot.
func (s *Stats) Verdict(cfg Config, lossFails bool) (code int, why string) {
	t := s.Totals()
	native := cfg.Format == wire.FormatNative
	datagrams := cfg.Sink == SinkMmsg
	switch {
	case t.Corrupt > 0:
		return 3, fmt.Sprintf("%d corrupt", t.Corrupt)
	case lossFails && t.Lost+t.Duplicate+t.Reordered > 0:
		return 3, fmt.Sprintf("lost %d, duplicate %d, reordered %d on a reliable protocol", t.Lost, t.Duplicate, t.Reordered)
	case cfg.Verify && t.Unverified > 0:
		return 3, fmt.Sprintf("nothing was checkable: %d messages came without a verifiable payload (the sender ran without --verify)", t.Unverified)
	}
	for _, st := range s.Streams {
		if st.Ended && (st.SentMessages != st.Messages || st.SentBytes != st.Bytes) {
			return 3, fmt.Sprintf("stream %d: the sender's end frame says %d messages / %d bytes, %d / %d arrived",
				st.Stream, st.SentMessages, st.SentBytes, st.Messages, st.Bytes)
		}
	}
	switch {
	case s.Interrupted:
		return 1, "interrupted"
	case native && datagrams && !s.Ended:
		return 1, "incomplete: not every stream's end datagram arrived"
	case native && !datagrams && len(s.Streams) < s.Expected:
		return 1, fmt.Sprintf("incomplete: %d of %d streams connected", len(s.Streams), s.Expected)
	case native && !datagrams && s.Announced > s.Expected:
		return 1, fmt.Sprintf("incomplete: the sender announced %d streams, this receiver took %d (--streams)", s.Announced, s.Expected)
	}
	if native && !datagrams {
		for _, st := range s.Streams {
			if !st.Ended {
				return 1, fmt.Sprintf("incomplete: stream %d: sender gone after %d messages (no end frame)", st.Stream, st.Messages)
			}
		}
	}
	return 0, ""
}

// joinFew joins the first three errors and counts the rest, so a test with many failed
// streams still reports one readable line.
func joinFew(errs []error) error {
	if len(errs) <= 3 {
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w (and %d more streams failed)", errors.Join(errs[:3]...), len(errs)-3)
}
