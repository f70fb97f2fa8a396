package gen

import (
	"math"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injected clock: Sleep advances it by the duration plus an overshoot
// (a real sleep wakes late), and work advances it per message.
type fakeClock struct {
	now       int64
	overshoot time.Duration
	slept     time.Duration
	late      time.Duration // every lateEvery-th sleep wakes this much later still
	lateEvery int
	sleeps    int
}

func (c *fakeClock) pacer(perSec float64, batch int) *Pacer {
	return c.shaped(perSec, batch, Pattern{})
}

func (c *fakeClock) shaped(perSec float64, batch int, pat Pattern) *Pacer {
	p := NewPacer(perSec, batch, pat)
	p.Now = func() int64 { return c.now }
	p.Sleep = func(d time.Duration) {
		c.now += int64(d + c.overshoot)
		c.slept += d
		if c.sleeps++; c.lateEvery > 0 && c.sleeps%c.lateEvery == 0 {
			c.now += int64(c.late)
		}
	}
	return p
}

// Rate accuracy over 10 s of virtual time, for per-message and batched pacing, with and
// without sleeps that wake late and with per-message cost.
func TestPacerAccuracy(t *testing.T) {
	tests := []struct {
		name      string
		perSec    float64
		batch     int
		overshoot time.Duration
		cost      time.Duration // per message
	}{
		{"100kpps", 100e3, 1, 0, 0},
		{"100kpps, sleeps 80us late", 100e3, 1, 80 * time.Microsecond, 0},
		{"100kpps, 2us per message", 100e3, 1, 60 * time.Microsecond, 2 * time.Microsecond},
		{"1 Gbit/s of 1472 B", 1e9 / 8 / 1472, 1, 50 * time.Microsecond, 0},
		{"100kpps, batches of 64", 100e3, 64, 80 * time.Microsecond, 0},
		{"1 Gbit/s of 64 B, gso batches of 128", 1e9 / 8 / 64, 128, 80 * time.Microsecond, 50 * time.Nanosecond},
		{"7 kpps (1% of max)", 7e3, 1, 100 * time.Microsecond, 0},
		{"1 pps", 1, 1, time.Millisecond, 0},
	}
	for _, tc := range tests {
		c := &fakeClock{now: 1e18, overshoot: tc.overshoot}
		p := c.pacer(tc.perSec, tc.batch)
		end := c.now + int64(10*time.Second)
		var sent int
		for c.now < end {
			p.Take(tc.batch, nil)
			sent += tc.batch
			c.now += int64(tc.cost) * int64(tc.batch)
		}
		want := tc.perSec * 10
		if dev := math.Abs(float64(sent)-want) / want; dev > 0.01 && math.Abs(float64(sent)-want) > float64(tc.batch) {
			t.Errorf("%s: sent %d in 10 s, want %.0f (%.2f%% off)", tc.name, sent, want, dev*100)
		}
		// No spinning: at most ~1000 sleeps a second, at least one per burst.
		if p.Sleeps > 10*1000+10 {
			t.Errorf("%s: %d sleeps in 10 s", tc.name, p.Sleeps)
		}
	}
}

// A sender that can't keep up does not bank the debt: after a 1 s stall it resumes at
// the rate, with at most the Behind allowance sent at once.
func TestPacerForgivesLongStalls(t *testing.T) {
	c := &fakeClock{now: 1e18}
	p := c.pacer(1000, 1)
	p.Take(1, nil)
	c.now += int64(time.Second)
	start := c.now
	burst := 0
	for c.now == start {
		p.Take(1, nil)
		burst++
	}
	if burst > 25 { // 20 ms of debt at 1 kpps, plus the 1 ms burst
		t.Fatalf("%d messages sent at once after a stall", burst)
	}
}

func TestSpecPerStream(t *testing.T) {
	s := Spec{Size: 1250, Streams: 4, Rate: 1e9}
	if got := s.perStream(); got != 25000 { // 1e9/8/1250 = 100k msgs/s over 4 streams
		t.Fatalf("perStream = %v", got)
	}
	s = Spec{Size: 64, Streams: 2, PPS: 100e3}
	if got := s.perStream(); got != 50e3 {
		t.Fatalf("perStream = %v", got)
	}
}

// One message per interval, not pairs: the allowance to run ahead must stay below one
// batch (review finding: --pps 1 sent two messages every two seconds).
func TestPacerNoDoubleBurst(t *testing.T) {
	var now int64
	p := NewPacer(1, 1, Pattern{})
	p.Now = func() int64 { return now }
	p.Sleep = func(d time.Duration) { now += int64(d) }
	var sent []int64
	for range 4 {
		p.Take(1, nil)
		sent = append(sent, now)
	}
	for i := 1; i < len(sent); i++ {
		if gap := time.Duration(sent[i] - sent[i-1]); gap < 900*time.Millisecond {
			t.Fatalf("messages at %v: gap %v, want about 1s", sent, gap)
		}
	}
}

// sends runs a pacer on the fake clock for d, asking k messages at a time, and returns
// each message's send time (ns since the start).
func (c *fakeClock) sends(p *Pacer, k int, d time.Duration) []int64 {
	start := c.now
	var at []int64
	for {
		g := p.Take(k, nil)
		if c.now-start >= int64(d) {
			return at
		}
		for range g {
			at = append(at, c.now-start)
		}
	}
}

// --burst: N messages at one instant per tick, ticks N intervals apart, the long-run rate
// unchanged; a batch larger than the burst is cut to it. A sleep that wakes 2.5 ms late
// is made up by the next bursts coming sooner (at least half a tick apart), not by two
// bursts at once.
func TestPacerBurst(t *testing.T) {
	for _, tc := range []struct {
		k         int // per message, and mmsg batches of 64
		lateEvery int
	}{{1, 0}, {64, 0}, {1, 10}, {64, 7}} {
		c := &fakeClock{now: 1e18, overshoot: 70 * time.Microsecond, late: 2500 * time.Microsecond, lateEvery: tc.lateEvery}
		p := c.shaped(10e3, tc.k, Pattern{Burst: 32})
		at := c.sends(p, tc.k, time.Second)
		if n := len(at); n < 9900 || n > 10032 {
			t.Fatalf("%+v: %d messages in 1 s at 10k/s", tc, n)
		}
		var ticks, odd int
		for i := 1; i < len(at); i++ {
			gap := time.Duration(at[i] - at[i-1])
			if gap == 0 {
				continue
			}
			ticks++
			if i%32 != 0 {
				t.Fatalf("%+v: a tick after message %d, not a multiple of 32", tc, i)
			}
			if gap < 1600*time.Microsecond || gap > 6000*time.Microsecond ||
				tc.lateEvery == 0 && (gap < 3200*time.Microsecond || gap > 3300*time.Microsecond) {
				odd++
			}
		}
		if ticks < 300 || odd > 0 {
			t.Fatalf("%+v: %d ticks, %d of them not ~3.2 ms (or at least 1.6 ms when late) apart", tc, ticks, odd)
		}
	}
}

// --on/--off: messages only in on periods, at the rate there; nothing in off periods.
func TestPacerOnOff(t *testing.T) {
	c := &fakeClock{now: 1e18, overshoot: 50 * time.Microsecond}
	p := c.shaped(1000, 1, Pattern{On: time.Second, Off: time.Second})
	per := make([]int, 6)
	for _, a := range c.sends(p, 1, 6*time.Second) {
		per[a/int64(time.Second)]++
	}
	for i, n := range per {
		if on := i%2 == 0; on && (n < 990 || n > 1010) || !on && n != 0 {
			t.Fatalf("messages per second %v: want ~1000, 0, ~1000, 0, ~1000, 0", per)
		}
	}
	if due := p.Due(6 * time.Second); math.Abs(due-3000) > 1 {
		t.Fatalf("due over 6 s: %v, want 3000", due)
	}
	// Unpaced: the cycle alone gates.
	c = &fakeClock{now: 1e18}
	p = c.shaped(0, 1, Pattern{On: 100 * time.Millisecond, Off: 300 * time.Millisecond})
	var in, out int
	start := c.now
	for c.now-start < int64(2*time.Second) {
		p.Take(1, nil)
		if (c.now-start)%int64(400*time.Millisecond) < int64(100*time.Millisecond) {
			in++
		} else {
			out++
		}
		c.now += int64(time.Microsecond)
	}
	if in == 0 || out > 5 {
		t.Fatalf("unpaced on/off: %d sent in on periods, %d in off periods", in, out)
	}
}

// A sender behind when an off period begins sends nothing in it, and after it resumes at
// the rate, not with the missed messages at once.
func TestPacerNoDebtAfterOff(t *testing.T) {
	c := &fakeClock{now: 1e18}
	p := c.shaped(10e3, 1, Pattern{On: time.Second, Off: time.Second})
	start := c.now
	p.Take(1, nil)
	c.now += int64(900 * time.Millisecond) // stalled for most of the on period
	var off int
	for c.now-start < int64(2*time.Second) {
		p.Take(1, nil)
		if c.now-start >= int64(time.Second) && c.now-start < int64(2*time.Second) {
			off++
		}
		if c.now-start < int64(time.Second) {
			c.now += int64(time.Microsecond)
		}
	}
	if off > 0 {
		t.Fatalf("%d messages sent in the off period", off)
	}
	// Now at the on period's start: the next 10 ms hold ~100 messages, not a blast.
	at := c.sends(p, 1, 10*time.Millisecond)
	if len(at) > 110 {
		t.Fatalf("%d messages in the first 10 ms after an off period", len(at))
	}
	// An off period shorter than the debt kept (20 ms): the debt is still forgiven.
	c = &fakeClock{now: 1e18}
	p = c.shaped(10e3, 1, Pattern{On: 10 * time.Millisecond, Off: 5 * time.Millisecond})
	start = c.now
	p.Take(1, nil)
	c.now += int64(12 * time.Millisecond) // 12 ms behind, in the off period
	p.Take(1, nil)
	if got := time.Duration(c.now - start); got < 15*time.Millisecond {
		t.Fatalf("a message at %v, in the off period", got)
	}
	if at := c.sends(p, 1, time.Millisecond); len(at) > 11 {
		t.Fatalf("%d messages in the first 1 ms after a short off period", len(at))
	}
}

// --ramp: the rate climbs linearly (per-100 ms counts rise monotonically), reaches the
// rate at the ramp's end, then holds; Due matches the count.
func TestPacerRamp(t *testing.T) {
	c := &fakeClock{now: 1e18, overshoot: 80 * time.Microsecond}
	p := c.shaped(100e3, 64, Pattern{Ramp: 5 * time.Second})
	per := make([]int, 70)
	at := c.sends(p, 64, 7*time.Second)
	for _, a := range at {
		per[min(69, a/int64(100*time.Millisecond))]++
	}
	for i := 1; i < 50; i++ {
		if per[i] < per[i-1] {
			t.Fatalf("count fell from %d to %d at %d ms: %v", per[i-1], per[i], i*100, per)
		}
		// Linear: interval i holds rate·(i+0.5)/50·0.1 s, a batch of slack each end.
		if want := 100e3 * (float64(i) + 0.5) / 50 * 0.1; math.Abs(float64(per[i])-want) > 128 {
			t.Fatalf("at %d ms: %d messages, want %.0f: %v", i*100, per[i], want, per)
		}
	}
	for i := 50; i < 69; i++ {
		if math.Abs(float64(per[i])-10e3) > 128 {
			t.Fatalf("after the ramp, %d ms: %d messages, want 10000", i*100, per[i])
		}
	}
	want := 100e3*2.5 + 100e3*2 // the ramp's half, then 2 s at the rate
	if due := p.Due(7 * time.Second); math.Abs(due-want) > 1 || math.Abs(float64(len(at))-want) > 128 {
		t.Fatalf("due %.0f, sent %d, want %.0f", due, len(at), want)
	}
}

// Due against a numerical integral of rate·on over time, for ramps and cycles that
// straddle each other.
func TestPacerDue(t *testing.T) {
	for _, pat := range []Pattern{
		{Ramp: 3 * time.Second},
		{On: 700 * time.Millisecond, Off: 300 * time.Millisecond},
		{On: 700 * time.Millisecond, Off: 300 * time.Millisecond, Ramp: 2500 * time.Millisecond},
		{On: 3 * time.Second, Off: time.Second, Ramp: time.Second},
		{On: 10 * time.Millisecond, Off: 20 * time.Millisecond, Ramp: 4 * time.Second},
	} {
		p := NewPacer(1000, 1, pat)
		for _, d := range []time.Duration{0, 100 * time.Millisecond, 2600 * time.Millisecond, 5 * time.Second, 9500 * time.Millisecond} {
			var n float64
			step := float64(10 * time.Microsecond)
			for x := step / 2; x < float64(d); x += step {
				r := 1000.0
				if x < float64(pat.Ramp) {
					r *= x / float64(pat.Ramp)
				}
				if pat.On > 0 && math.Mod(x, float64(pat.On+pat.Off)) >= float64(pat.On) {
					r = 0
				}
				n += r * step / 1e9
			}
			if got := p.Due(d); math.Abs(got-n) > 0.01 {
				t.Errorf("%+v over %v: Due %.3f, integral %.3f", pat, d, got, n)
			}
		}
	}
}

// Stop ends a long off-period sleep: Take returns 0.
func TestPacerStopInOff(t *testing.T) {
	c := &fakeClock{now: 1e18}
	p := c.shaped(0, 1, Pattern{On: time.Millisecond, Off: time.Hour})
	var stop atomic.Bool
	p.Take(1, &stop)
	c.now += int64(2 * time.Millisecond)
	stop.Store(true)
	if n := p.Take(1, &stop); n != 0 {
		t.Fatalf("Take returned %d after stop", n)
	}
}

// Clock is the last reading Take made, after any sleep: the send time the loops stamp.
func TestPacerClock(t *testing.T) {
	c := &fakeClock{now: 1_000_000_000, overshoot: 70 * time.Microsecond}
	p := c.pacer(100, 1) // 10 ms apart
	if p.Clock() != 0 {
		t.Fatal("a clock reading before any Take")
	}
	for i := 0; i < 50; i++ {
		c.now += 100 // the send itself
		if p.Take(1, nil) != 1 || p.Clock() != c.now {
			t.Fatalf("message %d: Clock %d, clock now %d", i, p.Clock(), c.now)
		}
	}
	if c.sleeps == 0 {
		t.Fatal("no sleep: the test did not cover a reading after one")
	}
}

var clockSink int64

// BenchmarkClock is the cost of the send loops' clock read (time.Now: CLOCK_REALTIME
// through the vDSO): on kvm-clock here, 2026-11-26, 55 ns/op on a quiet machine and 131
// ns/op while other tests loaded it.
func BenchmarkClock(b *testing.B) {
	for range b.N {
		clockSink += time.Now().UnixNano()
	}
}
