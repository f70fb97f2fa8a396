// Package udp is the UDP plugin: connected datagram sockets on Go's netpoller (sender)
// and one bound socket (receiver), IPv4 and IPv6, with per-socket capabilities.
package udp

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

func init() { proto.Register(Plugin{}) }

// Largest UDP payloads: 65535 minus the IPv4 (20) and UDP (8) headers; IPv6's payload
// length excludes its own header, so 65535 - 8 (RFC 8200 §3, no jumbograms).
const (
	MaxIPv4 = 65507
	MaxIPv6 = 65527
)

// DefaultRcvBuf is the receiver's SO_RCVBUF request when --rcvbuf is not given (the
// kernel doubles it: 8 MiB). The sender's page-ring rule counts it as a peer bound.
const DefaultRcvBuf = 4 << 20

// Kill switches (set to 1) force the fallback path of a capability on any kernel, as
// quic-go's QUIC_GO_DISABLE_GSO does, so tests can run both paths.
const (
	EnvDisableGSO      = "SPLICEGEN_DISABLE_GSO"
	EnvDisableGRO      = "SPLICEGEN_DISABLE_GRO"
	EnvDisableZeroCopy = "SPLICEGEN_DISABLE_ZEROCOPY"
)

// Plugin implements proto.PacketPlugin for UDP.
type Plugin struct{}

func (Plugin) Name() string { return "udp" }

// Supports lists the UDP send modes (zerocopy: the pages issue).
func (Plugin) Supports(mode string) error {
	switch mode {
	case "splice", "write", "mmsg", "gso", "zerocopy":
		return nil
	}
	return fmt.Errorf("mode %q is not available for udp (have splice, write, mmsg, gso, zerocopy)", mode)
}

// MaxDatagram is the largest payload for a destination address (host:port).
func MaxDatagram(addr string) int {
	host, _, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			return MaxIPv6
		}
	}
	return MaxIPv4
}

// Dial makes a connected UDP socket: connect(2) fixes the peer, so write, splice and
// sendmmsg need no address, and ICMP port unreachable comes back as ECONNREFUSED.
func (Plugin) Dial(ctx context.Context, addr string, o proto.Options) (proto.Conn, error) {
	d := net.Dialer{Control: proto.ControlBuffers(o)}
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	uc := c.(*net.UDPConn)
	conn := &Conn{UDPConn: uc, o: o, max: MaxIPv4}
	if ra, ok := uc.RemoteAddr().(*net.UDPAddr); ok && ra.IP.To4() == nil {
		conn.max = MaxIPv6
	}
	if conn.caps, err = probe(uc); err != nil {
		uc.Close()
		return nil, err
	}
	return conn, nil
}

// Listen: UDP has no listener (the receiver reads one bound socket: ListenPacket).
func (Plugin) Listen(string, proto.Options) (proto.Listener, error) {
	return nil, fmt.Errorf("udp has no listener: use ListenPacket")
}

func (Plugin) FileListener(*os.File, proto.Options) (proto.Listener, error) {
	return nil, fmt.Errorf("udp has no listener: use FilePacketConn")
}

func recvOptions(o proto.Options) proto.Options {
	if o.RcvBuf == 0 {
		o.RcvBuf = DefaultRcvBuf
	}
	return o
}

// ListenPacket binds the receiver's socket with a large SO_RCVBUF (DefaultRcvBuf unless
// --rcvbuf) and, with o.GRO, UDP_GRO.
func (Plugin) ListenPacket(addr string, o proto.Options) (proto.PacketConn, error) {
	o = recvOptions(o)
	lc := net.ListenConfig{Control: proto.ControlBuffers(o)}
	c, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, err
	}
	return newPacketConn(c.(*net.UDPConn), o)
}

// FilePacketConn adopts a bound UDP socket inherited from a parent (compare's children).
func (Plugin) FilePacketConn(f *os.File, o proto.Options) (proto.PacketConn, error) {
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("inherited fd is not a UDP socket")
	}
	o = recvOptions(o)
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = proto.SetBuffers(int(fd), o) }); err != nil || serr != nil {
		uc.Close()
		return nil, fmt.Errorf("set buffers: %v %v", err, serr)
	}
	return newPacketConn(uc, o)
}

