package control

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/splicegen/splicegen/report"
)

// NonceLen is the length of each side's random nonce.
const NonceLen = 32

// Hello opens a control connection.
type Hello struct {
	Version int    `json:"version"`
	Nonce   []byte `json:"nonce"` // NonceLen random bytes
	Client  string `json:"client"`
}

// Challenge is the server's answer: its nonce and, with a token, its proof.
type Challenge struct {
	Nonce []byte `json:"nonce"`
	Auth  string `json:"auth"` // AuthHMAC or AuthNone
	MAC   []byte `json:"mac,omitempty"`
}

// Auth is the client's proof.
type Auth struct {
	MAC []byte `json:"mac,omitempty"`
}

// Welcome says the session is authenticated: what the server is and what it allows.
type Welcome struct {
	Server string     `json:"server"`
	Env    report.Env `json:"env"`
	Limits Limits     `json:"limits"`
}

// Limits bound what one client may ask (the server's flags).
type Limits struct {
	Tests    int     `json:"max_tests"`       // concurrent tests
	Duration int64   `json:"max_duration_ms"` // a test's length
	Rate     float64 `json:"max_rate"`        // bits/s per direction (0: none)
	Streams  int     `json:"max_streams"`     // streams per direction
}

// Directions of a test.
const (
	DirForward = "forward" // the client sends, the server receives
	DirReverse = "reverse" // the server sends (run -R)
	DirBidir   = "bidir"   // both at once, a test id each
)

// Request is the test a client asks for: the send flags that make sense remotely, typed.
// Every value is bounded (Check, then the server's limits) before any is used; the
// server then turns it into its side's flags, which go through send's or recv's own
// parser: one validation per rule.
type Request struct {
	Direction  string  `json:"direction"`
	Proto      string  `json:"proto"`
	Mode       string  `json:"mode"`
	HotBuffer  bool    `json:"hot_buffer,omitempty"`
	Size       int     `json:"size"`
	Count      int64   `json:"count,omitempty"`
	Bytes      int64   `json:"bytes,omitempty"`
	TimeMS     int64   `json:"time_ms,omitempty"`
	Rate       float64 `json:"rate,omitempty"` // bits/s
	PPS        float64 `json:"pps,omitempty"`
	Streams    int     `json:"streams"`
	Verify     bool    `json:"verify,omitempty"`
	SndBuf     int     `json:"sndbuf,omitempty"`
	RcvBuf     int     `json:"rcvbuf,omitempty"`
	NoDelay    bool    `json:"nodelay,omitempty"`
	Lanes      int     `json:"sctp_streams,omitempty"`
	PPID       uint32  `json:"sctp_ppid,omitempty"`
	Batch      int     `json:"batch,omitempty"`
	Burst      int     `json:"burst,omitempty"`
	OnMS       int64   `json:"on_ms,omitempty"`
	OffMS      int64   `json:"off_ms,omitempty"`
	RampMS     int64   `json:"ramp_ms,omitempty"`
	RTT        int     `json:"rtt,omitempty"` // send --rtt: every Nth message reflected
	Sink       string  `json:"sink,omitempty"`
	ServerCPU  string  `json:"server_cpu,omitempty"`
	IntervalMS int64   `json:"interval_ms,omitempty"`
	DataPort   int     `json:"data_port,omitempty"` // the client's receiving port (reverse, bidir)
	// Lab traffic, for whichever host sends (--bind and --bind-dev name the client's own
	// addresses and interfaces: they stay on the client, never in a request).
	TOS    int     `json:"tos,omitempty"`
	TTL    int     `json:"ttl,omitempty"`
	DF     bool    `json:"df,omitempty"`
	Mark   uint32  `json:"mark,omitempty"`
	CPort  int     `json:"cport,omitempty"`
	Flows  int     `json:"flows,omitempty"`
	FQRate float64 `json:"fq_rate,omitempty"` // bits/s per socket
	Mix    string  `json:"mix,omitempty"`     // a size mix (send's --size SIZE:WEIGHT,...); Size is its largest
}

