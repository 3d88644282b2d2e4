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

	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/tools/allinone"
)

// globals are the flags every client command shares.
type globals struct {
	server  string
	token   string
	natsURL string
	dataDir string
	out     io.Writer
	errOut  io.Writer
}

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
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
	root.AddCommand(newDev(g), newApply(g), newGet(g), newPublish(g), newLogs(g))
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

// explain turns a connect error into one line a user can act on.
func explain(err error, server string) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		if ce.Code() == connect.CodeUnavailable && strings.Contains(ce.Message(), "connect:") {
			return fmt.Errorf("cannot reach the API at %s: is `syncline dev` running? (%s)", server, ce.Message())
		}
		return fmt.Errorf("%s", ce.Message())
	}
	return err
}
