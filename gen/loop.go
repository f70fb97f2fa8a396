package gen

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// The send loops: per message (run) and per batch of datagrams (runBatch), framing each
// message in place and handing it to the step function.

// run is the send loop of one stream.
func (st *stream) run() error {
	// One OS thread per stream (docs/design.md): the blocking variant needs it, and pinning
	// (--cpu) then applies to a stream, not to whichever thread the scheduler picked.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st.u != nil && st.u.mm != nil { // mmsg, gso
		return st.runBatch()
	}
	spec := &st.s.spec
	size := uint64(spec.Size)
	var now int64
	var idx int // ring buffer of the current message (zerocopy bookkeeping)
	k := max(1, st.batch)
	for seq := uint64(0); st.limit < 0 || seq < uint64(st.limit); {
		if st.s.stop.Load() {
			break
		}
		// n consecutive messages this pass: one, or a batch (batchable) up to the ring's
		// wrap and the stream's limit, framed in consecutive slots and sent as one span.
		n := 1
		if k > 1 {
			n = min(k, st.ring.Left())
			if st.limit >= 0 {
				n = int(min(uint64(n), uint64(st.limit)-seq))
			}
		}
		if st.pace != nil {
			if n = st.pace.Take(n, &st.s.stop); n == 0 {
				break
			}
		}
		// The send time (stamp): the receiver's one-way latency starts here.
		now = st.stamp(n)
		var first int64
		for i := range n {
			if spec.HotBuffer {
				st.msg = st.ring.Buf(0)[:spec.msgSize(seq)]
			} else {
				buf, off := st.ring.Next()
				if err := st.ring.Err(); err != nil {
					return fmt.Errorf("stream %d, message %d: renewing the page ring: %w", st.id, seq, err)
				}
				st.msg, st.off = buf[:spec.msgSize(seq+uint64(i))], off
				if i == 0 {
					first = off
				}
				if st.zc != nil {
					idx = int(off) / len(buf)
					if err := st.zcReclaim(idx); err != nil {
						if st.s.stop.Load() {
							return nil
						}
						return fmt.Errorf("stream %d, message %d: waiting for zerocopy completion: %w", st.id, seq, err)
					}
				}
			}
			st.frame(seq+uint64(i), now)
		}
		if n > 1 {
			st.msg, st.off = st.ring.Span(first, n*spec.Size), first
		}
		if st.lanes > 1 {
			st.lane = int(seq % uint64(st.lanes))
			if err := st.rc.Control(st.laneFn); err != nil || st.laneErr != nil {
				return fmt.Errorf("stream %d, message %d: %w", st.id, seq, errors.Join(err, st.laneErr))
			}
		}
		// SPLICE_F_MORE only when the next message follows at once: a paced message would
		// wait for the next one in the socket (tcp_push: MSG_MORE holds a partial segment).
		st.done, st.more = 0, (st.limit < 0 || seq+uint64(n) < uint64(st.limit)) && st.pace == nil
		if err := st.send(); err != nil {
			st.partial = st.done > 0 || st.inPipe > 0
			if whole := uint64(st.done-st.inPipe) / size; n > 1 && whole > 0 {
				// Messages of the batch that went out whole before it stopped are counted.
				st.c.Bytes.Add(whole * size)
				st.c.Messages.Add(whole)
				st.partial = uint64(st.done-st.inPipe)%size != 0 || st.inPipe > 0
			}
			if st.s.stop.Load() {
				return nil // stopped mid-message: not an error, the message is not counted
			}
			return fmt.Errorf("stream %d, message %d: %w", st.id, seq, hint(err))
		}
		if st.zc != nil {
			st.zc.last[idx], st.zc.used[idx] = st.zc.t.next-1, true
		}
		if n == 1 {
			st.c.Bytes.Add(uint64(len(st.msg))) // a size mix's message
		} else {
			st.c.Bytes.Add(uint64(n) * size)
		}
		st.c.Messages.Add(uint64(n))
		if (seq+uint64(n))/(sndbufEvery+1) != seq/(sndbufEvery+1) && st.ring.Len() > 1 {
			if err := st.sampleSndbuf(); err != nil && !st.s.stop.Load() {
				return fmt.Errorf("stream %d, after message %d: %w", st.id, seq, err)
			}
		}
		seq += uint64(n)
	}
	st.endNS = time.Now().UnixNano()
	if st.zc != nil {
		st.zcFinish()
	}
	return nil
}

