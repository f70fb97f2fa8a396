// Package proto is the plugin contract: a protocol chooses and configures the socket and
// declares its traits (Traits); the generator (gen), the receiver (sink), the command
// line and the report drive every protocol the same way and ask the traits instead of
// switching on a protocol's name.
package proto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Options are the socket settings a user can ask for.
type Options struct {
	SndBuf  int  // SO_SNDBUF request in bytes; 0 keeps the kernel's autotuning
	RcvBuf  int  // SO_RCVBUF request in bytes; 0 keeps the kernel's autotuning
	NoDelay bool // TCP_NODELAY / SCTP_NODELAY (Go turns TCP's on by default; splicegen leaves Nagle on unless asked)
	Lanes   int  // sub-streams to rotate messages over (SCTP stream ids, --sctp-streams); 0 or 1: one
	PPID    uint32
	GRO     bool // datagram receiver: UDP_GRO (coalesced datagrams, split by the receiver)
	Path    Path // a sender's IP-level options (path.go)
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

// FullCloser marks a Conn whose CloseWrite ends both directions: SCTP has no half-open
// state (RFC 4960 §9.2: SHUTDOWN ends the association once queued data is acknowledged).
// Its sender reads the receiver's verdict before closing, and its receiver ends a stream
// at the end frame instead of at EOF.
type FullCloser interface {
	CloseWriteEndsBoth()
}

// MessageReader is a Conn that delivers messages with boundaries and a sub-stream id
// (SCTP: recvmsg with MSG_EOR and SCTP_RCVINFO). n == 0 with a nil error is EOF.
type MessageReader interface {
	ReadMessage(b []byte) (n int, lane int, eor bool, err error)
}

// Plugin is one protocol.
type Plugin interface {
	Traits() Traits
	Dial(ctx context.Context, addr string, o Options) (Conn, error)
	Listen(addr string, o Options) (Listener, error)
	// FileListener adopts a listening socket inherited from a parent (compare's children).
	FileListener(f *os.File, o Options) (Listener, error)
}

// Datagram is implemented by connected datagram sockets: gen asks it for the largest
// datagram and the capabilities probed on this socket.
type Datagram interface {
	MaxDatagram() int
	Caps() Caps
}

// Caps are the optional kernel features of one socket, probed once when it is made.
// A false field has its reason in the matching *Why string (kernel answer or kill switch).
type Caps struct {
	GSO         bool   `json:"gso"` // UDP_SEGMENT
	GSOWhy      string `json:"gso_why,omitempty"`
	GSOKilled   bool   `json:"gso_killed,omitempty"` // off by the kill switch: run the fallback, say so
	GRO         bool   `json:"gro"`                  // UDP_GRO
	GROWhy      string `json:"gro_why,omitempty"`
	ZeroCopy    bool   `json:"zerocopy"` // SO_ZEROCOPY
	ZeroCopyWhy string `json:"zerocopy_why,omitempty"`
}

// PacketConn is a bound, unconnected datagram socket: the receiving end of a test.
type PacketConn interface {
	syscall.Conn
	Close() error
	LocalAddr() net.Addr
	SetReadDeadline(t time.Time) error
	File() (*os.File, error)
	Caps() Caps
	RcvBuf() int // effective SO_RCVBUF
	GRO() bool   // UDP_GRO is on: datagrams may arrive coalesced
}

// PacketPlugin is implemented by datagram protocols: they have no listener, the
// receiver reads one bound socket.
type PacketPlugin interface {
	Plugin
	ListenPacket(addr string, o Options) (PacketConn, error)
	FilePacketConn(f *os.File, o Options) (PacketConn, error)
}

var (
	plugins = map[string]Plugin{}
	order   []string
)

// Register adds a plugin; called from the plugins' init functions.
func Register(p Plugin) {
	name := strings.ToLower(p.Traits().Name)
	if _, dup := plugins[name]; !dup {
		order = append(order, name)
	}
	plugins[name] = p
}

// Names lists the registered protocols in registration order.
func Names() []string { return append([]string(nil), order...) }

// ErrUnknown is returned for a protocol name with no plugin.
var ErrUnknown = errors.New("unknown protocol")

// Lookup returns the plugin for name (protocol names are case-insensitive).
func Lookup(name string) (Plugin, error) {
	if p, ok := plugins[strings.ToLower(strings.TrimSpace(name))]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q (have %s)", ErrUnknown, name, strings.Join(order, ", "))
}

// ErrUsage marks errors that are the user's input (exit status 2).
var ErrUsage = errors.New("usage")

// Usagef makes a usage error.
func Usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// ErrKernel marks "this kernel lacks the protocol or feature" (exit status 2: the user
// asked for what cannot run here).
var ErrKernel = errors.New("not supported by this kernel")

type kernelErr struct{ msg string }

func (e kernelErr) Error() string        { return e.msg }
func (e kernelErr) Is(target error) bool { return target == ErrKernel }

// KernelLacks makes an error that is ErrKernel and reads msg.
func KernelLacks(msg string) error { return kernelErr{msg} }

// Endpoint makes the receiving end of a test on addr for a child process (compare): a
// listening socket, or a bound datagram socket, with the receiver's options set before
// any peer can connect (accepted sockets inherit the listener's buffers). It returns a
// dup of the socket and the address it got.
func Endpoint(p Plugin, addr string, o Options) (*os.File, string, error) {
	if pp, ok := p.(PacketPlugin); ok {
		pc, err := pp.ListenPacket(addr, o)
		if err != nil {
			return nil, "", err
		}
		defer pc.Close()
		f, err := pc.File()
		return f, pc.LocalAddr().String(), err
	}
	ln, err := p.Listen(addr, o)
	if err != nil {
		return nil, "", err
	}
	defer ln.Close()
	f, err := ln.File()
	return f, ln.Addr().String(), err
}
