package main

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parseSize reads a byte count: 1472, 4k, 64KiB, 1MiB, 2GiB. k/K/KB/KiB mean 1024, as
// in iperf3's -l and -n (sizes of buffers are binary); M and G likewise.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (4k, 64KiB, 1MiB, 2GiB)", s)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	var mul float64
	switch unit {
	case "", "b":
		mul = 1
	case "k", "kb", "kib":
		mul = 1 << 10
	case "m", "mb", "mib":
		mul = 1 << 20
	case "g", "gb", "gib":
		mul = 1 << 30
	case "t", "tb", "tib":
		mul = 1 << 40
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q (want k, KiB, M, MiB, G, GiB)", s, t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %v", s, err)
	}
	b := v * mul
	if b > 1<<50 {
		return 0, fmt.Errorf("size %q is absurdly large", s)
	}
	if b != float64(int64(b)) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	return int64(b), nil
}

// parseCPUList reads a CPU list: "0", "0,2", "0-3".
func parseCPUList(s string, ncpu int) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("--cpu %q: %q is not a CPU number", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("--cpu %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			if c < 0 || c >= ncpu {
				return nil, fmt.Errorf("--cpu %q: CPU %d does not exist (this machine has 0-%d)", s, c, ncpu-1)
			}
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinProcess sets the affinity of every thread of this process (sched_setaffinity(2)
// acts on one thread; threads created later inherit their creator's mask).
func pinProcess(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tids, err := listTasks()
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setaffinity: %w", err)
		}
	}
	return nil
}

// parseRate reads a rate in decimal SI units, as iperf3's -b: 500M, 1Gbit, 2.5G,
// 100k, 1e6 (bits per second for --rate, messages per second for --pps).
func parseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	low := strings.ToLower(t)
	for _, suf := range []string{"bit/s", "bps", "bit", "pps"} {
		if strings.HasSuffix(low, suf) {
			low = strings.TrimSuffix(low, suf)
			break
		}
	}
	mul := 1.0
	if n := len(low); n > 0 {
		switch low[n-1] {
		case 'k':
			mul = 1e3
		case 'm':
			mul = 1e6
		case 'g':
			mul = 1e9
		case 't':
			mul = 1e12
		}
		if mul != 1 {
			low = low[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(low), 64)
	if err != nil || v <= 0 || v*mul > 1e13 || v != v {
		return 0, fmt.Errorf("rate %q: want a positive number with an optional k, M, G (decimal), e.g. 500M, 1Gbit, 2.5G", s)
	}
	return v * mul, nil
}
