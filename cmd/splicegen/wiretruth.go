package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/splicegen/splicegen/ifstat"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
)

// Wire truth: the interface a test's packets leave or arrive by, and its counters over
// the data phase, next to the application's counts (docs/usage.md#wire-truth).

// sendMeter reads the sender's egress interface: found from the first stream's socket
// (its bound device, else the route to its peer), read before and after the data phase.
type sendMeter struct {
	link ifstat.Link
	c0   ifstat.Counters
	err  error
}

// startSend finds the interface of c and reads its counters; a failure is kept and
// reported by result.
func startSend(c proto.Conn) *sendMeter {
	m := &sendMeter{err: fmt.Errorf("no connection")}
	if c == nil {
		return m
	}
	if m.link, m.err = ifstat.Socket(c, ifstat.AddrIP(c.RemoteAddr()), ifstat.AddrIP(c.LocalAddr())); m.err == nil {
		m.c0, m.err = ifstat.Read(m.link.Index)
	}
	return m
}

// result is the change since startSend (nil, with a notice on stderr, when unreadable).
func (m *sendMeter) result(stderr io.Writer) *report.SendWire {
	var c1 ifstat.Counters
	if m.err == nil {
		c1, m.err = ifstat.Read(m.link.Index)
	}
	if m.err != nil {
		fmt.Fprintf(stderr, "splicegen send: notice: no wire counters: %v\n", m.err)
		return nil
	}
	d := c1.Sub(m.c0)
	return &report.SendWire{Ifname: m.link.Name, TxPackets: d.TxPackets, TxBytes: d.TxBytes}
}

// recvWire is the receiver's interface (of the route back to the sender, peer) and its
// change between two readings of every interface: the receiver learns the peer only
// once the data has begun, so it reads them all then.
func recvWire(peer net.IP, before, after map[int]ifstat.Counters, stderr io.Writer) *report.RecvWire {
	if peer == nil {
		return nil // nothing came
	}
	l, err := ifstat.Route(peer, nil, 0)
	c0, ok0 := before[l.Index]
	c1, ok1 := after[l.Index]
	if err == nil && (!ok0 || !ok1) {
		err = fmt.Errorf("interface %s: no counters", l.Name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "splicegen recv: notice: no wire counters: %v\n", err)
		return nil
	}
	d := c1.Sub(c0)
	return &report.RecvWire{Ifname: l.Name, RxPackets: d.RxPackets, RxBytes: d.RxBytes}
}

// readAll reads every interface's counters (nil on failure: recvWire then says so).
func readAll() map[int]ifstat.Counters {
	m, _ := ifstat.ReadAll()
	return m
}

// preRead keeps every interface's counters fresh while a receiver waits for its test.
// The data phase's "before" reading is the one taken a tick before the latest (100 to
// 200 ms before the receiver saw data): packets that queued in the socket before it
// woke are then inside the window, as they are in its counts.
type preRead struct {
	mu         sync.Mutex
	prev, last map[int]ifstat.Counters
	quit       chan struct{}
	done       chan struct{}
}

func startPreRead() *preRead {
	p := &preRead{last: readAll(), quit: make(chan struct{}), done: make(chan struct{})}
	p.prev = p.last
	go func() {
		defer close(p.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				m := readAll()
				p.mu.Lock()
				p.prev, p.last = p.last, m
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// before stops the readings and returns the older of the last two.
func (p *preRead) before() map[int]ifstat.Counters {
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prev
}

func (p *preRead) stop() {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
}
