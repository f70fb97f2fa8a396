package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pipe is a connected TCP pair on loopback.
func pipe(t testing.TB) (a, b net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func frame(t Type, body string) []byte {
	b := []byte{'S', 'G', Version, byte(t), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], uint32(len(body)))
	return append(b, body...)
}

func TestFrames(t *testing.T) {
	a, b := pipe(t)
	defer a.Close()
	defer b.Close()
	ca, cb := NewConn(a), NewConn(b)
	cb.Max = 100
	if err := ca.Write(time.Second, TStart, Start{}); err != nil {
		t.Fatal(err)
	}
	if err := cb.Expect(time.Second, TStart, &Start{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, in, want string
	}{
		{"unknown field", `{"direction":"forward","evil":1}`, "unknown field"},
		{"trailing data", `{"direction":"forward"}{}`, "after the JSON value"},
		{"type confusion", `{"streams":"1"}`, "cannot unmarshal"},
		{"not json", `GET / HTTP/1.1`, "invalid character"},
	} {
		a.Write(frame(TRequest, c.in))
		var r Request
		if err := cb.Expect(time.Second, TRequest, &r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Over this side's limit: refused from the header, before any body is read.
	a.Write(frame(TRequest, strings.Repeat(" ", 101)))
	if _, _, err := cb.Read(time.Second); err == nil || !strings.Contains(err.Error(), "over this side's 100-byte limit") {
		t.Errorf("oversized frame: %v", err)
	}
	for _, h := range []struct {
		in   []byte
		want string
	}{
		{[]byte("GET / HT"), ErrNotControl.Error()},
		{[]byte{'S', 'G', 9, 1, 0, 0, 0, 0}, "version 9"},
		{[]byte{'S', 'G', Version, 1, 0x40, 0, 0, 0}, "over the"}, // 1 GiB
	} {
		if _, _, err := ParseHeader(h.in); err == nil || !strings.Contains(err.Error(), h.want) {
			t.Errorf("header %q: %v, want %q", h.in, err, h.want)
		}
	}
	// A silent peer: the read ends at its deadline.
	a2, b2 := pipe(t)
	defer a2.Close()
	defer b2.Close()
	cb = NewConn(b2)
	t0 := time.Now()
	if _, _, err := cb.Read(200 * time.Millisecond); !errors.Is(err, errTimeout(err)) || time.Since(t0) > time.Second {
		t.Errorf("silent peer: %v after %v", err, time.Since(t0))
	}
}

func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errors.New("not a timeout")
}

func TestHandshake(t *testing.T) {
	const tok = "0123456789abcdef0123"
	for _, c := range []struct {
		name         string
		server       []byte
		client       string
		wantS, wantC string // "" ok, else a substring of the error
	}{
		{"same token", []byte(tok), tok, "", ""},
		{"wrong token", []byte(tok), tok + "x", "", "the server's proof does not match our token"},
		{"token against an open server", nil, tok, "", "the server does not authenticate"},
		{"client without token", []byte(tok), "", "", "the server wants a token"},
		{"no-auth server", nil, "", "", ""},
	} {
		a, b := pipe(t)
		errc := make(chan error, 1)
		go func() { errc <- serverHandshake(NewConn(b), c.server, &Welcome{Server: "test"}) }()
		_, cerr := clientHandshake(NewConn(a), c.client, "test")
		a.Close()
		serr := <-errc
		b.Close()
		check := func(side string, err error, want string) {
			if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("%s: %s: %v, want %q", c.name, side, err, want)
			}
		}
		check("client", cerr, c.wantC)
		if c.wantS != "" || cerr == nil {
			check("server", serr, c.wantS)
		}
	}
}

// A client that skips checking the server and answers with a wrong proof is refused
// with a typed auth error.
func TestServerRefusesWrongProof(t *testing.T) {
	a, b := pipe(t)
	defer a.Close()
	errc := make(chan error, 1)
	go func() { errc <- serverHandshake(NewConn(b), []byte("0123456789abcdef"), &Welcome{}); b.Close() }()
	c := NewConn(a)
	c.Write(time.Second, THello, Hello{Version: Version, Nonce: make([]byte, NonceLen)})
	var ch Challenge
	if err := c.Expect(time.Second, TChallenge, &ch); err != nil || ch.Auth != AuthHMAC {
		t.Fatal(err, ch.Auth)
	}
	c.Write(time.Second, TAuth, Auth{MAC: proof([]byte("wrong token 12345"), labelClient, make([]byte, NonceLen), ch.Nonce)})
	var re *RemoteError
	if err := c.Expect(time.Second, TWelcome, &Welcome{}); !errors.As(err, &re) || re.E.Code != ErrCodeAuth {
		t.Fatalf("client got %v, want an auth error frame", err)
	}
	if err := <-errc; !errors.Is(err, ErrAuth) {
		t.Fatalf("server: %v", err)
	}
}

// A client that knows the server's proof for one nonce cannot replay it, and the
// server's proof never authenticates a client (labels differ).
func TestProofsDiffer(t *testing.T) {
	tok := []byte("0123456789abcdef")
	nc, ns := bytes.Repeat([]byte{1}, NonceLen), bytes.Repeat([]byte{2}, NonceLen)
	if bytes.Equal(proof(tok, labelServer, nc, ns), proof(tok, labelClient, nc, ns)) {
		t.Fatal("server and client proofs are equal: reflectable")
	}
	ns2 := bytes.Repeat([]byte{3}, NonceLen)
	if bytes.Equal(proof(tok, labelClient, nc, ns), proof(tok, labelClient, nc, ns2)) {
		t.Fatal("the proof does not depend on the server's nonce: replayable")
	}
}

func TestRequestBounds(t *testing.T) {
	ok := Request{Direction: DirForward, Proto: "tcp", Mode: "splice", Size: 1000, Streams: 2, TimeMS: 10000}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Request){
		"no limit":      func(r *Request) { r.TimeMS = 0 },
		"two limits":    func(r *Request) { r.Count = 5 },
		"streams":       func(r *Request) { r.Streams = 5000 },
		"negative rate": func(r *Request) { r.Rate = -1 },
		"direction":     func(r *Request) { r.Direction = "sideways" },
		"reverse port":  func(r *Request) { r.Direction = DirReverse },
		"long name":     func(r *Request) { r.Mode = strings.Repeat("x", 100) },
		"size":          func(r *Request) { r.Size = 0 },
		"burst":         func(r *Request) { r.Burst = -1 },
		"huge burst":    func(r *Request) { r.Burst = 1 << 30 },
		"negative on":   func(r *Request) { r.OnMS = -1 },
		"long ramp":     func(r *Request) { r.RampMS = 400 * 24 * 3600 * 1000 },
		"negative rtt":  func(r *Request) { r.RTT = -1 },
		"huge rtt":      func(r *Request) { r.RTT = 1<<30 + 1 },
	} {
		r := ok
		mut(&r)
		if r.Check() == nil {
			t.Errorf("%s: accepted %+v", name, r)
		}
	}
	pat := ok
	pat.Burst, pat.OnMS, pat.OffMS, pat.RampMS, pat.PPS, pat.RTT = 32, 1000, 500, 2000, 1e4, 100
	if err := pat.Check(); err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(SendArgs(&pat, 1, "", "h:1"), " "); !strings.Contains(a, "--burst 32 --on 1s --off 500ms --ramp 2s --rtt 100") {
		t.Fatalf("send args without the pattern: %s", a)
	}
	r := ok
	notes, err := r.Bound(Limits{Duration: 2000, Rate: 1e9, Streams: 4})
	if err != nil || r.TimeMS != 2000 || r.Rate != 1e9 || len(notes) != 2 || notes[0] != "time cut from 10s to the server's --max-duration 2s" {
		t.Fatalf("bound: %+v %v %v", r, notes, err)
	}
	r.Streams = 5
	if _, err := r.Bound(Limits{Streams: 4}); err == nil {
		t.Fatal("5 streams passed a limit of 4")
	}
}

