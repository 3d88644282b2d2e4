package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionText says which build of syncline this is, from the build
// information Go writes into every binary: the module version (a release
// tag, or "(devel)" for a build of a checkout) and, when `go build` ran in
// a git checkout, the commit it was built from, its time, and whether the
// checkout had changes. `go run` records no commit.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "syncline (no build information)"
	}
	var vcs []string
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		vcs = append(vcs, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		vcs = append(vcs, t)
	}
	if settings["vcs.modified"] == "true" {
		vcs = append(vcs, "with uncommitted changes")
	}
	vcs = append(vcs, bi.GoVersion)
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	return fmt.Sprintf("syncline %s (%s)", v, strings.Join(vcs, ", "))
}

func newVersion(g *globals, text string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print which build of syncline this is",
		Args:  cobra.NoArgs,
		// The version needs no server.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.out, text)
			return nil
		},
	}
}
