package control

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Auth schemes a server announces.
const (
	AuthHMAC = "hmac-sha256" // pre-shared token, mutual challenge–response
	AuthNone = "none"        // server started with --no-auth
)

// The token is never sent. Each side proves it knows the token with HMAC-SHA256 (RFC 2104,
// crypto/hmac) over both nonces, under a label per role so neither proof can be
// reflected as the other; fresh nonces per connection make a recorded proof useless.
// Proofs are compared with hmac.Equal (constant time).
const (
	labelServer  = "splicegen control v1 server\x00"
	labelClient  = "splicegen control v1 client\x00"
	labelSession = "splicegen control v1 session\x00" // the key that tags every later frame
)

// MinToken is the shortest token accepted.
const MinToken = 16

func proof(token []byte, label string, nc, ns []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(nc)
	m.Write(ns)
	return m.Sum(nil)
}

// NewToken makes a random token (32 bytes, hex).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// LoadToken reads the token: from file when given, else $SPLICEGEN_TOKEN ("" when neither).
// Surrounding white space is not part of it.
func LoadToken(file string) (string, error) {
	t := os.Getenv("SPLICEGEN_TOKEN")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		t = string(b)
	}
	t = strings.TrimSpace(t)
	if t != "" && len(t) < MinToken {
		return "", fmt.Errorf("the token has %d characters, want at least %d", len(t), MinToken)
	}
	return t, nil
}

// ErrAuth is a failed authentication, on either side.
var ErrAuth = errors.New("authentication failed")

// Deadlines of the handshake: every read waits at most this long.
const handshakeWait = 5 * time.Second

// serverHandshake authenticates a client (token nil: --no-auth) and welcomes it.
func serverHandshake(c *Conn, token []byte, w *Welcome) error {
	var h Hello
	if err := c.Expect(handshakeWait, THello, &h); err != nil {
		return err
	}
	if h.Version != Version {
		return c.Fail(ErrCodeProtocol, "control protocol version %d, the server speaks %d", h.Version, Version)
	}
	if len(h.Nonce) != NonceLen {
		return c.Fail(ErrCodeProtocol, "nonce of %d bytes, want %d", len(h.Nonce), NonceLen)
	}
	ch := Challenge{Nonce: make([]byte, NonceLen), Auth: AuthNone}
	rand.Read(ch.Nonce)
	if token != nil {
		ch.Auth, ch.MAC = AuthHMAC, proof(token, labelServer, h.Nonce, ch.Nonce)
	}
	if err := c.Write(handshakeWait, TChallenge, ch); err != nil {
		return err
	}
	var a Auth
	if err := c.Expect(handshakeWait, TAuth, &a); err != nil {
		return err
	}
	if token != nil && !hmac.Equal(a.MAC, proof(token, labelClient, h.Nonce, ch.Nonce)) {
		c.Fail(ErrCodeAuth, "authentication failed")
		return ErrAuth
	}
	if token != nil {
		c.seal(proof(token, labelSession, h.Nonce, ch.Nonce), 's', 'c')
	}
	return c.Write(handshakeWait, TWelcome, w)
}

// clientHandshake authenticates both ways (token "": the client has none) and returns
// the server's welcome.
func clientHandshake(c *Conn, token, client string) (*Welcome, error) {
	h := Hello{Version: Version, Nonce: make([]byte, NonceLen), Client: client}
	rand.Read(h.Nonce)
	if err := c.Write(handshakeWait, THello, h); err != nil {
		return nil, err
	}
	var ch Challenge
	if err := c.Expect(handshakeWait, TChallenge, &ch); err != nil {
		return nil, err
	}
	var a Auth
	switch ch.Auth {
	case AuthNone:
		if token != "" {
			// A client with a token wants to know it talks to the server: an impostor
			// (or an open server) could fake every result.
			return nil, fmt.Errorf("%w: the server does not authenticate (--no-auth) but this client has a token; unset SPLICEGEN_TOKEN to use an open server", ErrAuth)
		}
	case AuthHMAC:
		if token == "" {
			return nil, fmt.Errorf("%w: the server wants a token (--token-file or SPLICEGEN_TOKEN)", ErrAuth)
		}
		if len(ch.Nonce) != NonceLen || !hmac.Equal(ch.MAC, proof([]byte(token), labelServer, h.Nonce, ch.Nonce)) {
			return nil, fmt.Errorf("%w: the server's proof does not match our token (different tokens, or not our server)", ErrAuth)
		}
		a.MAC = proof([]byte(token), labelClient, h.Nonce, ch.Nonce)
	default:
		return nil, fmt.Errorf("the server offers auth %q, this client knows %s and %s", ch.Auth, AuthHMAC, AuthNone)
	}
	if err := c.Write(handshakeWait, TAuth, a); err != nil {
		return nil, err
	}
	if ch.Auth == AuthHMAC {
		c.seal(proof([]byte(token), labelSession, h.Nonce, ch.Nonce), 'c', 's')
	}
	var w Welcome
	if err := c.Expect(handshakeWait, TWelcome, &w); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.E.Code == ErrCodeAuth {
			return nil, fmt.Errorf("%w: the server rejected our token", ErrAuth)
		}
		return nil, err
	}
	return &w, nil
}
