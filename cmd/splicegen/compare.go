package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/splicegen/splicegen/control"
	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/wire"
)

// listFlag is a comma-separated list flag (compare's -P takes "1,4").
type listFlag struct{ v *string }

func (l listFlag) String() string     { return *l.v }
func (l listFlag) Set(s string) error { *l.v = s; return nil }
func (l listFlag) Type() string       { return "list" }

// protoPlan is one protocol's part of the matrix: its modes, sizes, run limit and sink.
type protoPlan struct {
	name    string
	modes   []string
	sizes   []int64
	limit   []string // --bytes N or --time D
	sink    string
	sinkErr error // the protocol's receiver lacks the --sink asked for
	noRun   error // the kernel lacks the protocol: every cell is unsupported
	plugin  proto.Plugin
	base    []string // send flags every cell of this protocol gets
}

func cmdCompare(args []string, stdout, stderr io.Writer) (int, error) {
	c := newCommon("compare")
	var modes, bytesS, jsonFile, csvFile, htmlFile, sinkName, cpuSnd, cpuRcv, streamsS, server, tokenFile string
	var dur time.Duration
	var repeat int
	c.fs.Lookup("proto").Usage = "protocols, comma-separated: tcp, udp, sctp"
	streamsS = "1"
	if f := c.fs.Lookup("streams"); f != nil {
		f.Value, f.DefValue, f.Usage = listFlag{&streamsS}, "1", "parallel streams per run, comma-separated list (e.g. 1,4)"
	}
	c.fs.StringVarP(&modes, "mode", "m", "", "modes, comma-separated (default per protocol: tcp splice,write,write-hot; udp gso,mmsg,write,splice; sctp splice,write); write-hot: write from one cache-hot buffer")
	c.fs.StringVarP(&c.size, "size", "s", "", "message sizes, comma-separated (default tcp/sctp 64KiB; udp 64,1472,8192,61440)")
	c.fs.StringVar(&bytesS, "bytes", "", "bytes per run (default tcp/sctp 4GiB)")
	c.fs.DurationVarP(&dur, "time", "t", 0, "time per run, instead of --bytes (default udp 2s)")
	c.fs.IntVar(&repeat, "repeat", 3, "runs per cell, in interleaved order; medians are reported")
	c.fs.StringVar(&sinkName, "sink", "", "receiver sink: read (default) or splice for tcp; datagram protocols always use their own (udp: mmsg)")
	c.fs.StringVar(&jsonFile, "json", "", "save env, every run and the summary to this file")
	c.fs.StringVar(&csvFile, "csv", "", "save one row per run (and per unsupported cell) to this CSV file")
	c.fs.StringVar(&htmlFile, "html", "", "save a self-contained HTML report (tables and charts) to this file")
	c.fs.StringVar(&cpuSnd, "cpu-sender", "", "pin the sender (default CPU 0 when there are 2+ CPUs)")
	c.fs.StringVar(&cpuRcv, "cpu-receiver", "", "pin the receiver (default CPU 1 when there are 2+ CPUs)")
	c.fs.StringVar(&server, "server", "", "run every cell against a splicegen server at HOST[:PORT] (this host sends, the server receives)")
	c.fs.StringVar(&tokenFile, "token-file", "", "with --server: file holding its token (default $SPLICEGEN_TOKEN)")
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
	var streams []int
	for _, f := range strings.Split(streamsS, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return 0, usagef("--streams %q: want numbers in 1..1024, comma-separated", streamsS)
		}
		streams = append(streams, n)
	}
	parseSizes := func(list string) ([]int64, error) {
		var sizes []int64
		for _, sz := range strings.Split(list, ",") {
			n, err := parseSize(sz)
			if err != nil {
				return nil, usageErr{"--size: " + err.Error()}
			}
			sizes = append(sizes, n)
		}
		return sizes, nil
	}
	var token string
	if server != "" {
		var err error
		if server, err = hostPortOr(server, true, controlPort); err != nil {
			return 0, err
		}
		if token, err = control.LoadToken(tokenFile); err != nil {
			return 0, usageErr{err.Error()}
		}
		if runtime.NumCPU() >= 2 {
			cpuSnd = cmp(cpuSnd, "0") // the receiver's CPUs are the server's: pinned only when asked
		}
	} else if runtime.NumCPU() >= 2 {
		cpuSnd, cpuRcv = cmp(cpuSnd, "0"), cmp(cpuRcv, "1")
	}
	exe, err := os.Executable()
	if err != nil {
		return exitFailed, err
	}
	base := []string{"--format", c.format}
	var lanes []string // only for protocols with sub-streams
	if c.lanes != 1 {
		lanes = append(lanes, "--sctp-streams", strconv.Itoa(c.lanes))
	}
	if c.ppid != 0 {
		lanes = append(lanes, "--sctp-ppid", strconv.FormatUint(uint64(c.ppid), 10))
	}
	if c.nodelay {
		base = append(base, "--nodelay")
	}
	if c.sndbuf != "" {
		base = append(base, "--sndbuf", c.sndbuf)
	}
	if c.verify {
		base = append(base, "--verify")
	}

	// Plan the matrix. A flag that is wrong everywhere (unknown mode, size 0) is one usage
	// error; a cell that this protocol or kernel cannot do is listed as unsupported.
	var plans []*protoPlan
	plan := map[string]*protoPlan{}
	for _, name := range strings.Split(c.proto, ",") {
		name = strings.TrimSpace(name)
		if plan[name] != nil {
			continue
		}
		plugin, err := proto.Lookup(name)
		if err != nil {
			return 0, err
		}
		t := plugin.Traits()
		d := t.Compare
		p := &protoPlan{name: t.Name, plugin: plugin, sink: t.DefaultSink(), limit: []string{d.Limit}, base: base}
		if t.Lanes {
			p.base = append(slices.Clip(base), lanes...)
		}
		p.modes = strings.Split(cmp(modes, d.Modes), ",")
		if p.sizes, err = parseSizes(cmp(c.size, d.Sizes)); err != nil {
			return 0, err
		}
		if c.fs.Changed("bytes") {
			p.limit = []string{"--bytes=" + bytesS}
		} else if c.fs.Changed("time") {
			p.limit = []string{"--time=" + dur.String()}
		}
		if sinkName != "" {
			// A datagram protocol has its one sink; another without the sink asked for
			// lists its cells as unsupported, with the reason.
			if err := t.Sink(sinkName); err == nil {
				p.sink = sinkName
			} else if t.Kind != proto.KindDatagram {
				p.sinkErr = err
			}
		}
		// Can this kernel do the protocol at all? Checked once, by opening its endpoint.
		if f, _, err := proto.Endpoint(plugin, "127.0.0.1:0", proto.Options{}); errors.Is(err, proto.ErrKernel) {
			p.noRun = err
		} else if err != nil {
			return exitFailed, err
		} else {
			f.Close()
		}
		plans = append(plans, p)
		plan[name] = p
	}
	if len(lanes) > 0 && !slices.ContainsFunc(plans, func(p *protoPlan) bool { return p.plugin.Traits().Lanes }) {
		return 0, usagef("--sctp-streams and --sctp-ppid need a protocol with sub-streams (sctp) in --proto")
	}
	var cells []report.Cell
	var runnable []report.Cell
	for _, p := range plans {
		for _, m := range p.modes {
			m = strings.TrimSpace(m)
			if !slices.Contains(gen.Modes, strings.TrimSuffix(m, "-hot")) {
				return 0, usagef("unknown mode %q (want %s, or write-hot)", m, strings.Join(gen.Modes, ", "))
			}
			for _, size := range p.sizes {
				for _, n := range streams {
					cell := report.Cell{Proto: p.name, Mode: m, Size: int(size), Streams: n}
					if err := p.cellReason(strings.TrimSuffix(m, "-hot"), int(size), c); err != nil {
						cell.Reason = oneLine(err)
					} else if err := checkCell(cellArgs(cell, p.base, p.limit), cell.Size, p, c, cpuSnd, cmp(cpuRcv, "0")); err != nil {
						return 0, err // wrong everywhere: one usage error, nothing run
					}
					cell.Unsupported = cell.Reason != ""
					cells = append(cells, cell)
					if !cell.Unsupported {
						runnable = append(runnable, cell)
					}
				}
			}
		}
	}
	if len(runnable) == 0 {
		return 0, usagef("nothing to run here: %s %s: %s", cells[0].Proto, cells[0].Mode, cells[0].Reason)
	}

	ctx, cancel := signalContext()
	defer cancel()

	out := &report.File{Env: report.ReadEnv(), Args: append([]string{"compare"}, args...)}
	for _, p := range plans {
		fmt.Fprintf(stdout, "compare: %s: modes %s, sizes %s, %s per run, sink %s\n", p.name, strings.Join(p.modes, ","),
			joinInts(p.sizes), strings.Replace(strings.TrimPrefix(p.limit[0], "--"), "=", " ", 1), p.sink)
	}
	total := len(runnable) * repeat
	fmt.Fprintf(stdout, "compare: %d cells (%d unsupported), %d repeats, streams %s, %d runs, sender CPU %s, receiver CPU %s\n",
		len(cells), len(cells)-len(runnable), repeat, streamsS, total, cmp(cpuSnd, "any"), cmp(cpuRcv, "any"))
	if server != "" {
		fmt.Fprintf(stdout, "compare: through the server at %s: this host sends, the server receives and measures its side\n", server)
	}
	prog := newProgress(stdout, stderr, total)
	failed := false
