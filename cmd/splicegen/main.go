// Command splicegen is a traffic generator for the vmsplice → pipe → splice pipeline.
// This file is flag parsing and wiring only; the work is in gen, pages, proto, sink, report.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/splicegen/splicegen/proto"
	_ "github.com/splicegen/splicegen/proto/sctp"
	_ "github.com/splicegen/splicegen/proto/tcp"
	_ "github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/sink"
)

// Exit statuses (docs/design.md#exit-status).
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitIntegrity = 3
)

const usage = `splicegen: traffic through vmsplice(2) → pipe → splice(2), measured

usage:
  splicegen send    [flags] HOST[:PORT]   transmit one test (port 5500 by default)
  splicegen recv    [flags] [HOST]:PORT   receive one test and report
  splicegen server  [flags]               run the far side of tests for clients (port 5499)
  splicegen run     [flags] HOST[:PORT]   one test against a server: both hosts' figures (-R, --bidir)
  splicegen compare [flags]               side-by-side runs on loopback or --server HOST (matrix, table, JSON/CSV/HTML)
  splicegen report  [flags] R.json [B.json]  re-render saved results; two files: side by side with ratios
  splicegen probe                         what this kernel supports
  splicegen --version                     version and source revision

Run "splicegen COMMAND --help" for a command's flags.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func usagef(f string, a ...any) error { return usageErr{fmt.Sprintf(f, a...)} }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var code int
	var err error
	switch args[0] {
	case "send":
		code, err = cmdSend(args[1:], stdout, stderr)
	case "recv":
		code, err = cmdRecv(args[1:], stdout, stderr)
	case "compare":
		code, err = cmdCompare(args[1:], stdout, stderr)
	case "probe":
		code, err = cmdProbe(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "--version", "version":
		fmt.Fprintln(stdout, version())
		return exitOK
	case "report":
		code, err = cmdReport(args[1:], stdout, stderr)
	case "server":
		code, err = cmdServer(args[1:], stdout, stderr)
	case "run":
		code, err = cmdRun(args[1:], stdout, stderr)
	default:
		err = usagef("unknown command %q (want send, recv, server, run, compare, report, probe or --version)", args[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "splicegen %s: %s\n", args[0], oneLine(err))
		var ue usageErr
		switch {
		case errors.As(err, &ue) || errors.Is(err, proto.ErrUsage) || errors.Is(err, proto.ErrUnknown) || errors.Is(err, proto.ErrKernel):
			code = exitUsage // including "this kernel lacks the protocol": the user asked for what can't run here
		case code == exitOK:
			code = exitFailed
		}
	}
	return code
}

func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	return strings.TrimPrefix(s, proto.ErrUsage.Error()+": ")
}

// common holds the flags send and recv share.
type common struct {
	fs       *pflag.FlagSet
	proto    string
	size     string
	streams  int
	verify   bool
	format   string
	sndbuf   string
	rcvbuf   string
	cpu      string
	json     bool
	stream   bool   // --json-stream: JSON lines
	testID   string // --test-id
	interval time.Duration
	nodelay  bool
	lanes    int
	ppid     uint32
}

// addOutput adds the flags of a command that prints one result (send, recv).
func (c *common) addOutput() {
	c.fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	c.fs.BoolVar(&c.stream, "json-stream", false, "print one JSON object per line: interval records (-i), then the result")
	c.fs.StringVar(&c.testID, "test-id", "", "the test id (hex) the server gave its client: only it counts")
	c.fs.MarkHidden("test-id")
}

// parseTestID parses --test-id (0: not given).
func (c *common) parseTestID() (uint64, error) {
	if c.testID == "" {
		return 0, nil
	}
	id, err := strconv.ParseUint(c.testID, 16, 64)
	if err != nil || id == 0 {
		return 0, usagef("--test-id %q: want a non-zero hex number", c.testID)
	}
	return id, nil
}

func newCommon(name string) *common {
	c := &common{fs: pflag.NewFlagSet(name, pflag.ContinueOnError)}
	c.fs.SetOutput(io.Discard)
	c.fs.SortFlags = false
	c.fs.StringVarP(&c.proto, "proto", "p", "tcp", "protocol: "+strings.Join(proto.Names(), ", "))
	c.fs.IntVarP(&c.streams, "streams", "P", 1, "parallel streams, one OS thread each")
	c.fs.BoolVar(&c.verify, "verify", false, "every message carries a checkable payload + CRC32-C; the receiver checks all of it")
	c.fs.StringVar(&c.format, "format", "native", "wire format: native, nettest (the seed's xmit/recv), raw (no header)")
	c.fs.StringVar(&c.sndbuf, "sndbuf", "", "SO_SNDBUF request (locks autotuning), e.g. 512k")
	c.fs.StringVar(&c.rcvbuf, "rcvbuf", "", "SO_RCVBUF request (locks autotuning), e.g. 4M")
	c.fs.StringVar(&c.cpu, "cpu", "", "pin the process to these CPUs, e.g. 0 or 0-1")
	c.fs.DurationVarP(&c.interval, "interval", "i", -1, "interval lines, e.g. 1s (0 turns them off)")
	c.fs.Lookup("interval").DefValue = "1s for text and --json-stream on runs over 2s, off with --json"
	c.fs.BoolVar(&c.nodelay, "nodelay", false, "TCP_NODELAY / SCTP_NODELAY (Nagle stays on by default, as in the seed)")
	c.fs.BoolVar(&c.nodelay, "sctp-nodelay", false, "SCTP_NODELAY (same as --nodelay)")
	c.fs.IntVar(&c.lanes, "sctp-streams", 1, "SCTP: rotate messages over this many stream ids (message seq on id seq % N)")
	c.fs.Uint32Var(&c.ppid, "sctp-ppid", 0, "SCTP: payload protocol identifier on every message")
	return c
}

// parse parses flags; a help request returns done=true after printing usage to stdout.
func (c *common) parse(args []string, stdout io.Writer, synopsis string) (done bool, err error) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: %s\n\n%s", synopsis, c.fs.FlagUsages())
			return true, nil
		}
		return false, usageErr{err.Error()}
	}
	return false, nil
}

// plugin looks up -p (any case; the run's report then names it as its plugin does) and
// turns the socket flags into its options.
func (c *common) plugin() (proto.Plugin, proto.Options, error) {
	p, err := proto.Lookup(c.proto)
	if err != nil {
		return nil, proto.Options{}, err
	}
	t := p.Traits()
	c.proto = t.Name
	o, err := c.options(t)
	return p, o, err
}

// options turns the socket flags into the plugin's options, checked against its traits.
func (c *common) options(t proto.Traits) (proto.Options, error) {
	o := proto.Options{NoDelay: c.nodelay, Lanes: c.lanes, PPID: c.ppid}
	if c.lanes < 1 || c.lanes > 65535 {
		return o, usagef("--sctp-streams %d out of range 1..65535", c.lanes)
	}
	if !t.Lanes && (c.lanes != 1 || c.ppid != 0) {
		return o, usagef("--sctp-streams and --sctp-ppid need a protocol with sub-streams (sctp), not %s", t.Name)
	}
	return o, c.buffers(&o)
}

// buffers parses --sndbuf and --rcvbuf into o.
func (c *common) buffers(o *proto.Options) error {
	for _, f := range []struct {
		name, v string
		dst     *int
	}{{"--sndbuf", c.sndbuf, &o.SndBuf}, {"--rcvbuf", c.rcvbuf, &o.RcvBuf}} {
		if f.v == "" {
			continue
		}
		n, err := parseSize(f.v)
		if err != nil || n < 1024 || n > 1<<30 {
			return usagef("%s %q: want a size from 1KiB to 1GiB", f.name, f.v)
		}
		*f.dst = int(n)
	}
	return nil
}

func (c *common) pin() error {
	cpus, err := c.cpus()
	if err != nil || cpus == nil {
		return err
	}
	if err := pinProcess(cpus); err != nil {
		return err
	}
	// As if started under taskset: Go sizes GOMAXPROCS from the affinity mask at start-up,
	// but we pin later. With more Ps than CPUs, idle Ms spin on the pinned CPU and preempt
	// the sender at syscall exit (perf: finish_task_switch under write); measured UDP 64 B
	// write on one CPU: 172k pps with GOMAXPROCS=2, 285k with 1.
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// hostPort checks HOST[:PORT] and fills in the data port's default.
func hostPort(arg string, needHost bool) (string, error) { return hostPortOr(arg, needHost, "5500") }

// hostPortOr checks HOST[:PORT] and fills in port def.
func hostPortOr(arg string, needHost bool, def string) (string, error) {
	if _, err := strconv.Atoi(arg); err == nil && !needHost {
		arg = ":" + arg // recv 6900: a port alone (no host is all digits)
	}
	host, port, err := net.SplitHostPort(arg)
	if err != nil {
		if strings.Count(arg, ":") > 1 && !strings.HasPrefix(arg, "[") {
			host, port = arg, def // a bare IPv6 address
		} else if !strings.Contains(arg, ":") {
			host, port = arg, def
		} else {
			return "", usagef("address %q: want HOST:PORT", arg)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || (p == 0 && needHost) {
		return "", usagef("address %q: port %q is not a number in 1..65535", arg, port)
	}
	if needHost && host == "" {
		return "", usagef("address %q: missing host", arg)
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := net.LookupHost(host); err != nil {
			return "", usagef("address %q: cannot resolve host %q (a port alone is written :PORT)", arg, host)
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// signalContext is cancelled by SIGINT, SIGTERM and SIGHUP (a closed terminal): the run
// stops and still reports and saves what it measured.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
}

// intervals prints an interval record (a text line, or a JSON line with --json-stream)
// every interval until the returned stop is called; stop waits for the printer, so no
// record follows the result. loss adds a datagram receiver's losses.
func (c *common) intervals(stdout, stderr io.Writer, every time.Duration, role string, loss bool, progress func() sink.Progress) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	w := c.intervalOut(stdout, stderr)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		var last sink.Progress
		lastT := start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				p := progress()
				sec := now.Sub(lastT).Seconds()
				dm, dl := p.Messages-last.Messages, p.Lost-last.Lost
				iv := report.Interval{Type: "interval", Role: role, At: now.Sub(start).Seconds(), Seconds: sec,
					Bytes: p.Bytes - last.Bytes, Messages: dm, GbitS: float64(p.Bytes-last.Bytes) * 8 / sec / 1e9,
					MsgS: float64(dm) / sec, Lost: dl, Total: p.Bytes, Loss: loss}
				if dm+dl > 0 {
					iv.LossPct = float64(dl) / float64(dm+dl) * 100
				}
				if c.stream {
					b, _ := json.Marshal(&iv)
					w.Write(append(b, '\n')) // one write per line: lines never interleave
				} else {
					iv.Line(w, "")
				}
				last, lastT = p, now
			}
		}
	}()
	return func() { close(quit); <-done }
}

// defaultInterval is -i when given; otherwise 1 s for text output (terminal or not, as
// iperf3) and --json-stream, on runs over 2 s or of unknown length; none with --json.
func (c *common) defaultInterval(run time.Duration) time.Duration {
	if c.interval >= 0 {
		return c.interval
	}
	if c.stream || !c.json && (run == 0 || run > 2*time.Second) {
		return time.Second
	}
	return 0
}

// intervalOut is where interval lines go: stdout, or stderr when --json keeps stdout
// for the one JSON object.
func (c *common) intervalOut(stdout, stderr io.Writer) io.Writer {
	if c.json && !c.stream {
		return stderr
	}
	return stdout
}

// emit prints one run's result (JSON or text), with the run's error folded in and the
// time it ended.
func (c *common) emit(w io.Writer, r *report.Run, runErr error) {
	if runErr != nil {
		r.Error = oneLine(runErr)
	}
	r.Time = time.Now().UTC().Format(time.RFC3339)
	if c.json || c.stream {
		env := report.ReadEnv()
		r.Env = &env
	}
	if c.stream {
		r.Type = "result"
		b, _ := json.Marshal(r)
		w.Write(append(b, '\n'))
	} else if c.json {
		printJSON(w, r)
	} else {
		report.Text(w, r)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// version is the module version and the VCS revision the binary was built from
// (runtime/debug build info: go build in a git clone records it; go install @version
// records the module version).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "splicegen (no build info)"
	}
	v := "splicegen " + bi.Main.Version
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev == "" {
		return v + ", revision unknown (built without VCS information), " + bi.GoVersion
	}
	return fmt.Sprintf("%s, revision %s%s, %s, %s", v, rev, dirty, when, bi.GoVersion)
}