// fuzzServer is a server whose sides are refused (no child runs): every state before a
// test starts, which is all a stranger can reach, is exercised.
func fuzzServer(token []byte) *Server {
	return &Server{Token: token, Limits: Limits{Tests: 2, Duration: 1000, Streams: 4},
		Check: func([]string) error { return errors.New("fuzz: sides are not run") }}
}

// FuzzServer feeds any bytes to the server's state machine, on both an authenticating
// and an open server: it must answer or close, never panic or hang.
func FuzzServer(f *testing.F) {
	hello, _ := json.Marshal(Hello{Version: Version, Nonce: make([]byte, NonceLen)})
	req, _ := json.Marshal(Request{Direction: DirForward, Proto: "tcp", Mode: "splice", Size: 1000, Streams: 1, TimeMS: 100})
	f.Add(frame(THello, string(hello)))
	f.Add(append(append(frame(THello, string(hello)), frame(TAuth, `{}`)...), frame(TRequest, string(req))...))
	f.Add(append(frame(THello, string(hello)), frame(TAuth, `{"mac":"AAAA"}`)...))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte{'S', 'G', Version, 1, 0x40, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, tok := range [][]byte{nil, []byte("0123456789abcdef")} {
			a, b := pipe(t)
			done := make(chan struct{})
			go func() {
				fuzzServer(tok).Handle(context.Background(), b)
				close(done)
			}()
			a.Write(in)
			a.(*net.TCPConn).CloseWrite() // the server sees EOF after the input: no deadline waits
			io.Copy(io.Discard, a)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("server still busy 10s after the input ended: %q", in)
			}
			a.Close()
		}
	})
}

