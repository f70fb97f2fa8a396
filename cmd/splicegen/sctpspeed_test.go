package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// snmpSCTP reads the kernel's SCTP counters (/proc/net/sctp/snmp: "Name value" lines).
func snmpSCTP() map[string]uint64 {
	m := map[string]uint64{}
	b, err := os.ReadFile("/proc/net/sctp/snmp")
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		var k string
		var v uint64
		if n, _ := fmt.Sscan(l, &k, &v); n == 2 {
			m[k] = v
		}
	}
	return m
}

// TestSCTPSpeedExplore prints SCTP and TCP rates side by side in the guest (exploration).
func TestSCTPSpeedExplore(t *testing.T) {
	requireSCTP(t)
	if os.Getenv("SPLICEGEN_SCTP_EXPLORE") != "1" {
		t.Skip("a measurement, not a check: SPLICEGEN_SCTP_EXPLORE=1 runs it (docs/kernel.md#sctp)")
	}
	for _, f := range []string{"/proc/sys/net/sctp/sctp_wmem", "/proc/sys/net/sctp/sctp_rmem", "/proc/sys/net/sctp/sack_timeout",
		"/proc/sys/net/sctp/sndbuf_policy", "/proc/sys/net/sctp/rcvbuf_policy", "/proc/sys/net/core/wmem_max", "/proc/sys/net/core/rmem_max"} {
		b, _ := os.ReadFile(f)
		t.Logf("%s = %s", f, strings.TrimSpace(string(b)))
	}
	vol := os.Getenv("SPLICEGEN_SCTP_BYTES")
	if vol == "" {
		vol = "64MiB"
	}
	variants := [][]string{nil, {"--nodelay"}}
	if v := os.Getenv("SPLICEGEN_SCTP_VARIANTS"); v != "" {
		variants = nil
		for _, x := range strings.Split(v, "|") {
			variants = append(variants, strings.Fields(x))
		}
	}
	protos := []string{"sctp", "tcp"}
	if v := os.Getenv("SPLICEGEN_SCTP_PROTOS"); v != "" {
		protos = strings.Split(v, ",")
	}
	for _, extra := range variants {
		if len(extra) > 0 && strings.HasPrefix(extra[0], "sysctl:") { // sysctl:max_burst=0
			k, v, _ := strings.Cut(strings.TrimPrefix(extra[0], "sysctl:"), "=")
			os.WriteFile("/proc/sys/net/sctp/"+k, []byte(v), 0o644)
			extra = extra[1:]
		}
		for _, p := range protos {
			for _, size := range []string{"64KiB", "1400"} {
				for _, mode := range []string{"splice", "write"} {
					rargs := []string{"--json"}
					before := snmpSCTP()
					snd, rcv := pairProto(t, p, rargs, append([]string{"--json", "-m", mode, "-s", size, "--bytes", vol, "--stall-timeout", "60s"}, extra...))
					after := snmpSCTP()
					var v struct {
						Receiver struct {
							GbitS  float64 `json:"gbit_s"`
							RealMs float64 `json:"real_ms"`
						}
					}
					json.Unmarshal([]byte(rcv.stdout), &v)
					d := func(k string) uint64 { return after[k] - before[k] }
					t.Logf("%-4s %-6s %-6s %-22v exit %d/%d  %7.3f Gbit/s %8.0f ms  delaysack %d t3rtx %d discards %d outctrl %d sackcnt? %d",
						p, mode, size, extra, snd.code, rcv.code, v.Receiver.GbitS, v.Receiver.RealMs,
						d("SctpDelaySackExpireds"), d("SctpT3RtxExpireds"), d("SctpInDataChunkDiscards"), d("SctpOutCtrlChunks"), d("SctpInCtrlChunks"))
				}
			}
		}
	}
}
