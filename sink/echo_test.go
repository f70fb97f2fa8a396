package sink

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// The echoer never blocks: against a sender that does not read, echoes fill the
// reverse path and the rest are dropped, counted; what went is whole echo frames in
// order (an echo taken in part is finished first, and by rest() before the verdict);
// no echo allocates.
func TestEchoerDropsAndKeepsFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer.(*net.TCPConn).SetReadBuffer(4096)
	c.(*net.TCPConn).SetWriteBuffer(4096)
	rc, _ := c.(*net.TCPConn).SyscallConn()
	e := newEchoer(rc)
	h := wire.Header{Flags: wire.FlagRTT, Streams: 1, Length: 100, TestID: 7}
	const n = 20000
	start := time.Now()
	allocs := testing.AllocsPerRun(n, func() { h.Seq++; e.reflect(&h) })
	if time.Since(start) > 5*time.Second {
		t.Fatalf("%d echoes took %v: the echoer blocks", n, time.Since(start))
	}
	if allocs != 0 || e.sent+e.dropped != n+1 || e.dropped == 0 || e.sent == 0 {
		t.Fatalf("%v allocs; sent %d, dropped %d of %d", allocs, e.sent, e.dropped, n+1)
	}
	var nodelay int
	rc.Control(func(fd uintptr) { nodelay, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) })
	if nodelay == 0 {
		t.Error("echoes go with Nagle on")
	}
	got := make(chan []byte)
	go func() { b, _ := io.ReadAll(peer); got <- b }()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(e.rest()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	b := <-got
	if len(b) != int(e.sent)*wire.EchoLen {
		t.Fatalf("%d bytes for %d echoes", len(b), e.sent)
	}
	var last uint64
	for i := 0; i < len(b); i += wire.EchoLen {
		var g wire.Header
		if err := wire.ParseEcho(b[i:], &g); err != nil || g.Seq <= last || g.TestID != 7 {
			t.Fatalf("echo %d: %+v %v", i/wire.EchoLen, g, err)
		}
		last = g.Seq
	}
	t.Logf("%d echoes sent, %d dropped", e.sent, e.dropped)
}
