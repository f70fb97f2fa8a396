// Package report measures CPU (getrusage) and renders results: text, JSON, CSV, HTML.
package report

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/sink"
	"golang.org/x/sys/unix"
)

// Usage is a point-in-time CPU reading of this process.
type Usage struct {
	Usr, Sys time.Duration
	At       time.Time
}

// Now reads getrusage(RUSAGE_SELF): every thread of the process, which is why compare
// runs each side in its own process.
func Now() Usage {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return Usage{Usr: time.Duration(ru.Utime.Nano()), Sys: time.Duration(ru.Stime.Nano()), At: time.Now()}
}

// Side is one end's figures (docs/design.md#results).
type Side struct {
	Bytes       uint64  `json:"bytes"`
	Messages    uint64  `json:"messages"`
	UsrMs       float64 `json:"usr_ms"`
	SysMs       float64 `json:"sys_ms"`
	RealMs      float64 `json:"real_ms"`
	CPUMsPerGiB float64 `json:"cpu_ms_per_gib"`
	GbitS       float64 `json:"gbit_s"`
	PPS         float64 `json:"pps"`
	// Kernel counters that explain the protocol's figures, changed over the run (SCTP:
	// SctpDelaySackExpireds, SctpT3RtxExpireds; per network namespace).
	Kernel map[string]uint64 `json:"kernel_counters,omitempty"`

	CPU string `json:"cpu,omitempty"` // --cpu: the CPUs this side was pinned to; empty: unpinned
}

// Counters records the change of a protocol's kernel counters between two readings.
func (s *Side) Counters(before, after map[string]uint64) {
	if after == nil {
		return
	}
	s.Kernel = map[string]uint64{}
	for k, v := range after {
		s.Kernel[k] = v - before[k]
	}
}

