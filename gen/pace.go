package gen

import (
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Pattern shapes a stream's sending in time (docs/usage.md#patterns).
type Pattern struct {
	Burst   int           // messages back to back per pacing tick (0, 1: none)
	On, Off time.Duration // on/off cycles: send during On, nothing during Off (0: always on)
	Ramp    time.Duration // the rate climbs linearly from 0 over Ramp, then holds (0: none)
}

// Pacer spaces messages at a rate: a token bucket on an absolute schedule that sleeps
// (never spins). The schedule runs ahead of the clock by at most Ahead (at least one
// batch), then the pacer sleeps until the clock catches up; so a sleep that oversleeps
// is made up by the next burst and the long-run rate is exact. Falling more than Behind
// behind (the sender can't keep up, or was descheduled) drops the excess debt instead of
// blasting it out later.
//
// The schedule is a function of the time since the first Wait: cum(t) messages are due
// by t (the ramp's integral), and message m's slot is its inverse. An off period moves
// the schedule to the next on period: nothing is owed for it. Without a rate (0) only
// the on/off cycle gates.
type Pacer struct {
	clock   int64   // the last clock reading (Clock)
	rate    float64 // messages per ns (0: unpaced)
	burst   int     // messages per tick (1: per message)
	ramp    float64 // ns
	on, per float64 // on part and period of the cycle, ns (per 0: always on)
	ahead   float64 // ns
	behind  float64 // ns
	t0      int64   // the first Wait
	next    float64 // ns since t0: when the next message (or tick) is due
	left    int     // messages left of the current burst
	last    float64 // ns since t0: when the current burst began
	started bool

	// Now and Sleep are the clock (injected by tests).
	Now   func() int64
	Sleep func(time.Duration)

	Sleeps uint64 // sleeps taken
}

// Pacer constants: a burst of at least 1 ms (a thousand sleeps per second at most:
// cheap at low rates, accurate at high ones), 20 ms of debt kept.
const (
	minAhead  = float64(time.Millisecond)
	minBehind = float64(20 * time.Millisecond)
	maxSleep  = 100 * time.Millisecond // sleep in slices so Stop is seen soon
)

// NewPacer paces perSec messages per second (0: on/off only), sent batch at a time,
// shaped by pat.
func NewPacer(perSec float64, batch int, pat Pattern) *Pacer {
	p := &Pacer{rate: perSec / 1e9, burst: max(1, pat.Burst), ramp: float64(pat.Ramp),
		last: math.Inf(-1), Now: func() int64 { return time.Now().UnixNano() }, Sleep: time.Sleep}
	if pat.On > 0 && pat.Off > 0 {
		p.on, p.per = float64(pat.On), float64(pat.On+pat.Off)
	}
	if perSec > 0 {
		iv := 1e9 / perSec
		// Sending may run ahead of the schedule by less than one batch: a batch of n waits
		// for its first message's slot, so allowing n intervals would send two batches at
		// once (seen at --pps 1 as pairs every two seconds).
		p.ahead = max(minAhead, float64(batch-1)*iv)
		if p.burst > 1 {
			p.ahead, p.Sleep = 0, fineSleep // ticks are bursts: each waits for its time
		}
		p.behind = max(minBehind, 4*p.ahead)
	}
	return p
}

// fineSleep: time.Sleep in an otherwise idle process waits in epoll_wait, whose timeout
// is whole milliseconds (runtime/netpoll_epoll.go): bursts 3.2 ms apart came 2.3 or 3.3
// ms apart. So the last millisecond is slept in nanosleep(2) on this (locked) thread, a
// hrtimer (~50 us late); the thread holds its P meanwhile, hence only that millisecond.
func fineSleep(d time.Duration) {
	if d > 2*time.Millisecond {
		time.Sleep(d - time.Millisecond) // the caller sleeps again for the rest
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	unix.Nanosleep(&ts, nil) // EINTR: the caller checks the clock and sleeps again
}

// Take blocks until up to k more messages may go and returns how many (k, or the rest
// of the current burst); 0 if stop was set while it slept (nothing may be sent).
func (p *Pacer) Take(k int, stop *atomic.Bool) int {
	if p.left > 0 { // inside a burst: back to back
		g := min(k, p.left)
		p.left -= g
		return g
	}
	now := p.read()
	if !p.started {
		p.t0, p.started = now, true
	}
	t := float64(now - p.t0)
	if p.rate == 0 { // on/off only
		if s := p.gate(t); s > t && !p.sleepUntil(s, stop) {
			return 0
		}
		return k
	}
	if t-p.next > p.behind {
		p.next = t - p.behind
	}
	if s := p.gate(t); s > t { // off now: whatever is owed is forgiven
		p.next = max(p.next, s)
	}
	p.next = p.gate(p.next)
	n := k
	if p.burst > 1 {
		n = p.burst
	}
	due := p.next
	next := p.at(p.cum(due) + float64(n))
	if p.burst > 1 {
		// Bursts stay apart: a late one is made up by the next ones coming at half their
		// spacing, never by two going at once.
		due = max(due, p.last+(next-due)/2)
	}
	if due-t > p.ahead && !p.sleepUntil(due, stop) {
		return 0
	}
	p.next = next
	if p.burst > 1 {
		p.last = max(due, float64(p.read()-p.t0))
		p.left = p.burst - min(k, p.burst)
	}
	return min(k, n)
}

// read reads the clock and keeps the reading (Clock).
func (p *Pacer) read() int64 {
	p.clock = p.Now()
	return p.clock
}

// Clock is the pacer's last clock reading (ns; 0: none yet): taken in Take, after any
// sleep, so it is the send time of the messages Take let go (inside a burst, of the
// burst's first). The send loops stamp headers with it instead of reading the clock
// again (55–131 ns here per read: BenchmarkClock).
func (p *Pacer) Clock() int64 { return p.clock }

// sleepUntil sleeps until s (ns since t0) in slices; false if stop was set.
func (p *Pacer) sleepUntil(s float64, stop *atomic.Bool) bool {
	p.Sleeps++
	for d := s - float64(p.read()-p.t0); d > 0; d = s - float64(p.read()-p.t0) {
		if stop != nil && stop.Load() {
			return false
		}
		p.Sleep(time.Duration(min(math.Ceil(d), float64(maxSleep)))) // in float: d may overflow a Duration
	}
	return true
}

// gate is t if t (ns since t0) is in an on period, else the start of the next one.
func (p *Pacer) gate(t float64) float64 {
	if p.per == 0 {
		return t
	}
	c := math.Floor(t / p.per)
	if t-c*p.per < p.on {
		return t
	}
	return (c + 1) * p.per
}

// cum is how many messages the rate (with the ramp) allows from 0 to t.
func (p *Pacer) cum(t float64) float64 {
	switch {
	case t <= 0:
		return 0
	case t < p.ramp:
		return p.rate * t * t / (2 * p.ramp)
	}
	return p.rate * (t - p.ramp/2)
}

// at is cum's inverse: when c messages are due.
func (p *Pacer) at(c float64) float64 {
	if c < p.rate*p.ramp/2 {
		return math.Sqrt(2 * p.ramp * c / p.rate)
	}
	return c/p.rate + p.ramp/2
}

// Due is how many messages the schedule asked for in the first d of sending (the ramp
// and off periods counted, no debt dropped): the measure of a shortfall.
func (p *Pacer) Due(d time.Duration) float64 {
	t := float64(d)
	if p.per == 0 {
		return p.cum(t)
	}
	m := math.Floor(t / p.per) // whole cycles
	// Cycles whose on part ends within the ramp, in closed form: the ramp's integral
	// over [cP, cP+on] is rate/(2 ramp)·(2cP·on + on²).
	j := 0.0
	if p.ramp >= p.on {
		j = min(m, math.Floor((p.ramp-p.on)/p.per)+1)
	}
	n := 0.0
	if j > 0 {
		n = p.rate / (2 * p.ramp) * (p.on*p.per*j*(j-1) + j*p.on*p.on)
	}
	if j < m { // the cycle that may straddle the ramp's end, then the steady ones
		n += p.cum(j*p.per+p.on) - p.cum(j*p.per) + (m-j-1)*p.rate*p.on
	}
	a := m * p.per // the partial cycle
	return n + p.cum(min(a+p.on, t)) - p.cum(a)
}

// Paced reports whether the pacer has a rate (Due means something).
func (p *Pacer) Paced() bool { return p.rate > 0 }

// Elapsed is the time since the first Take (0: none yet).
func (p *Pacer) Elapsed(now int64) time.Duration {
	if !p.started {
		return 0
	}
	return time.Duration(now - p.t0)
}

// perStream is a stream's share of the spec's pace in messages per second (0: none).
func (s *Spec) perStream() float64 {
	r := s.PPS
	if s.Rate > 0 {
		r = s.Rate / 8 / s.meanSize()
	}
	return r / float64(s.Streams)
}