// sndbufEvery+1 messages between SO_SNDBUF samples (one getsockopt, no allocation).
const sndbufEvery = 1023

// sampleSndbuf re-reads SO_SNDBUF: TCP autotuning grows it during the run
// (tcp_sndbuf_expand, up to tcp_wmem[2]). The ring was sized for that limit up front —
// the rule clamps rather than grows the ring mid-run — so a sample above the rule's
// input would mean the rule's assumption broke; the report shows the largest sample.
func (st *stream) sampleSndbuf() error {
	if st.sndbufFn == nil { // bound once: the loop allocates nothing
		st.sndbufFn = func(fd uintptr) {
			var v int
			v, st.sndbufErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
			st.sndbufSeen = max(st.sndbufSeen, v)
		}
	}
	if err := st.rc.Control(st.sndbufFn); err != nil {
		return err
	}
	return os.NewSyscallError("getsockopt SO_SNDBUF", st.sndbufErr)
}

// zcFinish waits (two seconds at most) for the last notifications, so the COPIED count
// covers the whole run.
func (st *stream) zcFinish() {
	z := st.zc
	if z.t.next == z.t.base {
		return
	}
	st.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	z.target = z.t.next - 1
	for !z.t.doneThrough(z.target) && st.rc.Write(z.waitFn) == nil && z.err == nil {
	}
}

// frame writes the header (and with --verify the payload) of message seq into st.msg.
func (st *stream) frame(seq uint64, now int64) {
	spec := &st.s.spec
	switch spec.Format {
	case wire.FormatNative:
		h := wire.Header{Streams: uint16(spec.Streams), Stream: st.id, Length: uint32(len(st.msg) - wire.HeaderLen),
			Seq: seq, TimeNS: now, Lanes: uint32(max(st.lanes, len(st.flows))), TestID: spec.TestID}
		if spec.Verify {
			p := st.msg[wire.HeaderLen:]
			wire.FillPattern(p, st.id, seq)
			h.Flags, h.CRC = wire.FlagVerify, wire.CRC32C(p)
		}
		if spec.RTT > 0 && seq%uint64(spec.RTT) == 0 {
			h.Flags |= wire.FlagRTT // the receiver reflects this header (rtt.go)
		}
		h.Put(st.msg)
	case wire.FormatNettest:
		crc := st.nettestCRC
		if spec.Verify {
			p := st.msg[wire.NettestHeaderLen:]
			wire.FillPattern(p, st.id, seq)
			crc = wire.NettestCRC(0, p)
		}
		wire.PutNettest(st.msg, len(st.msg), crc)
	}
}

// send hands st.msg to the socket. Poll IO runs the step inside RawConn.Write, which
// parks the goroutine in the netpoller whenever the step returns false (only after
// EAGAIN: the poller is edge-triggered, internal/poll). Block IO calls the step on the
// dup'd blocking fd; EAGAIN there means SO_SNDTIMEO expired.
//
// Poll is the default. Measured here (TCP loopback, 64 KiB, 2 GiB runs, sender on CPU0,
// receiver on CPU1, 4 interleaved runs): poll 277/309/320/295 ms CPU per GiB, block
// 322/362/290/308. On loopback the sender is the bottleneck (it also runs the receive
// softirq), so the socket is rarely full: ~2 EAGAIN waits per 2 GiB, and parking in the
// poller costs nothing measurable. Poll keeps deadlines (Stop's grace) and Close working.
func (st *stream) send() error {
	if st.flows != nil { // --flows: the next socket of the round
		st.rc = st.flows[st.flow]
		st.flow = (st.flow + 1) % len(st.flows)
	}
	if st.blockd < 0 {
		if err := st.rc.Write(st.step); err != nil {
			return err
		}
		return st.err
	}
	for !st.step(uintptr(st.blockd)) {
		if st.s.stop.Load() {
			return errors.New("stopped while the socket stayed full")
		}
	}
	return st.err
}

