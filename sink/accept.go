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

	"github.com/splicegen/splicegen/ifstat"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
)

// Byte-stream and message receivers: accept connections, admit only the test's own
// (docs/design.md#trust), drain each through its sink, end the test, and send the
// verdict back on every stream.
//
// Admission: every accepted connection gets the receiver's report at once, then has
// --idle to send its first header, read into a small buffer by its own goroutine (no
// sink buffer yet). The first valid native header starts the test and fixes its id and
// stream count; a connection that closes, stays silent or sends garbage first, one of
// another test, or one beyond the announced streams is a stray: counted, closed, and the
// receiver goes on waiting. At most maxPending connections wait for admission at once.

// maxPending bounds the connections waiting for their first header (each costs a
// goroutine, a socket and a 48-byte buffer: a few KiB).
const maxPending = 4096

// acceptor accepts connections and admits them (report sent, first header read) for as
// long as the endpoint is open, between tests too; the current test's Receiver takes the
// admitted ones.
type acceptor struct {
	ln       proto.Listener
	cfg      Config
	admitted chan first
	errc     chan error
	quit     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	waiting  map[proto.Conn]bool // accepted, not yet taken by a test
	pending  atomic.Int64
	strays   strayCounts
}

func newAcceptor(ln proto.Listener, cfg Config) *acceptor {
	a := &acceptor{ln: ln, cfg: cfg, admitted: make(chan first), errc: make(chan error, 1),
		quit: make(chan struct{}), waiting: map[proto.Conn]bool{}}
	go a.loop()
	return a
}

// loop accepts until the listener fails. Running out of file descriptors is not the end
// of a test (the connection waits in the backlog): it backs off and retries.
func (a *acceptor) loop() {
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				a.strays.refused.Add(1)
				select {
				case <-a.quit:
					return
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			a.errc <- err
			return
		}
		if a.pending.Load() >= maxPending {
			c.Close()
			a.strays.refused.Add(1)
			continue
		}
		a.pending.Add(1)
		a.mu.Lock()
		a.waiting[c] = true
		a.mu.Unlock()
		go func() {
			f := a.admit(c)
			select {
			case a.admitted <- f:
			case <-a.quit:
				c.Close()
			}
		}()
	}
}

// take marks an admitted connection as the test's (or a stray's) to close.
func (a *acceptor) take(f first) {
	a.pending.Add(-1)
	a.mu.Lock()
	delete(a.waiting, f.c)
	a.mu.Unlock()
}

func (a *acceptor) close() error {
	var err error
	a.once.Do(func() {
		close(a.quit)
		err = a.ln.Close()
		a.mu.Lock()
		for c := range a.waiting {
			c.Close()
		}
		a.mu.Unlock()
	})
	return err
}

// Receiver runs one test on an endpoint's acceptor.
type Receiver struct {
	cfg       Config
	lossFails bool
	acc       *acceptor
	progress  atomic.Uint64 // bytes, all streams
	msgs      atomic.Uint64 // messages checked so far, all streams (added per read, not per message)
	corrupt   atomic.Uint64 // corrupt messages so far (added per read, when it changed)
	lat       latencies
	remote    atomic.Bool // a stream came from an address not of this host (latency's clock)
}

// Progress is the bytes received so far.
func (r *Receiver) Progress() Progress {
	return Progress{Bytes: r.progress.Load(), Messages: r.msgs.Load(), Corrupt: r.corrupt.Load()}
}

// first is what admission read of a connection: its first header (or first bytes).
type first struct {
	c    proto.Conn
	b    []byte
	h    wire.Header
	lane int
	eor  bool
	err  error
	kind *atomic.Uint64 // the stray counter when err != nil
}

type result struct {
	c    proto.Conn
	st   StreamStats
	echo *echoer
	err  error
}

