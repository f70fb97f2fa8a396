package gen_test

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/tcp"
	"github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/wire"
)

// hostileTCP is a receiver that sends its report, drains the data in the background
// and writes back on the reverse path whatever reverse does (given the first header).
func hostileTCP(t *testing.T, reverse func(c proto.Conn, h wire.Header)) proto.Conn {
	t.Helper()
	p := tcp.Plugin{}
	ln, err := p.Listen("127.0.0.1:0", proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { c.Close() })
		var hello [wire.HelloLen]byte
		wire.PutHello(hello[:], 1<<20)
		c.Write(hello[:])
		var first [wire.HeaderLen]byte
		io.ReadFull(c, first[:])
		var h wire.Header
		wire.ParseHeader(first[:], &h)
		go io.Copy(io.Discard, c)
		reverse(c, h)
	}()
	c, err := p.Dial(context.Background(), ln.Addr().String(), proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rttSpec is the tests' paced --rtt 10 send: count messages of size at pps.
func rttSpec(size int, count int64, pps float64) gen.Spec {
	return gen.Spec{Mode: gen.ModeWrite, Size: size, Count: count, Streams: 1, Format: wire.FormatNative,
		PPS: pps, RTT: 10, StallTimeout: time.Second}
}

// runRTT runs a paced --rtt send over c and fails if it takes longer than limit.
func runRTT(t *testing.T, c proto.Conn, limit time.Duration) (*gen.SendStats, error) {
	t.Helper()
	return runRTTSpec(t, c, rttSpec(1024, 100, 2000), limit)
}

// runRTTSpec is runRTT with a spec of rttSpec.
func runRTTSpec(t *testing.T, c proto.Conn, spec gen.Spec, limit time.Duration) (*gen.SendStats, error) {
	t.Helper()
	s, err := gen.NewSender(spec, gen.Conns(c))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	st, err := s.Run(context.Background())
	if d := time.Since(start); d > limit {
		t.Fatalf("the run took %v (limit %v): %v", d, limit, err)
	}
	if st.RTT == nil || st.RTT.Every != 10 {
		t.Fatalf("no rtt figures: %+v", st.RTT)
	}
	return st, err
}

// A hostile or broken reverse path never crashes or holds the sender: garbage, a flood
// of bogus echoes, silence and a cut echo all end the run within the verdict's deadline
// (--stall-timeout), with what was valid recorded and the rest counted.
func TestRTTHostileReverseStream(t *testing.T) {
	echo := func(h wire.Header, seq uint64, at int64) []byte {
		h.Seq, h.TimeNS = seq, at
		var b [wire.EchoLen]byte
		wire.PutEcho(b[:], &h)
		return b[:]
	}
	t.Run("garbage flood", func(t *testing.T) {
		c := hostileTCP(t, func(c proto.Conn, h wire.Header) {
			b := make([]byte, 64<<10)
			rand.Read(b)
			b[0] = 'x' // not a magic
			for {
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		})
		st, err := runRTT(t, c, 5*time.Second)
		if err == nil || st.Receiver != nil || st.RTT.Samples != 0 {
			t.Fatalf("garbage taken: %v, %+v, %+v", err, st.Receiver, st.RTT)
		}
	})
	t.Run("silent", func(t *testing.T) {
		c := hostileTCP(t, func(c proto.Conn, h wire.Header) { time.Sleep(10 * time.Second) })
		st, err := runRTT(t, c, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "no verdict") || st.RTT.Samples != 0 {
			t.Fatalf("silence: %v, %+v", err, st.RTT)
		}
	})
	t.Run("bogus echoes, then a cut one", func(t *testing.T) {
		c := hostileTCP(t, func(c proto.Conn, h wire.Header) {
			now := time.Now().UnixNano()
			for i := range 1000 {
				c.Write(echo(h, uint64(i*10+3), now)) // a seq that was never flagged
			}
			other := h
			other.TestID ^= 1
			c.Write(echo(other, 10, now)) // another test's
			c.Write(echo(h, 20, now+int64(time.Hour)))
			c.Write(echo(h, 0, h.TimeNS))  // valid: one sample
			c.Write(echo(h, 30, now)[:20]) // cut, then silence
		})
		st, err := runRTT(t, c, 5*time.Second)
		if err == nil || st.RTT.Samples != 1 || st.RTT.Invalid != 1002 {
			t.Fatalf("bogus echoes: %v, %+v", err, st.RTT)
		}
	})
	t.Run("echoes, then the verdict", func(t *testing.T) {
		c := hostileTCP(t, func(c proto.Conn, h wire.Header) {
			c.Write(echo(h, 0, h.TimeNS))
			var v [wire.VerdictLen]byte
			(&wire.Verdict{TestID: h.TestID, Messages: 100, Bytes: 100 * 1024}).Put(v[:])
			time.Sleep(100 * time.Millisecond) // after the run
			c.Write(v[:])
		})
		st, err := runRTT(t, c, 5*time.Second)
		if err != nil || st.Receiver == nil || st.Proof != "receiver verdict" || st.RTT.Samples != 1 {
			t.Fatalf("verdict after echoes: %v, %+v, %+v", err, st.Receiver, st.RTT)
		}
	})
}

// A UDP sender's reader takes only well-formed echoes of its own messages; a flood of
// datagrams of every other kind is counted and the run ends on time.
func TestRTTHostileDatagrams(t *testing.T) {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		buf := make([]byte, 65536)
		junk := make([]byte, 1000)
		for {
			ln.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, from, err := ln.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var h wire.Header
			if wire.ParseHeader(buf[:n], &h) != nil || h.Flags&wire.FlagRTT == 0 {
				continue
			}
			var e [wire.EchoLen]byte
			wire.PutEcho(e[:], &h)
			ln.WriteToUDP(e[:], from)     // valid
			ln.WriteToUDP(junk, from)     // too long
			ln.WriteToUDP(e[:20], from)   // too short
			ln.WriteToUDP(buf[:48], from) // the data header itself: not an echo
			h.Stream = 9                  // not this stream's
			wire.PutEcho(e[:], &h)
			ln.WriteToUDP(e[:], from)
		}
	}()
	c, err := udp.Plugin{}.Dial(context.Background(), ln.LocalAddr().String(), proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := runRTTSpec(t, c, rttSpec(200, 200, 4000), 3*time.Second)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if r := st.RTT; r == nil || r.Samples != 20 || r.Invalid != 80 || r.P50Us < r.MinUs || r.P99Us < r.P50Us || r.MaxUs < r.P99Us {
		t.Fatalf("rtt %+v, want 20 samples and 80 invalid", st.RTT)
	}
}

// Without --rtt nothing reads the reverse path during the run and no figures come.
func TestNoRTTNoFigures(t *testing.T) {
	st, _ := send(t, gen.Spec{Mode: gen.ModeWrite, Size: 1024, Count: 10, Streams: 1, Format: wire.FormatNative})
	if st.RTT != nil {
		t.Fatalf("rtt figures without --rtt: %+v", st.RTT)
	}
}
