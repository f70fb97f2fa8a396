package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
)

// Summary is one mode's medians over its repeats.
type Summary struct {
	Proto     string  `json:"proto"`
	Mode      string  `json:"mode"`
	Size      int     `json:"size"`
	Runs      int     `json:"runs"`
	SndUsrMs  float64 `json:"sender_usr_ms"`
	SndSysMs  float64 `json:"sender_sys_ms"`
	SndRealMs float64 `json:"sender_real_ms"`
	SndCPUGiB float64 `json:"sender_cpu_ms_per_gib"`
	SndSpread float64 `json:"sender_cpu_ms_per_gib_spread_pct"` // (max-min)/median
	RcvUsrMs  float64 `json:"receiver_usr_ms"`
	RcvSysMs  float64 `json:"receiver_sys_ms"`
	RcvRealMs float64 `json:"receiver_real_ms"`
	RcvCPUGiB float64 `json:"receiver_cpu_ms_per_gib"`
	GbitS     float64 `json:"gbit_s"`
	Corrupt   uint64  `json:"corrupt"`
	// Packet rates (medians), for UDP above all.
	SndPPS     float64 `json:"sender_pps"`
	RcvPPS     float64 `json:"receiver_pps"`
	LossPct    float64 `json:"loss_pct"`
	SndCPUMpkt float64 `json:"sender_cpu_ms_per_mpkt"` // (usr+sys) ms per million messages sent
	Fallbacks  int     `json:"fallbacks"`
}

// CompareFile is what --json FILE holds.
type CompareFile struct {
	Env     report.Env    `json:"env"`
	Runs    []*report.Run `json:"runs"`
	Summary []Summary     `json:"summary"`
}

