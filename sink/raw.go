package sink

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sinks' data syscalls are raw (RawSyscall6: no entersyscall/exitsyscall). They are
// made inside RawConn.Read callbacks on O_NONBLOCK sockets and pipes, so they never
// block (EAGAIN parks the goroutine in the poller). An ordinary syscall that lasts over
// sysmon's 20 µs (a 64–256 KiB read does) loses its P to a thread hand-off
// (runtime/proc.go retake, handoffp): measured on main with recv --cpu 1 (GOMAXPROCS 1),
// sysmon 21% of the receiver's perf samples, 4.4k futex and 3.1k nanosleep per GiB,
// none of which iperf3's server pays.
func sys(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, error) {
	r, _, e := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	if e != 0 {
		return r, e
	}
	return r, nil
}

// read is read(2) on a non-blocking descriptor.
func read(fd uintptr, b []byte) (int, error) {
	r, err := sys(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	return int(r), err
}
