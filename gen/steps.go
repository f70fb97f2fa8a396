package gen

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// Step functions: one message (or batch) into the socket, called inside RawConn.Write.
// Each returns false only after EAGAIN (the poller is edge-triggered, internal/poll) and
// leaves its error in st.err.

// fillPipe vmsplices up to the next n bytes of st.msg into the pipe (non-blocking). No
// SPLICE_F_GIFT: the pipe references our pages (GIFT changed nothing measurable,
// docs/kernel.md#tcp-sender-cpu). A message that straddles more pages than the pipe has
// slots fills it only in part (EAGAIN once something is in): the caller splices that
// out and comes back for the rest. False: st.err is set.
func (st *stream) fillPipe(n int) bool {
	for end := st.done + n; st.done < end; {
		st.iov[0].Base = &st.msg[st.done]
		st.iov[0].SetLen(end - st.done)
		m, err := st.vmsplice(st.iov[:])
		st.vmCalls++
		switch proto.Classify(err) {
		case proto.Retry:
			continue
		case proto.Wait:
			if st.inPipe > 0 {
				return true // the pipe is full: pump it, then fill again
			}
			st.err = os.NewSyscallError("vmsplice", err) // an empty pipe that takes nothing
			return false
		case proto.Fail:
			st.err = os.NewSyscallError("vmsplice", err)
			return false
		}
		st.done += m
		st.inPipe += m
		st.vmBytes += uint64(m)
	}
	return true
}

// spliceStep moves st.msg through the pipe into a byte-stream socket. Invariant (as in
// Go's internal/poll/splice_linux.go): the pipe is empty between messages, so an EAGAIN
// from splice() can only mean the socket is full. A message larger than the pipe goes
// in pipe-sized chunks, each drained before the next is vmspliced.
func (st *stream) spliceStep(fd uintptr) bool {
	for {
		if st.inPipe == 0 {
			if st.done == len(st.msg) {
				return true
			}
			if !st.fillPipe(min(len(st.msg)-st.done, st.pipeCap)) {
				return true
			}
		}
		// SPLICE_F_MORE (splice(2)): more data follows, the socket may cork; left off on
		// the last chunk of the last message so nothing waits for a send that never comes.
		flags := 0
		if st.more || st.done < len(st.msg) {
			flags = unix.SPLICE_F_MORE
		}
		n, err := st.splice(fd, st.inPipe, flags)
		st.spCalls++
		switch st.outcome(n, err, "splice") {
		case proto.Wait:
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			return true
		}
		st.inPipe -= int(n)
	}
}

// dgramSpliceStep vmsplices st.msg (one datagram, or a run of them: stream.batch) into
// the pipe, then splices it into the socket a datagram per call, with no SPLICE_F_MORE
// (on UDP that corks the next call into the same datagram): splice(2) of one datagram's
// length sends exactly that datagram (docs/kernel.md#udp). EAGAIN from splice means the
// socket is full; the pipe keeps what is in it for the next call. On any error the pipe
// is drained before the error is returned (EMSGSIZE leaves the datagram in the pipe).
func (st *stream) dgramSpliceStep(fd uintptr) bool {
	size := st.dgramSize()
	for st.done < len(st.msg) || st.inPipe > 0 {
		if st.inPipe < size && st.done < len(st.msg) {
			if !st.fillPipe(len(st.msg) - st.done) {
				st.drainPipe()
				return true
			}
			if st.inPipe < size { // the pipe is sized for a whole datagram (openPipe's need)
				st.err = fmt.Errorf("vmsplice: a %d-byte datagram does not fit the pipe", size)
				st.drainPipe()
				return true
			}
		}
		n, err := st.splice(fd, size, 0)
		st.spCalls++
		switch st.outcome(n, err, "splice") {
		case proto.Wait:
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			st.drainPipe()
			return true
		}
		if int(n) != size {
			st.err = fmt.Errorf("splice: sent %d bytes of a %d-byte datagram", n, size)
			st.drainPipe()
			return true
		}
		st.inPipe -= size
	}
	return true
}

// dgramWriteStep sends st.msg (one datagram, or a run of them) a datagram per send(2)
// (sendBuf: the copy of write(2), counted as write calls).
func (st *stream) dgramWriteStep(fd uintptr) bool {
	size := st.dgramSize()
	for st.done < len(st.msg) {
		n, err := st.sendBuf(fd, st.msg[st.done:st.done+size])
		st.wrCalls++
		switch st.outcome(int64(n), err, "write") {
		case proto.Wait:
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			return true
		}
		if n != size {
			st.err = fmt.Errorf("write: sent %d bytes of a %d-byte datagram", n, size)
			return true
		}
		st.done += n
	}
	return true
}