func cmdCompare(args []string, stdout, stderr io.Writer) (int, error) {
	c := newCommon("compare")
	var modes, bytesS, jsonFile, sinkName, cpuSnd, cpuRcv string
	var dur time.Duration
	var repeat int
	c.fs.StringVarP(&modes, "mode", "m", "splice,write,write-hot", "modes to compare, comma-separated (write-hot: write from one cache-hot buffer)")
	c.fs.StringVarP(&c.size, "size", "s", "64KiB", "message size")
	c.fs.StringVar(&bytesS, "bytes", "4GiB", "bytes per run")
	c.fs.DurationVarP(&dur, "time", "t", 0, "time per run (instead of --bytes)")
	c.fs.IntVar(&repeat, "repeat", 3, "runs per mode, in alternating order; medians are reported")
	c.fs.StringVar(&sinkName, "sink", "read", "receiver sink: read or splice")
	c.fs.StringVar(&jsonFile, "json", "", "save env, every run and the summary to this file")
	c.fs.StringVar(&cpuSnd, "cpu-sender", "", "pin the sender (default CPU 0 when there are 2+ CPUs)")
	c.fs.StringVar(&cpuRcv, "cpu-receiver", "", "pin the receiver (default CPU 1 when there are 2+ CPUs)")
	c.fs.MarkHidden("cpu")
	c.fs.MarkHidden("interval")
	if done, err := c.parse(args, stdout, "splicegen compare [flags]"); done || err != nil {
		return 0, err
	}
	if c.fs.NArg() != 0 {
		return 0, usagef("compare takes no arguments, got %q", c.fs.Args())
	}
	if repeat < 1 || repeat > 100 {
		return 0, usagef("--repeat %d out of range 1..100", repeat)
	}
	if c.fs.Changed("time") && c.fs.Changed("bytes") {
		return 0, usagef("give one of --bytes, --time")
	}
	if c.proto == "udp" {
		// Datagram defaults: the UDP modes, the sizes people ask about, a fixed time
		// (4 GiB of 64-byte datagrams would take minutes), the mmsg sink.
		if !c.fs.Changed("mode") {
			modes = "gso,mmsg,write,splice"
		}
		if !c.fs.Changed("size") {
			c.size = "64,1472,8192,61440"
		}
		if !c.fs.Changed("bytes") && !c.fs.Changed("time") {
			dur = 2 * time.Second
		}
		if !c.fs.Changed("sink") {
			sinkName = "mmsg"
		}
	}
	var sizes []int64
	for _, sz := range strings.Split(c.size, ",") {
		n, err := parseSize(sz)
		if err != nil {
			return 0, usageErr{"--size: " + err.Error()}
		}
		sizes = append(sizes, n)
	}
	modeList := strings.Split(modes, ",")
	if runtime.NumCPU() >= 2 {
		cpuSnd, cpuRcv = cmp(cpuSnd, "0"), cmp(cpuRcv, "1")
	}
	exe, err := os.Executable()
	if err != nil {
		return exitFailed, err
	}
	// The run's flags are checked once by the children's own parsers: run a dry check here
	// so a bad flag is one usage error, not N failed runs.
	limit := []string{"--bytes", bytesS}
	if dur > 0 {
		limit = []string{"--time", dur.String()}
	}
	base := []string{"-p", c.proto, "--format", c.format}
	if c.lanes > 1 {
		base = append(base, "--sctp-streams", strconv.Itoa(c.lanes))
	}
	if c.nodelay {
		base = append(base, "--nodelay")
	}
	if c.sndbuf != "" {
		base = append(base, "--sndbuf", c.sndbuf)
	}
	plugin, err := proto.Lookup(c.proto)
	if err != nil {
		return 0, err
	}
	// Can this kernel do the protocol at all? One clear error before any run.
	if c.proto != "udp" {
		ln, err := plugin.Listen("127.0.0.1:0", proto.Options{})
		if err != nil {
			return 0, err
		}
		ln.Close()
	}
	if c.verify {
		base = append(base, "--verify")
	}
	for _, m := range modeList {
		for _, size := range sizes {
			if _, err := sendSpecCheck(append(append(append(modeArgs(m), base...), limit...), "-s", strconv.FormatInt(size, 10))); err != nil {
				return 0, err
			}
		}
		if p, err := proto.Lookup(c.proto); err != nil {
			return 0, err
		} else if err := p.Supports(strings.TrimSuffix(m, "-hot")); err != nil {
			return 0, usageErr{err.Error()}
		}
	}
	ctx, cancel := signalContext()
	defer cancel()

	out := &CompareFile{Env: report.ReadEnv()}
	fmt.Fprintf(stdout, "compare: %s, %s-byte messages, %s per run, %d repeats, sink %s, sender CPU %s, receiver CPU %s\n",
		c.proto, c.size, strings.Join(limit[1:], ""), repeat, sinkName, cmp(cpuSnd, "any"), cmp(cpuRcv, "any"))
	for _, size := range sizes {
		for rep := range repeat {
			order := slices.Clone(modeList)
			if rep%2 == 1 {
				slices.Reverse(order)
			}
			for _, m := range order {
				if ctx.Err() != nil {
					break
				}
				sargs := append(append(append(modeArgs(m), base...), limit...), "-s", strconv.FormatInt(size, 10))
				r, err := runPair(ctx, exe, sargs, sinkName, c, cpuSnd, cpuRcv)
				if err != nil {
					return exitFailed, err
				}
				r.Repeat = rep + 1
				out.Runs = append(out.Runs, r)
				fmt.Fprintf(stdout, "  run %d/%d %-8s %6d B sender %s  %.0f ms/GiB  %.2f Gbit/s  %.0f pps\n", rep+1, repeat, m, size,
					r.Sender.SeedLine(), r.Sender.CPUMsPerGiB, r.Sender.GbitS, r.Sender.PPS)
				if r.Error != "" {
					fmt.Fprintf(stdout, "    error: %s\n", r.Error)
				}
			}
		}
	}
	for _, size := range sizes {
		sum := summarize(out.Runs, modeList, int(size))
		out.Summary = append(out.Summary, sum...)
		if c.proto == "udp" {
			printCompareUDP(stdout, sum)
		} else {
			printCompare(stdout, sum)
		}
	}
	if c.proto == "sctp" {
		fmt.Fprintln(stdout, "note: splice into SCTP is copied by the kernel (SCTP has no MSG_SPLICE_PAGES; 6.1 used sock_no_sendpage): compare splice's sender sys time with write's above")
	}
	if jsonFile != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
			return exitFailed, err
		}
		fmt.Fprintf(stdout, "saved %s\n", jsonFile)
	}
	for _, r := range out.Runs {
		if r.Receiver != nil && r.Verify && (r.Receiver.Corrupt > 0 || r.Proto != "udp" && r.Receiver.Lost+r.Receiver.Duplicate > 0) {
			return exitIntegrity, nil
		}
		if r.Error != "" {
			return exitFailed, nil
		}
	}
	if ctx.Err() != nil {
		return exitFailed, nil
	}
	return exitOK, nil
}

