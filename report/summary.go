package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Cell is one point of a compare matrix: protocol × mode label × size × streams. A cell
// this kernel or protocol cannot run is Unsupported, with the Reason; it is listed in
// every output, never dropped.
type Cell struct {
	Proto       string
	Mode        string // label: a send mode, or "write-hot" (write --hot-buffer)
	Size        int
	Streams     int
	Unsupported bool
	Reason      string
}

// Key names a cell for matching across files (report A.json B.json).
type Key struct {
	Proto, Mode   string
	Size, Streams int
}

// Key returns the cell's key.
func (c Cell) Key() Key { return Key{c.Proto, c.Mode, c.Size, max(c.Streams, 1)} }

// Summary is one cell's medians over its repeats (or the reason it did not run).
type Summary struct {
	Proto      string  `json:"proto"`
	Mode       string  `json:"mode"`
	Size       int     `json:"size"`
	Streams    int     `json:"streams,omitempty"`
	Runs       int     `json:"runs"`
	SndUsrMs   float64 `json:"sender_usr_ms"`
	SndSysMs   float64 `json:"sender_sys_ms"`
	SndRealMs  float64 `json:"sender_real_ms"`
	SndCPUGiB  float64 `json:"sender_cpu_ms_per_gib"`
	SndSpread  float64 `json:"sender_cpu_ms_per_gib_spread_pct"` // (max-min)/median
	RcvUsrMs   float64 `json:"receiver_usr_ms"`
	RcvSysMs   float64 `json:"receiver_sys_ms"`
	RcvRealMs  float64 `json:"receiver_real_ms"`
	RcvCPUGiB  float64 `json:"receiver_cpu_ms_per_gib"`
	RcvSpread  float64 `json:"receiver_cpu_ms_per_gib_spread_pct"`
	GbitS      float64 `json:"gbit_s"`
	GbitSpread float64 `json:"gbit_s_spread_pct"`
	Corrupt    uint64  `json:"corrupt"`
	Lost       uint64  `json:"lost"`      // summed over the runs
	Duplicate  uint64  `json:"duplicate"` // summed over the runs
	// Packet rates (medians), for UDP above all.
	SndPPS     float64 `json:"sender_pps"`
	RcvPPS     float64 `json:"receiver_pps"`
	LossPct    float64 `json:"loss_pct"`
	SndCPUMpkt float64 `json:"sender_cpu_ms_per_mpkt"` // (usr+sys) ms per million messages sent
	Fallbacks  int     `json:"fallbacks"`
	Failed     int     `json:"failed,omitempty"` // runs that ended with an error
	// Unsupported: the cell could not run here (protocol, kernel or size); Reason says why.
	Unsupported bool   `json:"unsupported,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// Key returns the summary's cell key.
func (s *Summary) Key() Key { return Key{s.Proto, s.Mode, s.Size, max(s.Streams, 1)} }

// File is what compare --json FILE holds and report reads.
type File struct {
	Env     Env       `json:"env"`
	Args    []string  `json:"args,omitempty"` // compare's command line
	Runs    []*Run    `json:"runs"`
	Summary []Summary `json:"summary"`
}

// ReadFile loads a compare results file.
func ReadFile(name string) (*File, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

// Parse decodes a results file. A file is input like any other: whatever it holds,
// rendering it must not panic, so null runs are dropped and sizes bounded (fuzzed).
func Parse(b []byte) (*File, error) {
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a compare results file: %v", err)
	}
	if f.Summary == nil && f.Runs == nil {
		return nil, fmt.Errorf("no runs and no summary (want compare --json output)")
	}
	f.Runs = slices.DeleteFunc(f.Runs, func(r *Run) bool { return r == nil })
	return &f, nil
}

// WriteFile saves f as indented JSON, atomically.
func (f *File) WriteFile(name string) error {
	return AtomicWrite(name, func(w io.Writer) error {
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

// AtomicWrite writes a file through a temporary one in the same directory, synced and
// renamed over name (rename(2) is atomic): a reader sees the old file or the whole new
// one, never a part, whatever happens mid-write (full disk, SIGKILL).
func AtomicWrite(name string, write func(io.Writer) error) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("save %s: %w", name, err)
		}
	}()
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a failed write's
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// Median is the middle value (the mean of the two middle ones for an even count).
func Median(v []float64) float64 {
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

// spread is (max-min)/median in percent.
func spread(v []float64) float64 {
	m := Median(v)
	if len(v) == 0 || m == 0 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / m * 100
}

// Summarize computes one Summary per cell, in the cells' order: medians over the runs
// that measured both sides, or the cell's reason when it is unsupported. A cell with no
// measured run (every run failed, or the compare was interrupted first) is kept with
// Runs 0.
func Summarize(runs []*Run, cells []Cell) []Summary {
	var out []Summary
	for _, c := range cells {
		sm := Summary{Proto: c.Proto, Mode: c.Mode, Size: c.Size, Streams: max(c.Streams, 1)}
		if c.Unsupported {
			sm.Unsupported, sm.Reason = true, c.Reason
			out = append(out, sm)
			continue
		}
		var su, ss, sr, sc, ru, rs, rr, rc, g, sp, rp, lp, cm []float64
		for _, r := range runs {
			if r.Key() != c.Key() {
				continue
			}
			if r.Error != "" {
				sm.Failed++
			}
			if r.Sender == nil || r.Receiver == nil {
				continue
			}
			sp, rp = append(sp, r.Sender.PPS), append(rp, r.Receiver.PPS)
			lp = append(lp, r.Receiver.LossPct)
			if r.Sender.Messages > 0 {
				cm = append(cm, (r.Sender.UsrMs+r.Sender.SysMs)/(float64(r.Sender.Messages)/1e6))
			}
			sm.Fallbacks += r.Sender.Fallbacks
			sm.Runs++
			su, ss, sr, sc = append(su, r.Sender.UsrMs), append(ss, r.Sender.SysMs), append(sr, r.Sender.RealMs), append(sc, r.Sender.CPUMsPerGiB)
			ru, rs, rr, rc = append(ru, r.Receiver.UsrMs), append(rs, r.Receiver.SysMs), append(rr, r.Receiver.RealMs), append(rc, r.Receiver.CPUMsPerGiB)
			g = append(g, r.Receiver.GbitS)
			sm.Corrupt += r.Receiver.Corrupt
			sm.Lost += r.Receiver.Lost
			sm.Duplicate += r.Receiver.Duplicate
		}
		sm.SndUsrMs, sm.SndSysMs, sm.SndRealMs, sm.SndCPUGiB = Median(su), Median(ss), Median(sr), Median(sc)
		sm.RcvUsrMs, sm.RcvSysMs, sm.RcvRealMs, sm.RcvCPUGiB = Median(ru), Median(rs), Median(rr), Median(rc)
		sm.GbitS = Median(g)
		sm.SndPPS, sm.RcvPPS, sm.LossPct, sm.SndCPUMpkt = Median(sp), Median(rp), Median(lp), Median(cm)
		sm.SndSpread, sm.RcvSpread, sm.GbitSpread = spread(sc), spread(rc), spread(g)
		out = append(out, sm)
	}
	return out
}
