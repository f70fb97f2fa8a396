package control

import (
	"strconv"
)

// The two sides of a direction run as child processes of this binary: "send" and
// "recv" with --json-stream. Their flags are built here from a bounded request, for the
// server's sides and the client's alike, and go through send's and recv's own parsers.

// SendArgs are the flags of a direction's sender: to addr, with the test's id.
func SendArgs(r *Request, id uint64, cpu, addr string) []string {
	size := strconv.Itoa(r.Size)
	if r.Mix != "" {
		size = r.Mix
	}
	a := []string{"send", "--json-stream", "-p", r.Proto, "-m", r.Mode, "-s", size,
		"-P", strconv.Itoa(r.Streams), "--test-id", strconv.FormatUint(id, 16)}
	switch {
	case r.Count > 0:
		a = append(a, "-n", strconv.FormatInt(r.Count, 10))
	case r.Bytes > 0:
		a = append(a, "--bytes", strconv.FormatInt(r.Bytes, 10))
	default:
		a = append(a, "-t", ms(r.TimeMS).String())
	}
	if r.HotBuffer {
		a = append(a, "--hot-buffer")
	}
	if r.Rate > 0 {
		a = append(a, "-b", strconv.FormatFloat(r.Rate, 'f', 0, 64))
	}
	if r.PPS > 0 {
		a = append(a, "--pps", strconv.FormatFloat(r.PPS, 'f', 0, 64))
	}
	if r.SndBuf > 0 {
		a = append(a, "--sndbuf", strconv.Itoa(r.SndBuf))
	}
	if r.Batch > 0 {
		a = append(a, "--batch", strconv.Itoa(r.Batch))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"--tos", int64(r.TOS)}, {"--ttl", int64(r.TTL)}, {"--mark", int64(r.Mark)}, {"--cport", int64(r.CPort)},
		{"--flows", int64(r.Flows)}, {"--fq-rate", int64(r.FQRate)}} {
		if f.v > 0 {
			a = append(a, f.name, strconv.FormatInt(f.v, 10))
		}
	}
	if r.DF {
		a = append(a, "--df")
	}
	if r.Burst > 0 {
		a = append(a, "--burst", strconv.Itoa(r.Burst))
	}
	if r.OnMS > 0 || r.OffMS > 0 { // send's parser refuses one without the other
		a = append(a, "--on", ms(r.OnMS).String(), "--off", ms(r.OffMS).String())
	}
	if r.RampMS > 0 {
		a = append(a, "--ramp", ms(r.RampMS).String())
	}
	if r.RTT > 0 {
		a = append(a, "--rtt", strconv.Itoa(r.RTT))
	}
	return append(common(a, r, cpu), addr)
}

// withFlags inserts flags before a sender's address, the last argument.
func withFlags(a, flags []string) []string {
	n := len(a) - 1
	return append(append(a[:n:n], flags...), a[n])
}

// RecvArgs are the flags of a direction's receiver on an inherited socket (fd 3).
func RecvArgs(r *Request, id uint64, cpu string) []string {
	a := []string{"recv", "--json-stream", "-p", r.Proto, "--test-id", strconv.FormatUint(id, 16), "--listen-fd", "3"}
	if r.Sink != "" {
		a = append(a, "--sink", r.Sink)
	}
	if r.RcvBuf > 0 {
		a = append(a, "--rcvbuf", strconv.Itoa(r.RcvBuf))
	}
	return common(a, r, cpu)
}

// common adds the flags both sides take.
func common(a []string, r *Request, cpu string) []string {
	a = append(a, "-i", ms(r.IntervalMS).String())
	if r.Verify {
		a = append(a, "--verify")
	}
	if r.NoDelay {
		a = append(a, "--nodelay")
	}
	if r.Lanes > 1 {
		a = append(a, "--sctp-streams", strconv.Itoa(r.Lanes))
	}
	if r.PPID != 0 {
		a = append(a, "--sctp-ppid", strconv.FormatUint(uint64(r.PPID), 10))
	}
	if cpu != "" {
		a = append(a, "--cpu", cpu)
	}
	return a
}
