package secret_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/secret"
)

func box(t *testing.T) *secret.Box {
	t.Helper()
	k, err := secret.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := secret.ParseKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpen(t *testing.T) {
	b := box(t)
	plain := []byte(`{"password":"hunter2"}`)
	s1, err := b.Seal("endpoint/acme/erp", plain)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := b.Seal("endpoint/acme/erp", plain)
	if s1 == s2 {
		t.Error("sealing twice gave the same text: the nonce is not fresh")
	}
	if strings.Contains(s1, "hunter2") {
		t.Error("the sealed text holds the plaintext")
	}
	got, err := b.Open("endpoint/acme/erp", s1)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	b := box(t)
	sealed, _ := b.Seal("endpoint/acme/erp", []byte("x"))
	cases := map[string]func() error{
		"another binding": func() error { _, err := b.Open("endpoint/other/erp", sealed); return err },
		"another key":     func() error { _, err := box(t).Open("endpoint/acme/erp", sealed); return err },
		"altered text": func() error {
			alt := sealed[:len(sealed)-2] + "AA"
			if alt == sealed {
				alt = sealed[:len(sealed)-2] + "BB"
			}
			_, err := b.Open("endpoint/acme/erp", alt)
			return err
		},
	}
	for name, open := range cases {
		if err := open(); !errors.Is(err, secret.ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
	if _, err := b.Open("endpoint/acme/erp", "plain text"); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("unsealed text: err = %v", err)
	}
}

func TestParseKey(t *testing.T) {
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		if _, err := secret.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	t.Setenv(secret.EnvMasterKey, "")
	if _, err := secret.FromEnv(); err == nil || !strings.Contains(err.Error(), secret.EnvMasterKey) {
		t.Errorf("FromEnv without the variable: %v", err)
	}
}