runs:
	for rep := range repeat {
		order := slices.Clone(runnable)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, cell := range order {
			if ctx.Err() != nil {
				break runs
			}
			p := plan[cell.Proto]
			prog.start(fmt.Sprintf("%s %s %d B%s, repeat %d", cell.Proto, cell.Mode, cell.Size, streamsTag(cell.Streams), rep+1))
			var r *report.Run
			var err error
			if server != "" {
				var far *report.Env
				r, far, err = remoteRun(ctx, exe, server, token, cellArgs(cell, p.base, p.limit), p.sink, cpuSnd, cpuRcv)
				if far != nil && out.Env.Server == nil {
					out.Env.Server = far
				}
			} else {
				r, err = runPair(ctx, exe, c, pairSpec{proto: cell.Proto, sink: p.sink, size: cell.Size,
					sendArgs: cellArgs(cell, p.base, p.limit)}, cpuSnd, cpuRcv)
			}
			prog.done()
			if err != nil {
				if ctx.Err() != nil {
					break runs
				}
				// A run that produced no report: recorded as failed, the matrix goes on.
				failed = true
				r = &report.Run{Proto: cell.Proto, Mode: strings.TrimSuffix(cell.Mode, "-hot"), HotBuffer: strings.HasSuffix(cell.Mode, "-hot"),
					Size: cell.Size, Streams: cell.Streams, Format: c.format, Verify: c.verify, Error: oneLine(err)}
			}
			r.Repeat = rep + 1
			out.Runs = append(out.Runs, r)
			if jsonFile != "" { // after every run: a SIGKILL loses at most the run in progress
				out.Summary = report.Summarize(out.Runs, cells)
				out.WriteFile(jsonFile) // a failure is reported by the final write
			}
			if r.Sender != nil {
				fmt.Fprintf(stdout, "  run %d/%d %-4s %-9s %6d B%s sender %s  %.0f ms/GiB  %.2f Gbit/s  %.0f pps\n", rep+1, repeat, cell.Proto, cell.Mode, cell.Size,
					streamsTag(cell.Streams), r.Sender.SeedLine(), r.Sender.CPUMsPerGiB, r.Sender.GbitS, r.Sender.PPS)
			}
			if r.Error != "" {
				fmt.Fprintf(stdout, "  run %d/%d %s %s %d B error: %s\n", rep+1, repeat, cell.Proto, cell.Mode, cell.Size, r.Error)
			}
		}
	}
	prog.finish()
	out.Summary = report.Summarize(out.Runs, cells)
	report.WriteTables(stdout, out.Summary)
	if ctx.Err() != nil {
		fmt.Fprintf(stdout, "interrupted after %d of %d runs: the files hold what was measured\n", len(out.Runs), total)
	}
	werr := writeOutputs(out, jsonFile, csvFile, htmlFile, stdout)
	if werr != nil {
		failed = true
	}
	for _, r := range out.Runs {
		if r.Receiver != nil && r.Receiver.Verdict == exitIntegrity { // the receiver's verdict (sink.Stats.Verdict)
			return exitIntegrity, werr
		}
		if r.Error != "" {
			failed = true
		}
	}
	if failed || ctx.Err() != nil {
		return exitFailed, werr
	}
	return exitOK, nil
}

