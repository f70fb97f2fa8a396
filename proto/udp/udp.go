// Package udp is the UDP plugin (and the base of UDP-like variants): connected datagram sockets on Go's netpoller (sender)
// and one bound socket (receiver), IPv4 and IPv6, with per-socket capabilities.
package udp

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

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

// Plugin implements proto.PacketPlugin for UDP. Prot selects another UDP-like IP
// protocol through the same code (UDP-Lite: IPPROTO_UDPLITE, RFC 3828); 0 is UDP. A
// variant wraps Plugin and gives its own Traits.
type Plugin struct{ Prot int }

// Traits: datagrams, loss measured (not a failure), sizes bounded by the IP datagram.
// Traits are built once (their maps are shared: callers read them, never write).
func (Plugin) Traits() proto.Traits { return traits }

var traits = proto.Traits{
	Name:  "udp",
	Kind:  proto.KindDatagram,
	Modes: []string{"splice", "write", "mmsg", "gso", "zerocopy"},
	Sinks: []string{"mmsg"},
	Refused: map[string]string{
		"sendfile":    "one datagram per sendfile call: splice covers the page-passing path",
		"sink read":   "datagrams are read with recvmmsg",
		"sink splice": "datagrams are read with recvmmsg",
	},
	DefaultSize: 1472, // a 1500-byte MTU's payload
	MaxSize:     MaxIPv4,
	MaxSize6:    MaxIPv6,
	// The UDP modes, the sizes people ask about, a fixed time (4 GiB of 64-byte
	// datagrams would take minutes).
	Compare: proto.CompareDefaults{Modes: "gso,mmsg,write,splice", Sizes: "64,1472,8192,61440", Limit: "--time=2s"},
	Probe:   Probe("udp", 0),
}

// Probe returns the probe rows of a UDP-like protocol.
func Probe(name string, prot int) func() []proto.Capability {
	return func() []proto.Capability {
		return []proto.Capability{
			{Name: name + " socket", Err: proto.ProbeSocket(unix.SOCK_DGRAM, prot)},
			{Name: "splice into " + name, Detail: "vmsplice+splice of one page over loopback", Err: proto.ProbeSplice(unix.SOCK_DGRAM, prot)},
			// UDP_SEGMENT: Linux 4.18, commit bec1f6f69736. UDP_GRO: 5.0, commit
			// e20cf8d3f1f7; its getsockopt came only in 5.12, so both are probed by setting.
			{Name: "UDP_SEGMENT (GSO)", Detail: "setsockopt on a " + name + " socket", Err: proto.ProbeOpt(unix.SOCK_DGRAM, prot, unix.SOL_UDP, unix.UDP_SEGMENT, 1400)},
			{Name: "UDP_GRO", Detail: "setsockopt on a " + name + " socket", Err: proto.ProbeOpt(unix.SOCK_DGRAM, prot, unix.SOL_UDP, unix.UDP_GRO, 1)},
		}
	}
}

// MaxDatagram is the largest payload for a destination address (host:port).
func MaxDatagram(addr string) int {
	return Plugin{}.Traits().MaxFor(addr)
}

