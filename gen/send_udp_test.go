package gen

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// udpPair dials a connected UDP socket to a bound one drained by a goroutine; the
// returned function waits for the drain to go quiet and returns the data datagrams
// (all but the end frames) it read.
func udpPair(tb testing.TB) (proto.Conn, func() int64) {
	tb.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	ln.SetReadBuffer(8 << 20)
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ln.Close()
		buf := make([]byte, 65536)
		for {
			ln.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			m, err := ln.Read(buf)
			if err != nil {
				return
			}
			var h wire.Header
			if wire.ParseHeader(buf[:m], &h) != nil || h.Flags&wire.FlagEnd == 0 {
				n.Add(1)
			}
		}
	}()
	return dialUDP(tb, ln), func() int64 { <-done; return n.Load() }
}

// dialUDP is a connected UDP socket to ln, closed at the test's end.
func dialUDP(tb testing.TB, ln *net.UDPConn) proto.Conn {
	tb.Helper()
	c, err := udp.Plugin{}.Dial(context.Background(), ln.LocalAddr().String(), proto.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// runOn runs spec's sender on c to the end.
func runOn(t *testing.T, spec Spec, c proto.Conn) *SendStats {
	t.Helper()
	s, err := NewSender(spec, Conns(c))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sendUDP(t *testing.T, spec Spec) (*SendStats, int64) {
	t.Helper()
	c, got := udpPair(t)
	return runOn(t, spec, c), got()
}

// GSO demoted at run time: the third super-buffer write fails with EIO (as from a
// device without checksum offload); the batch and the rest go by sendmmsg, counted.
func TestGSODemotedOnEIO(t *testing.T) {
	calls := 0
	orig := gsoSendmsg
	gsoSendmsg = func(st *stream, fd int, msg *unix.Msghdr) error {
		calls++
		if calls == 3 {
			return unix.EIO
		}
		return orig(st, fd, msg)
	}
	defer func() { gsoSendmsg = orig }()
	st, got := sendUDP(t, Spec{Mode: ModeGSO, Size: 64, Count: 1000, Streams: 1, Verify: true})
	s0 := st.Streams[0]
	if st.Fallbacks != 1 || !strings.Contains(s0.Fallback, "demoted") || s0.GSOCalls != 2 || s0.SendmmsgCalls == 0 {
		t.Fatalf("fallbacks %d, %+v", st.Fallbacks, s0)
	}
	if s0.Messages != 1000 || got != 1000 {
		t.Fatalf("sent %d, peer got %d", s0.Messages, got)
	}
}

// The kill switch forces the fallback path from the start, and says so.
func TestGSOKillSwitch(t *testing.T) {
	t.Setenv(udp.EnvDisableGSO, "1")
	st, got := sendUDP(t, Spec{Mode: ModeGSO, Size: 64, Count: 1000, Streams: 1})
	s0 := st.Streams[0]
	if st.Fallbacks != 1 || !strings.Contains(s0.Fallback, "SPLICEGEN_DISABLE_GSO") || s0.GSOCalls != 0 || s0.SendmmsgCalls == 0 || got != 1000 {
		t.Fatalf("fallbacks %d, peer got %d, %+v", st.Fallbacks, got, s0)
	}
}

func TestUDPModesCount(t *testing.T) {
	for _, mode := range []string{ModeSplice, ModeWrite, ModeMmsg, ModeGSO} {
		st, got := sendUDP(t, Spec{Mode: mode, Size: 1000, Count: 3000, Streams: 1, Verify: true})
		s0 := st.Streams[0]
		if s0.Messages != 3000 || got != 3000 || s0.EndDatagrams != endRounds {
			t.Fatalf("%s: sent %d, got %d, %+v", mode, s0.Messages, got, s0)
		}
		if mode == ModeSplice && (s0.VmsplicedB != s0.Bytes || s0.SpliceCalls != 3000) {
			t.Fatalf("splice: one splice per datagram expected: %+v", s0)
		}
		if mode == ModeGSO && s0.GSOCalls != (3000+64)/65 {
			t.Fatalf("gso: %d calls for 3000 datagrams of 1000 B (65 segments each)", s0.GSOCalls)
		}
	}
}

func TestUDPSizeLimit(t *testing.T) {
	c, _ := udpPair(t)
	_, err := NewSender(Spec{Mode: ModeWrite, Size: udp.MaxIPv4 + 1, Count: 1, Streams: 1}, Conns(c))
	if err == nil || !strings.Contains(err.Error(), "largest datagram") {
		t.Fatalf("err %v", err)
	}
}

// A datagram can wait in a full receive queue while every later one is dropped, so a
// splice ring is lapped under it whatever its size: the first datagrams queue at a
// receiver that reads nothing until the send is over, while the ring goes round several
// times. Renewed, every queued datagram arrives intact (the runs, and one datagram per
// pass with --ring); rewritten in place, they carry later messages (measured: seq
// 34432.., the same slots 4 laps on) or torn ones.
func TestUDPSpliceQueuedDatagramsOutliveLaps(t *testing.T) {
	for _, c := range []struct {
		name  string
		ring  int
		renew bool
	}{{"runs", 0, true}, {"ring", 64 << 10, true}, {"in-place", 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			renewRings = c.renew
			defer func() { renewRings = true }()
			ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ln.SetReadBuffer(64 << 10)
			st := runOn(t, Spec{Mode: ModeSplice, Size: 1472, Count: 40000, Streams: 1, Verify: true, Ring: c.ring}, dialUDP(t, ln))
			laps := 40000 * 1472 / st.RingBytes
			buf := make([]byte, 65536)
			var got, corrupt int
			for {
				ln.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := ln.Read(buf)
				if err != nil {
					break
				}
				var h wire.Header
				if wire.ParseHeader(buf[:n], &h) != nil || h.Flags&wire.FlagEnd != 0 {
					continue
				}
				// The queue holds the first datagrams, in order: a rewritten slot shows a
				// later, whole message (a wrong seq) or a torn one (a bad payload).
				if p := buf[wire.HeaderLen:n]; h.Seq != uint64(got) || wire.CRC32C(p) != h.CRC || !wire.CheckPattern(p, h.Stream, h.Seq) {
					corrupt++
				}
				got++
			}
			t.Logf("ring %d bytes, %d laps, %d queued datagrams read, %d wrong, %d bytes renewed", st.RingBytes, laps, got, corrupt, st.Streams[0].RingRenewed)
			if laps < 3 || got == 0 {
				t.Fatalf("no hazard set up: %d laps, %d datagrams queued", laps, got)
			}
			if c.renew && (corrupt != 0 || st.Streams[0].RingRenewed == 0) {
				t.Fatalf("renewing ring: %d of %d queued datagrams corrupt", corrupt, got)
			}
			if !c.renew && corrupt == 0 {
				t.Fatalf("in-place ring: none of %d queued datagrams corrupt after %d laps", got, laps)
			}
		})
	}
}
