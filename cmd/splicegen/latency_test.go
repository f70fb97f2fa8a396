package main

import (
	"strings"
	"testing"
)

// One-way latency on loopback: every message of a paced run is a sample, the
// percentiles are ordered, the clock is named; the text output prints them.
func TestLatencyLoopback(t *testing.T) {
	for _, c := range []struct {
		proto string
		send  []string
		clock string
	}{
		{"tcp", []string{"-s", "16k", "-n", "400", "--pps", "2k"}, "one host"},
		{"udp", []string{"-s", "200", "-n", "2000", "--pps", "10k"}, "share a host"},
		{"udp", []string{"-s", "200", "-n", "2000", "--pps", "10k", "-m", "mmsg"}, "share a host"},
	} {
		_, rcv := pairProto(t, c.proto, []string{"--json"}, c.send)
		var r struct {
			Receiver struct {
				Messages int64
				Latency  *struct {
					Samples  int64
					MinUs    int64   `json:"min_us"`
					P50Us    int64   `json:"p50_us"`
					P99Us    int64   `json:"p99_us"`
					MaxUs    int64   `json:"max_us"`
					JitterUs float64 `json:"jitter_us"`
					Clock    string
				}
			}
		}
		mustJSON(t, rcv.stdout, &r)
		l := r.Receiver.Latency
		if l == nil || l.Samples != r.Receiver.Messages || l.MinUs < 1 || l.P50Us < l.MinUs || l.P99Us < l.P50Us ||
			l.MaxUs < l.P99Us || l.MaxUs > 5_000_000 || !strings.Contains(l.Clock, c.clock) {
			t.Fatalf("%s %v: latency %+v for %d messages", c.proto, c.send, l, r.Receiver.Messages)
		}
		if c.proto == "udp" && l.JitterUs <= 0 {
			t.Errorf("%s: no jitter: %+v", c.proto, l)
		}
		t.Logf("%s %v: p50 %d µs, p99 %d µs, max %d µs, jitter %.1f µs", c.proto, c.send, l.P50Us, l.P99Us, l.MaxUs, l.JitterUs)
	}
	_, rcv := pairProto(t, "udp", nil, []string{"-s", "200", "-n", "100"})
	if !strings.Contains(rcv.stdout, "latency: p50 ") || !strings.Contains(rcv.stdout, "CLOCK_REALTIME") {
		t.Errorf("text output without the latency line: %s", rcv.stdout)
	}
}
