package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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
	root := &cobra.Command{
		Use:           "syncline",
		Short:         "Keep business data in step between systems",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("SYNCLINE_SERVER", "http://"+allinone.DefaultHTTPAddr), "API base URL ($SYNCLINE_SERVER)")
	pf.StringVar(&g.token, "token", os.Getenv("SYNCLINE_TOKEN"), "API token ($SYNCLINE_TOKEN; default: the dev mode's token in --data-dir)")
	pf.StringVar(&g.natsURL, "nats", envOr("SYNCLINE_NATS_URL", fmt.Sprintf("nats://127.0.0.1:%d", allinone.DefaultNATSPort)), "NATS URL for publishing ($SYNCLINE_NATS_URL)")
	pf.StringVar(&g.dataDir, "data-dir", envOr("SYNCLINE_DATA_DIR", allinone.DefaultDataDir), "the dev mode's data folder ($SYNCLINE_DATA_DIR)")
	root.AddCommand(newDev(g), newApply(g), newGet(g), newDelete(g), newToken(g), newMapping(g), newDeadLetters(g), newPublish(g), newLogs(g), newReport(g))
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// authToken returns --token, or the dev mode's admin token from its data
// folder, so that a local walkthrough needs no copying of tokens.
func (g *globals) authToken() (string, error) {
	if g.token != "" {
		return g.token, nil
	}
	b, err := os.ReadFile(filepath.Join(g.dataDir, "admin-token"))
	if err != nil {
		return "", errors.New("no token: pass --token or set SYNCLINE_TOKEN (syncline dev prints its admin token and keeps it in .syncline/admin-token)")
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
		return &apiError{msg: fmt.Sprintf("cannot reach the API at %s: is `syncline dev` running? (%s)", server, ce.Message()), err: ce}
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
