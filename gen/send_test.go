package gen_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/tcp"
	"github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/wire"
)

// loopback returns a connected TCP pair's sending side; the receiving side is drained
// by a goroutine until EOF and answers with a complete verdict (a native sender waits
// for one when the receiver sent its report).
func loopback(tb testing.TB) (proto.Conn, <-chan int64) {
	tb.Helper()
	p := tcp.Plugin{}
	ln, err := p.Listen("127.0.0.1:0", proto.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		var h [wire.HelloLen]byte
		wire.PutHello(h[:], 1<<20)
		c.Write(h[:])
		var first [wire.HeaderLen]byte
		n0, _ := io.ReadFull(c, first[:])
		var hd wire.Header
		wire.ParseHeader(first[:], &hd)
		n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, 256<<10))
		data := uint64(int64(n0) + n - wire.EndLen)
		var v [wire.VerdictLen]byte
		(&wire.Verdict{TestID: hd.TestID, Bytes: data, Messages: data / uint64(hd.Length+wire.HeaderLen)}).Put(v[:])
		c.Write(v[:])
		got <- int64(data)
	}()
	c, err := p.Dial(context.Background(), ln.Addr().String(), proto.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return c, got
}

func send(tb testing.TB, spec gen.Spec) (*gen.SendStats, int64) {
	c, got := loopback(tb)
	defer c.Close()
	s, err := gen.NewSender(spec, gen.Conns(c))
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	st, err := s.Run(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return st, <-got
}

var modes = []string{gen.ModeSplice, gen.ModeWrite, gen.ModeSendfile, gen.ModeZerocopy}

// The data path allocates nothing per message: ten times the messages, no more
// allocations than a fixed setup allowance.
func TestSendLoopDoesNotAllocate(t *testing.T) {
	for _, mode := range modes {
		for _, verify := range []bool{false, true} {
			mallocs := func(n int64) uint64 {
				spec := gen.Spec{Mode: mode, Size: 4096, Count: n, Streams: 1, Verify: verify}
				c, got := loopback(t)
				defer c.Close()
				s, err := gen.NewSender(spec, gen.Conns(c))
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				if _, err := s.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&m1)
				c.Close()
				<-got
				return m1.Mallocs - m0.Mallocs
			}
			small, big := mallocs(2000), mallocs(20000)
			if big > small+50 {
				t.Errorf("%s verify=%v: %d allocations for 2000 messages, %d for 20000", mode, verify, small, big)
			}
		}
	}
}

func TestSendCounts(t *testing.T) {
	for _, mode := range modes {
		st, got := send(t, gen.Spec{Mode: mode, Size: 100000, Bytes: 10 << 20, Streams: 1})
		b, m := st.Totals()
		if m != 105 || b != 105*100000 || got != int64(b) {
			t.Fatalf("%s: sent %d bytes/%d msgs, peer got %d", mode, b, m, got)
		}
		s0 := st.Streams[0]
		// Splice batches consecutive messages per pipe fill (100000-byte messages, a
		// pipe of fs.pipe-max-size: 1 MiB here): far fewer vmsplice calls than messages.
		if mode == gen.ModeSplice && (s0.VmsplicedB != b || s0.SpliceCalls < s0.VmspliceCalls || s0.VmspliceCalls >= m/2) {
			t.Fatalf("splice counters: %+v", s0)
		}
		if st.RingBytes < st.Rule.Bytes() {
			t.Fatalf("ring %d below the rule's %d", st.RingBytes, st.Rule.Bytes())
		}
	}
}

// BenchmarkSend: each send loop over loopback TCP into a draining reader. Compare the
// modes within one run; allocs/op must be 0.
func BenchmarkSend(b *testing.B) {
	for _, mode := range modes {
		for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", mode, size>>10), func(b *testing.B) {
				c, got := loopback(b)
				defer c.Close()
				s, err := gen.NewSender(gen.Spec{Mode: mode, Size: size, Count: int64(b.N), Streams: 1}, gen.Conns(c))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				if _, err := s.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Close()
				<-got
			})
		}
	}
}

// The datagram modes allocate nothing per datagram either.
func TestUDPSendLoopDoesNotAllocate(t *testing.T) {
	pat := gen.Pattern{Burst: 32, On: 20 * time.Millisecond, Off: 5 * time.Millisecond, Ramp: 10 * time.Millisecond}
	for _, mode := range []string{gen.ModeSplice, gen.ModeWrite, gen.ModeMmsg, gen.ModeGSO, "paced " + gen.ModeSplice, "paced " + gen.ModeMmsg} {
		spec := gen.Spec{Mode: mode, Size: 512, Streams: 1, Verify: true}
		if m, ok := strings.CutPrefix(mode, "paced "); ok { // the pacer with every pattern
			spec.Mode, spec.PPS, spec.Pattern = m, 2e6, pat
		}
		mallocs := func(n int64) uint64 {
			ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := udp.Plugin{}.Dial(context.Background(), ln.LocalAddr().String(), proto.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			spec.Count = n
			s, err := gen.NewSender(spec, gen.Conns(c))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			if _, err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&m1)
			return m1.Mallocs - m0.Mallocs
		}
		small, big := mallocs(2000), mallocs(20000)
		if big > small+50 {
			t.Errorf("%s: %d allocations for 2000 datagrams, %d for 20000", mode, small, big)
		}
	}
}
