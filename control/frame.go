// Package control is splicegen's control protocol: the server that runs the far side of
// tests on request, and the client that asks it (run, compare --server).
//
// A control connection carries typed, length-prefixed frames (docs/design.md#control-protocol):
//
//	magic "SG" | version u8 | type u8 | body length u32 big-endian | JSON body
//
// Bodies are at most MaxBody bytes both ways and decoded strictly: unknown fields,
// trailing data and values of the wrong JSON type are errors, never guesses. Every read
// has a deadline. (iperf3's control CVEs were a length overflow in the JSON read,
// CVE-2023-38403, a type confusion, CVE-2024-53580, a reachable assert, CVE-2025-54350, and
// a read without timeout, CVE-2023-7250: each is a bounded check here.)
package control

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Version is the control protocol's version; a peer with another is refused with a
// typed error naming both.
const Version = 1

// Frame layout.
const (
	HeaderLen = 8
	MaxBody   = 4 << 20 // the largest frame (a result with per-stream detail); the server reads at most MaxRequest
)

// Type is a frame's type.
type Type uint8

// Frame types, in the order a test uses them.
const (
	THello     Type = 1  // client → server: version, nonce
	TChallenge Type = 2  // server → client: nonce, the server's proof, auth scheme
	TAuth      Type = 3  // client → server: the client's proof
	TWelcome   Type = 4  // server → client: authenticated; the server's env and limits
	TRequest   Type = 5  // client → server: the test
	TReady     Type = 6  // server → client: the test as bounded, test ids, data port
	TStart     Type = 7  // client → server: the client's sides are up; start
	TInterval  Type = 8  // server → client: an interval record of a server side
	TResult    Type = 9  // server → client: a server side's result
	TStop      Type = 10 // client → server: interrupted; end the test and report
	TError     Type = 11 // either way: a typed error; the connection closes after it
	TDone      Type = 12 // server → client: every result has been sent
)

var typeNames = map[Type]string{THello: "hello", TChallenge: "challenge", TAuth: "auth", TWelcome: "welcome",
	TRequest: "request", TReady: "ready", TStart: "start", TInterval: "interval", TResult: "result",
	TStop: "stop", TError: "error", TDone: "done"}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// ErrIntegrity: a frame's tag is wrong (altered, injected, replayed or reordered).
var ErrIntegrity = errors.New("a control frame failed its integrity check (altered on the way?)")

// ErrNotControl: the peer does not speak the protocol (an HTTP request, a port scan, garbage).
var ErrNotControl = errors.New("not a splicegen control connection")

// Conn is one control connection: frames with deadlines.
type Conn struct {
	c   net.Conn
	hdr [HeaderLen]byte
	// Max bounds the frames this side reads (MaxBody when 0): the server reads small
	// requests; the client reads results.
	Max int
	// After an authenticated handshake every frame carries a tag (see seal): key is the
	// session key, role this side's label, the sequences count frames each way.
	key        []byte
	role, peer byte
	wseq, rseq uint64
	wmu        sync.Mutex
}

// tagLen is the length of a frame's tag (HMAC-SHA256).
const tagLen = sha256.Size

// seal starts per-frame integrity on an authenticated session: each frame's body is
// followed by HMAC-SHA256(session key, sender's role, frame number, type, body). An
// on-path attacker who did not take part in the handshake cannot alter, inject, replay,
// reorder or reflect a frame (a request, a result, a verdict); the bodies are not
// encrypted (nothing in them is secret but the test ids, which only select data).
func (c *Conn) seal(key []byte, role, peer byte) { c.key, c.role, c.peer = key, role, peer }

func (c *Conn) tag(role byte, seq uint64, t Type, body []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	var h [10]byte
	h[0] = role
	binary.BigEndian.PutUint64(h[1:9], seq)
	h[9] = byte(t)
	m.Write(h[:])
	m.Write(body)
	return m.Sum(nil)
}

// NewConn wraps a connection.
func NewConn(c net.Conn) *Conn { return &Conn{c: c, Max: MaxBody} }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Net is the underlying connection.
func (c *Conn) Net() net.Conn { return c.c }

