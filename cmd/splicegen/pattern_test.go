package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Traffic patterns end to end over loopback UDP, seen in the receiver's interval lines.
// The pacer's schedule is tested on a fake clock in gen; these check the real thing.

type ivRecord struct {
	Type     string
	At       float64 `json:"t_s"`
	Seconds  float64
	Messages uint64
	GbitS    float64 `json:"gbit_s"`
}

// intervals are the interval records of a --json-stream output.
func intervals(t *testing.T, out string) []ivRecord {
	t.Helper()
	var ivs []ivRecord
	for _, l := range strings.Split(out, "\n") {
		var r ivRecord
		if json.Unmarshal([]byte(l), &r) == nil && r.Type == "interval" {
			ivs = append(ivs, r)
		}
	}
	return ivs
}

// shortfall is the sender's rate_shortfall_pct (nil: absent).
func shortfall(t *testing.T, r result) *float64 {
	t.Helper()
	var x struct {
		Sender struct {
			Pct *float64 `json:"rate_shortfall_pct"`
		}
	}
	mustJSON(t, r.stdout, &x)
	return x.Sender.Pct
}

func pct(p *float64) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprintf("%.2f", *p)
}

// --on 1s --off 1s for 6 s at 5k pps: the receiver's 250 ms intervals show three on
// periods (~1250 datagrams each interval) with off periods of ~0 between them.
func TestPatternOnOff(t *testing.T) {
	snd, rcv := pairUDP(t, "127.0.0.1:0", []string{"--json-stream", "-i", "250ms"},
		[]string{"--json", "-s", "1000", "--pps", "5k", "--on", "1s", "--off", "1s", "-t", "6s"})
	if snd.code != 0 || rcv.code != 0 {
		t.Fatalf("exit %d/%d: %s %s", snd.code, rcv.code, snd.stderr, rcv.stderr)
	}
	var shape strings.Builder
	var counts []uint64
	for _, iv := range intervals(t, rcv.stdout) {
		counts = append(counts, iv.Messages)
		switch {
		case iv.Messages > 1250*6/10:
			shape.WriteByte('#')
		case iv.Messages < 1250/10:
			shape.WriteByte('.')
		default:
			shape.WriteByte('?') // an interval across an edge
		}
	}
	t.Logf("datagrams per 250 ms: %v (%s)", counts, shape.String())
	// On, off, on, off, on: runs of on intervals separated by off ones; '?' edges (the
	// receiver's intervals start a few ms before the sender) count as neither.
	runs := strings.FieldsFunc(shape.String(), func(r rune) bool { return r == '.' })
	var on int
	for _, r := range runs {
		if strings.Count(r, "#") >= 3 {
			on++
		}
	}
	offs := strings.FieldsFunc(strings.Trim(shape.String(), "."), func(r rune) bool { return r != '.' })
	if on != 3 || len(offs) != 2 || len(offs[0]) < 3 || len(offs[1]) < 3 {
		t.Fatalf("want three on periods and two off periods of ~1 s: %s %v", shape.String(), counts)
	}
	// Counted as owed, the off periods would be a 50% shortfall; a busy machine costs ~1-2%.
	if p := shortfall(t, snd); p == nil || *p > 5 {
		t.Fatalf("rate_shortfall_pct %s (off periods must not count as a shortfall)", pct(p))
	}
}

