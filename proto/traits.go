package proto

import (
	"net"
	"slices"
	"strings"

	"github.com/splicegen/splicegen/wire"
)

// Kind is how a protocol delivers data; it decides the receiver and how loss is read.
type Kind int

const (
	KindStream   Kind = iota // ordered bytes, no boundaries (TCP): read or splice sink
	KindMessage              // ordered messages with boundaries and sub-streams (SCTP): MessageReader
	KindDatagram             // unordered, lossy datagrams (UDP): one bound socket, recvmmsg
)

func (k Kind) String() string {
	switch k {
	case KindStream:
		return "stream"
	case KindMessage:
		return "message"
	case KindDatagram:
		return "datagram"
	}
	return "kind?"
}

// Traits are what a protocol is and can do. Everything outside the plugin asks these
// instead of naming the protocol.
type Traits struct {
	Name string
	Kind Kind
	// Modes are the send modes this protocol runs; Sinks the receive sinks, the first
	// being the default. Refused gives the reason for a mode or sink it does not offer
	// (keyed by name); others get a generic "not implemented".
	Modes, Sinks []string
	Refused      map[string]string
	// DefaultSize is --size when not given; MaxSize (IPv4 destination) and MaxSize6
	// (IPv6) bound it, 0 meaning wire.MaxMessage.
	DefaultSize, MaxSize, MaxSize6 int
	// LossFails: a sequence gap or repeat is an integrity failure (reliable protocols);
	// otherwise loss is measured and reported.
	LossFails bool
	// Lanes: the protocol rotates messages over sub-streams (--sctp-streams, --sctp-ppid).
	Lanes bool
	// Notes are printed under a run of the given mode (e.g. the kernel copies splice).
	Notes map[string]string
	// Compare is the protocol's part of compare's default matrix.
	Compare CompareDefaults
	// Probe answers, with real sockets, what this kernel does for the protocol.
	Probe func() []Capability
	// Counters, when set, reads kernel counters that explain the protocol's figures
	// (SCTP: delayed-SACK expirations); commands report their change over a run. They
	// are per network namespace: both sides of a one-host run see the same change.
	Counters func() map[string]uint64
}

// CompareDefaults are used when compare's --mode, --size, --bytes/--time, --sink are not given.
type CompareDefaults struct {
	Modes, Sizes string // comma-separated
	Limit        string // "--bytes=4GiB" or "--time=2s"
}

// Mode returns nil if the protocol runs send mode m, else a usage error with the reason.
func (t Traits) Mode(m string) error {
	if slices.Contains(t.Modes, m) {
		return nil
	}
	why := ""
	if r := t.Refused[m]; r != "" {
		why = ": " + r
	}
	return Usagef("mode %q is not implemented for %s%s (have %s)", m, t.Name, why, strings.Join(t.Modes, ", "))
}

// Sink returns nil if the protocol's receiver has sink s, else a usage error with the reason.
func (t Traits) Sink(s string) error {
	if slices.Contains(t.Sinks, s) {
		return nil
	}
	why := ""
	if r := t.Refused["sink "+s]; r != "" {
		why = ": " + r
	}
	return Usagef("--sink %s is not available for %s%s (have %s)", s, t.Name, why, strings.Join(t.Sinks, ", "))
}

// DefaultSink is the receiver's sink when --sink is not given.
func (t Traits) DefaultSink() string { return t.Sinks[0] }

// Wire checks a format and --verify against the protocol; both sides call it.
func (t Traits) Wire(f wire.Format, verify bool) error {
	if verify && f == wire.FormatRaw {
		return Usagef("--verify needs a framed format (native or nettest), not raw")
	}
	if f == wire.FormatNettest && t.Kind == KindDatagram {
		return Usagef("--format nettest is a byte-stream format: use native or raw over %s", t.Name)
	}
	return nil
}

// MaxFor is the largest message to a destination (host:port; "" for IPv4).
func (t Traits) MaxFor(addr string) int {
	m := t.MaxSize
	if host, _, err := net.SplitHostPort(addr); err == nil && t.MaxSize6 > 0 {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			m = t.MaxSize6
		}
	}
	if m == 0 || m > wire.MaxMessage {
		m = wire.MaxMessage
	}
	return m
}

// Size checks a message size against the protocol's limit to addr.
func (t Traits) Size(size int, addr string) error {
	if m := t.MaxFor(addr); size > m {
		if t.Kind == KindDatagram {
			return Usagef("--size %d exceeds the largest %s datagram to %s, %d bytes", size, t.Name, cmp(addr, "IPv4"), m)
		}
		return Usagef("--size %d exceeds the maximum message of %d bytes (64 MiB)", size, m)
	}
	return nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