func newPacketConn(uc *net.UDPConn, o proto.Options) (*PacketConn, error) {
	p := &PacketConn{UDPConn: uc}
	var err error
	if p.caps, err = probe(uc); err != nil {
		uc.Close()
		return nil, err
	}
	if o.GRO {
		if !p.caps.GRO {
			uc.Close()
			return nil, fmt.Errorf("--gro: UDP_GRO not available: %s", p.caps.GROWhy)
		}
		rc, _ := uc.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) })
		if serr != nil {
			uc.Close()
			return nil, os.NewSyscallError("setsockopt UDP_GRO", serr)
		}
		p.gro = true
	}
	rc, _ := uc.SyscallConn()
	p.rcvbuf, _ = proto.SockoptInt(rc, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return p, nil
}

// probe asks this socket, once, for each capability with getsockopt: ENOPROTOOPT means
// the kernel lacks it (UDP_SEGMENT and UDP_GRO: Linux 4.18 / 5.0, net/ipv4/udp.c
// udp_lib_getsockopt; SO_ZEROCOPY on UDP: 5.0, net/core/sock.c). A kill switch wins.
func probe(uc *net.UDPConn) (proto.Caps, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return proto.Caps{}, err
	}
	var c proto.Caps
	one := func(env string, level, opt int, ok *bool, why *string) {
		if os.Getenv(env) == "1" {
			*why = "disabled by " + env + "=1"
			return
		}
		if _, err := proto.SockoptInt(rc, level, opt); err != nil {
			*why = err.Error()
			return
		}
		*ok = true
	}
	one(EnvDisableGSO, unix.SOL_UDP, unix.UDP_SEGMENT, &c.GSO, &c.GSOWhy)
	one(EnvDisableGRO, unix.SOL_UDP, unix.UDP_GRO, &c.GRO, &c.GROWhy)
	one(EnvDisableZeroCopy, unix.SOL_SOCKET, unix.SO_ZEROCOPY, &c.ZeroCopy, &c.ZeroCopyWhy)
	return c, nil
}

// Conn is a connected UDP socket.
type Conn struct {
	*net.UDPConn
	o    proto.Options
	max  int
	caps proto.Caps
}

func (c *Conn) MaxDatagram() int { return c.max }
func (c *Conn) Caps() proto.Caps { return c.caps }

// CloseWrite: UDP has no half-close; the end of a test is the sender's end datagrams.
func (c *Conn) CloseWrite() error { return nil }

// Buffers: UDP does not autotune (udp(7)): the send buffer is SO_SNDBUF as set, or
// net.core.wmem_default. Our skbs are charged to it until loopback_xmit orphans them
// (drivers/net/loopback.c); then they sit in the per-CPU backlog, charged to no socket,
// up to net.core.netdev_max_backlog packets (net/core/dev.c enqueue_to_backlog); then
// in the receiver's queue, which admits datagrams while its rmem is below sk_rcvbuf
// (net/ipv4/udp.c __udp_enqueue_schedule_skb, one skb of overshoot), counted by
// truesize >= payload. A receiver on this host may set SO_RCVBUF up to 2*rmem_max
// (socket(7): the kernel doubles it), splicegen's receiver asks DefaultRcvBuf, and
// root may force more: --rcvbuf on the sender raises the bound to match such a peer.
func (c *Conn) Buffers() (proto.Buffers, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return proto.Buffers{}, err
	}
	b, err := proto.ReadBuffers(rc)
	if err != nil {
		return b, err
	}
	rmemMax, err1 := pages.Sysctl("net/core/rmem_max")
	rmemDef, err2 := pages.Sysctl("net/core/rmem_default")
	backlog, err3 := pages.Sysctl("net/core/netdev_max_backlog")
	if err1 != nil || err2 != nil || err3 != nil {
		rmemMax, rmemDef, backlog = 4<<20, 212992, 1000 // this machine's (KERNEL-FACTS.md)
	}
	b.SndBufMax = b.SndBuf
	b.PeerRcvBufMax = max(2*rmemMax, rmemDef, 2*DefaultRcvBuf, 2*c.o.RcvBuf)
	b.Backlog = backlog
	b.Why = "udp sndbuf does not autotune; local peer may queue max(2*rmem_max, rmem_default, 2*4MiB receiver default, 2*--rcvbuf) plus netdev_max_backlog datagrams"
	return b, nil
}

// PacketConn is the receiver's bound socket.
type PacketConn struct {
	*net.UDPConn
	caps   proto.Caps
	gro    bool
	rcvbuf int
}

func (p *PacketConn) Caps() proto.Caps { return p.caps }
func (p *PacketConn) RcvBuf() int      { return p.rcvbuf }

// GRO reports whether UDP_GRO is on: datagrams may arrive coalesced.
func (p *PacketConn) GRO() bool { return p.gro }
