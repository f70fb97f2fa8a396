package gen

import (
	"sync/atomic"
	"time"
)

// Pacer spaces messages at a fixed rate: a token bucket on an absolute schedule that
// sleeps (never spins). The schedule runs ahead of the clock by at most Ahead (the
// burst, at least one batch), then the pacer sleeps until the clock catches up; so a
// sleep that oversleeps is made up by the next burst and the long-run rate is exact.
// Falling more than Behind behind (the sender can't keep up, or was descheduled) drops
// the excess debt instead of blasting it out later.
type Pacer struct {
	interval float64 // ns per message
	ahead    float64 // ns
	behind   float64 // ns
	next     float64 // ns: when the next message is due
	started  bool

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

// NewPacer paces perSec messages per second, sent batch at a time.
func NewPacer(perSec float64, batch int) *Pacer {
	iv := 1e9 / perSec
	// Sending may run ahead of the schedule by less than one batch: a batch of n waits
	// for its first message's slot, so allowing n intervals would send two batches at
	// once (seen at --pps 1 as pairs every two seconds).
	ahead := max(minAhead, float64(batch-1)*iv)
	return &Pacer{interval: iv, ahead: ahead, behind: max(minBehind, 4*ahead),
		Now: func() int64 { return time.Now().UnixNano() }, Sleep: time.Sleep}
}

// Wait blocks until n more messages may go. It returns false if stop was set while it
// slept (the messages must not be sent).
func (p *Pacer) Wait(n int, stop *atomic.Bool) bool {
	t := float64(p.Now())
	if !p.started {
		p.next, p.started = t, true
	}
	if t-p.next > p.behind {
		p.next = t - p.behind
	}
	if d := p.next - t; d > p.ahead {
		p.Sleeps++
		for d > 0 {
			if stop != nil && stop.Load() {
				return false
			}
			p.Sleep(time.Duration(min(d, float64(maxSleep)))) // in float: d may overflow a Duration
			d = p.next - float64(p.Now())
		}
	}
	p.next += float64(n) * p.interval
	return true
}

// perStream is a stream's share of the spec's pace in messages per second (0: none).
func (s *Spec) perStream() float64 {
	r := s.PPS
	if s.Rate > 0 {
		r = s.Rate / 8 / s.meanSize()
	}
	return r / float64(s.Streams)
}