// --ramp 5s --rate 500M (1400 B): per-second receiver rates rise monotonically and the
// two seconds after the ramp are within 2% of 500 Mbit/s. 8 s, not 7: the receiver ends
// on the end datagrams, often before its 7th interval line.
func TestPatternRamp(t *testing.T) {
	snd, rcv := pairUDP(t, "127.0.0.1:0", []string{"--json-stream", "-i", "1s"},
		[]string{"--json", "-m", "mmsg", "-s", "1400", "--rate", "500M", "--ramp", "5s", "-t", "8s"})
	if snd.code != 0 || rcv.code != 0 {
		t.Fatalf("exit %d/%d: %s %s", snd.code, rcv.code, snd.stderr, rcv.stderr)
	}
	var mbit []float64
	for _, iv := range intervals(t, rcv.stdout) {
		if iv.Seconds > 0.9 {
			mbit = append(mbit, iv.GbitS*1000)
		}
	}
	t.Logf("receiver Mbit/s per second: %.1f", mbit)
	if len(mbit) < 7 {
		t.Fatalf("%d whole intervals, want 7: %s", len(mbit), rcv.stdout)
	}
	for i := 1; i < 5; i++ {
		if mbit[i] <= mbit[i-1] {
			t.Fatalf("second %d: %.1f Mbit/s after %.1f: not rising", i, mbit[i], mbit[i-1])
		}
	}
	// Second i of the ramp averages 500·(i+0.5)/5 Mbit/s; the receiver's seconds start a
	// few ms before the sender's, hence the wide band.
	for i := 0; i < 5; i++ {
		if want := 500 * (float64(i) + 0.5) / 5; mbit[i] < want*0.9-5 || mbit[i] > want*1.1+5 {
			t.Errorf("second %d of the ramp: %.1f Mbit/s, want ~%.0f", i, mbit[i], want)
		}
	}
	for i := 5; i < 7; i++ {
		if mbit[i] < 490 || mbit[i] > 510 {
			t.Errorf("second %d: %.1f Mbit/s, want 500 within 2%%", i, mbit[i])
		}
	}
	// Counted as owed, the ramp would be a ~31% shortfall; a busy machine costs ~1-2%.
	if p := shortfall(t, snd); p == nil || *p > 5 {
		t.Fatalf("rate_shortfall_pct %s (the ramp must not count as a shortfall)", pct(p))
	}
}

// A rate the sender cannot reach is reported: rate_shortfall_pct and one warning line.
func TestPatternShortfallWarns(t *testing.T) {
	snd, rcv := pairUDP(t, "127.0.0.1:0", []string{"--json"},
		[]string{"--json", "-m", "write", "-s", "64", "--pps", "50M", "-t", "1s"})
	if snd.code != 0 || rcv.code != 0 {
		t.Fatalf("exit %d/%d: %s %s", snd.code, rcv.code, snd.stderr, rcv.stderr)
	}
	p := shortfall(t, snd)
	if p == nil || *p < 50 || !strings.Contains(snd.stderr, "splicegen send: warning: sent") {
		t.Fatalf("50M pps of write: rate_shortfall_pct %s, stderr %q", pct(p), snd.stderr)
	}
	t.Logf("shortfall %.1f%%: %s", *p, strings.TrimSpace(snd.stderr))
	// Unpaced: no field.
	snd, _ = pairUDP(t, "127.0.0.1:0", []string{"--json"}, []string{"--json", "-n", "1000"})
	if p := shortfall(t, snd); p != nil {
		t.Fatalf("unpaced run with rate_shortfall_pct %v", *p)
	}
}

// Unpaced on/off works too (the cycle alone gates), and --burst with mmsg sends a burst
// as one batch.
func TestPatternUnpacedOnOffAndBurstBatches(t *testing.T) {
	snd, rcv := pairUDP(t, "127.0.0.1:0", []string{"--json-stream", "-i", "100ms"},
		[]string{"--json", "-m", "mmsg", "-s", "1000", "--on", "100ms", "--off", "200ms", "-t", "900ms"})
	if snd.code != 0 || rcv.code != 0 {
		t.Fatalf("exit %d/%d: %s %s", snd.code, rcv.code, snd.stderr, rcv.stderr)
	}
	// At full speed the receiver's queue drains into the off period: idle means under 1%
	// of the busiest interval.
	var busiest uint64
	ivs := intervals(t, rcv.stdout)
	for _, iv := range ivs {
		busiest = max(busiest, iv.Messages)
	}
	var idle int
	var shape []string
	for _, iv := range ivs {
		shape = append(shape, fmt.Sprint(iv.Messages))
		if iv.Messages < busiest/100 {
			idle++
		}
	}
	if idle < 2 {
		t.Fatalf("unpaced --on 100ms --off 200ms: datagrams per 100 ms %v, want idle intervals", shape)
	}
	snd, _ = pairUDP(t, "127.0.0.1:0", []string{"--json"},
		[]string{"--json", "-m", "mmsg", "-s", "1000", "--pps", "20k", "--burst", "32", "-n", "3200"})
	s, _ := decodeUDP(t, snd)
	if st := s.Detail.Streams[0]; snd.code != 0 || s.Messages != 3200 || st.SendmmsgCalls != 100 {
		t.Fatalf("--burst 32 of 3200 datagrams: exit %d, %d sent in %d sendmmsg calls (want 100)", snd.code, s.Messages, st.SendmmsgCalls)
	}
}