// Dial makes a connected socket: connect(2) fixes the peer, so write, splice and
// sendmmsg need no address, and ICMP port unreachable comes back as ECONNREFUSED.
func (p Plugin) Dial(ctx context.Context, addr string, o proto.Options) (proto.Conn, error) {
	uc, err := p.socket(ctx, addr, o, false)
	if err != nil {
		return nil, err
	}
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

// socket makes a connected (or, with bind, a bound) socket. UDP goes through Go's
// net.Dialer / ListenConfig; another IP protocol is made with socket(2) and handed to
// Go with net.FileConn, which sees SOCK_DGRAM on an inet address and gives a UDPConn.
func (p Plugin) socket(ctx context.Context, addr string, o proto.Options, bind bool) (*net.UDPConn, error) {
	if p.Prot == 0 {
		if bind {
			lc := net.ListenConfig{Control: proto.ControlBuffers(o)}
			c, err := lc.ListenPacket(ctx, "udp", addr)
			if err != nil {
				return nil, err
			}
			return c.(*net.UDPConn), nil
		}
		d := net.Dialer{Control: proto.ControlBuffers(o), LocalAddr: o.Path.LocalAddr("udp")}
		c, err := d.DialContext(ctx, "udp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*net.UDPConn), nil
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: ua.Port})
	if ip4 := ua.IP.To4(); ip4 != nil {
		copy(sa.(*unix.SockaddrInet4).Addr[:], ip4)
	} else {
		s6 := &unix.SockaddrInet6{Port: ua.Port}
		copy(s6.Addr[:], ua.IP.To16()) // nil IP (":port"): the IPv6 wildcard, dual-stack
		family, sa = unix.AF_INET6, s6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, p.Prot)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "dgram")
	defer f.Close() // net.FileConn dups it
	if err := proto.SetBuffers(fd, o); err != nil {
		return nil, err
	}
	if family == unix.AF_INET6 && ua.IP == nil {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return nil, os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	if bind {
		err = os.NewSyscallError("bind", unix.Bind(fd, sa))
	} else if err = o.Path.Set(fd, family == unix.AF_INET6); err == nil {
		if err = o.Path.BindLocal(fd, family == unix.AF_INET6); err == nil {
			err = os.NewSyscallError("connect", unix.Connect(fd, sa)) // completes at once on a datagram socket
		}
	}
	if err != nil {
		return nil, err
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socket of protocol %d is not a datagram socket", p.Prot)
	}
	return uc, nil
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
func (p Plugin) ListenPacket(addr string, o proto.Options) (proto.PacketConn, error) {
	o = recvOptions(o)
	uc, err := p.socket(context.Background(), addr, o, true)
	if err != nil {
		return nil, err
	}
	return newPacketConn(uc, o)
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
	if err == nil {
		err = proto.Control(rc, func(fd int) error { return proto.SetBuffers(fd, o) })
	}
	if err != nil {
		uc.Close()
		return nil, err
	}
	return newPacketConn(uc, o)
}

func newPacketConn(uc *net.UDPConn, o proto.Options) (*PacketConn, error) {
	p := &PacketConn{UDPConn: uc}
	var err error
	if p.rc, err = uc.SyscallConn(); err != nil {
		uc.Close()
		return nil, err
	}
	if p.caps, err = probe(uc); err != nil {
		uc.Close()
		return nil, err
	}
	if o.GRO {
		if !p.caps.GRO {
			uc.Close()
			return nil, fmt.Errorf("--gro: UDP_GRO not available: %s", p.caps.GROWhy)
		}
		if err := proto.SetInt(p.rc, unix.SOL_UDP, unix.UDP_GRO, 1, "UDP_GRO"); err != nil {
			uc.Close()
			return nil, err
		}
		p.gro = true
	}
	if p.rcvbuf, err = proto.GetInt(p.rc, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		uc.Close()
		return nil, err
	}
	return p, nil
}

// probe asks this socket, once, for each capability: ENOPROTOOPT means the kernel lacks
// it. UDP_SEGMENT is read (getsockopt and setsockopt came together in 4.18, commit
// bec1f6f69736). UDP_GRO (5.0, commit e20cf8d3f1f7) has no getsockopt before 5.12, and
// getsockopt(SO_ZEROCOPY) answers even on sockets that refuse it (UDP before 5.0,
// UDP-Lite), so both are probed by setting their current value, off
// (docs/kernel.md#socket-options-since-when-and-how-to-probe). A kill switch wins and is marked, so the sender runs the
// fallback path and says so.
func probe(uc *net.UDPConn) (proto.Caps, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return proto.Caps{}, err
	}
	var c proto.Caps
	one := func(env string, try func() error, ok *bool, why *string) bool {
		if off, _ := strconv.ParseBool(os.Getenv(env)); off {
			*why = "disabled by " + env + "=1"
			return true
		}
		if err := try(); err != nil {
			*why = err.Error()
			return false
		}
		*ok = true
		return false
	}
	get := func(level, opt int) func() error {
		return func() error { _, err := proto.GetInt(rc, level, opt); return err }
	}
	c.GSOKilled = one(EnvDisableGSO, get(unix.SOL_UDP, unix.UDP_SEGMENT), &c.GSO, &c.GSOWhy)
	one(EnvDisableGRO, func() error { return proto.SetInt(rc, unix.SOL_UDP, unix.UDP_GRO, 0, "UDP_GRO") }, &c.GRO, &c.GROWhy)
	one(EnvDisableZeroCopy, func() error { return proto.SetInt(rc, unix.SOL_SOCKET, unix.SO_ZEROCOPY, 0, "SO_ZEROCOPY") }, &c.ZeroCopy, &c.ZeroCopyWhy)
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
	b, err := proto.ReadBuffers(c)
	if err != nil {
		return b, err
	}
	rmemMax, err1 := proto.Sysctl("net/core/rmem_max")
	rmemDef, err2 := proto.Sysctl("net/core/rmem_default")
	backlog, err3 := proto.Sysctl("net/core/netdev_max_backlog")
	if err1 != nil || err2 != nil || err3 != nil {
		rmemMax, rmemDef, backlog = 4<<20, 212992, 1000 // this machine's (docs/kernel.md#udp)
	}
	b.SndBufMax, b.RcvBufMax = b.SndBuf, b.RcvBuf // no autotuning either way
	b.PeerRcvBufMax = max(2*rmemMax, rmemDef, 2*DefaultRcvBuf, 2*c.o.RcvBuf)
	b.Backlog = backlog
	b.Why = "udp sndbuf does not autotune; local peer may queue max(2*rmem_max, rmem_default, 2*4MiB receiver default, 2*--rcvbuf) plus netdev_max_backlog datagrams"
	return b, nil
}

// PacketConn is the receiver's bound socket.
type PacketConn struct {
	*net.UDPConn
	rc     syscall.RawConn
	caps   proto.Caps
	gro    bool
	rcvbuf int
}

func (p *PacketConn) Caps() proto.Caps { return p.caps }
func (p *PacketConn) RcvBuf() int      { return p.rcvbuf }

// GRO reports whether UDP_GRO is on: datagrams may arrive coalesced.
func (p *PacketConn) GRO() bool { return p.gro }
