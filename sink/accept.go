package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
)

// Byte-stream and message receivers: accept the test's connections, send each sender
// the receiver's report, drain every connection through its sink, end the test.

// Receiver runs one test on a listener.
type Receiver struct {
	cfg      Config
	ln       proto.Listener
	progress atomic.Uint64 // bytes, all streams
	expect   atomic.Int64  // streams announced by the first native header
}

// NewReceiver receives one test on ln (which it closes); cfg must have passed Check.
func NewReceiver(cfg Config, ln proto.Listener) *Receiver {
	if cfg.Idle == 0 {
		cfg.Idle = 30 * time.Second
	}
	return &Receiver{cfg: cfg, ln: ln}
}

// Progress is the bytes received so far.
func (r *Receiver) Progress() Progress { return Progress{Bytes: r.progress.Load()} }

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
	if r.cfg.Format == wire.FormatNative {
		// The splice sink's pipe holds the sender's pages too (on loopback) until
		// /dev/null takes them: report it as part of the bound.
		extra := 0
		if r.cfg.Sink == SinkSplice {
			extra, _ = proto.Sysctl("fs/pipe-max-size")
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
	if ck.first && r.cfg.Format == wire.FormatNative && r.cfg.Streams == 0 {
		r.expect.CompareAndSwap(0, int64(max(1, ck.h.Streams)))
	}
	if st.Error != "" && err == nil {
		err = errors.New(st.Error)
	}
	return st, err
}

// learn publishes the stream count of the first native header as soon as it is seen.
func (r *Receiver) learn(ck *checker) {
	if ck.first && r.cfg.Format == wire.FormatNative && r.cfg.Streams == 0 && r.expect.Load() == 0 {
		r.expect.CompareAndSwap(0, int64(max(1, ck.h.Streams)))
	}
}

// sendHello reports this end's receive-queue bound to the sender (gen.PutHello).
func sendHello(c proto.Conn, extra int) error {
	b, err := c.Buffers()
	if err != nil {
		return err
	}
	var h [wire.HelloLen]byte
	wire.PutHello(h[:], uint64(b.RcvBufMax+extra))
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	_, err = c.Write(h[:])
	return err
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
