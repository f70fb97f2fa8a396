package sink

import (
	"os"
	"syscall"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// The splice sink: socket → pipe → /dev/null.

// drainSplice moves the socket's data into a pipe with splice(2) and from there to
// /dev/null (no copy to user space; docs/kernel.md#tcp-sender-cpu: 20-30% less receiver
// sys time). Without --verify nothing is parsed: messages are bytes / message size, the
// size from the first header (admission read it) or --size, and the last EndLen bytes
// are kept in the pipe until EOF, so the end frame is read and checked. With --verify the
// pipe is read into a buffer and checked like the read sink (a copy, so its CPU is not
// comparable).
func (r *Receiver) drainSplice(f first, ck *checker) error {
	rc, err := f.c.SyscallConn()
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
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, lim) // best effort
	}
	pcap, _ := unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	pcap = max(pcap, 4096)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	nullfd := int(null.Fd())

	r.progress.Add(uint64(len(f.b)))
	// Parse the stream when checking payloads, when nettest's size is unknown, when the
	// stream is only its end frame (it sent no message), or for echoes (--rtt: message 0
	// is flagged; a copy, like --verify).
	parse := ck.verify || ck.format == wire.FormatNettest && ck.size == 0 || f.h.Flags&(wire.FlagEnd|wire.FlagRTT) != 0
	var buf []byte
	keep := 0 // the stream's last bytes kept in tail, to read the end frame at EOF
	if parse {
		buf = make([]byte, pcap)
		ck.feed(f.b)
	} else {
		ck.st.Bytes += uint64(len(f.b))
		if ck.format == wire.FormatNative {
			ck.first, ck.h, ck.st.Stream, ck.st.MsgSize = true, f.h, f.h.Stream, int(f.h.Length)+wire.HeaderLen
			keep = wire.EndLen
		}
	}
	// The tail lives in user memory, not in the pipe: kept bytes must not take pipe
	// slots (a small pipe, when fs.pipe-user-pages-soft refuses F_SETPIPE_SZ, would
	// fill with them and splice would wait forever). One read of <= 56 bytes per fill.
	var tail, more [2 * wire.EndLen]byte
	nt := 0
	var counted uint64 // messages already added to the receiver's progress
	err = r.pumpSplice(rc, p[1], pcap, func(inPipe int) error {
		for inPipe > 0 {
			var m int
			var err error
			switch {
			case parse:
				m, err = unix.Read(p[0], buf[:min(inPipe, len(buf))])
				if m > 0 {
					ck.feed(buf[:m])
				}
			case inPipe > keep: // all but the last keep bytes to /dev/null
				var m64 int64
				m64, err = unix.Splice(p[0], nil, nullfd, nil, inPipe-keep, unix.SPLICE_F_MOVE)
				m = int(m64)
				if m > 0 { // the old tail was not the end
					ck.st.Bytes += uint64(nt + m)
					nt = 0
				}
			default: // the last keep bytes (or fewer) into the tail
				m, err = unix.Read(p[0], more[:inPipe])
				if m > 0 {
					nt += copy(tail[nt:], more[:m])
					if drop := nt - keep; drop > 0 {
						ck.st.Bytes += uint64(drop)
						nt = copy(tail[:], tail[drop:nt])
					}
				}
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return os.NewSyscallError("drain pipe", err)
			}
			inPipe -= m
		}
		// Interval lines: messages checked, or whole messages drained (one add a fill).
		seen := ck.st.Messages
		if !parse && ck.st.MsgSize > 0 {
			seen = ck.st.Bytes / uint64(ck.st.MsgSize)
		}
		r.msgs.Add(seen - counted)
		counted = seen
		ck.publish(&r.corrupt)
		return nil
	})
	if parse || ck.st.MsgSize == 0 {
		return err
	}
	// The tail: the end frame when the stream is complete. Counted also when the stream
	// ended with an error (interrupt, idle, reset): what arrived is reported.
	t := nt
	if ck.format == wire.FormatNative && (ck.st.Bytes%uint64(ck.st.MsgSize)) == 0 {
		var h wire.Header
		if wire.ParseHeader(tail[:t], &h) == nil && h.TestID == ck.test && h.Flags&wire.FlagEnd != 0 && h.Stream == ck.st.Stream {
			if sent, err := wire.ParseEnd(&h, tail[wire.HeaderLen:t]); err == nil {
				ck.st.Ended, ck.st.SentMessages, ck.st.SentBytes = true, h.Seq, sent
				t = 0
			}
		}
	}
	ck.st.Bytes += uint64(t) // a tail that is not an end frame is data (cut short)
	ck.st.Messages = ck.st.Bytes / uint64(ck.st.MsgSize)
	ck.st.Truncated = ck.st.Bytes % uint64(ck.st.MsgSize)
	ck.format = wire.FormatRaw // end() must not recount
	ck.size = 0
	return err
}

// pumpSplice splices the socket into the pipe (write end pw, up to max bytes a call)
// until EOF or an error, handing each fill's byte count to drain, which empties the pipe.
func (r *Receiver) pumpSplice(rc syscall.RawConn, pw, max int, drain func(int) error) error {
	var n int64
	var serr error
	fill := func(fd uintptr) bool { // bound once per stream
		// SPLICE_F_NONBLOCK: the pipe side never blocks; the socket is O_NONBLOCK, so
		// EAGAIN means "no data": wait in the poller.
		var r uintptr
		r, serr = sys(unix.SYS_SPLICE, fd, 0, uintptr(pw), 0, uintptr(max), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		n = int64(r)
		return serr != unix.EAGAIN
	}
	for {
		if err := rc.Read(fill); err != nil {
			return err
		}
		switch proto.Classify(serr) {
		case proto.Retry:
			continue
		case proto.Fail:
			return os.NewSyscallError("splice", serr)
		}
		if n == 0 {
			return nil
		}
		r.progress.Add(uint64(n))
		if err := drain(int(n)); err != nil {
			return err
		}
	}
}