// cellArgs are the send flags of one matrix cell.
func cellArgs(cell report.Cell, base, limit []string) []string {
	a := append(modeArgs(cell.Mode), "-p", cell.Proto, "-s", strconv.Itoa(cell.Size), "-P", strconv.Itoa(cell.Streams))
	return append(append(a, base...), limit...)
}

func streamsTag(n int) string {
	if n > 1 {
		return fmt.Sprintf(" -P %d", n)
	}
	return ""
}

func joinInts(v []int64) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(s, ",")
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

// cellReason says why the protocol cannot run a cell (nil: it can). The reasons come
// from the plugin's traits and the kernel.
func (p *protoPlan) cellReason(mode string, size int, c *common) error {
	t := p.plugin.Traits()
	format, err := wire.ParseFormat(c.format)
	if err != nil {
		return usageErr{err.Error()}
	}
	switch {
	case t.Mode(mode) != nil:
		return t.Mode(mode)
	case p.noRun != nil:
		return p.noRun
	case size > t.MaxFor(""):
		return fmt.Errorf("a %d-byte message exceeds %s's maximum over IPv4 (%d bytes)", size, t.Name, t.MaxFor(""))
	case t.Wire(format, c.verify) != nil:
		return t.Wire(format, c.verify)
	case p.sinkErr != nil:
		return p.sinkErr
	}
	return nil
}

// checkCell runs a runnable cell's sender and receiver flags through send's and recv's
// own parsers, so a flag wrong everywhere is one usage error before anything runs.
func checkCell(sendArgs []string, size int, p *protoPlan, c *common, cpuSnd, cpuRcv string) error {
	sargs := append(append([]string{}, sendArgs...), "127.0.0.1:5500")
	if cpuSnd != "" {
		sargs = append(sargs, "--cpu", cpuSnd)
	}
	if _, _, err := parseSend(sargs, io.Discard); err != nil {
		return err
	}
	_, _, err := parseRecv(recvArgs(pairSpec{proto: p.name, sink: p.sink, size: size}, c, cpuRcv, "127.0.0.1:5500"), io.Discard)
	return err
}
