package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// Sinks.
const (
	SinkRead   = "read"   // read(2) into a buffer
	SinkSplice = "splice" // splice(2) socket → pipe → /dev/null (with --verify: → read from the pipe)
)

// Config is one receive test.
type Config struct {
	Sink    string
	Verify  bool
	Format  gen.Format
	Size    int // message size; needed for nettest/raw, learned from the header for native
	Streams int // connections to wait for; 0: from the native header, else 1
	// Idle ends a started test when no byte arrives for this long (peer gone); 0: 30s.
	Idle time.Duration
	// Stall makes the read sink sleep after every read: a slow reader whose queue stays
	// full, the worst case for the sender's page reuse.
	Stall time.Duration
}

// Stats are a whole receive's figures.
type Stats struct {
	Streams []StreamStats `json:"streams"`
	Real    time.Duration `json:"-"`
	Sink    string        `json:"sink"`
	Stray   uint64        `json:"stray,omitempty"` // UDP: datagrams with no valid header (counted corrupt)
	Ended   bool          `json:"ended,omitempty"` // UDP: every stream's end datagram arrived
}

// Totals sums the streams into one.
func (s *Stats) Totals() StreamStats {
	t := StreamStats{Corrupt: s.Stray}
	for _, st := range s.Streams {
		t.add(st)
		if st.SizeMin > 0 && (t.SizeMin == 0 || st.SizeMin < t.SizeMin) {
			t.SizeMin = st.SizeMin
		}
		t.SizeMax = max(t.SizeMax, st.SizeMax)
		t.MsgSize = max(t.MsgSize, st.MsgSize)
		if t.Error == "" {
			t.Error = st.Error
		}
	}
	return t
}

// ValidateConfig checks a receive config.
func (cfg *Config) Validate() error {
	if cfg.Sink != SinkRead && cfg.Sink != SinkSplice {
		return fmt.Errorf("%w: unknown sink %q (want read or splice)", gen.ErrUsage, cfg.Sink)
	}
	if cfg.Verify && cfg.Format == gen.FormatRaw {
		return fmt.Errorf("%w: --verify needs a framed format (native or nettest), not raw", gen.ErrUsage)
	}
	if cfg.Format == gen.FormatNettest && cfg.Size < gen.NettestHeaderLen {
		return fmt.Errorf("%w: --format nettest needs --size (the same as the sender's, at least 16)", gen.ErrUsage)
	}
	if cfg.Size < 0 || cfg.Size > gen.MaxMessage {
		return fmt.Errorf("%w: --size %d out of range", gen.ErrUsage, cfg.Size)
	}
	if cfg.Stall < 0 || cfg.Stall > time.Second {
		return fmt.Errorf("%w: --stall %v out of range 0..1s", gen.ErrUsage, cfg.Stall)
	}
	if cfg.Stall > 0 && cfg.Sink != SinkRead {
		return fmt.Errorf("%w: --stall needs --sink read", gen.ErrUsage)
	}
	if cfg.Streams < 0 || cfg.Streams > 1024 {
		return fmt.Errorf("%w: --streams %d out of range 0..1024", gen.ErrUsage, cfg.Streams)
	}
	return nil
}

// Receiver runs one test on a listener.
type Receiver struct {
	cfg      Config
	ln       proto.Listener
	progress atomic.Uint64 // bytes, all streams
	expect   atomic.Int64  // streams announced by the first native header
}

// NewReceiver checks cfg; the listener is the caller's.
func NewReceiver(cfg Config, ln proto.Listener) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Idle == 0 {
		cfg.Idle = 30 * time.Second
	}
	return &Receiver{cfg: cfg, ln: ln}, nil
}

// Progress is the bytes received so far (for interval lines).
func (r *Receiver) Progress() uint64 { return r.progress.Load() }

type result struct {
	st  StreamStats
	err error
}

