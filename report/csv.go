package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
)

// CSVHeader names the columns of WriteCSV: one row per run, then one per unsupported
// cell (status "unsupported", the reason in error).
var CSVHeader = []string{"status", "proto", "mode", "size", "streams", "repeat", "format", "verify",
	"sender_bytes", "sender_messages", "sender_usr_ms", "sender_sys_ms", "sender_real_ms",
	"sender_cpu_ms_per_gib", "sender_gbit_s", "sender_pps", "ring_bytes", "sndbuf", "fallbacks",
	"receiver_bytes", "receiver_messages", "receiver_usr_ms", "receiver_sys_ms", "receiver_real_ms",
	"receiver_cpu_ms_per_gib", "receiver_gbit_s", "receiver_pps",
	"lost", "reordered", "duplicate", "corrupt", "loss_pct", "sink", "error"}

// WriteCSV writes the file's runs, one row each, and its unsupported cells.
func (f *File) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	fl := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	for _, r := range f.Runs {
		status := "ok"
		switch {
		case r.Interrupted:
			status = "interrupted"
		case r.Error != "":
			status = "error"
		}
		row := []string{status, cell(r.Proto), cell(r.Label()), strconv.Itoa(r.Size), strconv.Itoa(max(r.Streams, 1)),
			strconv.Itoa(r.Repeat), cell(r.Format), strconv.FormatBool(r.Verify)}
		if s := r.Sender; s != nil {
			row = append(row, u(s.Bytes), u(s.Messages), fl(s.UsrMs), fl(s.SysMs), fl(s.RealMs), fl(s.CPUMsPerGiB),
				fl(s.GbitS), fl(s.PPS), strconv.Itoa(s.RingBytes), strconv.Itoa(s.Sndbuf), strconv.Itoa(s.Fallbacks))
		} else {
			row = append(row, make([]string, 11)...)
		}
		if v := r.Receiver; v != nil {
			row = append(row, u(v.Bytes), u(v.Messages), fl(v.UsrMs), fl(v.SysMs), fl(v.RealMs), fl(v.CPUMsPerGiB),
				fl(v.GbitS), fl(v.PPS), u(v.Lost), u(v.Reordered), u(v.Duplicate), u(v.Corrupt), fl(v.LossPct), cell(v.Sink))
		} else {
			row = append(row, make([]string, 14)...)
		}
		cw.Write(append(row, cell(r.Error)))
	}
	for _, s := range f.Summary {
		if !s.Unsupported {
			continue
		}
		row := []string{"unsupported", cell(s.Proto), cell(s.Mode), strconv.Itoa(s.Size), strconv.Itoa(max(s.Streams, 1))}
		row = append(row, make([]string, len(CSVHeader)-len(row)-1)...)
		cw.Write(append(row, cell(s.Reason)))
	}
	cw.Flush()
	return cw.Error()
}

// cell neutralises a text cell that a spreadsheet would run as a formula (it starts with
// =, +, -, @, tab or CR: OWASP's CSV injection advice): a leading ' makes it text.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
