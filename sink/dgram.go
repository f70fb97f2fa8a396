package sink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// Datagram receive sizes.
const (
	dgramBatch = 64    // datagrams per recvmmsg
	dgramBuf   = 65536 // one datagram, or one UDP_GRO super-datagram (at most 64 KiB)
	cmsgBuf    = 64    // room for the UDP_GRO cmsg (cmsghdr + int)
)

type dstream struct {
	st     StreamStats
	sizes  sizeCounts
	jitter jitter
	w      *seqWindow
	ended  bool
}

// DgramReceiver receives one UDP test on a bound socket: it demultiplexes datagrams by
// the native header's stream id and keeps sequence accounting per stream (seqWindow).
//
// The test ends when every stream's end datagram has arrived (the sender sends each
// one endRounds times, spaced out, carrying the number of datagrams sent: the tail
// loss), or --idle after the last datagram (then the tail loss is unknown and the run
// is reported with an error), or on interrupt. Loss is measured, not an integrity
// failure; corrupt payloads with --verify are.
type DgramReceiver struct {
	cfg      Config
	pc       proto.PacketConn
	gro      bool
	bytes    atomic.Uint64
	msgs     atomic.Uint64
	seen     atomic.Uint64 // every datagram, stray ones included: the idle watchdog's clock
	lost     atomic.Uint64
	streams  [maxStreams]*dstream
	order    []uint32 // stream ids in order of first arrival
	expect   int
	ended    int
	stats    Stats
	strays   strayCounts
	test     uint64
	started  func()
	groSegs  uint64
	from     *unix.RawSockaddrInet6 // the datagram being read while the test has not started
	begin    time.Time
	lastData time.Time
	nowNS    int64                   // the clock at this recvmmsg batch
	lat      *latency                // made at the first data datagram (native format)
	latP     atomic.Pointer[latency] // lat, for a scrape's copy (--metrics)
	corrupt  atomic.Uint64

	// Echoes (--rtt, echo.go): the socket, the current datagram's source (nil: not read),
	// the test's first source, whether a flagged datagram was seen (sources are then read
	// for every batch), the echo being sent and its outcome.
	rc        syscall.RawConn
	src       *unix.RawSockaddrInet6
	peerSA    unix.RawSockaddrInet6
	pinned    bool // the socket is connected to the test's source (pin)
	rtt       bool
	echo      [wire.EchoLen]byte
	echoFn    func(fd uintptr)
	echoErr   error
	echoes    uint64
	echoDrops uint64
}

// Progress is bytes, datagrams and losses so far.
func (r *DgramReceiver) Progress() Progress {
	return Progress{r.bytes.Load(), r.msgs.Load(), r.lost.Load(), r.corrupt.Load()}
}

