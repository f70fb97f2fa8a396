// Package tcp is the TCP plugin: stream sockets on Go's netpoller.
package tcp

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

func init() { proto.Register(Plugin{}) }

// Plugin implements proto.Plugin for TCP.
type Plugin struct{}

// Traits: a byte stream; every page-passing mode runs, loss or a repeat is corruption.
// Traits are built once (their maps are shared: callers read them, never write).
func (Plugin) Traits() proto.Traits { return traits }

var traits = proto.Traits{
	Name:  "tcp",
	Kind:  proto.KindStream,
	Modes: []string{"splice", "write", "sendfile", "zerocopy"},
	Sinks: []string{"read", "splice"},
	Refused: map[string]string{
		"mmsg":      "sendmmsg batches datagrams, TCP is a byte stream",
		"gso":       "UDP_SEGMENT cuts datagrams, TCP segments on its own",
		"sink mmsg": "recvmmsg is the datagram sink",
	},
	DefaultSize: 64 << 10,
	LossFails:   true,
	// The seed's experiment.
	Compare: proto.CompareDefaults{Modes: "splice,write,write-hot", Sizes: "64KiB", Limit: "--bytes=4GiB"},
	Probe:   probe,
}

func probe() []proto.Capability {
	return []proto.Capability{
		{Name: "tcp socket", Err: proto.ProbeSocket(unix.SOCK_STREAM, 0)},
		{Name: "splice into tcp", Detail: "vmsplice+splice of one page over loopback", Err: proto.ProbeSplice(unix.SOCK_STREAM, 0)},
		// SO_ZEROCOPY: Linux 4.14, commit 76851d1212c1.
		{Name: "SO_ZEROCOPY", Detail: "setsockopt on a TCP socket", Err: proto.ProbeOpt(unix.SOCK_STREAM, 0, unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1)},
	}
}

func (Plugin) Dial(ctx context.Context, addr string, o proto.Options) (proto.Conn, error) {
	d := net.Dialer{Control: proto.ControlBuffers(o), LocalAddr: o.Path.LocalAddr("tcp")}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return wrap(c.(*net.TCPConn), o)
}

func (Plugin) Listen(addr string, o proto.Options) (proto.Listener, error) {
	// SO_RCVBUF must be set on the listener, before listen(2): the window scale is fixed
	// in the SYN (tcp(7)); accepted sockets inherit it.
	lc := net.ListenConfig{Control: proto.ControlBuffers(o)}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{l.(*net.TCPListener), o}, nil
}

func (Plugin) FileListener(f *os.File, o proto.Options) (proto.Listener, error) {
	l, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	tl, ok := l.(*net.TCPListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("inherited fd is not a TCP listener")
	}
	// The parent made the socket without our options: apply them before the first
	// accept, so Buffers' "locked by --rcvbuf" is true (accepted sockets inherit them).
	rc, err := tl.SyscallConn()
	if err == nil {
		err = proto.Control(rc, func(fd int) error { return proto.SetBuffers(fd, o) })
	}
	if err != nil {
		tl.Close()
		return nil, err
	}
	return &listener{tl, o}, nil
}

type listener struct {
	*net.TCPListener
	o proto.Options
}

func (l *listener) File() (*os.File, error) { return l.TCPListener.File() }

func (l *listener) Accept() (proto.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	// Accepted sockets inherit the listener's buffers — except one that was already in
	// the backlog when an adopted listener (FileListener) got them: it would autotune while
	// the receiver reports a locked bound, and the sender's ring would be too small
	// (measured: corrupt messages). Locking it again now, before any data is read, makes
	// Buffers true; the window it advertised so far is the initial one.
	if l.o.SndBuf > 0 || l.o.RcvBuf > 0 {
		rc, err := c.SyscallConn()
		if err == nil {
			err = proto.Control(rc, func(fd int) error { return proto.SetBuffers(fd, l.o) })
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return wrap(c, l.o)
}

// Conn is a TCP connection with the options applied.
type Conn struct {
	*net.TCPConn
	o proto.Options
}

func wrap(c *net.TCPConn, o proto.Options) (*Conn, error) {
	if err := c.SetNoDelay(o.NoDelay); err != nil {
		c.Close()
		return nil, err
	}
	return &Conn{c, o}, nil
}

// Buffers reads the effective sizes. Without --sndbuf the kernel autotunes the send
// buffer up to tcp_wmem[2] (tcp(7)), so that is the bound the page ring must cover; a
// receiver on this host may queue max(tcp_rmem[2], 2*rmem_max) of our pages.
func (c *Conn) Buffers() (proto.Buffers, error) {
	b, err := proto.Autotuned(c, c.o, "net/ipv4/tcp_wmem", "net/ipv4/tcp_rmem", [3]int{4096, 16384, 4 << 20}, [3]int{4096, 131072, 32 << 20})
	b.Why = "sndbuf autotuned up to tcp_wmem[2]"
	if c.o.SndBuf > 0 {
		b.Why = "sndbuf locked by --sndbuf"
	}
	b.Why += "; local peer may queue max(tcp_rmem[2], 2*rmem_max)"
	return b, err
}