// FuzzDecode: every frame type's strict decoder on any body.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(TRequest), []byte(`{"direction":"forward","size":1}`))
	f.Add(uint8(TResult), []byte(`{"direction":"forward","role":"sender","line":{"a":1}}`))
	f.Add(uint8(TError), []byte(`{"code":"busy","message":"x"}`))
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		for _, v := range []any{&Hello{}, &Challenge{}, &Auth{}, &Welcome{}, &Request{}, &Ready{}, &Record{}, &Error{}} {
			if err := Decode(Type(typ), body, Type(typ), v); err == nil {
				if r, ok := v.(*Request); ok {
					r.Check()
					r.Bound(Limits{Duration: 1000, Rate: 1e6, Streams: 2})
				}
			}
		}
		ParseHeader(body)
	})
}

// After the handshake every frame is tagged: an altered, replayed or reflected frame is
// refused.
func TestSealedFrames(t *testing.T) {
	key := []byte("session key for the test, 32 b.")
	frameBytes := func(v any) []byte {
		a, b := pipe(t)
		defer a.Close()
		defer b.Close()
		c := NewConn(a)
		c.seal(key, 's', 'c')
		c.Write(time.Second, TReady, v)
		buf := make([]byte, 4096)
		b.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := b.Read(buf)
		return buf[:n]
	}
	read := func(raw []byte, role, peer byte, seq uint64) error {
		a, b := pipe(t)
		defer a.Close()
		defer b.Close()
		c := NewConn(b)
		c.seal(key, role, peer)
		c.rseq = seq
		a.Write(raw)
		var r Ready
		return c.Expect(time.Second, TReady, &r)
	}
	good := frameBytes(Ready{Notes: []string{"ok"}})
	if err := read(good, 'c', 's', 0); err != nil {
		t.Fatalf("a good frame: %v", err)
	}
	bad := bytes.Clone(good)
	bad[HeaderLen+3] ^= 1
	if err := read(bad, 'c', 's', 0); !errors.Is(err, ErrIntegrity) {
		t.Errorf("altered: %v", err)
	}
	if err := read(good, 'c', 's', 1); !errors.Is(err, ErrIntegrity) {
		t.Errorf("replayed as the next frame: %v", err)
	}
	if err := read(good, 's', 'c', 0); !errors.Is(err, ErrIntegrity) {
		t.Errorf("reflected to its sender: %v", err)
	}
	unsealed := frame(TReady, `{"tests":null}`)
	if err := read(unsealed, 'c', 's', 0); !errors.Is(err, ErrIntegrity) {
		t.Errorf("an untagged frame: %v", err)
	}
}

// A hostile server's ready that names more tests than asked (or another direction) is
// refused before this host starts any side.
func TestClientRefusesUnaskedTests(t *testing.T) {
	for _, tests := range [][]TestInfo{
		{{Direction: DirForward, TestID: 1, Port: 9}, {Direction: DirForward, TestID: 2, Port: 9}, {Direction: DirForward, TestID: 3, Port: 9}},
		{{Direction: DirReverse, TestID: 1}},
		{{Direction: DirForward, TestID: 0, Port: 9}},
		{{Direction: DirForward, TestID: 1, Port: 0}},
	} {
		a, b := pipe(t)
		go func() {
			c := NewConn(b)
			defer b.Close()
			if serverHandshake(c, nil, &Welcome{Limits: Limits{Tests: 1, Duration: 1000}}) != nil {
				return
			}
			var r Request
			c.Expect(time.Second, TRequest, &r)
			c.Write(time.Second, TReady, Ready{Request: r, Tests: tests})
			c.Read(time.Second)
		}()
		c := NewConn(a)
		w, err := clientHandshake(c, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		cl := &Client{c: c, Welcome: w}
		req := Request{Direction: DirForward, Proto: "tcp", Mode: "splice", Size: 1000, Streams: 1, TimeMS: 100}
		out, err := cl.Run(context.Background(), "/nonexistent/splicegen", req, "", func(bool, Record) {})
		if err == nil || out != nil || !strings.Contains(err.Error(), "ready") {
			t.Errorf("%+v: %v", tests, err)
		}
		a.Close()
	}
}
