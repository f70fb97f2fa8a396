package gen

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// ModeZerocopy sends with MSG_ZEROCOPY (Documentation/networking/msg_zerocopy.rst): the
// kernel pins the buffer and reports, on the socket's error queue, when it is done with
// it. Buffers are recycled exactly on those notifications, so any ring size is safe.
const ModeZerocopy = "zerocopy"

// zcWindow bounds the notification ids in flight (completion flags kept per id).
const zcWindow = 1 << 16

// zcTracker follows MSG_ZEROCOPY notification ids. Every send(2) with MSG_ZEROCOPY that
// queues data takes the socket's next 32-bit id (from 0, wrapping); the kernel reports
// completed ranges [lo, hi] (ee_info, ee_data), coalescing neighbours, possibly out of
// order. base is the lowest id not yet completed: every id before it is done.
type zcTracker struct {
	next, base  uint32
	done        [zcWindow]bool
	completions uint64 // ids completed
	copied      uint64 // ids whose completion said SO_EE_CODE_ZEROCOPY_COPIED
}

// sent takes the id of one successful send.
func (t *zcTracker) sent() uint32 {
	id := t.next
	t.next++
	return id
}

// full reports that no more sends may be issued before completions arrive.
func (t *zcTracker) full() bool { return t.next-t.base >= zcWindow-1 }

// inFlight reports whether id was sent and has not completed.
func (t *zcTracker) inFlight(id uint32) bool {
	return id-t.base < t.next-t.base && !t.done[id%zcWindow]
}

// complete marks [lo, hi] (inclusive, wrapping) and advances base.
func (t *zcTracker) complete(lo, hi uint32, copied bool) {
	n := uint64(hi-lo) + 1
	for id := lo; ; id++ {
		if t.inFlight(id) {
			t.done[id%zcWindow] = true
		}
		if id == hi {
			break
		}
	}
	t.completions += n
	if copied {
		t.copied += n
	}
	for t.base != t.next && t.done[t.base%zcWindow] {
		t.done[t.base%zcWindow] = false
		t.base++
	}
}

// doneThrough reports whether every id up to and including id has completed.
func (t *zcTracker) doneThrough(id uint32) bool { return int32(id-t.base) < 0 }

// zcState is a stream's MSG_ZEROCOPY bookkeeping.
type zcState struct {
	t      zcTracker
	last   []uint32 // per ring buffer: the last id that sent from it
	used   []bool
	target uint32 // id reclaim waits for
	msg    unix.Msghdr
	iov    unix.Iovec
	oob    [256]byte
	err    error
	waitFn func(fd uintptr) bool
}

// setupZerocopy turns SO_ZEROCOPY on (socket(7); Linux 4.14, commit 76851d1212c1).
func (st *stream) setupZerocopy() error {
	if err := proto.SetInt(st.rc, unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1, "SO_ZEROCOPY"); err != nil {
		return proto.Usagef("--mode zerocopy: %v (this kernel or socket can't)", err)
	}
	z := &zcState{last: make([]uint32, st.ring.Len()), used: make([]bool, st.ring.Len())}
	z.waitFn = func(fd uintptr) bool {
		if z.err = st.zcDrain(fd); z.err != nil {
			return true
		}
		return z.t.doneThrough(z.target)
	}
	st.zc = z
	return nil
}

// zcReclaim waits until ring buffer i is no longer referenced by the kernel. Completions
// arrive on the error queue, signalled by a bare EPOLLERR: Go's poller wakes writers on
// it but fails readers with ErrNotPollable (runtime/netpoll.go), so the wait is a
// RawConn.Write whose callback drains the error queue.
func (st *stream) zcReclaim(i int) error {
	z := st.zc
	if !z.used[i] {
		return nil
	}
	z.target = z.last[i]
	for !z.t.doneThrough(z.target) {
		if err := st.rc.Write(z.waitFn); err != nil {
			return err
		}
		if z.err != nil {
			return z.err
		}
	}
	return nil
}

// zcStep sends st.msg with MSG_ZEROCOPY.
func (st *stream) zcStep(fd uintptr) bool {
	z := st.zc
	for st.done < len(st.msg) {
		if z.t.full() {
			if st.err = st.zcDrain(fd); st.err != nil {
				return true
			}
			if z.t.full() {
				return false // woken by the next completion's EPOLLERR
			}
		}
		z.iov.Base = &st.msg[st.done]
		z.iov.SetLen(len(st.msg) - st.done)
		z.msg = unix.Msghdr{Iov: &z.iov, Iovlen: 1}
		n, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&z.msg)), unix.MSG_ZEROCOPY)
		st.wrCalls++
		err := errno(e)
		if e == unix.ENOBUFS {
			// Notification memory (optmem_max) or the pinned-page quota (RLIMIT_MEMLOCK
			// without CAP_IPC_LOCK, mm_account_pinned_pages) is used up; completions free
			// it, so wait as for a full socket. With nothing in flight none will come.
			if z.t.next == z.t.base {
				st.err = fmt.Errorf("sendmsg MSG_ZEROCOPY: %w with nothing in flight: one message exceeds the pinned-page limit (RLIMIT_MEMLOCK, ulimit -l) or net.core.optmem_max; use a smaller --size", e)
				return true
			}
			err = unix.EAGAIN
		}
		switch st.outcome(int64(n), err, "sendmsg MSG_ZEROCOPY") {
		case proto.Wait:
			if st.err = st.zcDrain(fd); st.err != nil {
				return true
			}
			return false
		case proto.Retry:
			continue
		case proto.Fail:
			return true
		}
		z.t.sent()
		st.done += int(n)
	}
	return true
}

// zcDrain reads every queued notification (recvmsg(2) MSG_ERRQUEUE, one
// sock_extended_err per message) without blocking.
func (st *stream) zcDrain(fd uintptr) error {
	z := st.zc
	for {
		z.msg = unix.Msghdr{Control: &z.oob[0]}
		z.msg.SetControllen(len(z.oob))
		_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&z.msg)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		switch proto.Classify(errno(e)) {
		case proto.Wait:
			return nil
		case proto.Retry:
			continue
		case proto.Fail:
			return os.NewSyscallError("recvmsg MSG_ERRQUEUE", e)
		}
		if err := z.parse(z.oob[:z.msg.Controllen]); err != nil {
			return err
		}
	}
}

var errNotZerocopy = errors.New("unexpected entry on the socket error queue (not a zerocopy notification)")

// parse walks the control messages of one error-queue message: IP_RECVERR (or
// IPV6_RECVERR) carrying struct sock_extended_err with ee_origin SO_EE_ORIGIN_ZEROCOPY
// (docs/kernel.md#msg_zerocopy-completion-notifications). No allocation.
func (z *zcState) parse(b []byte) error {
	for len(b) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			return errNotZerocopy
		}
		isErr := (h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR) || (h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_RECVERR)
		if isErr && len(data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})) {
			ee := (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
			if ee.Errno != 0 || ee.Origin != unix.SO_EE_ORIGIN_ZEROCOPY {
				return errNotZerocopy
			}
			z.t.complete(ee.Info, ee.Data, ee.Code&unix.SO_EE_CODE_ZEROCOPY_COPIED != 0)
		}
		b = rest
	}
	return nil
}
