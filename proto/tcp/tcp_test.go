package tcp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/prototest"
	"github.com/splicegen/splicegen/proto/tcp"
	"golang.org/x/sys/unix"
)

const timeout = 5 * time.Second

func dialCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// accept accepts one connection, failing the test after timeout.
func accept(t *testing.T, ln proto.Listener) proto.Conn {
	t.Helper()
	type res struct {
		c   proto.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		r.c.SetDeadline(time.Now().Add(timeout))
		return r.c
	case <-time.After(timeout):
		ln.Close()
		t.Fatal("Accept: nothing in 5s")
	}
	return nil
}

func listen(t *testing.T, o proto.Options) proto.Listener {
	t.Helper()
	ln, err := tcp.Plugin{}.Listen("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// pair connects a Dial'ed conn (options d) to a Listen'ed one (options l).
func pair(t *testing.T, d, l proto.Options) (client, server proto.Conn) {
	t.Helper()
	ln := listen(t, l)
	c, err := tcp.Plugin{}.Dial(dialCtx(t), ln.Addr().String(), d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	return c, accept(t, ln)
}

func TestRoundTrip(t *testing.T) {
	c, s := pair(t, proto.Options{}, proto.Options{})
	if _, ok := c.(*tcp.Conn); !ok {
		t.Errorf("Dial returned %T, want *tcp.Conn", c)
	}
	msg := bytes.Repeat([]byte("splicegen "), 100_000) // 1 MB: more than one socket buffer
	go func() {
		if _, err := c.Write(msg); err != nil {
			t.Error(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Error(err)
		}
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("server read %d bytes, want the %d sent", len(got), len(msg))
	}
	// The other way, after the half-close.
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "pong" {
		t.Fatalf("client read %q, %v", b, err)
	}
	if c.LocalAddr().String() != s.RemoteAddr().String() || c.RemoteAddr().String() != s.LocalAddr().String() {
		t.Errorf("addresses do not match: client %s->%s, server %s->%s", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
}

func TestRoundTripIPv6(t *testing.T) {
	ln, err := tcp.Plugin{}.Listen("[::1]:0", proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := tcp.Plugin{}.Dial(dialCtx(t), ln.Addr().String(), proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := accept(t, ln)
	c.Write([]byte("v6"))
	b := make([]byte, 2)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "v6" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestNoDelay(t *testing.T) {
	// Go turns TCP_NODELAY on by default; the plugin leaves Nagle on unless asked, on
	// both ends (the listener's options reach accepted conns).
	for _, nd := range []bool{false, true} {
		c, s := pair(t, proto.Options{NoDelay: nd}, proto.Options{NoDelay: nd})
		for name, conn := range map[string]proto.Conn{"dialed": c, "accepted": s} {
			if got := prototest.Sockopt(t, conn, unix.IPPROTO_TCP, unix.TCP_NODELAY) != 0; got != nd {
				t.Errorf("NoDelay %v: %s conn has TCP_NODELAY %v", nd, name, got)
			}
		}
	}
}

func sysctl3(t *testing.T, name string) [3]int {
	t.Helper()
	v, err := proto.Sysctl3(name)
	if err != nil {
		t.Skipf("%s: %v", name, err)
	}
	return v
}

func TestBuffersAutotuned(t *testing.T) {
	wmem, rmem := sysctl3(t, "net/ipv4/tcp_wmem"), sysctl3(t, "net/ipv4/tcp_rmem")
	rmemMax, err := proto.Sysctl("net/core/rmem_max")
	if err != nil {
		t.Skip(err)
	}
	c, _ := pair(t, proto.Options{}, proto.Options{})
	b, err := c.Buffers()
	if err != nil {
		t.Fatal(err)
	}
	if b.SndBuf <= 0 || b.RcvBuf <= 0 {
		t.Fatalf("Buffers() = %+v: no sizes", b)
	}
	if b.SndBuf != prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_SNDBUF) || b.RcvBuf != prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_RCVBUF) {
		t.Errorf("Buffers() = %+v, not the socket's SO_SNDBUF/SO_RCVBUF", b)
	}
	if want := max(b.SndBuf, wmem[2]); b.SndBufMax != want {
		t.Errorf("SndBufMax = %d, want max(SndBuf, tcp_wmem[2]) = %d", b.SndBufMax, want)
	}
	if want := max(b.RcvBuf, rmem[2]); b.RcvBufMax != want {
		t.Errorf("RcvBufMax = %d, want max(RcvBuf, tcp_rmem[2]) = %d", b.RcvBufMax, want)
	}
	if want := max(rmem[2], 2*rmemMax); b.PeerRcvBufMax != want {
		t.Errorf("PeerRcvBufMax = %d, want max(tcp_rmem[2], 2*rmem_max) = %d", b.PeerRcvBufMax, want)
	}
	if b.Backlog != 0 {
		t.Errorf("Backlog = %d, want 0 for TCP", b.Backlog)
	}
	if !strings.Contains(b.Why, "autotuned") {
		t.Errorf("Why = %q, want it to say the send buffer is autotuned", b.Why)
	}
}

func TestBuffersLocked(t *testing.T) {
	rmem := sysctl3(t, "net/ipv4/tcp_rmem")
	rmemMax, err := proto.Sysctl("net/core/rmem_max")
	if err != nil {
		t.Skip(err)
	}
	const snd, rcv = 128 << 10, 192 << 10
	o := proto.Options{SndBuf: snd, RcvBuf: rcv}
	c, s := pair(t, o, o)
	for name, conn := range map[string]proto.Conn{"dialed": c, "accepted": s} {
		b, err := conn.Buffers()
		if err != nil {
			t.Fatal(err)
		}
		if b.SndBuf < 2*snd || b.RcvBuf < 2*rcv {
			t.Errorf("%s: Buffers() = %+v, want SndBuf >= %d and RcvBuf >= %d (the kernel doubles)", name, b, 2*snd, 2*rcv)
		}
		if b.SndBufMax != b.SndBuf || b.RcvBufMax != b.RcvBuf {
			t.Errorf("%s: locked buffers must be their own bound: %+v", name, b)
		}
		if want := max(rmem[2], 2*rmemMax); b.PeerRcvBufMax != want {
			t.Errorf("%s: PeerRcvBufMax = %d, want %d", name, b.PeerRcvBufMax, want)
		}
		if b.Why == "" || !strings.Contains(b.Why, "locked by --sndbuf") {
			t.Errorf("%s: Why = %q, want it to say the send buffer is locked", name, b.Why)
		}
	}
}

func TestFileListener(t *testing.T) {
	// The parent's listener, made without the child's options.
	f, addr, err := proto.Endpoint(tcp.Plugin{}, "127.0.0.1:0", proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const rcv = 96 << 10
	ln, err := tcp.Plugin{}.FileListener(f, proto.Options{RcvBuf: rcv})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != addr { // the parent's own listener is closed already: the dup listens
		t.Errorf("adopted listener at %s, want %s", ln.Addr(), addr)
	}
	c, err := tcp.Plugin{}.Dial(dialCtx(t), ln.Addr().String(), proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := accept(t, ln)
	if got := prototest.Sockopt(t, s, unix.SOL_SOCKET, unix.SO_RCVBUF); got < 2*rcv {
		t.Errorf("accepted conn SO_RCVBUF = %d, want >= %d (set on the adopted listener before accept)", got, 2*rcv)
	}
	b, err := s.Buffers()
	if err != nil {
		t.Fatal(err)
	}
	if b.RcvBufMax != b.RcvBuf {
		t.Errorf("accepted conn's receive buffer is locked by the option: RcvBufMax %d != RcvBuf %d", b.RcvBufMax, b.RcvBuf)
	}
	c.Write([]byte("adopted"))
	got := make([]byte, 7)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "adopted" {
		t.Errorf("read %q, %v", got, err)
	}
	// The listener's File is again a dup of the listening socket.
	f2, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if v, err := unix.GetsockoptInt(int(f2.Fd()), unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		t.Errorf("File(): SO_ACCEPTCONN = %d, %v", v, err)
	}
}

func TestDialErrors(t *testing.T) {
	// A port nobody listens on: refused at once over loopback.
	ln := listen(t, proto.Options{})
	addr := ln.Addr().String()
	ln.Close()
	_, err := tcp.Plugin{}.Dial(dialCtx(t), addr, proto.Options{})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("Dial to a closed port = %v, want ECONNREFUSED", err)
	}
	// A cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (tcp.Plugin{}).Dial(ctx, addr, proto.Options{}); err == nil {
		t.Error("Dial with a cancelled context succeeded")
	}
	if _, err := (tcp.Plugin{}).Listen("127.0.0.1:notaport", proto.Options{}); err == nil {
		t.Error("Listen on a bad address succeeded")
	}
}

func TestTraits(t *testing.T) {
	tr := tcp.Plugin{}.Traits()
	if tr.Name != "tcp" || tr.Kind != proto.KindStream || !tr.LossFails || tr.Lanes {
		t.Errorf("Traits = %+v", tr)
	}
	if tr.DefaultSink() != "read" {
		t.Errorf("DefaultSink() = %q, want read", tr.DefaultSink())
	}
	for _, m := range []string{"splice", "write", "sendfile", "zerocopy"} {
		if err := tr.Mode(m); err != nil {
			t.Errorf("Mode(%q) = %v", m, err)
		}
	}
	for _, m := range []string{"gso", "mmsg"} {
		if err := tr.Mode(m); !errors.Is(err, proto.ErrUsage) || !strings.Contains(err.Error(), tr.Refused[m]) || tr.Refused[m] == "" {
			t.Errorf("Mode(%q) = %v, want a refusal with the reason", m, err)
		}
	}
	if err := tr.Sink("mmsg"); err == nil || !strings.Contains(err.Error(), "recvmmsg is the datagram sink") {
		t.Errorf("Sink(mmsg) = %v", err)
	}
	if err := tr.Sink("splice"); err != nil {
		t.Errorf("Sink(splice) = %v", err)
	}
	if tr.DefaultSize <= 0 || tr.Size(tr.DefaultSize, "") != nil {
		t.Errorf("DefaultSize %d is not a valid size", tr.DefaultSize)
	}
	if tr.Compare.Modes == "" || tr.Compare.Sizes == "" || tr.Compare.Limit == "" {
		t.Errorf("Compare defaults incomplete: %+v", tr.Compare)
	}
	prototest.Traits(t, tr)
}

func TestProbe(t *testing.T) {
	rows := tcp.Plugin{}.Traits().Probe()
	if len(rows) == 0 {
		t.Fatal("no probe rows")
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Name] = true
		// Linux 6.x has all three: the socket, splice into TCP and SO_ZEROCOPY.
		if r.Err != nil {
			t.Errorf("probe row %q: %v", r.Name, r.Err)
		}
	}
	for _, n := range []string{"tcp socket", "splice into tcp", "SO_ZEROCOPY"} {
		if !seen[n] {
			t.Errorf("no probe row %q", n)
		}
	}
}
