package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/splicegen/splicegen/report"
	"golang.org/x/term"
)

// writeOutputs saves the results files that were asked for (compare and report), each
// atomically and on its own: one that cannot be written never costs another.
func writeOutputs(f *report.File, jsonFile, csvFile, htmlFile string, stdout io.Writer) error {
	var errs []error
	for _, o := range []struct {
		name  string
		write func(io.Writer) error
	}{{jsonFile, nil}, {csvFile, f.WriteCSV}, {htmlFile, f.WriteHTML}} {
		if o.name == "" {
			continue
		}
		var err error
		if o.write == nil {
			err = f.WriteFile(o.name)
		} else {
			err = report.AtomicWrite(o.name, o.write)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "saved %s\n", o.name)
	}
	return errors.Join(errs...)
}

// progress shows "cell i of N, elapsed, estimate" on a terminal (stderr, one line
// rewritten in place); it prints nothing when the output is piped.
type progress struct {
	w        io.Writer
	on       bool
	total, i int
	t0       time.Time
}

func newProgress(stdout, stderr io.Writer, total int) *progress {
	p := &progress{w: stderr, total: total, t0: time.Now()}
	so, ok1 := stdout.(*os.File)
	se, ok2 := stderr.(*os.File)
	p.on = ok1 && ok2 && term.IsTerminal(int(so.Fd())) && term.IsTerminal(int(se.Fd()))
	return p
}

func (p *progress) start(what string) {
	p.i++
	if !p.on {
		return
	}
	el := time.Since(p.t0)
	est := "?"
	if p.i > 1 {
		left := el / time.Duration(p.i-1) * time.Duration(p.total-p.i+1)
		est = "~" + left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[K[%d/%d] %s  elapsed %s, left %s", p.i, p.total, what, el.Round(time.Second), est)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) finish() {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[Kcompare: %d runs in %s\n", p.i, time.Since(p.t0).Round(time.Second))
	}
}