// Run receives until the test ends. started is called at the first datagram.
func (r *DgramReceiver) Run(ctx context.Context, started func()) (*Stats, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.pc.SetReadDeadline(time.Time{}) // a previous test's watchdog may have set one
	r.stats.Sink = SinkMmsg
	rc, err := r.pc.SyscallConn()
	if err != nil {
		return &r.stats, err
	}
	r.rc, r.echoFn = rc, r.echoTo
	defer r.unpin()
	// Buffers, allocated once: recvmmsg writes straight into them.
	bufs := make([]byte, dgramBatch*dgramBuf)
	mm := make([]proto.Mmsghdr, dgramBatch)
	iov := make([]unix.Iovec, dgramBatch)
	ctl := make([]byte, dgramBatch*cmsgBuf)
	from := make([]unix.RawSockaddrInet6, dgramBatch) // sources, until the test starts
	for i := range mm {
		iov[i].Base = &bufs[i*dgramBuf]
		iov[i].SetLen(dgramBuf)
		mm[i].Hdr.Iov = &iov[i]
		mm[i].Hdr.SetIovlen(1)
	}
	var got int
	var rerr error
	named := false // this batch's sources were read
	recv := func(fd uintptr) bool {
		// msg_name until the test's first datagram (its source), and for echoes (--rtt)
		if named = r.begin.IsZero() || r.rtt; named {
			for i := range mm {
				mm[i].Hdr.Name, mm[i].Hdr.Namelen = (*byte)(unsafe.Pointer(&from[i])), unix.SizeofSockaddrInet6
			}
		} else if mm[0].Hdr.Name != nil {
			for i := range mm {
				mm[i].Hdr.Name, mm[i].Hdr.Namelen = nil, 0
			}
		}
		if r.gro {
			for i := range mm {
				mm[i].Hdr.Control = &ctl[i*cmsgBuf]
				mm[i].Hdr.SetControllen(cmsgBuf)
			}
		}
		for {
			n, err := sys(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&mm[0])), dgramBatch, 0, 0, 0)
			switch proto.Classify(err) {
			case proto.Done:
				got, rerr = int(n), nil
				return true
			case proto.Retry:
				continue
			case proto.Wait:
				return false
			}
			if r.pinned && err == unix.ECONNREFUSED {
				continue // an ICMP error reported to the connected socket (pin), e.g. for an echo
			}
			got, rerr = 0, os.NewSyscallError("recvmmsg", err)
			return true
		}
	}

	// The watchdog ends a blocked read: interrupt, or --idle without data.
	var idle atomic.Bool
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var last uint64
		since := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				r.pc.SetReadDeadline(time.Unix(1, 0))
				return
			case <-t.C:
				if n := r.seen.Load(); n != last || n == 0 {
					last, since = n, time.Now()
				} else if time.Since(since) > r.cfg.Idle {
					idle.Store(true)
					r.pc.SetReadDeadline(time.Unix(1, 0))
					return
				}
			}
		}
	}()

	for r.expect == 0 || r.ended < r.expect {
		if err := rc.Read(recv); err != nil {
			switch {
			case ctx.Err() != nil:
				err = errors.New("interrupted")
				r.stats.Interrupted = true
			case idle.Load() && r.cfg.Format == wire.FormatRaw:
				err = nil // raw has no end datagram: idle is the normal end
			case idle.Load():
				err = fmt.Errorf("no end datagram from %d of %d stream(s): ended by --idle %v (tail loss unknown)",
					r.expect-r.ended, max(r.expect, 1), r.cfg.Idle)
			}
			return r.finish(), err
		}
		if rerr != nil {
			return r.finish(), rerr
		}
		now := time.Now()
		r.nowNS = now.UnixNano() // one clock read per recvmmsg batch (latency.go)
		r.started = started
		if r.lat != nil {
			r.lat.mu.Lock() // one lock per batch: a scrape may copy the histogram
		}
		for i := range got {
			b := bufs[i*dgramBuf : i*dgramBuf+int(mm[i].Len)]
			seg := len(b)
			if r.gro {
				if s := groSize(ctl[i*cmsgBuf : i*cmsgBuf+int(mm[i].Hdr.Controllen)]); s > 0 {
					seg = s
				}
			}
			r.src = nil
			if named {
				r.src = &from[i]
			}
			if r.begin.IsZero() {
				r.from = &from[i]
			}
			for len(b) > 0 {
				n := min(seg, len(b))
				r.datagram(b[:n], now)
				b = b[n:]
			}
		}
		if r.lat != nil {
			r.lat.mu.Unlock()
		}
		var lost uint64
		for _, id := range r.order {
			lost += r.streams[id].w.lost
		}
		r.lost.Store(lost)
	}
	r.stats.Ended = true
	return r.finish(), nil
}

// groSize reads the UDP_GRO cmsg (udp(7): the segment size of a coalesced datagram, an
// int); 0 if there is none.
func groSize(ctl []byte) int {
	if d := proto.FindCmsg(ctl, unix.SOL_UDP, unix.UDP_GRO); len(d) >= 4 {
		return int(int32(binary.NativeEndian.Uint32(d)))
	}
	return 0
}