// Check bounds every field to what any server could accept; Bound then applies the
// server's own limits.
func (r *Request) Check() error {
	switch r.Direction {
	case DirForward, DirReverse, DirBidir:
	default:
		return fmt.Errorf("direction %q: want forward, reverse or bidir", r.Direction)
	}
	short := func(s string) bool { return len(s) <= 32 }
	switch {
	case !short(r.Proto) || !short(r.Mode) || !short(r.Sink) || !short(r.ServerCPU):
		return fmt.Errorf("a name over 32 bytes")
	case len(r.Mix) > 1024:
		return fmt.Errorf("a size mix over 1024 bytes")
	case r.Size < 1 || r.Size > 1<<30:
		return fmt.Errorf("size %d out of range", r.Size)
	case r.Count < 0 || r.Bytes < 0 || r.TimeMS < 0 || r.Rate < 0 || r.PPS < 0 || r.Batch < 0 || r.IntervalMS < 0:
		return fmt.Errorf("a negative count, byte total, time, rate or batch")
	case r.Rate > 1e15 || r.PPS > 1e12 || r.Batch > 1024 || !inYear(r.TimeMS):
		return fmt.Errorf("a rate, batch or time out of range")
	case r.Streams < 1 || r.Streams > 1024:
		return fmt.Errorf("streams %d out of range 1..1024", r.Streams)
	case r.SndBuf < 0 || r.SndBuf > 1<<30 || r.RcvBuf < 0 || r.RcvBuf > 1<<30:
		return fmt.Errorf("a buffer size out of range")
	case r.Lanes < 0 || r.Lanes > 65535:
		return fmt.Errorf("sctp_streams %d out of range", r.Lanes)
	case r.DataPort < 0 || r.DataPort > 65535 || r.Direction != DirForward && r.DataPort == 0:
		return fmt.Errorf("data_port %d: a reverse test needs the client's port", r.DataPort)
	case r.Burst < 0 || r.Burst > 1<<20 || !inYear(r.OnMS) || !inYear(r.OffMS) || !inYear(r.RampMS):
		return fmt.Errorf("a burst, on, off or ramp out of range")
	case r.RTT < 0 || r.RTT > 1<<30:
		return fmt.Errorf("rtt %d out of range", r.RTT)
	case r.IntervalMS != 0 && r.IntervalMS < 100:
		return fmt.Errorf("interval %d ms: at least 100", r.IntervalMS)
	case r.TOS < 0 || r.TOS > 255 || r.TTL < 0 || r.TTL > 255 || r.CPort < 0 || r.CPort > 65535 ||
		r.Flows < 0 || r.Flows > 1024 || r.FQRate < 0 || r.FQRate > 1e15:
		return fmt.Errorf("a tos, ttl, cport, flows or fq_rate out of range")
	}
	n := 0
	for _, v := range []bool{r.Count > 0, r.Bytes > 0, r.TimeMS > 0} {
		if v {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("want exactly one of count, bytes, time")
	}
	return nil
}

// Bound applies the server's limits: streams over the limit are refused; a longer time
// and a faster rate are cut to the limit, and notes say what was cut. A count or byte
// total is allowed; the server ends it at the duration limit.
func (r *Request) Bound(l Limits) (notes []string, err error) {
	if l.Streams > 0 && r.Streams*max(1, r.Flows) > l.Streams {
		return nil, fmt.Errorf("%d streams x %d flows asked, the server allows %d sockets (--max-streams)", r.Streams, max(1, r.Flows), l.Streams)
	}
	if max := l.Duration; max > 0 {
		if r.TimeMS > max {
			notes = append(notes, fmt.Sprintf("time cut from %v to the server's --max-duration %v", ms(r.TimeMS), ms(max)))
			r.TimeMS = max
		}
	}
	if l.Rate > 0 {
		bits := float64(r.Size) * 8
		switch {
		case r.PPS > 0 && r.PPS*bits > l.Rate:
			r.PPS = l.Rate / bits
			notes = append(notes, fmt.Sprintf("packet rate cut to %.0f/s by the server's --max-rate %s", r.PPS, rate(l.Rate)))
		case r.PPS == 0 && (r.Rate == 0 || r.Rate > l.Rate):
			r.Rate = l.Rate
			notes = append(notes, fmt.Sprintf("rate set to the server's --max-rate %s", rate(l.Rate)))
		}
	}
	return notes, nil
}

// inYear: a duration in ms within 0 and a year (the longest test).
func inYear(v int64) bool { return v >= 0 && v <= int64(365*24*time.Hour/time.Millisecond) }

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func rate(bps float64) string { return strconv.FormatFloat(bps/1e6, 'f', -1, 64) + " Mbit/s" }

// TestInfo is one direction of a ready test.
type TestInfo struct {
	Direction string `json:"direction"` // forward or reverse
	TestID    uint64 `json:"test_id"`   // every native header of this direction carries it
	Port      int    `json:"port,omitempty"`
}

// Ready answers a request: the test as the server bounded it, its test ids, the
// server's data port, and notes on what the limits changed.
type Ready struct {
	Request Request    `json:"request"`
	Tests   []TestInfo `json:"tests"`
	Notes   []string   `json:"notes,omitempty"`
}

// Start tells the server the client's sides are running.
type Start struct{}

// Stop asks the server to end the test now (the client was interrupted).
type Stop struct{}

// Done follows the server's last result.
type Done struct{}

// Record is one line of a side's --json-stream output, forwarded by the server:
// Direction and Role say which side it is; Line is the child's JSON object.
type Record struct {
	Direction string          `json:"direction"`
	Role      string          `json:"role"` // sender or receiver
	Line      json.RawMessage `json:"line"`
}