func (s *Side) kernelLine(w io.Writer) {
	if len(s.Kernel) == 0 {
		return
	}
	keys := make([]string, 0, len(s.Kernel))
	for k := range s.Kernel {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprint(w, "          kernel (this namespace, during the run):")
	for _, k := range keys {
		fmt.Fprintf(w, " %s %d", k, s.Kernel[k])
	}
	fmt.Fprintln(w)
}

// Fill sets the CPU and rate fields from a usage window [from, to] and the counts.
// real is the data-moving time if the caller measured it more tightly, else 0.
func (s *Side) Fill(from, to Usage, bytes, messages uint64) {
	s.Bytes, s.Messages = bytes, messages
	s.UsrMs = ms(to.Usr - from.Usr)
	s.SysMs = ms(to.Sys - from.Sys)
	s.RealMs = ms(to.At.Sub(from.At))
	if bytes > 0 {
		s.CPUMsPerGiB = (s.UsrMs + s.SysMs) / (float64(bytes) / (1 << 30))
	}
	if s.RealMs > 0 {
		sec := s.RealMs / 1000
		s.GbitS = float64(bytes) * 8 / sec / 1e9
		s.PPS = float64(messages) / sec
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// SeedLine is the seed's "usr=…, sys=…, real=…" line.
func (s *Side) SeedLine() string {
	return fmt.Sprintf("usr=%.3fs, sys=%.3fs, real=%.3fs", s.UsrMs/1000, s.SysMs/1000, s.RealMs/1000)
}

// Sender is the sending side of a run.
type Sender struct {
	Side
	RingBytes int `json:"ring_bytes"`
	RingHuge  int `json:"ring_huge_bytes"` // of the ring, in transparent huge pages
	// RingRenewed: UDP splice, ring bytes given fresh pages after a lap
	// (all streams; pages/renew.go).
	RingRenewed uint64 `json:"ring_renewed_bytes,omitempty"`
	Sndbuf      int    `json:"sndbuf"`
	Fallbacks   int    `json:"fallbacks"`
	// The receiver's verdict as it came back (-1: none came), and how completeness was
	// proven (or why it could not be).
	Verdict int    `json:"receiver_verdict"`
	Proof   string `json:"proof,omitempty"`
	// Paced runs: percent below the asked rate over the time meant for sending (0: none).
	RateShortfallPct *float64 `json:"rate_shortfall_pct,omitempty"`
	// RTT: --rtt's round trips, timed on the sender's clock alone.
	RTT    *sink.RTT `json:"rtt,omitempty"`
	Detail any       `json:"detail,omitempty"`

	Paced bool      `json:"paced,omitempty"` // --rate or --pps
	Wire  *SendWire `json:"wire,omitempty"`  // absent when the route or counters could not be read
}

// Receiver is the receiving side of a run.
type Receiver struct {
	Side
	Lost       uint64  `json:"lost"`
	Reordered  uint64  `json:"reordered"`
	Duplicate  uint64  `json:"duplicate"`
	Corrupt    uint64  `json:"corrupt"`
	Unverified uint64  `json:"unverified"`
	Truncated  uint64  `json:"truncated"`
	Late       uint64  `json:"late,omitempty"` // UDP: older than the reorder window
	LossPct    float64 `json:"loss_pct"`       // lost / (received unique + lost); measured on lossy protocols, 0 on reliable ones
	Sink       string  `json:"sink"`
	// Latency is the one-way latency from the header's send time (native format).
	Latency *sink.Latency `json:"latency,omitempty"`
	// Sizes counts the messages of each size (header included; native format).
	Sizes      map[int]uint64 `json:"sizes,omitempty"`
	Stray      uint64         `json:"stray"`   // connections and datagrams not of this test (detail.stray by kind)
	Verdict    int            `json:"verdict"` // the exit status this receiver gave the test: 0, 1 incomplete, 3 integrity
	VerdictWhy string         `json:"verdict_why,omitempty"`
	Detail     any            `json:"detail,omitempty"`

	Wire *RecvWire `json:"wire,omitempty"` // absent when the route or counters could not be read
}

// Run is one test: both sides when both were measured (compare), one otherwise.
type Run struct {
	Type        string    `json:"type,omitempty"`      // "result" in a --json-stream
	Direction   string    `json:"direction,omitempty"` // through a server: forward (client sends), reverse
	Proto       string    `json:"proto"`
	Mode        string    `json:"mode"`
	Size        int       `json:"size"`
	Mix         string    `json:"mix,omitempty"` // a size mix, SIZE:WEIGHT,... ("mixed" at a receiver); size is its largest
	Streams     int       `json:"streams"`
	Format      string    `json:"format"`
	Verify      bool      `json:"verify"`
	HotBuffer   bool      `json:"hot_buffer,omitempty"` // write mode from one cache-hot buffer
	Repeat      int       `json:"repeat,omitempty"`
	Sender      *Sender   `json:"sender,omitempty"`
	Receiver    *Receiver `json:"receiver,omitempty"`
	Interrupted bool      `json:"interrupted,omitempty"`
	Error       string    `json:"error,omitempty"`
	Time        string    `json:"time,omitempty"` // when the run ended, UTC (send, recv)
	Env         *Env      `json:"env,omitempty"`  // the host a send or recv ran on (compare and run keep it in the file's env)
}

// Label names the run's mode for tables: write with --hot-buffer is "write-hot".
func (r *Run) Label() string {
	if r.HotBuffer {
		return r.Mode + "-hot"
	}
	return r.Mode
}

// Key is the run's matrix cell: proto, mode label, size, streams.
func (r *Run) Key() Key { return Key{r.Proto, r.Label(), r.Size, max(r.Streams, 1)} }

// Env describes the machine a result came from.
type Env struct {
	Kernel    string            `json:"kernel"`
	CPU       string            `json:"cpu"`
	CPUs      int               `json:"cpus"`
	Go        string            `json:"go"`
	Host      string            `json:"host"`
	Sysctls   map[string]string `json:"sysctls"`
	Time      string            `json:"time"`
	Splicegen string            `json:"splicegen"`
	Server    *Env              `json:"server,omitempty"` // the far host, for runs through a server
}

// Version is splicegen's version string.
var Version = "0.1.0"

// ReadEnv collects Env.
func ReadEnv() Env {
	var u unix.Utsname
	unix.Uname(&u)
	e := Env{
		Kernel:    unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:]),
		CPUs:      runtime.NumCPU(),
		Go:        runtime.Version(),
		Sysctls:   map[string]string{},
		Time:      time.Now().UTC().Format(time.RFC3339),
		Splicegen: Version,
	}
	e.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	for _, k := range []string{"net/ipv4/tcp_wmem", "net/ipv4/tcp_rmem", "net/core/wmem_max",
		"net/core/rmem_max", "net/core/wmem_default", "net/core/rmem_default", "fs/pipe-max-size",
		"net/ipv4/tcp_autocorking", "net/core/optmem_max"} {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			e.Sysctls[strings.ReplaceAll(k, "/", ".")] = strings.Join(strings.Fields(string(b)), " ")
		}
	}
	return e
}