// datagram accounts one datagram. The first valid data datagram fixes the test id and
// stream count; a datagram of another test, a stream beyond those announced, garbage,
// or an end datagram before any data is a stray: counted, never part of the test (it
// neither starts, extends nor ends it: the idle clock counts only the test's).
func (r *DgramReceiver) datagram(b []byte, now time.Time) {
	if r.cfg.Format == wire.FormatRaw {
		r.begin1(now)
		r.seen.Add(1)
		ds := r.stream(0, 0)
		r.count(ds, len(b), now)
		ds.st.Messages++
		return
	}
	var h wire.Header
	if err := wire.ParseHeader(b, &h); err != nil || h.TestID == 0 {
		r.strays.garbage.Add(1)
		return
	}
	end := h.Flags&wire.FlagEnd != 0
	if r.expect == 0 {
		if r.cfg.TestID != 0 && h.TestID != r.cfg.TestID {
			r.strays.otherTest.Add(1)
			return
		}
		if end {
			r.strays.garbage.Add(1) // an end cannot start a test
			return
		}
		r.test = h.TestID
		r.expect = max(1, int(h.Streams))
		if r.cfg.Streams > 0 {
			r.expect = r.cfg.Streams
		}
	}
	switch {
	case h.TestID != r.test:
		r.strays.otherTest.Add(1)
		return
	case int(h.Stream) >= r.expect:
		r.strays.extra.Add(1)
		return
	}
	if end {
		if _, err := wire.ParseEnd(&h, b[wire.HeaderLen:]); err != nil {
			r.strays.garbage.Add(1)
			return
		}
	}
	if r.cfg.Connect && r.begin.IsZero() && r.expect == 1 && h.Lanes <= 1 {
		r.pin()
	}
	r.begin1(now)
	r.seen.Add(1)
	ds := r.stream(h.Stream, 0)
	if end {
		if !ds.ended {
			ds.ended = true
			ds.w.end(h.Seq)
			r.ended++
		}
		return
	}
	r.count(ds, len(b), now)
	ds.st.Messages++
	ds.w.add(h.Seq)
	if h.Flags&wire.FlagRTT != 0 {
		r.reflect(&h)
	}
	if r.lat == nil { // its first sample is recorded before the batch's unlock: lock it now
		r.lat = newLatency()
		r.lat.mu.Lock()
		r.latP.Store(r.lat)
	}
	r.lat.record(r.nowNS, h.TimeNS)
	ds.jitter.add(r.nowNS, h.TimeNS)
	if int(h.Length)+wire.HeaderLen != len(b) {
		ds.st.Corrupt++ // header and datagram disagree: truncated or padded
		r.corrupt.Add(1)
		return
	}
	if !r.cfg.Verify {
		return
	}
	if h.Flags&wire.FlagVerify == 0 {
		ds.st.Unverified++
		return
	}
	p := b[wire.HeaderLen:]
	if wire.CRC32C(p) != h.CRC || !wire.CheckPattern(p, h.Stream, h.Seq) {
		ds.st.Corrupt++
		r.corrupt.Add(1)
	}
}

// begin1 opens the measurement window at the test's first datagram.
func (r *DgramReceiver) begin1(now time.Time) {
	if r.begin.IsZero() {
		r.begin = now
		r.stats.Peer = sockaddrIP(r.from)
		if r.from != nil {
			r.peerSA = *r.from
		}
		if r.started != nil {
			r.started()
		}
	}
}

func (r *DgramReceiver) count(ds *dstream, n int, now time.Time) {
	ds.st.Bytes += uint64(n)
	if ds.st.SizeMin == 0 || n < ds.st.SizeMin {
		ds.st.SizeMin = n
	}
	ds.st.SizeMax = max(ds.st.SizeMax, n)
	ds.st.MsgSize = ds.st.SizeMax
	ds.sizes.count(n)
	r.bytes.Add(uint64(n))
	r.msgs.Add(1)
	r.lastData = now
}

// stream returns the stream's state, made at its first datagram (the only allocation).
func (r *DgramReceiver) stream(id uint32, start uint64) *dstream {
	ds := r.streams[id]
	if ds == nil {
		ds = &dstream{st: StreamStats{Stream: id}, w: newSeqWindow(start)}
		r.streams[id] = ds
		r.order = append(r.order, id)
	}
	return ds
}

func (r *DgramReceiver) finish() *Stats {
	var jit float64
	for _, id := range r.order {
		ds := r.streams[id]
		ds.st.Lost, ds.st.Reordered, ds.st.Duplicate, ds.st.Late = ds.w.lost, ds.w.reordered, ds.w.duplicate, ds.w.late
		ds.st.Sizes = ds.sizes.toMap()
		jit += ds.jitter.j
		r.stats.Streams = append(r.stats.Streams, ds.st)
	}
	if !r.begin.IsZero() {
		r.stats.Real = r.lastData.Sub(r.begin)
	}
	r.stats.Strays = r.strays.snapshot()
	r.stats.Expected = r.expect
	r.stats.Echoes, r.stats.EchoDrops = r.echoes, r.echoDrops
	r.stats.Code, r.stats.Why = r.stats.Verdict(r.cfg, false)
	var m latencies
	m.add(r.lat)
	// The sender's address is not read (recvmmsg without names): the clock is named for
	// both cases.
	if r.stats.Latency = m.result("CLOCK_REALTIME: exact when sender and receiver share a host, else only with synchronised clocks (NTP, PTP)"); r.stats.Latency != nil {
		r.stats.Latency.JitterUs = jit / float64(max(len(r.order), 1)) / 1000
	}
	return &r.stats
}

// sockaddrIP is a recvmmsg source's address (nil: none or not IP).
func sockaddrIP(sa *unix.RawSockaddrInet6) net.IP {
	switch {
	case sa == nil:
		return nil
	case sa.Family == unix.AF_INET:
		return net.IP((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr[:]).To16()
	case sa.Family == unix.AF_INET6:
		return net.IP(sa.Addr[:]).To16()
	}
	return nil
}
