package report

import (
	"fmt"
	"io"
	"slices"
)

// group is the summaries of one table: one protocol, stream count and size.
type group struct {
	proto         string
	streams, size int
	sums          []Summary
}

// groups splits summaries into tables in order of first appearance.
func groups(sums []Summary) []group {
	var out []group
	idx := map[Key]int{}
	for _, s := range sums {
		k := Key{Proto: s.Proto, Size: s.Size, Streams: max(s.Streams, 1)}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, group{proto: s.Proto, streams: k.Streams, size: s.Size})
		}
		out[i].sums = append(out[i].sums, s)
	}
	return out
}

// WriteTables prints compare's tables: per protocol, stream count and size, the seed's
// usr/sys/real lines and the CPU-per-GiB table with ratios against splice (byte streams),
// or the packet-rate table (UDP). Unsupported cells are rows with their reason.
func WriteTables(w io.Writer, sums []Summary) {
	var notes []string
	protos := map[string]bool{}
	for _, s := range sums {
		protos[s.Proto] = true
	}
	for _, g := range groups(sums) {
		head := len(protos) > 1 || g.streams > 1
		if datagram(g.proto) {
			writeUDP(w, g, head)
		} else {
			writeStream(w, g, head)
		}
		for _, s := range g.sums {
			if n := traitsOf(s.Proto).Notes[s.Mode]; n != "" && notRun(s) == "" && !slices.Contains(notes, n) {
				notes = append(notes, n)
			}
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note: "+n)
	}
}

func streamsTag(n int) string {
	if n > 1 {
		return fmt.Sprintf(" -P %d", n)
	}
	return ""
}

// notRun is the table text of a cell without a measured run, "" otherwise.
func notRun(s Summary) string {
	switch {
	case s.Unsupported:
		return "unsupported: " + s.Reason
	case s.Runs == 0 && s.Failed > 0:
		return fmt.Sprintf("no run measured (%d failed)", s.Failed)
	case s.Runs == 0:
		return "not run (interrupted)"
	}
	return ""
}

func writeStream(w io.Writer, g group, head bool) {
	fmt.Fprintln(w)
	for _, s := range g.sums {
		if notRun(s) != "" {
			continue
		}
		fmt.Fprintf(w, "%s %s%s (median of %d):\n", s.Proto, s.Mode, streamsTag(g.streams), s.Runs)
		fmt.Fprintf(w, "  sender:   usr=%.3fs, sys=%.3fs, real=%.3fs\n", s.SndUsrMs/1000, s.SndSysMs/1000, s.SndRealMs/1000)
		fmt.Fprintf(w, "  receiver: usr=%.3fs, sys=%.3fs, real=%.3fs\n", s.RcvUsrMs/1000, s.RcvSysMs/1000, s.RcvRealMs/1000)
	}
	fmt.Fprintln(w)
	if head {
		fmt.Fprintf(w, "%s%s:\n", g.proto, streamsTag(g.streams))
	}
	fmt.Fprintf(w, "%-10s %8s %15s %15s %15s %10s %8s\n", "mode", "size", "snd ms/GiB", "rcv ms/GiB", "snd sys ms", "rcv Gbit/s", "corrupt")
	for _, s := range g.sums {
		if n := notRun(s); n != "" {
			fmt.Fprintf(w, "%-10s %8d   %s\n", s.Mode, s.Size, n)
			continue
		}
		fmt.Fprintf(w, "%-10s %8d %9.0f ±%3.0f%% %15.0f %15.0f %10.2f %8d\n", s.Mode, s.Size, s.SndCPUGiB, s.SndSpread/2,
			s.RcvCPUGiB, s.SndSysMs, s.GbitS, s.Corrupt)
	}
	spl := baseline(g.sums)
	if spl == nil || spl.SndSysMs == 0 || spl.SndCPUGiB == 0 || spl.RcvCPUGiB == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, s := range g.sums {
		if s.Mode == "splice" || notRun(s) != "" {
			continue
		}
		fmt.Fprintf(w, "%s/splice: sender sys %.2fx, sender CPU per GiB %.2fx, receiver CPU per GiB %.2fx\n",
			s.Mode, s.SndSysMs/spl.SndSysMs, s.SndCPUGiB/spl.SndCPUGiB, s.RcvCPUGiB/spl.RcvCPUGiB)
	}
}

// baseline is the group's measured splice cell, or nil.
func baseline(sums []Summary) *Summary {
	for i := range sums {
		if sums[i].Mode == "splice" && notRun(sums[i]) == "" {
			return &sums[i]
		}
	}
	return nil
}

// writeUDP is the datagram table: packet rates, loss, sender CPU per packet.
func writeUDP(w io.Writer, g group, head bool) {
	fmt.Fprintln(w)
	if head {
		fmt.Fprintf(w, "%s%s:\n", g.proto, streamsTag(g.streams))
	}
	fmt.Fprintf(w, "%-8s %6s %12s %12s %8s %14s %10s %8s %9s\n", "mode", "size", "sent pps", "recv pps", "loss %",
		"snd ms/Mpkt", "rcv Gbit/s", "corrupt", "fallback")
	faster := false
	for _, s := range g.sums {
		if n := notRun(s); n != "" {
			fmt.Fprintf(w, "%-8s %6d   %s\n", s.Mode, s.Size, n)
			continue
		}
		fmt.Fprintf(w, "%-8s %6d %12.0f %12.0f %8.3f %14.0f %10.2f %8d %9d\n", s.Mode, s.Size, s.SndPPS, s.RcvPPS, s.LossPct,
			s.SndCPUMpkt, s.GbitS, s.Corrupt, s.Fallbacks)
		faster = faster || s.RcvPPS > s.SndPPS*1.001
	}
	if faster {
		fmt.Fprintln(w, "note: recv pps above sent pps is not extra data: each side divides by its own window (the sender's from its first to its last send, the receiver's from its first to its last arrival)")
	}
}
