// Package proto is the plugin contract: a protocol only chooses and configures the
// socket; the generator (gen) and the receiver (sink) drive every protocol the same way.
package proto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options are the socket settings a user can ask for.
type Options struct {
	SndBuf  int  // SO_SNDBUF request in bytes; 0 keeps the kernel's autotuning
	RcvBuf  int  // SO_RCVBUF request in bytes; 0 keeps the kernel's autotuning
	NoDelay bool // TCP_NODELAY / SCTP_NODELAY (Go turns TCP's on by default; splicegen leaves Nagle on unless asked)
	Lanes   int  // SCTP: outbound stream ids to rotate messages over (--sctp-streams); 0 or 1: stream 0
	PPID    uint32
	GRO     bool // UDP receiver: UDP_GRO (coalesced datagrams, split by the receiver)
}

// Buffers are a socket's effective buffer sizes and how far the kernel may grow them.
type Buffers struct {
	SndBuf        int    `json:"sndbuf"`            // getsockopt(SO_SNDBUF) now
	RcvBuf        int    `json:"rcvbuf"`            // getsockopt(SO_RCVBUF) now
	SndBufMax     int    `json:"sndbuf_max"`        // SndBuf if locked by --sndbuf, else the autotune limit
	RcvBufMax     int    `json:"rcvbuf_max"`        // RcvBuf if locked by --rcvbuf, else the autotune limit
	PeerRcvBufMax int    `json:"peer_rcvbuf_max"`   // the most a receiver on this host may queue
	Backlog       int    `json:"backlog,omitempty"` // datagrams a local path may hold charged to neither socket
	Why           string `json:"why"`
}

// Conn is a connected socket. Data-path I/O goes through SyscallConn (the netpoller).
type Conn interface {
	net.Conn
	syscall.Conn
	CloseWrite() error
	Buffers() (Buffers, error)
}

// Listener accepts Conns.
type Listener interface {
	Accept() (Conn, error)
	Close() error
	Addr() net.Addr
	// File returns a dup of the listening socket, for a child process (compare).
	File() (*os.File, error)
}

// Laner is a Conn that spreads messages over several ordered sub-streams (SCTP stream
// ids). The sender calls SetLane inside RawConn.Control before each message.
type Laner interface {
	Lanes() int
	SetLane(fd uintptr, lane int) error
}

// MessageReader is a Conn that delivers messages with boundaries and a sub-stream id
// (SCTP: recvmsg with MSG_EOR and SCTP_RCVINFO). n == 0 with a nil error is EOF.
type MessageReader interface {
	ReadMessage(b []byte) (n int, lane int, eor bool, err error)
}

// Plugin is one protocol.
type Plugin interface {
	Name() string
	Dial(ctx context.Context, addr string, o Options) (Conn, error)
	Listen(addr string, o Options) (Listener, error)
	// FileListener adopts a listening socket inherited from a parent (compare's children).
	FileListener(f *os.File, o Options) (Listener, error)
	// Supports returns nil if the send mode works on this protocol, else the reason.
	Supports(mode string) error
}

var plugins = map[string]Plugin{}

// Register adds a plugin; called from the plugins' init functions.
func Register(p Plugin) { plugins[p.Name()] = p }

// ErrUnknown is returned for a protocol name with no plugin.
var ErrUnknown = errors.New("unknown protocol")

// Lookup returns the plugin for name.
func Lookup(name string) (Plugin, error) {
	if p, ok := plugins[name]; ok {
		return p, nil
	}
	names := make([]string, 0, len(plugins))
	for n := range plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("%w %q (have %v)", ErrUnknown, name, names)
}

// SockoptInt reads an int socket option through a RawConn's Control.
func SockoptInt(rc syscall.RawConn, level, opt int) (int, error) {
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = getsockoptInt(int(fd), level, opt) }); err != nil {
		return 0, err
	}
	return v, serr
}

// Datagram is implemented by connected datagram sockets (UDP): gen asks it for the
// largest datagram and the capabilities probed on this socket.
type Datagram interface {
	MaxDatagram() int
	Caps() Caps
}

// Caps are the optional kernel features of one socket, probed once when it is made.
// A false field has its reason in the matching *Why string (kernel answer or kill switch).
type Caps struct {
	GSO         bool   `json:"gso"` // UDP_SEGMENT
	GSOWhy      string `json:"gso_why,omitempty"`
	GRO         bool   `json:"gro"` // UDP_GRO
	GROWhy      string `json:"gro_why,omitempty"`
	ZeroCopy    bool   `json:"zerocopy"` // SO_ZEROCOPY
	ZeroCopyWhy string `json:"zerocopy_why,omitempty"`
}

// PacketConn is a bound, unconnected datagram socket: the receiving end of a UDP test.
type PacketConn interface {
	syscall.Conn
	Close() error
	LocalAddr() net.Addr
	SetReadDeadline(t time.Time) error
	Caps() Caps
	RcvBuf() int // effective SO_RCVBUF
}

// PacketPlugin is implemented by datagram protocols: they have no listener, the
// receiver reads one bound socket.
type PacketPlugin interface {
	Plugin
	ListenPacket(addr string, o Options) (PacketConn, error)
	FilePacketConn(f *os.File, o Options) (PacketConn, error)
}

// ReadBuffers reads a socket's effective SO_SNDBUF and SO_RCVBUF; the plugin fills in
// the bounds (how far the kernel may grow them) from its own sysctls.
func ReadBuffers(rc syscall.RawConn) (Buffers, error) {
	var b Buffers
	var err error
	if b.SndBuf, err = SockoptInt(rc, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return b, err
	}
	b.RcvBuf, err = SockoptInt(rc, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return b, err
}
