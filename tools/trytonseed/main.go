// Command trytonseed writes a seeded Tryton 6.0 database to a file: the template the
// tryton connector's tests copy (connectors/tryton/trytontest: a company with EUR, a chart
// of accounts, a fiscal year for the current year, VAT 19 %, the accounting category
// "Goods", payment terms, countries, the attribute "size", the login admin/admin), built
// once per machine and cached. A trytond whose [database] path is the file's folder serves
// it under the file's name without ".sqlite": -o DIR/erp.sqlite is the database erp.
//
// tools/scripts/demo-erp.sh runs it for the demo's ERP. It needs Debian's Tryton packages
// (make tryton).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/syncline/syncline/connectors/tryton/trytontest"
)

func main() {
	out := flag.String("o", "", "the database file to write, e.g. DIR/erp.sqlite (the database erp of a trytond serving DIR); an existing file is replaced")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "trytonseed:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	if out == "" || flag.NArg() > 0 {
		return errors.New("usage: trytonseed -o DIR/NAME.sqlite")
	}
	if !strings.HasSuffix(out, ".sqlite") {
		return fmt.Errorf("-o %s: Tryton's SQLite backend serves files named NAME.sqlite; give one", out)
	}
	template, err := trytontest.Template()
	if err != nil {
		return err
	}
	if err := copyFile(template, out); err != nil {
		return fmt.Errorf("copying the seeded database to %s: %w", out, err)
	}
	return nil
}

// copyFile writes a copy of from next to to and renames it into place, so that a trytond
// serving the folder never opens half a database.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(to), ".trytonseed-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), to)
}
