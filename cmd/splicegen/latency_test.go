package main

import (
	"strings"
	"testing"

	"github.com/splicegen/splicegen/sink"
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
				Latency  *sink.Latency
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

type rttJSON struct {
	Sender struct {
		Messages        uint64
		ReceiverVerdict int `json:"receiver_verdict"`
		RTT             *sink.RTT
	}
	Receiver struct {
		Messages, Lost uint64
		Verdict        int
		Detail         struct {
			Echoes uint64 `json:"rtt_echoes"`
		}
	}
}

// --rtt 10 on loopback, paced: a round trip for every 10th message (UDP: less what is
// lost either way), percentiles ordered, the receiver's verdict unaffected; both sinks
// of TCP reflect; the text output prints the line.
func TestRTTLoopback(t *testing.T) {
	for _, c := range []struct {
		proto string
		recv  []string
		send  []string
	}{
		{"tcp", nil, []string{"-s", "16k", "-n", "400", "--pps", "2k", "--nodelay"}},
		{"tcp", []string{"--sink", "splice"}, []string{"-s", "16k", "-n", "400", "--pps", "2k"}},
		{"udp", nil, []string{"-s", "200", "-n", "2000", "--pps", "10k"}},
		{"udp", nil, []string{"-s", "200", "-n", "2000", "--pps", "10k", "-m", "mmsg", "--flows", "2"}},
	} {
		snd, rcv := pairProto(t, c.proto, append([]string{"--json"}, c.recv...), append([]string{"--json", "--rtt", "10"}, c.send...))
		var s, r rttJSON
		mustJSON(t, snd.stdout, &s)
		mustJSON(t, rcv.stdout, &r)
		l, want := s.Sender.RTT, int64(s.Sender.Messages/10)
		if snd.code != 0 || rcv.code != 0 || r.Receiver.Verdict != 0 || l == nil || l.Every != 10 {
			t.Fatalf("%s %v: exit %d/%d, verdict %d, rtt %+v: %s %s", c.proto, c.send, snd.code, rcv.code, r.Receiver.Verdict, l, snd.stderr, rcv.stderr)
		}
		if c.proto == "tcp" && (l.Samples != want || s.Sender.ReceiverVerdict != 0) || c.proto == "udp" && l.Samples < want*9/10 ||
			l.Samples > want || int64(r.Receiver.Detail.Echoes) < l.Samples {
			t.Fatalf("%s %v: %d samples, %d echoes, want %d", c.proto, c.send, l.Samples, r.Receiver.Detail.Echoes, want)
		}
		if l.MinUs < 1 || l.P50Us < l.MinUs || l.P90Us < l.P50Us || l.P99Us < l.P90Us || l.P999Us < l.P99Us || l.MaxUs < l.P999Us || l.MaxUs > 5_000_000 {
			t.Fatalf("%s: percentiles out of order: %+v", c.proto, l)
		}
		t.Logf("%s %v %v: rtt p50 %d µs, p99 %d µs, max %d µs over %d samples", c.proto, c.recv, c.send, l.P50Us, l.P99Us, l.MaxUs, l.Samples)
	}
	snd, _ := pairProto(t, "udp", nil, []string{"-s", "200", "-n", "100", "--rtt", "10"})
	if !strings.Contains(snd.stdout, "rtt: p50 ") || !strings.Contains(snd.stdout, "samples (every 10th message)") {
		t.Errorf("text output without the rtt line: %s", snd.stdout)
	}
}

// --rtt's refusals are usage errors: SCTP, a format without the native header, N < 1.
func TestRTTUsage(t *testing.T) {
	for _, a := range [][]string{
		{"-p", "sctp", "--rtt", "10"},
		{"--format", "raw", "--rtt", "10"},
		{"--rtt", "0"},
		{"--rtt", "-3"},
	} {
		r := runArgs(append(append([]string{"send", "-n", "1"}, a...), "127.0.0.1:9")...)
		if r.code != 2 || !strings.Contains(r.stderr, "--rtt") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, %q", a, r.code, r.stderr)
		}
	}
}