// Human prints bytes in binary units.
func Human(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Text writes a run for people.
func Text(w io.Writer, r *Run) {
	mode := r.Mode
	if mode == "" {
		mode = "receive"
	}
	sizes := fmt.Sprintf("%d-byte messages", r.Size)
	switch r.Mix {
	case "":
	case "mixed": // a receiver: the sizes line has the histogram
		sizes = fmt.Sprintf("mixed sizes up to %d bytes", r.Size)
	default:
		sizes = "size mix " + r.Mix
	}
	fmt.Fprintf(w, "%s %s, %s, %d stream(s), format %s%s\n", r.Proto, mode, sizes, r.Streams, r.Format,
		map[bool]string{true: ", verify", false: ""}[r.Verify])
	if s := r.Sender; s != nil {
		fmt.Fprintf(w, "sender:   %s  %s in %d messages, %.2f Gbit/s, %.0f msg/s, %.0f ms CPU/GiB\n",
			s.SeedLine(), Human(s.Bytes), s.Messages, s.GbitS, s.PPS, s.CPUMsPerGiB)
		renewed := ""
		if s.RingRenewed > 0 {
			renewed = fmt.Sprintf("; %s renewed after a lap: a full queue may hold a datagram any number of laps", Human(s.RingRenewed))
		}
		fmt.Fprintf(w, "          page ring %s per stream (%s in huge pages%s), sndbuf %s, fallbacks %d\n",
			Human(uint64(s.RingBytes)), Human(uint64(s.RingHuge)), renewed, Human(uint64(s.Sndbuf)), s.Fallbacks)
		if s.Proof != "" {
			fmt.Fprintf(w, "          completeness: %s%s\n", s.Proof, verdictWord(s.Verdict))
		}
		if t := s.RTT; t != nil {
			fmt.Fprintf(w, "          rtt: p50 %s, p99 %s over %d samples (%s)\n", us(t.P50Us), us(t.P99Us), t.Samples, everyNth(t.Every))
		}
		s.kernelLine(w)
		if s.Wire != nil {
			wireText(w, r, "tx", s.Wire.Ifname, s.Wire.TxPackets, s.Wire.TxBytes, s.Messages, s.Bytes)
		}
		if r.Mode == "zerocopy" && s.Fallbacks > 0 {
			fmt.Fprintf(w, "note: the kernel copied anyway: %d MSG_ZEROCOPY completions flagged SO_EE_CODE_ZEROCOPY_COPIED (on loopback all are: the receive path copies)\n", s.Fallbacks)
		}
	}
	if v := r.Receiver; v != nil {
		fmt.Fprintf(w, "receiver: %s  %s in %d messages, %.2f Gbit/s, %.0f msg/s, %.0f ms CPU/GiB (sink %s)\n",
			v.SeedLine(), Human(v.Bytes), v.Messages, v.GbitS, v.PPS, v.CPUMsPerGiB, v.Sink)
		fmt.Fprintf(w, "          lost %d, reordered %d, duplicate %d, corrupt %d", v.Lost, v.Reordered, v.Duplicate, v.Corrupt)
		if !traitsOf(r.Proto).LossFails {
			fmt.Fprintf(w, " (loss %.3f%%)", v.LossPct)
		}
		if v.Late > 0 {
			fmt.Fprintf(w, ", late %d", v.Late)
		}
		if v.Unverified > 0 {
			fmt.Fprintf(w, ", unverified %d (sender ran without --verify)", v.Unverified)
		}
		if v.Truncated > 0 {
			fmt.Fprintf(w, ", last message truncated (%d bytes)", v.Truncated)
		}
		if v.Stray > 0 {
			fmt.Fprintf(w, ", stray %d (not this test's; see detail.stray)", v.Stray)
		}
		fmt.Fprintln(w)
		if l := v.Latency; l != nil {
			fmt.Fprintf(w, "          latency: p50 %s, p90 %s, p99 %s, p99.9 %s, max %s over %d messages", us(l.P50Us), us(l.P90Us), us(l.P99Us), us(l.P999Us), us(l.MaxUs), l.Samples)
			if l.JitterUs > 0 {
				fmt.Fprintf(w, ", jitter %s", us(int64(l.JitterUs)))
			}
			fmt.Fprintf(w, " (%s)\n", l.Clock)
		}
		if len(v.Sizes) > 1 {
			fmt.Fprintf(w, "          sizes: %s\n", sizeLine(v.Sizes))
		}
		v.kernelLine(w)
		if v.Wire != nil {
			wireText(w, r, "rx", v.Wire.Ifname, v.Wire.RxPackets, v.Wire.RxBytes, v.Messages, v.Bytes)
		}
		if v.VerdictWhy != "" {
			fmt.Fprintf(w, "verdict:  %s\n", v.VerdictWhy)
		}
	}
	if n := traitsOf(r.Proto).Notes[r.Mode]; n != "" && r.Sender != nil {
		fmt.Fprintln(w, "note: "+n)
	}
	pinNote(w, r)
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: figures cover the run up to the interruption")
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
}

// traitsOf asks a run's protocol plugin (registered by the command) for its traits. A
// name no plugin has (a file from a build with another plugin) renders as a reliable
// byte stream.
func traitsOf(name string) proto.Traits {
	if p, err := proto.Lookup(name); err == nil {
		return p.Traits()
	}
	return proto.Traits{Name: name, Kind: proto.KindStream, LossFails: true}
}

// datagram reports whether a protocol's runs are read as datagrams: packet rate and loss.
func datagram(name string) bool { return traitsOf(name).Kind == proto.KindDatagram }

// verdictWord names a receiver verdict that came back ("" when none did).
func verdictWord(code int) string {
	switch code {
	case 0:
		return ": complete and intact"
	case 1:
		return ": incomplete"
	case 3:
		return ": integrity failure"
	}
	return ""
}

// sizeLine prints a size histogram, smallest first: "48 B 58.33%, 548 B 33.33%".
func sizeLine(h map[int]uint64) string {
	var total uint64
	keys := make([]int, 0, len(h))
	for k, n := range h {
		keys = append(keys, k)
		total += n
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d B %.2f%%", k, float64(h[k])*100/float64(max(total, 1)))
	}
	return strings.Join(parts, ", ")
}

// us prints microseconds in the unit that fits.
func us(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.1fs", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.1fms", float64(n)/1e3)
	}
	return fmt.Sprintf("%dµs", n)
}

// everyNth says which messages: "every message", "every 2nd message", "every 100th message".
func everyNth(n int) string {
	if n == 1 {
		return "every message"
	}
	return fmt.Sprintf("every %d%s message", n, ordinal(n))
}

// ordinal is n's English suffix: 1st, 2nd, 3rd, 4th, 11th, 100th.
func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return "th"
	case n%10 == 1:
		return "st"
	case n%10 == 2:
		return "nd"
	case n%10 == 3:
		return "rd"
	}
	return "th"
}
