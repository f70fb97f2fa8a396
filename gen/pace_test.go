package gen

import (
	"math"
	"testing"
	"time"
)

// fakeClock is an injected clock: Sleep advances it by the duration plus an overshoot
// (a real sleep wakes late), and work advances it per message.
type fakeClock struct {
	now       int64
	overshoot time.Duration
	slept     time.Duration
}

func (c *fakeClock) pacer(perSec float64, batch int) *Pacer {
	p := NewPacer(perSec, batch)
	p.Now = func() int64 { return c.now }
	p.Sleep = func(d time.Duration) { c.now += int64(d + c.overshoot); c.slept += d }
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
			p.Wait(tc.batch, nil)
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
	p.Wait(1, nil)
	c.now += int64(time.Second)
	start := c.now
	burst := 0
	for c.now == start {
		p.Wait(1, nil)
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
	p := NewPacer(1, 1)
	p.Now = func() int64 { return now }
	p.Sleep = func(d time.Duration) { now += int64(d) }
	var sent []int64
	for range 4 {
		p.Wait(1, nil)
		sent = append(sent, now)
	}
	for i := 1; i < len(sent); i++ {
		if gap := time.Duration(sent[i] - sent[i-1]); gap < 900*time.Millisecond {
			t.Fatalf("messages at %v: gap %v, want about 1s", sent, gap)
		}
	}
}