// Run accepts the test's connections and drains them until every expected stream has
// ended, ctx ends (interrupt: what arrived is still reported) or the peer goes idle.
// started is called at the first accept: the measurement window opens there.
func (r *Receiver) Run(ctx context.Context, started func()) (*Stats, error) {
	conns := make(chan proto.Conn)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := r.ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			conns <- c
		}
	}()
	defer r.ln.Close()

	var (
		mu      sync.Mutex
		open    []proto.Conn
		results = make(chan result)
		stats   = &Stats{Sink: r.cfg.Sink}
		begin   time.Time
		running int
		errs    []error
	)
	closeAll := func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastBytes uint64
	idleSince := time.Now()
	stopping := false
	for {
		select {
		case c := <-conns:
			if stopping {
				c.Close()
				continue
			}
			if begin.IsZero() {
				begin = time.Now()
				if started != nil {
					started()
				}
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			running++
			go func() {
				st, err := r.drain(c)
				results <- result{st, err}
			}()
		case res := <-results:
			running--
			stats.Streams = append(stats.Streams, res.st)
			if res.err != nil && !stopping {
				errs = append(errs, fmt.Errorf("stream %d: %w", res.st.Stream, res.err))
			}
			if running == 0 && (stopping || len(stats.Streams) >= r.expected()) {
				stats.Real = time.Since(begin)
				return stats, joinFew(errs)
			}
		case err := <-acceptErr:
			if !stopping {
				return stats, err
			}
		case <-ctx.Done():
			if begin.IsZero() {
				return stats, ctx.Err()
			}
			if !stopping {
				stopping = true
				errs = append(errs, errors.New("interrupted"))
				closeAll()
			}
		case <-tick.C:
			if begin.IsZero() || stopping {
				continue
			}
			if b := r.progress.Load(); b != lastBytes {
				lastBytes, idleSince = b, time.Now()
			} else if time.Since(idleSince) > r.cfg.Idle {
				stopping = true
				errs = append(errs, fmt.Errorf("peer gone: nothing received for %v", r.cfg.Idle))
				closeAll()
			}
		}
		if stopping && running == 0 {
			stats.Real = time.Since(begin)
			return stats, joinFew(errs)
		}
	}
}

func (r *Receiver) expected() int {
	if r.cfg.Streams > 0 {
		return r.cfg.Streams
	}
	if n := r.expect.Load(); n > 0 {
		return int(n)
	}
	return 1
}

// drain receives one connection to EOF.
func (r *Receiver) drain(c proto.Conn) (StreamStats, error) {
	defer c.Close()
	ck := newChecker(r.cfg.Format, r.cfg.Verify, r.cfg.Size)
	if r.cfg.Format == gen.FormatNative {
		// The splice sink's pipe holds the sender's pages too (on loopback) until
		// /dev/null takes them: report it as part of the bound.
		extra := 0
		if r.cfg.Sink == SinkSplice {
			extra, _ = pages.Sysctl("fs/pipe-max-size")
		}
		if err := sendHello(c, extra); err != nil {
			return ck.end(), err
		}
	}
	var err error
	var st StreamStats
	if mr, ok := c.(proto.MessageReader); ok {
		return r.drainMessages(mr)
	}
	if r.cfg.Sink == SinkSplice {
		err = r.drainSplice(c, ck)
	} else {
		err = r.drainRead(c, ck)
	}
	st = ck.end()
	if ck.first && r.cfg.Format == gen.FormatNative && r.cfg.Streams == 0 {
		r.expect.CompareAndSwap(0, int64(max(1, ck.h.Streams)))
	}
	if st.Error != "" && err == nil {
		err = errors.New(st.Error)
	}
	return st, err
}

// readBuf is the read sink's buffer: big enough that one read drains a lot of the
// socket's queue (fewer syscalls), allocated once per connection.
const readBuf = 256 << 10