// modeArgs turns a compare mode label into send flags.
func modeArgs(label string) []string {
	if m, ok := strings.CutSuffix(label, "-hot"); ok {
		return []string{"-m", m, "--hot-buffer"}
	}
	return []string{"-m", label}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sendSpecCheck parses send flags without sending (compare's up-front check).
func sendSpecCheck(args []string) (bool, error) {
	c := newCommon("send")
	var mode, bytesS, ringS, io_ string
	var count int64
	var dur time.Duration
	var unsafeRing, hot bool
	c.fs.StringVarP(&mode, "mode", "m", "splice", "")
	c.fs.BoolVar(&hot, "hot-buffer", false, "")
	c.fs.StringVarP(&c.size, "size", "s", "64KiB", "")
	c.fs.Int64VarP(&count, "count", "n", 0, "")
	c.fs.StringVar(&bytesS, "bytes", "", "")
	c.fs.DurationVarP(&dur, "time", "t", 0, "")
	if err := c.fs.Parse(args); err != nil {
		return false, usageErr{err.Error()}
	}
	spec, err := sendSpec(c, mode, count, bytesS, dur, ringS, unsafeRing, io_)
	if err != nil {
		return false, err
	}
	spec.HotBuffer = hot
	return true, spec.Validate()
}

// runPair runs one test with the receiver and the sender each in its own child process
// (so each side's getrusage is its own), the receiver on an inherited listening socket.
func runPair(ctx context.Context, exe string, sendArgs []string, sinkName string, c *common, cpuSnd, cpuRcv string) (*report.Run, error) {
	var lf *os.File
	var addr string
	if c.proto == "udp" {
		ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		lf, err = ln.File()
		addr = ln.LocalAddr().String()
		ln.Close()
		if err != nil {
			return nil, err
		}
	} else {
		plugin, err := proto.Lookup(c.proto)
		if err != nil {
			return nil, err
		}
		ln, err := plugin.Listen("127.0.0.1:0", proto.Options{})
		if err != nil {
			return nil, err
		}
		lf, err = ln.File()
		addr = ln.Addr().String()
		ln.Close()
		if err != nil {
			return nil, err
		}
	}
	defer lf.Close()

	rargs := []string{"recv", "--listen-fd", "3", "--json", "-i", "0", "--sink", sinkName, "-p", c.proto,
		"--format", c.format, "--idle", "20s"}
	if c.verify {
		rargs = append(rargs, "--verify")
	}
	if c.rcvbuf != "" {
		rargs = append(rargs, "--rcvbuf", c.rcvbuf)
	}
	sargs := append([]string{"send", "--json", "-i", "0"}, sendArgs...)
	if cpuRcv != "" {
		rargs = append(rargs, "--cpu", cpuRcv)
	}
	if cpuSnd != "" {
		sargs = append(sargs, "--cpu", cpuSnd)
	}
	if c.format != "native" && c.proto != "udp" {
		rargs = append(rargs, "-s", c.size)
	}
	sargs = append(sargs, addr)

	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var rout, rerr, sout, serr bytes.Buffer
	rc := exec.CommandContext(cctx, exe, rargs...)
	rc.ExtraFiles = []*os.File{lf}
	rc.Stdout, rc.Stderr = &rout, &rerr
	rc.Cancel = func() error { return rc.Process.Signal(os.Interrupt) }
	rc.WaitDelay = 5 * time.Second
	if err := rc.Start(); err != nil {
		return nil, err
	}
	sc := exec.CommandContext(cctx, exe, sargs...)
	sc.Stdout, sc.Stderr = &sout, &serr
	sc.Cancel = func() error { return sc.Process.Signal(os.Interrupt) }
	sc.WaitDelay = 5 * time.Second
	if err := sc.Start(); err != nil {
		rc.Process.Kill()
		rc.Wait()
		return nil, err
	}
	sendErr := sc.Wait()
	recvErr := rc.Wait()

	run := &report.Run{}
	var rr report.Run
	if err := json.Unmarshal(sout.Bytes(), run); err != nil || run.Sender == nil {
		return nil, fmt.Errorf("sender %v: %v: %s", sargs, sendErr, strings.TrimSpace(serr.String()))
	}
	if err := json.Unmarshal(rout.Bytes(), &rr); err != nil || rr.Receiver == nil {
		return nil, fmt.Errorf("receiver %v: %v: %s", rargs, recvErr, strings.TrimSpace(rerr.String()))
	}
	run.Receiver = rr.Receiver
	if rr.Error != "" {
		run.Error = strings.TrimSpace(run.Error + " receiver: " + rr.Error)
	}
	run.Interrupted = run.Interrupted || rr.Interrupted
	return run, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(runs []*report.Run, modes []string, size int) []Summary {
	var out []Summary
	for _, m := range modes {
		var sm Summary
		var su, ss, sr, sc, ru, rs, rr, rc, g, sp, rp, lp, cm []float64
		for _, r := range runs {
			if r.Label() != m || r.Size != size || r.Sender == nil || r.Receiver == nil {
				continue
			}
			sp, rp = append(sp, r.Sender.PPS), append(rp, r.Receiver.PPS)
			lp = append(lp, r.Receiver.LossPct)
			if r.Sender.Messages > 0 {
				cm = append(cm, (r.Sender.UsrMs+r.Sender.SysMs)/(float64(r.Sender.Messages)/1e6))
			}
			sm.Fallbacks += r.Sender.Fallbacks
			sm.Proto, sm.Mode, sm.Size = r.Proto, r.Label(), r.Size
			sm.Runs++
			su, ss, sr, sc = append(su, r.Sender.UsrMs), append(ss, r.Sender.SysMs), append(sr, r.Sender.RealMs), append(sc, r.Sender.CPUMsPerGiB)
			ru, rs, rr, rc = append(ru, r.Receiver.UsrMs), append(rs, r.Receiver.SysMs), append(rr, r.Receiver.RealMs), append(rc, r.Receiver.CPUMsPerGiB)
			g = append(g, r.Receiver.GbitS)
			sm.Corrupt += r.Receiver.Corrupt
		}
		if sm.Runs == 0 {
			continue
		}
		sm.SndUsrMs, sm.SndSysMs, sm.SndRealMs, sm.SndCPUGiB = median(su), median(ss), median(sr), median(sc)
		sm.RcvUsrMs, sm.RcvSysMs, sm.RcvRealMs, sm.RcvCPUGiB = median(ru), median(rs), median(rr), median(rc)
		sm.GbitS = median(g)
		sm.SndPPS, sm.RcvPPS, sm.LossPct, sm.SndCPUMpkt = median(sp), median(rp), median(lp), median(cm)
		if sm.SndCPUGiB > 0 {
			sm.SndSpread = (slices.Max(sc) - slices.Min(sc)) / sm.SndCPUGiB * 100
		}
		out = append(out, sm)
	}
	return out
}

func printCompare(w io.Writer, sum []Summary) {
	fmt.Fprintln(w)
	for _, s := range sum {
		fmt.Fprintf(w, "%s %s (median of %d):\n", s.Proto, s.Mode, s.Runs)
		fmt.Fprintf(w, "  sender:   usr=%.3fs, sys=%.3fs, real=%.3fs\n", s.SndUsrMs/1000, s.SndSysMs/1000, s.SndRealMs/1000)
		fmt.Fprintf(w, "  receiver: usr=%.3fs, sys=%.3fs, real=%.3fs\n", s.RcvUsrMs/1000, s.RcvSysMs/1000, s.RcvRealMs/1000)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-10s %8s %15s %15s %15s %9s %8s\n", "mode", "size", "snd ms/GiB", "rcv ms/GiB", "snd sys ms", "Gbit/s", "corrupt")
	for _, s := range sum {
		fmt.Fprintf(w, "%-10s %8d %9.0f ±%3.0f%% %15.0f %15.0f %9.2f %8d\n", s.Mode, s.Size, s.SndCPUGiB, s.SndSpread/2,
			s.RcvCPUGiB, s.SndSysMs, s.GbitS, s.Corrupt)
	}
	var spl *Summary
	for i := range sum {
		if sum[i].Mode == "splice" {
			spl = &sum[i]
		}
	}
	if spl == nil || spl.SndSysMs == 0 || spl.SndCPUGiB == 0 || spl.RcvCPUGiB == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, s := range sum {
		if s.Mode == "splice" {
			continue
		}
		fmt.Fprintf(w, "%s/splice: sender sys %.2fx, sender CPU per GiB %.2fx, receiver CPU per GiB %.2fx\n",
			s.Mode, s.SndSysMs/spl.SndSysMs, s.SndCPUGiB/spl.SndCPUGiB, s.RcvCPUGiB/spl.RcvCPUGiB)
	}
}

// printCompareUDP is the datagram table: packet rates, loss, sender CPU per packet.
func printCompareUDP(w io.Writer, sum []Summary) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-8s %6s %12s %12s %8s %14s %9s %8s %9s\n", "mode", "size", "sent pps", "recv pps", "loss %",
		"snd ms/Mpkt", "Gbit/s", "corrupt", "fallback")
	for _, s := range sum {
		fmt.Fprintf(w, "%-8s %6d %12.0f %12.0f %8.3f %14.0f %9.2f %8d %9d\n", s.Mode, s.Size, s.SndPPS, s.RcvPPS, s.LossPct,
			s.SndCPUMpkt, s.GbitS, s.Corrupt, s.Fallbacks)
	}
}