// dgramSize is the size of each datagram in st.msg: a run's are all spec.Size (runs
// have one size); a single message is its own size (mixes).
func (st *stream) dgramSize() int {
	if st.batch > 1 {
		return st.s.spec.Size
	}
	return len(st.msg)
}

// drainPipe empties the pipe after a failed splice (error path only: it allocates).
func (st *stream) drainPipe() {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(st.pr, buf)
		if n <= 0 || err != nil {
			break
		}
	}
	st.inPipe = 0
}

// writeStep is the copy baseline: write(2) from the message buffer, rewritten at will.
func (st *stream) writeStep(fd uintptr) bool { return st.bytesStep(fd, false) }

// sendfileStep sends st.msg from the ring's memfd with sendfile(2): the socket takes
// references to the memfd's pages, the same hazard as vmsplice, so it shares the ring.
func (st *stream) sendfileStep(fd uintptr) bool { return st.bytesStep(fd, true) }

func (st *stream) bytesStep(fd uintptr, sendfile bool) bool {
	for st.done < len(st.msg) {
		var n int
		var err error
		op := "write"
		if sendfile {
			st.sfOff = st.off + int64(st.done)
			n, err = st.sendfile(fd, &st.sfOff, len(st.msg)-st.done)
			st.sfCalls++
			op = "sendfile"
		} else {
			n, err = st.write(fd, st.msg[st.done:])
			st.wrCalls++
		}
		switch st.outcome(int64(n), err, op) {
		case proto.Wait:
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			return true
		}
		st.done += n
	}
	return true
}

// mmsgStep sends the batch's remaining datagrams with sendmmsg(2), which returns how
// many went; EAGAIN only when none did.
func (st *stream) mmsgStep(fd uintptr) bool {
	u := st.u
	for u.sent < u.k {
		r, err := st.sys(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&u.mm[u.sent])), uintptr(u.k-u.sent), 0, 0, 0)
		u.mmCalls++
		switch st.outcome(int64(r), err, "sendmmsg") {
		case proto.Wait:
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			return true
		}
		u.sent += int(r)
	}
	return true
}

// Test hook: the GSO super-buffer send, swapped to inject EIO.
var gsoSendmsg = func(st *stream, fd int, msg *unix.Msghdr) error {
	_, err := st.sys(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), 0, 0, 0, 0)
	return err
}

// errno turns a raw syscall's errno into an error, nil for 0 (no allocation: errnos
// are small integers, boxed without a heap copy).
func errno(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// gsoStep sends the batch as one super-buffer with sendmsg(2) and a UDP_SEGMENT cmsg;
// the kernel cuts it into datagrams of that size. EIO means the route's device can't
// checksum-offload the segments (net/ipv4/udp.c udp_send_skb: "ip_summed !=
// CHECKSUM_PARTIAL ... -EIO"): demote to sendmmsg for the rest of the run and resend
// this batch, as wireguard-go does.
func (st *stream) gsoStep(fd uintptr) bool {
	u := st.u
	u.gsoIov[0].Base = &u.span[0]
	u.gsoIov[0].SetLen(len(u.span))
	if u.k > 1 {
		u.gsoMsg.Control = &u.gsoCtl[0]
		u.gsoMsg.SetControllen(len(u.gsoCtl))
	} else {
		u.gsoMsg.Control = nil
		u.gsoMsg.SetControllen(0)
	}
	for {
		err := gsoSendmsg(st, int(fd), &u.gsoMsg)
		if err == unix.EIO {
			u.fallback = "gso demoted to sendmmsg: " + os.NewSyscallError("sendmsg", err).Error()
			st.step = st.mmsgStep
			return st.mmsgStep(fd)
		}
		switch st.outcome(int64(len(u.span)), err, "sendmsg (gso)") { // a datagram send is all or nothing
		case proto.Wait:
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			return true
		}
		u.gsoCalls++ // super-buffers sent: the kernel's OutDatagrams counts these
		u.sent = u.k
		return true
	}
}

// outcome does every step's bookkeeping for a send syscall's result (proto.Classify: one
// errno classifier) and tells the loop what to do: Wait counts a wait for the poller and
// starts the stall clock, progress stops it, Fail records the error in st.err; a call
// that moved nothing without an error fails too (it would loop forever).
func (st *stream) outcome(n int64, err error, op string) proto.Outcome {
	o := proto.Classify(err)
	switch {
	case o == proto.Wait:
		st.waits++
		if st.waitSince.Load() == 0 {
			st.waitSince.Store(time.Now().UnixNano())
		}
	case o == proto.Fail:
		st.err = os.NewSyscallError(op, err)
	case o == proto.Done && n <= 0:
		st.err = fmt.Errorf("%s: the socket accepted 0 bytes", op)
		o = proto.Fail
	case st.waitSince.Load() != 0: // progress: a slow peer is not a stalled one
		st.waitSince.Store(0)
	}
	return o
}