// Run drains the test's admitted connections until every expected stream has ended,
// ctx ends (interrupt: what arrived is still reported) or the test goes idle. started is
// called when the first stream is admitted: the measurement window opens there. Strays
// seen while it runs (or since the previous test) are counted in its stats.
func (r *Receiver) Run(ctx context.Context, started func()) (*Stats, error) {
	a := r.acc
	base := a.strays.snapshot()
	var (
		mu       sync.Mutex
		open     []proto.Conn // admitted
		results  = make(chan result)
		stats    = &Stats{Sink: r.cfg.Sink}
		test     = r.cfg.TestID // 0: the first admitted header's
		claimed  bool
		expected = r.cfg.Streams
		streams  = map[uint32]bool{}
		begin    time.Time
		running  int
		errs     []error
		echoes   = map[proto.Conn]*echoer{}
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
	errc := a.errc // nil once its error is taken (a nil channel never delivers)
	done := ctx.Done()
	finish := func() (*Stats, error) {
		stats.Real = time.Since(begin)
		stats.Expected = max(expected, 1)
		stats.Strays = a.strays.snapshot().minus(base)
		stats.Latency = r.lat.result(Clock(!r.remote.Load()))
		code, why := stats.Verdict(r.cfg, r.lossFails)
		stats.Code, stats.Why = code, why
		if r.cfg.Format == wire.FormatNative {
			r.sendVerdict(open, echoes, test, stats)
		}
		closeAll()
		return stats, joinFew(errs)
	}
	for {
		select {
		case f := <-a.admitted:
			a.take(f)
			if f.err != nil {
				f.c.Close()
				f.kind.Add(1)
				continue
			}
			if stopping {
				f.c.Close()
				continue
			}
			id := uint32(len(streams))
			if r.cfg.Format == wire.FormatNative {
				id = f.h.Stream
				want := expected // the test's stream count, or what this header would make it
				if !claimed && want == 0 {
					want = max(1, int(f.h.Streams))
				}
				switch {
				case test != 0 && f.h.TestID != test:
					f.c.Close()
					a.strays.otherTest.Add(1)
					continue
				case streams[id] || int(id) >= want:
					// Checked before the header may fix the test: a bad stream id must not
					// claim the test id and lock the real sender out.
					f.c.Close()
					a.strays.extra.Add(1)
					continue
				}
				if !claimed {
					test, expected, claimed = f.h.TestID, want, true
					stats.Announced = int(f.h.Streams)
				}
			} else if expected == 0 {
				expected = 1
			}
			if len(streams) >= expected {
				f.c.Close()
				a.strays.extra.Add(1)
				continue
			}
			streams[id] = true
			if begin.IsZero() {
				stats.Peer = ifstat.AddrIP(f.c.RemoteAddr())
				begin = time.Now()
				idleSince = begin
				if started != nil {
					started()
				}
			}
			mu.Lock()
			open = append(open, f.c)
			mu.Unlock()
			running++
			go func() {
				st, e, err := r.drain(f, test)
				results <- result{f.c, st, e, err}
			}()
		case res := <-results:
			running--
			stats.Streams = append(stats.Streams, res.st)
			if e := res.echo; e != nil {
				echoes[res.c] = e
				stats.Echoes += e.sent
				stats.EchoDrops += e.dropped
			}
			if res.err != nil && !stopping {
				errs = append(errs, fmt.Errorf("stream %d: %w", res.st.Stream, res.err))
			}
			if running == 0 && (stopping || len(stats.Streams) >= expected) {
				return finish()
			}
		case err := <-errc:
			errc = nil
			a.errc <- err // a later test (--keep) sees it too
			if begin.IsZero() {
				return stats, err
			}
			if !stopping {
				errs = append(errs, err)
				stopping = true
				closeAll()
			}
		case <-done:
			done = nil // closed for good: do not spin on it while the streams drain
			if begin.IsZero() {
				stats.Strays = a.strays.snapshot().minus(base)
				return stats, ctx.Err()
			}
			if !stopping {
				stopping = true
				stats.Interrupted = true
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
			return finish()
		}
	}
}

// admit sends the receiver's report and reads the connection's first header (native,
// nettest) or first byte (raw), waiting --idle at most.
func (r *acceptor) admit(c proto.Conn) first {
	f := first{c: c}
	if r.cfg.Format == wire.FormatNative {
		// The splice sink's pipe holds the sender's pages too (on loopback) until
		// /dev/null takes them: report it as part of the bound.
		extra := 0
		if r.cfg.Sink == SinkSplice {
			extra, _ = proto.Sysctl("fs/pipe-max-size")
		}
		if err := sendHello(c, extra); err != nil {
			f.err, f.kind = err, &r.strays.closed
			return f
		}
	}
	f.b = make([]byte, max(1, r.cfg.Format.HeaderSize()))
	// --idle, but at least a minute: a sender sets up every stream (a page ring each)
	// before its first stream sends, and -P 1024 can take that long.
	c.SetReadDeadline(time.Now().Add(max(r.cfg.Idle, time.Minute)))
	defer c.SetReadDeadline(time.Time{})
	var n int
	var err error
	if mr, ok := c.(proto.MessageReader); ok {
		n, f.lane, f.eor, err = mr.ReadMessage(f.b)
		if err == nil && n == 0 {
			err = io.EOF
		} else if err == nil && n < len(f.b) {
			err = io.ErrUnexpectedEOF // a message shorter than a header: not ours
		}
	} else {
		n, err = io.ReadFull(c, f.b)
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		f.err, f.kind = err, &r.strays.silent
	case errors.Is(err, io.ErrUnexpectedEOF) && n > 0:
		f.err, f.kind = err, &r.strays.garbage
	case err != nil:
		f.err, f.kind = err, &r.strays.closed
	case r.cfg.Format == wire.FormatNative:
		// An end frame may come first: a stream that sent no message (-P 4 -n 2).
		if err := wire.ParseHeader(f.b, &f.h); err != nil || f.h.TestID == 0 || f.h.Streams == 0 || int(f.h.Streams) > maxStreams ||
			f.h.Flags&wire.FlagEnd != 0 && f.h.Length != wire.EndPayloadLen {
			f.err, f.kind = errors.New("not a native header"), &r.strays.garbage
		}
	case r.cfg.Format == wire.FormatNettest:
		if _, _, err := wire.ParseNettest(f.b); err != nil {
			f.err, f.kind = err, &r.strays.garbage
		}
	}
	return f
}

// drain receives one admitted connection to EOF (the connection stays open for the
// verdict); a native byte stream's echoer comes back with its figures.
func (r *Receiver) drain(f first, test uint64) (StreamStats, *echoer, error) {
	if mr, ok := f.c.(proto.MessageReader); ok {
		st, err := r.drainMessages(mr, f, test)
		return st, nil, err
	}
	ck := newChecker(r.cfg.Format, r.cfg.Verify, r.cfg.Size, test, false)
	ck.lat = r.latency(f.c)
	defer r.lat.add(ck.lat)
	if rc, err := f.c.SyscallConn(); err == nil && r.cfg.Format == wire.FormatNative {
		ck.echo = newEchoer(rc)
	}
	var err error
	if r.cfg.Sink == SinkSplice {
		err = r.drainSplice(f, ck)
	} else {
		ck.feed(f.b)
		r.progress.Add(uint64(len(f.b)))
		err = r.drainRead(f.c, ck)
	}
	st := ck.end()
	if st.Error != "" && err == nil {
		err = errors.New(st.Error)
	}
	return st, ck.echo, err
}

// sendVerdict writes the test's verdict back on every admitted stream (two seconds at
// most each: a sender that is gone does not hold the receiver), after the rest of an
// echo the socket took in part (the sender reads whole frames).
func (r *Receiver) sendVerdict(conns []proto.Conn, echoes map[proto.Conn]*echoer, test uint64, st *Stats) {
	t := st.Totals()
	v := wire.Verdict{Code: uint8(st.Code), TestID: test, Messages: t.Messages, Bytes: t.Bytes,
		Problems: t.Corrupt + t.Lost + t.Duplicate + t.Reordered}
	var b [wire.VerdictLen]byte
	v.Put(b[:])
	for _, c := range conns {
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if rest := echoes[c].rest(); len(rest) > 0 {
			c.Write(rest)
		}
		c.Write(b[:]) // best effort: the verdict is also in this receiver's own report
	}
}

// sendHello reports this end's receive-queue bound to the sender (wire.PutHello).
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
