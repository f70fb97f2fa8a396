package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// freePort is a TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// promQuery runs an instant query against Prometheus's HTTP API; nil: no result.
func promQuery(t *testing.T, api, q string) []float64 {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	var vs []float64
	for _, x := range r.Data.Result {
		if s, ok := x.Value[1].(string); ok {
			v, _ := strconv.ParseFloat(s, 64)
			vs = append(vs, v)
		}
	}
	return vs
}

// A real Prometheus (Debian's) scrapes send and recv --metrics every second during a
// 20 s run paced at 100 Mbit/s: rate(splicegen_sent_bytes_total[5s])*8 is within 3% of
// 100e6 at the end, and the receiver's latency histogram is there.
func TestMetricsPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("SPLICEGEN_REQUIRE_PROMETHEUS") == "1" {
			t.Fatalf("prometheus not installed: %v", err)
		}
		t.Skip("prometheus not installed (scripts/test.sh installs it)")
	}
	dir := t.TempDir()
	sp, rp, pp := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: splicegen\n    static_configs: [{targets: ['127.0.0.1:%d', '127.0.0.1:%d']}]\n", sp, rp)
	os.WriteFile(dir+"/p.yml", []byte(cfg), 0o644)
	prom := exec.Command(bin, "--config.file="+dir+"/p.yml", "--storage.tsdb.path="+dir+"/data",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", pp))
	var plog strings.Builder
	prom.Stdout, prom.Stderr = &plog, &plog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prom.Process.Kill(); prom.Wait() })
	api := fmt.Sprintf("http://127.0.0.1:%d", pp)

	addr, fd := listenFD(t, "udp", "127.0.0.1:0")
	var wg sync.WaitGroup
	var rcv, snd result
	wg.Add(2)
	go func() {
		defer wg.Done()
		rcv = runArgs("recv", "-p", "udp", "--listen-fd", fmt.Sprint(fd), "-i", "0", "--json", "--metrics", fmt.Sprintf("127.0.0.1:%d", rp))
	}()
	go func() {
		defer wg.Done()
		snd = runArgs("send", "-p", "udp", "-s", "1000", "-b", "100M", "-t", "20s", "-i", "0", "--json",
			"--metrics", fmt.Sprintf("127.0.0.1:%d", sp), addr)
	}()
	time.Sleep(18 * time.Second)
	rate := promQuery(t, api, "rate(splicegen_sent_bytes_total[5s])*8")
	buckets := promQuery(t, api, "splicegen_latency_seconds_bucket")
	recvRate := promQuery(t, api, "rate(splicegen_received_bytes_total[5s])*8")
	wg.Wait()
	if snd.code != 0 || rcv.code != 0 {
		t.Fatalf("send exit %d, recv exit %d: %s %s", snd.code, rcv.code, snd.stderr, rcv.stderr)
	}
	if len(rate) != 1 || rate[0] < 97e6 || rate[0] > 103e6 {
		t.Fatalf("prometheus: rate(splicegen_sent_bytes_total[5s])*8 = %v, want 100e6 ± 3%%\n%s", rate, plog.String())
	}
	if len(buckets) < len(latencyEdge) {
		t.Fatalf("prometheus: %d splicegen_latency_seconds_bucket series", len(buckets))
	}
	t.Logf("prometheus at 18 s: sent %.4g bit/s, received %v bit/s, %d latency buckets", rate[0], recvRate, len(buckets))
}

// server --metrics: the bytes and messages of the server's sides, exact at each test's
// end (its result completes the interval records).
func TestMetricsServer(t *testing.T) {
	mp := freePort(t)
	s := startServer(t, "", "--listen", "127.0.0.1:0", "--no-auth", "--metrics", fmt.Sprintf("127.0.0.1:%d", mp))
	r := runCLI(t, "", nil, time.Minute, "run", s.addr, "-p", "udp", "-s", "1000", "--pps", "20k", "-n", "30000", "--json")
	f := clean(t, "run", r, true, "forward")
	r = runCLI(t, "", nil, time.Minute, "run", s.addr, "-R", "-n", "300", "--json")
	g := clean(t, "run -R", r, false, "reverse")
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", mp))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	for _, want := range []string{
		fmt.Sprintf(`splicegen_received_messages_total{mode="mmsg",proto="udp"} %d`, f.Runs[0].Receiver.Messages),
		fmt.Sprintf(`splicegen_sent_messages_total{mode="splice",proto="tcp",stream="all"} %d`, g.Runs[0].Sender.Messages),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("server metrics lack %q:\n%s", want, b)
		}
	}
}