// runBatch is the send loop of mmsg and gso: a batch of datagrams per syscall, framed
// from consecutive ring slots (contiguous: the ring is a multiple of the batch), the
// pacer and the stop flag consulted once per batch.
func (st *stream) runBatch() error {
	spec := &st.s.spec
	u := st.u
	size := spec.Size
	for seq := uint64(0); st.limit < 0 || seq < uint64(st.limit); {
		if st.s.stop.Load() {
			break
		}
		k := u.batch
		if st.limit >= 0 {
			k = int(min(uint64(k), uint64(st.limit)-seq))
		}
		if !spec.HotBuffer {
			k = min(k, st.ring.Left()) // a burst may leave the ring mid-batch: gso needs one span
		}
		if st.pace != nil {
			if k = st.pace.Take(k, &st.s.stop); k == 0 {
				break
			}
		}
		now := st.stamp(k)
		var first int64
		bytes := 0
		for i := range k {
			sz := spec.msgSize(seq + uint64(i))
			bytes += sz
			var buf []byte
			var off int64
			if spec.HotBuffer {
				off = int64(i * size)
				buf = st.ring.Span(off, size)
			} else {
				buf, off = st.ring.Next()
			}
			if i == 0 {
				first = off
			}
			st.msg = buf[:sz]
			st.frame(seq+uint64(i), now)
			u.iov[i].Base = &buf[0]
			u.iov[i].SetLen(sz)
		}
		u.span = st.ring.Span(first, k*size)
		u.k, u.sent = k, 0
		if err := st.send(); err != nil {
			if st.s.stop.Load() {
				break
			}
			return fmt.Errorf("stream %d, datagrams %d..%d: %w", st.id, seq, seq+uint64(k)-1, hint(err))
		}
		st.c.Bytes.Add(uint64(bytes))
		st.c.Messages.Add(uint64(k))
		seq += uint64(k)
	}
	st.endNS = time.Now().UnixNano()
	return nil
}

// hint says what a send error means for the user's flags.
func hint(err error) error {
	if errors.Is(err, unix.EMSGSIZE) {
		// ip(7) IP_PMTUDISC_DO: a datagram over the path MTU is refused, not fragmented.
		return fmt.Errorf("%w: a datagram is larger than the path MTU and --df forbids fragmenting it (lower --size)", err)
	}
	return err
}

// stamp is the send time of the next call, of n messages (a batch shares it: it goes in
// one call), for the receiver's one-way latency (sink/latency.go). A clock read costs
// 55–131 ns here (kvm-clock, vDSO; BenchmarkClock, quiet to loaded), 1–3% of a 64 B UDP
// write's ~4 µs; with a read per call, bench-ab measured 228k against 251k datagrams/s
// (noisy: 167k–245k across repeats), and 244.6k against 243.1k without it. So a paced stream takes the
// pacer's reading, just made (after its sleep), and an unpaced one-message call reads
// the clock every 16 calls: its stamp is at most 15 calls old (~60 µs at 250k/s),
// within what such a stream queues anyway.
func (st *stream) stamp(n int) int64 {
	if st.pace != nil {
		if c := st.pace.Clock(); c != 0 {
			return c
		}
	}
	if n > 1 || st.stamps&15 == 0 {
		st.stampAt = time.Now().UnixNano()
	}
	st.stamps++
	return st.stampAt
}
