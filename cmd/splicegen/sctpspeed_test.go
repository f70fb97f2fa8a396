package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/splicegen/splicegen/report"
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

// threadTicks reads each thread's utime+stime (/proc/self/task/*/stat fields 14, 15;
// proc(5)), in clock ticks.
func threadTicks() map[string]uint64 {
	m := map[string]uint64{}
	ds, _ := os.ReadDir("/proc/self/task")
	for _, d := range ds {
		b, _ := os.ReadFile("/proc/self/task/" + d.Name() + "/stat")
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		k, _ := strconv.ParseUint(f[12], 10, 64)
		m[d.Name()] = u + k
	}
	return m
}

// busiest: the largest per-thread CPU deltas (ticks of 10 ms), most first.
func busiest(before, after map[string]uint64) []uint64 {
	var d []uint64
	for k, v := range after {
		if v > before[k] {
			d = append(d, (v-before[k])*10)
		}
	}
	slices.Sort(d)
	slices.Reverse(d)
	return d[:min(3, len(d))]
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// TestSCTPSpeedExplore measures SCTP against TCP (same size, same mode, defaults) in the
// guest: repeats interleaved (SCTP variants and TCP within each repeat), then the
// medians and SCTP/TCP ratios (docs/kernel.md#sctp). Env: SPLICEGEN_SCTP_BYTES (64MiB),
// SPLICEGEN_SCTP_REPEATS (3), SPLICEGEN_SCTP_SIZES (64KiB,1400), SPLICEGEN_SCTP_MODES
// (splice,write), SPLICEGEN_SCTP_VARIANTS ("|"-separated extra SCTP sender flags, or
// sys:FILE=VALUE written for that run only; "" is the defaults). SPLICEGEN_SCTP_COMPARE
// (extra flags, may be empty) runs `splicegen compare -p tcp,sctp` instead.
func TestSCTPSpeedExplore(t *testing.T) {
	requireSCTP(t)
	if os.Getenv("SPLICEGEN_SCTP_EXPLORE") != "1" {
		t.Skip("a measurement, not a check: SPLICEGEN_SCTP_EXPLORE=1 runs it (docs/kernel.md#sctp)")
	}
	for _, f := range []string{"/proc/sys/net/sctp/sctp_wmem", "/proc/sys/net/sctp/sctp_rmem", "/proc/sys/net/sctp/sack_timeout",
		"/proc/sys/net/core/wmem_max", "/proc/sys/net/core/rmem_max", "/proc/sys/fs/pipe-max-size"} {
		b, _ := os.ReadFile(f)
		t.Logf("%s = %s", f, strings.TrimSpace(string(b)))
	}
	vol := envOr("SPLICEGEN_SCTP_BYTES", "64MiB")
	if extra, ok := os.LookupEnv("SPLICEGEN_SCTP_COMPARE"); ok {
		// What a user runs: each side its own process (its own CPU time), pinned.
		t.Setenv("SPLICEGEN_TEST_AS_CLI", "1")
		args := append([]string{"compare", "-p", "tcp,sctp", "-m", envOr("SPLICEGEN_SCTP_MODES", "splice,write"),
			"-s", envOr("SPLICEGEN_SCTP_SIZES", "64KiB,1400"), "--bytes", vol, "--repeat", envOr("SPLICEGEN_SCTP_REPEATS", "3")}, strings.Fields(extra)...)
		r := runArgs(args...)
		t.Logf("splicegen %s: exit %d\n%s\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		return
	}
	reps, _ := strconv.Atoi(envOr("SPLICEGEN_SCTP_REPEATS", "3"))
	sizes := strings.Split(envOr("SPLICEGEN_SCTP_SIZES", "64KiB,1400"), ",")
	modes := strings.Split(envOr("SPLICEGEN_SCTP_MODES", "splice,write"), ",")
	variants := []string{""}
	if v, ok := os.LookupEnv("SPLICEGEN_SCTP_VARIANTS"); ok {
		variants = strings.Split(v, "|")
	}
	type key struct{ size, mode, proto, variant string }
	got := map[key][]float64{}
	for rep := range max(1, reps) {
		for _, size := range sizes {
			for _, mode := range modes {
				runs := []key{{size, mode, "tcp", ""}}
				for _, v := range variants {
					runs = append(runs, key{size, mode, "sctp", v})
				}
				for _, k := range runs {
					sargs := []string{"--json", "-m", mode, "-s", size, "--bytes", vol, "--stall-timeout", "60s"}
					restore := map[string][]byte{}
					for _, w := range strings.Fields(k.variant) {
						if f, val, ok := strings.Cut(strings.TrimPrefix(w, "sys:"), "="); ok && strings.HasPrefix(w, "sys:") {
							restore[f], _ = os.ReadFile(f) // sys:/proc/sys/...=v, for this run only
							if err := os.WriteFile(f, []byte(val), 0o644); err != nil {
								t.Logf("%s: %v", w, err)
							}
							continue
						}
						sargs = append(sargs, w)
					}
					before, tb := snmpSCTP(), threadTicks()
					snd, rcv := pairProto(t, k.proto, []string{"--json"}, sargs)
					after, ta := snmpSCTP(), threadTicks()
					for f, b := range restore {
						os.WriteFile(f, b, 0o644)
					}
					var v struct {
						Receiver struct {
							GbitS  float64 `json:"gbit_s"`
							RealMs float64 `json:"real_ms"`
							SysMs  float64 `json:"sys_ms"`
							UsrMs  float64 `json:"usr_ms"`
							Detail struct {
								Streams []struct {
									MsgSizes map[string]uint64 `json:"sctp_msg_sizes"`
								}
							}
						}
					}
					json.Unmarshal([]byte(rcv.stdout), &v)
					d := func(k string) uint64 { return after[k] - before[k] }
					var sz map[string]uint64
					if len(v.Receiver.Detail.Streams) > 0 {
						sz = v.Receiver.Detail.Streams[0].MsgSizes
					}
					if len(sz) > 4 {
						sz = map[string]uint64{"kinds": uint64(len(sz))}
					}
					t.Logf("rep %d %-4s %-6s %-5s %-26q exit %d/%d %7.3f Gbit/s %6.0f ms cpu(proc) %5.0f ms threads %v ms  delaysack %d outdata %d outpkts %d  sctp msgs %v",
						rep, k.proto, mode, size, k.variant, snd.code, rcv.code, v.Receiver.GbitS, v.Receiver.RealMs, v.Receiver.SysMs+v.Receiver.UsrMs, busiest(tb, ta),
						d("SctpDelaySackExpireds"), d("SctpOutOrderChunks"), d("SctpOutSCTPPacks"), sz)
					if rep == 0 && k.proto == "sctp" { // what the result says about buffers and SACKs
						var sv struct {
							Sender struct {
								Detail struct {
									Rule json.RawMessage `json:"ring_rule"`
								}
								Kernel map[string]uint64 `json:"kernel_counters"`
							}
						}
						json.Unmarshal([]byte(snd.stdout), &sv)
						t.Logf("  sender ring_rule %s kernel_counters %v", sv.Sender.Detail.Rule, sv.Sender.Kernel)
					}
					if snd.code != 0 || rcv.code != 0 {
						t.Logf("  send stderr: %s\n  recv stderr: %s", snd.stderr, rcv.stderr)
					}
					got[k] = append(got[k], v.Receiver.GbitS)
				}
			}
		}
	}
	t.Logf("medians over %d repeats, %s per run:", reps, vol)
	for _, size := range sizes {
		for _, mode := range modes {
			tcp := report.Median(got[key{size, mode, "tcp", ""}])
			for _, v := range variants {
				s := report.Median(got[key{size, mode, "sctp", v}])
				t.Logf("%-5s %-6s sctp %-26q %7.3f Gbit/s  tcp %7.3f Gbit/s  sctp/tcp %.2f", size, mode, v, s, tcp, s/tcp)
			}
		}
	}
}
