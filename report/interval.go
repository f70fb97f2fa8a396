package report

import (
	"fmt"
	"io"
)

// Interval is one interval record: a text line, or with --json-stream one JSON object per
// line (type "interval"; the run's result follows as type "result").
type Interval struct {
	Type     string  `json:"type"` // "interval"
	Role     string  `json:"role"` // sender or receiver
	At       float64 `json:"t_s"`  // seconds since the side started
	Seconds  float64 `json:"seconds"`
	Bytes    uint64  `json:"bytes"`
	Messages uint64  `json:"messages"`
	GbitS    float64 `json:"gbit_s"`
	MsgS     float64 `json:"msg_s"`
	Lost     uint64  `json:"lost"`     // datagram receivers
	LossPct  float64 `json:"loss_pct"` // of this interval
	Total    uint64  `json:"total_bytes"`
	Loss     bool    `json:"-"` // print the loss columns
}

// Line prints the record as a text line, prefixed (e.g. "server receiver ").
func (iv *Interval) Line(w io.Writer, prefix string) {
	s := fmt.Sprintf("%s[%5.1fs] %8.2f Gbit/s %10.0f msg/s", prefix, iv.At, iv.GbitS, iv.MsgS)
	if iv.Loss || iv.Lost > 0 {
		s += fmt.Sprintf("  lost %d (%.2f%%)", iv.Lost, iv.LossPct)
	}
	io.WriteString(w, s+"  total "+Human(iv.Total)+"\n")
}
