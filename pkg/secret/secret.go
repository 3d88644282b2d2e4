// Package secret encrypts endpoint credentials at rest (DESIGN section 6):
// AES-256-GCM under a master key from the environment, each sealed value
// bound to what it belongs to (tenant and endpoint) as additional data, so
// that a sealed value copied to another endpoint does not open.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnvMasterKey names the environment variable that holds the master key:
// 32 random bytes in standard base64 (`head -c32 /dev/urandom | base64`).
const EnvMasterKey = "SYNCLINE_MASTER_KEY"

// prefix marks a sealed value and its format version.
const prefix = "v1:"

// Box seals and opens values under one master key. It is safe for
// concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte master key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("the master key is %d bytes: it must be 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("preparing the master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("preparing the master key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a master key written in standard base64.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("the master key is not standard base64: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the master key is %d bytes: it must be 32; make one with `head -c32 /dev/urandom | base64`", len(key))
	}
	return key, nil
}

// FromEnv returns a Box for the key in SYNCLINE_MASTER_KEY.
func FromEnv() (*Box, error) {
	v := os.Getenv(EnvMasterKey)
	if v == "" {
		return nil, fmt.Errorf("%s is not set: give 32 random bytes in base64 (`head -c32 /dev/urandom | base64`)", EnvMasterKey)
	}
	key, err := ParseKey(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvMasterKey, err)
	}
	return New(key)
}

// FromEnvIfSet is FromEnv when SYNCLINE_MASTER_KEY is set, and nil (no
// error) when it is not: a service then runs, and refuses or fails what
// needs credentials, saying why.
func FromEnvIfSet() (*Box, error) {
	if os.Getenv(EnvMasterKey) == "" {
		return nil, nil
	}
	return FromEnv()
}

// NewKey returns a new random master key in standard base64.
func NewKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generating a master key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// Seal encrypts plaintext bound to binding (e.g. "endpoint/acme/erp"): a
// fresh random nonce each time, so sealing the same value twice gives
// different text.
func (b *Box) Seal(binding string, plaintext []byte) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sealing: %w", err)
	}
	out := b.aead.Seal(nonce, nonce, plaintext, []byte(binding))
	return prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// ErrOpen is returned for a sealed value that does not open: another master
// key, another binding, or altered text.
var ErrOpen = errors.New("the sealed value does not open under this master key and binding")

// Open decrypts a value Seal made with the same binding.
func (b *Box) Open(binding, sealed string) ([]byte, error) {
	body, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, fmt.Errorf("opening a sealed value for %s: unknown format (want %q prefix)", binding, prefix)
	}
	raw, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return nil, fmt.Errorf("opening a sealed value for %s: it is damaged", binding)
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(binding))
	if err != nil {
		return nil, fmt.Errorf("opening a sealed value for %s: %w", binding, ErrOpen)
	}
	return plain, nil
}