func (r *Receiver) drainRead(c proto.Conn, ck *checker) error {
	buf := make([]byte, readBuf)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			ck.feed(buf[:n])
			r.progress.Add(uint64(n))
			r.learn(ck)
			if r.cfg.Stall > 0 {
				time.Sleep(r.cfg.Stall)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// learn publishes the stream count of the first native header as soon as it is seen.
func (r *Receiver) learn(ck *checker) {
	if ck.first && r.cfg.Format == gen.FormatNative && r.cfg.Streams == 0 && r.expect.Load() == 0 {
		r.expect.CompareAndSwap(0, int64(max(1, ck.h.Streams)))
	}
}

// drainSplice moves the socket's data into a pipe with splice(2) and from there to
// /dev/null (no copy to user space; KERNEL-FACTS.md: 20-30% less receiver sys time).
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
	if lim, err := pages.Sysctl("fs/pipe-max-size"); err == nil {
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

	parse := ck.verify || ck.format == gen.FormatNettest && ck.size == 0
	var buf []byte
	if parse {
		buf = make([]byte, pcap)
	} else if ck.format == gen.FormatNative {
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
		ck.format = gen.FormatRaw // end() must not recount
	}
	return nil
}

// peekNative reads the first native header with MSG_PEEK (recv(2)), leaving it queued,
// to learn the message size and stream count without parsing the stream.
func peekNative(rc syscall.RawConn, ck *checker) error {
	var hdr [gen.HeaderLen]byte
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
	var h gen.Header
	if err := gen.ParseHeader(hdr[:], &h); err != nil {
		ck.breakFraming(err)
		return nil
	}
	ck.first, ck.h, ck.st.Stream, ck.st.MsgSize = true, h, h.Stream, int(h.Length)+gen.HeaderLen
	return nil
}

// tcpCloseWait is TCP_CLOSE_WAIT (include/net/tcp_states.h): the peer's FIN arrived.
const tcpCloseWait = 8

// maxSizes bounds the SCTP message-size histogram (sizes beyond it are not recorded).
// The histogram is a short slice, not a map: per message it is one compare against the
// first entry in the usual case (one or two sizes), and no hashing.
const maxSizes = 64

// drainMessages receives a message-oriented connection (SCTP): each stream id (lane)
// is its own ordered byte stream of splicegen messages, checked by its own checker, so
// a splicegen message split into several SCTP messages (a splice on Linux 6.1 sends
// one per pipe page) is reassembled before it is checked.
func (r *Receiver) drainMessages(mr proto.MessageReader) (StreamStats, error) {
	buf := make([]byte, readBuf)
	var lanes []*checker
	var sizes sizeCounts
	cur := 0
	var err error
	for {
		n, lane, eor, rerr := mr.ReadMessage(buf)
		if rerr != nil {
			err = rerr
			break
		}
		if n == 0 {
			break
		}
		for lane >= len(lanes) {
			lanes = append(lanes, nil)
		}
		ck := lanes[lane]
		if ck == nil {
			ck = newChecker(r.cfg.Format, r.cfg.Verify, r.cfg.Size)
			ck.lane = lane
			lanes[lane] = ck
		}
		ck.feed(buf[:n])
		r.progress.Add(uint64(n))
		r.learn(ck)
		cur += n
		if eor {
			sizes.count(cur)
			cur = 0
		}
	}
	var st StreamStats
	for i, ck := range lanes {
		if ck == nil {
			continue
		}
		ls := ck.end()
		st.Stream, st.MsgSize = ls.Stream, max(st.MsgSize, ls.MsgSize)
		st.add(ls)
		if st.Error == "" && ls.Error != "" {
			st.Error = fmt.Sprintf("sid %d: %s", i, ls.Error)
		}
		st.Lanes = append(st.Lanes, LaneStats{Lane: i, Messages: ls.Messages})
	}
	st.MsgSizes = sizes.toMap()
	if st.Error != "" && err == nil {
		err = errors.New(st.Error)
	}
	return st, err
}

// sendHello reports this end's receive-queue bound to the sender (gen.PutHello).
func sendHello(c proto.Conn, extra int) error {
	b, err := c.Buffers()
	if err != nil {
		return err
	}
	var h [gen.HelloLen]byte
	gen.PutHello(h[:], uint64(b.RcvBufMax+extra))
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	_, err = c.Write(h[:])
	return err
}

// joinFew joins the first three errors and counts the rest, so a test with many failed
// streams still reports one readable line.
func joinFew(errs []error) error {
	if len(errs) <= 3 {
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w (and %d more streams failed)", errors.Join(errs[:3]...), len(errs)-3)
}

type sizeCount struct {
	size int
	n    uint64
}

type sizeCounts []sizeCount

func (c *sizeCounts) count(size int) {
	for i := range *c {
		if (*c)[i].size == size {
			(*c)[i].n++
			return
		}
	}
	if len(*c) < maxSizes {
		*c = append(*c, sizeCount{size, 1})
	}
}

func (c sizeCounts) toMap() map[int]uint64 {
	m := make(map[int]uint64, len(c))
	for _, e := range c {
		m[e.size] = e.n
	}
	return m
}
