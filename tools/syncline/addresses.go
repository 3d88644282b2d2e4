package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// addressesFile is the file of the data folder where `syncline dev` keeps
// the addresses it serves, so that the other commands find the API and NATS
// from --data-dir alone, whatever ports dev was given.
const addressesFile = "addresses.json"

// addresses are what `syncline dev` serves.
type addresses struct {
	// API is the base URL of every API, e.g. http://127.0.0.1:7400.
	API string `json:"api"`
	// NATS is where publishers connect, e.g. nats://127.0.0.1:7422.
	NATS string `json:"nats"`
}

// writeAddresses replaces the data folder's addresses file. It writes a new
// file and renames it over the old one, so that a command reading at the
// same moment sees the old addresses or the new ones, never half of them.
func writeAddresses(dataDir string, a addresses) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the addresses: %w", err)
	}
	path := filepath.Join(dataDir, addressesFile)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readAddresses reads the data folder's addresses file; found is false when
// there is none (no `syncline dev` has run with this folder).
func readAddresses(dataDir string) (a addresses, found bool, err error) {
	path := filepath.Join(dataDir, addressesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return addresses{}, false, nil
	}
	if err != nil {
		return addresses{}, false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return addresses{}, false, fmt.Errorf("reading %s: %w (delete it; `syncline dev` writes it again when it starts)", path, err)
	}
	return a, true, nil
}
