package sink

import (
	"fmt"
	"os"
	"syscall"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// The splice sink: socket → pipe → /dev/null.

// drainSplice moves the socket's data into a pipe with splice(2) and from there to
// /dev/null (no copy to user space; docs/kernel.md#tcp-sender-cpu: 20-30% less receiver sys time).
// Without --verify nothing is parsed: messages are bytes / message size, the size from
// --size or from a MSG_PEEK of the first native header. With --verify the pipe is read
// into a buffer and checked like the read sink (a copy, so its CPU is not comparable).
func (r *Receiver) drainSplice(c proto.Conn, ck *checker) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if lim, err := proto.Sysctl("fs/pipe-max-size"); err == nil {
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, lim)
	}
	pcap, _ := unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	pcap = max(pcap, 4096)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	nullfd := int(null.Fd())

	parse := ck.verify || ck.format == wire.FormatNettest && ck.size == 0
	var buf []byte
	if parse {
		buf = make([]byte, pcap)
	} else if ck.format == wire.FormatNative {
		if err := peekNative(rc, ck); err != nil {
			return err
		}
		r.learn(ck)
	}
	var n int64
	var serr error
	eof := false
	fill := func(fd uintptr) bool {
		// SPLICE_F_NONBLOCK: the pipe side never blocks; the socket is O_NONBLOCK, so
		// EAGAIN means "no data": wait in the poller.
		n, serr = unix.Splice(int(fd), nil, p[1], nil, pcap, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		return serr != unix.EAGAIN
	}
	for !eof {
		if err := rc.Read(fill); err != nil {
			return err
		}
		if serr == unix.EINTR {
			continue
		}
		if serr != nil {
			return os.NewSyscallError("splice", serr)
		}
		if n == 0 {
			eof = true
			break
		}
		r.progress.Add(uint64(n))
		for left := int(n); left > 0; {
			var m int
			var err error
			if parse {
				m, err = unix.Read(p[0], buf[:min(left, len(buf))])
				if m > 0 {
					ck.feed(buf[:m])
					r.learn(ck)
				}
			} else {
				var m64 int64
				m64, err = unix.Splice(p[0], nil, nullfd, nil, left, unix.SPLICE_F_MOVE)
				m = int(m64)
				ck.st.Bytes += uint64(max(m, 0))
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return os.NewSyscallError("drain pipe", err)
			}
			left -= m
		}
	}
	if !parse && ck.st.MsgSize > 0 {
		ck.st.Messages = ck.st.Bytes / uint64(ck.st.MsgSize)
		ck.st.Truncated = ck.st.Bytes % uint64(ck.st.MsgSize)
		ck.format = wire.FormatRaw // end() must not recount
	}
	return nil
}

// peekNative reads the first native header with MSG_PEEK (recv(2)), leaving it queued,
// to learn the message size and stream count without parsing the stream.
func peekNative(rc syscall.RawConn, ck *checker) error {
	var hdr [wire.HeaderLen]byte
	var n int
	var perr error
	var finRcvd bool
	err := rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), hdr[:], unix.MSG_PEEK)
		if perr == unix.EAGAIN {
			return false
		}
		if perr != nil || n == 0 || n == len(hdr) {
			return true
		}
		// Part of a header is queued. MSG_PEEK leaves it there, so the socket stays
		// readable without a new edge: wait for the next one (more data, or the FIN),
		// unless the FIN is already in (tcp(7) TCP_INFO: CLOSE_WAIT).
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO); err == nil && ti.State == tcpCloseWait {
			finRcvd = true
			return true
		}
		return false
	})
	if err != nil {
		return err
	}
	if perr != nil {
		return os.NewSyscallError("recv MSG_PEEK", perr)
	}
	if n == 0 {
		return nil // EOF before any data
	}
	if finRcvd {
		ck.breakFraming(fmt.Errorf("the peer closed after %d bytes, less than a header", n))
		return nil
	}
	var h wire.Header
	if err := wire.ParseHeader(hdr[:], &h); err != nil {
		ck.breakFraming(err)
		return nil
	}
	ck.first, ck.h, ck.st.Stream, ck.st.MsgSize = true, h, h.Stream, int(h.Length)+wire.HeaderLen
	return nil
}

// tcpCloseWait is TCP_CLOSE_WAIT (include/net/tcp_states.h): the peer's FIN arrived.
const tcpCloseWait = 8