// Read reads one frame within d. The body is bounded before it is allocated.
func (c *Conn) Read(d time.Duration) (Type, []byte, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	if _, err := io.ReadFull(c.c, c.hdr[:]); err != nil {
		return 0, nil, err
	}
	t, n, err := ParseHeader(c.hdr[:])
	if err != nil {
		return 0, nil, err
	}
	if c.Max > 0 && n > c.Max {
		return 0, nil, fmt.Errorf("a %d-byte %s frame is over this side's %d-byte limit", n, t, c.Max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.c, body); err != nil {
		return 0, nil, fmt.Errorf("%s frame cut short: %w", t, err)
	}
	if c.key != nil {
		if n < tagLen {
			return 0, nil, ErrIntegrity
		}
		body, tag := body[:n-tagLen], body[n-tagLen:]
		if !hmac.Equal(tag, c.tag(c.peer, c.rseq, t, body)) {
			return 0, nil, ErrIntegrity
		}
		c.rseq++
		return t, body, nil
	}
	return t, body, nil
}

// ParseHeader checks a frame header: magic, version, length bound.
func ParseHeader(h []byte) (Type, int, error) {
	if len(h) < HeaderLen || h[0] != 'S' || h[1] != 'G' {
		return 0, 0, ErrNotControl
	}
	if h[2] != Version {
		return 0, 0, fmt.Errorf("control protocol version %d, this side speaks %d", h[2], Version)
	}
	n := binary.BigEndian.Uint32(h[4:8])
	if n > MaxBody {
		return 0, 0, fmt.Errorf("a %d-byte frame is over the %d-byte limit", n, MaxBody)
	}
	return Type(h[3]), int(n), nil
}

// Write sends one frame within d.
func (c *Conn) Write(d time.Duration, t Type, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.key != nil {
		body = append(body, c.tag(c.role, c.wseq, t, body)...)
		c.wseq++
	}
	if len(body) > MaxBody {
		return fmt.Errorf("%s frame of %d bytes is over the %d-byte limit", t, len(body), MaxBody)
	}
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	b[0], b[1], b[2], b[3] = 'S', 'G', Version, byte(t)
	binary.BigEndian.PutUint32(b[4:], uint32(len(body)))
	c.c.SetWriteDeadline(time.Now().Add(d))
	_, err = c.c.Write(append(b, body...))
	return err
}

// Expect reads one frame of type want into v. An error frame becomes a *RemoteError;
// any other type is a protocol error.
func (c *Conn) Expect(d time.Duration, want Type, v any) error {
	t, body, err := c.Read(d)
	if err != nil {
		return err
	}
	return Decode(t, body, want, v)
}

// Decode decodes a frame of type want into v, strictly.
func Decode(t Type, body []byte, want Type, v any) error {
	if t == TError && want != TError {
		var e Error
		if err := strict(body, &e); err != nil {
			return fmt.Errorf("bad error frame: %w", err)
		}
		return &RemoteError{e}
	}
	if t != want {
		return fmt.Errorf("protocol error: got a %s frame, want %s", t, want)
	}
	if err := strict(body, v); err != nil {
		return fmt.Errorf("bad %s frame: %w", t, err)
	}
	return nil
}

// strict decodes exactly one JSON value with no unknown fields and nothing after it.
func strict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON value")
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Error is a typed error frame: Code is one of the Err* codes, Message is for the user.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes.
const (
	ErrCodeAuth     = "auth"     // authentication failed
	ErrCodeBusy     = "busy"     // --max-tests tests are running
	ErrCodeLimit    = "limit"    // the request is over a server limit
	ErrCodeRequest  = "request"  // the request is invalid
	ErrCodeProtocol = "protocol" // a frame out of order or malformed
	ErrCodeTest     = "test"     // the test could not run
)

// RemoteError is an error frame the peer sent.
type RemoteError struct{ E Error }

func (e *RemoteError) Error() string { return e.E.Message }

// Fail sends an error frame (best effort: the peer may be gone) and returns it as an error.
func (c *Conn) Fail(code, f string, a ...any) error {
	e := Error{Code: code, Message: fmt.Sprintf(f, a...)}
	c.Write(2*time.Second, TError, e)
	return &RemoteError{e}
}
