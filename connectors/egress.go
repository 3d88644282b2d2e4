package connectors

import (
	"fmt"
	"os"
	"strings"

	sdk "github.com/syncline/syncline/pkg/connector"
)

// EgressFromEnv is the platform's egress policy of a service process, from the environment:
//
//	SYNCLINE_EGRESS_ALLOW    rules, comma-separated (see connector.EgressConfig.Allow);
//	                         unset: public, "none": nothing but what tenants are given
//	SYNCLINE_EGRESS_FILES    the folder of the tenants' folders for file-backed endpoints;
//	                         unset: none (SQLite targets are refused)
//	SYNCLINE_EGRESS_PROTECT  more of Syncline's own servers, comma-separated URLs
//	                         (postgres://host:port/database, nats://host:port, host:port):
//	                         the other services' stores, which this process does not use
//
// The process's own NATS server (natsURL) and store (databaseURL, if any) are protected too.
func EgressFromEnv(natsURL, databaseURL string) (*sdk.Egress, error) {
	return EgressFrom(natsURL, databaseURL, os.Getenv(sdk.EnvEgressAllow), os.Getenv(sdk.EnvEgressFiles), os.Getenv(sdk.EnvEgressProtect))
}

// EgressFrom is EgressFromEnv with the three variables' values given: a service reads them
// with the rest of its configuration (daemon.Spec.Egress), which --help lists.
func EgressFrom(natsURL, databaseURL, allow, files, protect string) (*sdk.Egress, error) {
	cfg := sdk.EgressConfig{Files: files}
	if allow != "" {
		cfg.Allow = splitList(allow)
	}
	own := []string{natsURL}
	if databaseURL != "" {
		own = append(own, databaseURL)
	}
	own = append(own, splitList(protect)...)
	for _, u := range own {
		p, err := sdk.Protect(u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sdk.EnvEgressProtect, err)
		}
		cfg.Protected = append(cfg.Protected, p...)
	}
	return sdk.NewEgress(cfg)
}

func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
