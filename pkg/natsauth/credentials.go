package natsauth

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// The environment variables of Syncline's own NATS connections.
const (
	EnvUser     = "SYNCLINE_NATS_USER"
	EnvPassword = "SYNCLINE_NATS_PASSWORD"
	EnvCreds    = "SYNCLINE_NATS_CREDS"
	EnvTLSCA    = "SYNCLINE_NATS_TLS_CA"
	EnvTLSCert  = "SYNCLINE_NATS_TLS_CERT"
	EnvTLSKey   = "SYNCLINE_NATS_TLS_KEY"
	// EnvCalloutSeed is the callout issuer's seed: the control plane
	// answers the server's auth callout when it is set.
	EnvCalloutSeed = "SYNCLINE_NATS_CALLOUT_SEED"
)

// Credentials are how one of Syncline's own processes connects to NATS.
type Credentials struct {
	// User and Password: ServiceUser and its password on a server set up
	// as the README shows.
	User, Password string
	// CredsFile is a NATS credentials file (a user JWT and its seed), for
	// a server in operator mode instead of User and Password.
	CredsFile string
	// TLSCA verifies the server; TLSCert and TLSKey are a client
	// certificate, for servers that ask for one.
	TLSCA, TLSCert, TLSKey string
}

// CredentialsFromEnv reads the SYNCLINE_NATS_* variables.
func CredentialsFromEnv() Credentials {
	return Credentials{
		User: os.Getenv(EnvUser), Password: os.Getenv(EnvPassword), CredsFile: os.Getenv(EnvCreds),
		TLSCA: os.Getenv(EnvTLSCA), TLSCert: os.Getenv(EnvTLSCert), TLSKey: os.Getenv(EnvTLSKey),
	}
}

// Check checks the way c connects: one of user and password or a
// credentials file, whose file must exist now, so that a mistake is told at
// start, naming the variable.
func (c Credentials) Check() error {
	switch {
	case c.CredsFile != "" && (c.User != "" || c.Password != ""):
		return fmt.Errorf("%s and %s/%s are both set: use one way to connect", EnvCreds, EnvUser, EnvPassword)
	case (c.User == "") != (c.Password == ""):
		return fmt.Errorf("set both %s and %s, or neither", EnvUser, EnvPassword)
	case c.CredsFile != "":
		return CheckFile(EnvCreds, c.CredsFile)
	}
	return nil
}

// CheckTLS checks c's TLS files: each must exist now.
func (c Credentials) CheckTLS() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("set both %s and %s, or neither", EnvTLSCert, EnvTLSKey)
	}
	for _, f := range []struct{ name, path string }{{EnvTLSCA, c.TLSCA}, {EnvTLSCert, c.TLSCert}, {EnvTLSKey, c.TLSKey}} {
		if f.path == "" {
			continue
		}
		if err := CheckFile(f.name, f.path); err != nil {
			return err
		}
	}
	return nil
}

// Options checks c and returns its connection options.
func (c Credentials) Options() ([]nats.Option, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	if err := c.CheckTLS(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// CheckFile checks that the file path, given by the variable name, can be
// read.
func CheckFile(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s=%s: no such file", name, path)
		}
		return fmt.Errorf("%s=%s: %w", name, path, err)
	}
	return f.Close()
}
