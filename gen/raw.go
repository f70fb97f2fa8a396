package gen

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data path's syscalls on non-blocking descriptors go through sys, which makes them
// raw (RawSyscall6: no entersyscall/exitsyscall) when the stream uses the poller.
//
// Why: --cpu pins the process and sets GOMAXPROCS to the CPU count (1 for a pinned
// side). A 64 KiB splice, write or read outlasts sysmon's 20 µs check, so sysmon retakes
// the P from the thread in the syscall and wakes another thread for it (runtime/proc.go,
// retake and handoffp); the first thread then parks at syscall exit. Measured on main
// (perf, pinned 4 GiB TCP runs): sysmon 11.6% of the sender's samples and 21% of the
// receiver's, 13.6k context switches per GiB against iperf3's 0.6k. These calls never
// block (O_NONBLOCK: EAGAIN parks the goroutine in the poller instead), so holding the P
// for their length costs nothing; the Go scheduler still preempts the goroutine between
// them. The blocking descriptor of --io block keeps the ordinary call.
func (st *stream) sys(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, error) {
	var r uintptr
	var e unix.Errno
	if st.blockd < 0 {
		r, _, e = unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	} else {
		r, _, e = unix.Syscall6(trap, a1, a2, a3, a4, a5, a6)
	}
	return r, errno(e)
}

// vmsplice passes SPLICE_F_NONBLOCK: the pipe's O_NONBLOCK does not reach vmsplice, which
// waits for room in a full pipe unless the flag is given (fs/splice.c, wait_for_space).
// Only this thread drains the pipe, so a wait there would never end.
func (st *stream) vmsplice(iov []unix.Iovec) (int, error) {
	r, err := st.sys(unix.SYS_VMSPLICE, uintptr(st.pw), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), unix.SPLICE_F_NONBLOCK, 0, 0)
	return int(r), err
}

func (st *stream) splice(fd uintptr, n, flags int) (int64, error) {
	r, err := st.sys(unix.SYS_SPLICE, uintptr(st.pr), 0, fd, 0, uintptr(n), uintptr(flags))
	return int64(r), err
}

func (st *stream) write(fd uintptr, b []byte) (int, error) {
	r, err := st.sys(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	return int(r), err
}

// sendBuf is send(2) (sendto without an address): write(2)'s copy without the VFS layer
// (vfs_write, fdget_pos, sock_write_iter: 8% of a 64 B UDP write sender's perf samples),
// for datagrams (dgramWriteStep). Measured 64 B, 3 s x 4 interleaved: +2 to +5% pps.
func (st *stream) sendBuf(fd uintptr, b []byte) (int, error) {
	r, err := st.sys(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	return int(r), err
}

func (st *stream) sendfile(fd uintptr, off *int64, n int) (int, error) {
	r, err := st.sys(unix.SYS_SENDFILE, fd, uintptr(st.ring.Fd()), uintptr(unsafe.Pointer(off)), uintptr(n), 0, 0)
	return int(r), err
}
