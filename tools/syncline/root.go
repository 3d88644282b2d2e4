package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
	"github.com/syncline/syncline/pkg/api/syncline/controlplane/v1/controlplanev1connect"
	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/tools/allinone"
)

// globals are the flags every client command shares.
type globals struct {
	server  string
	token   string
	natsURL string
	dataDir string
	// in is where questions are answered (stdin); interactive says whether
	// a person types there, so that a question can be asked at all.
	in          io.Reader
	interactive bool
	out         io.Writer
	errOut      io.Writer
}

// newRoot is the syncline command reading answers from in and printing to
// out and errOut.
func newRoot(in io.Reader, out, errOut io.Writer) *cobra.Command {
	return newRootWith(&globals{in: in, interactive: isTerminal(in), out: out, errOut: errOut})
}

func newRootWith(g *globals) *cobra.Command {
	out, errOut := g.out, g.errOut
	version := versionText(debug.ReadBuildInfo())
	root := &cobra.Command{
		Use:           "syncline",
		Version:       version,
		Short:         "Keep business data in step between systems",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(out)
	root.SetErr(errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "API base URL (default: $SYNCLINE_SERVER, else the address `syncline dev` keeps in --data-dir, else http://"+allinone.DefaultHTTPAddr+")")
	pf.StringVar(&g.token, "token", "", "API token (default: $SYNCLINE_TOKEN, else the admin token `syncline dev` keeps in --data-dir)")
	pf.StringVar(&g.natsURL, "nats", "", fmt.Sprintf("NATS URL for publishing (default: $SYNCLINE_NATS_URL, else the address `syncline dev` keeps in --data-dir, else nats://127.0.0.1:%d)", allinone.DefaultNATSPort))
	pf.StringVar(&g.dataDir, "data-dir", envOr("SYNCLINE_DATA_DIR", allinone.DefaultDataDir), "the dev mode's data folder ($SYNCLINE_DATA_DIR)")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return g.resolve() }
	root.AddCommand(newDev(g), newApply(g), newGet(g), newDelete(g), newToken(g), newMapping(g), newDeadLetters(g), newPublish(g), newLogs(g), newReport(g), newVersion(g, version), newNATSKey(g), newEndpoint(g), newFlow(g))
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// resolve fills in the API URL, the NATS URL and the token that neither a
// flag nor the environment gave: from the addresses `syncline dev` keeps in
// its data folder, so that a client finds a dev instance from --data-dir
// alone, whatever ports it runs on; else the dev mode's default addresses.
// The token falls back to the data folder's admin-token in authToken, when a
// command needs one.
func (g *globals) resolve() error {
	g.server = firstOf(g.server, os.Getenv("SYNCLINE_SERVER"))
	g.natsURL = firstOf(g.natsURL, os.Getenv("SYNCLINE_NATS_URL"))
	g.token = firstOf(g.token, os.Getenv("SYNCLINE_TOKEN"))
	if g.server != "" && g.natsURL != "" {
		return nil
	}
	dev, _, err := readAddresses(g.dataDir)
	if err != nil {
		return err
	}
	g.server = firstOf(g.server, dev.API, "http://"+allinone.DefaultHTTPAddr)
	g.natsURL = firstOf(g.natsURL, dev.NATS, fmt.Sprintf("nats://127.0.0.1:%d", allinone.DefaultNATSPort))
	return nil
}

// firstOf returns the first of values that is not empty.
func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// authToken returns --token (or $SYNCLINE_TOKEN), or the dev mode's admin
// token from its data folder, so that a local walkthrough needs no copying
// of tokens.
func (g *globals) authToken() (string, error) {
	if g.token != "" {
		return g.token, nil
	}
	b, err := os.ReadFile(filepath.Join(g.dataDir, "admin-token"))
	if err != nil {
		return "", fmt.Errorf("no token: pass --token or set SYNCLINE_TOKEN, or point --data-dir (or SYNCLINE_DATA_DIR) at the data folder of `syncline dev`, which keeps its admin token there (%v)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// clientOptions adds the bearer token to every call, and uses the JSON
// protocol so that any HTTP proxy in between sees plain requests.
func (g *globals) clientOptions() ([]connect.ClientOption, error) {
	token, err := g.authToken()
	if err != nil {
		return nil, err
	}
	return []connect.ClientOption{
		connect.WithProtoJSON(),
		connect.WithInterceptors(auth.Bearer(token)),
	}, nil
}

func httpClient() *http.Client { return http.DefaultClient }

// resources returns a client of the control plane's resource API.
func (g *globals) resources() (controlplanev1connect.ResourceServiceClient, error) {
	opts, err := g.clientOptions()
	if err != nil {
		return nil, err
	}
	return controlplanev1connect.NewResourceServiceClient(httpClient(), g.server, opts...), nil
}

// isTerminal reports whether r is a terminal (a character device), where a
// person can answer a question. Anything else, a pipe, a file or a buffer,
// is not.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// apiError is an error of the API as the CLI shows it. It wraps the connect
// error, so that its code stays reachable with errors.As and connect.CodeOf.
type apiError struct {
	msg string
	err *connect.Error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

// explain turns a connect error into what a user can act on: the server's
// message, which says what failed, where and what to do, followed by the
// hint of its ErrorDetail when the message does not say it already.
func explain(err error, server string) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	if ce.Code() == connect.CodeUnavailable && strings.Contains(ce.Message(), "connect:") {
		return &apiError{msg: fmt.Sprintf("cannot reach the API at %s: is `syncline dev` running? "+
			"Give the API's address with --server (or SYNCLINE_SERVER), or the data folder of `syncline dev` with --data-dir (or SYNCLINE_DATA_DIR) (%s)",
			server, ce.Message()), err: ce}
	}
	msg := ce.Message()
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if ed, ok := v.(*controlplanev1.ErrorDetail); ok && ed.Hint != "" && !strings.Contains(msg, ed.Hint) {
			msg += " (" + ed.Hint + ")"
		}
	}
	return &apiError{msg: msg, err: ce}
}
