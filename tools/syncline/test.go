package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	controlplanev1 "github.com/syncline/syncline/pkg/api/syncline/controlplane/v1"
)

// maxSampleBytes bounds a sample record read for `flow test`, as the ingest
// API bounds a record.
const maxSampleBytes = 512 << 10

func newEndpoint(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "endpoint", Short: "Check an endpoint before trusting it with records"}
	var tenant string
	test := &cobra.Command{
		Use:   "test NAME",
		Short: "Check that an endpoint answers and accepts its credentials",
		Long: `Connect to an endpoint as the connector would (its settings, its
credentials, the egress policy) and check that it answers and accepts the
credentials: a target as a target, a polled source by reading a change of
each entity it is polled for. Nothing is written. It prints what the endpoint serves, per
entity. It exits with status 1 when the target fails the check.`,
		Example: `  syncline endpoint test erp --tenant acme`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.TestEndpoint(cmd.Context(), &controlplanev1.TestEndpointRequest{Tenant: tenant, Name: args[0]})
			if err != nil {
				return explain(err, g.server)
			}
			for _, e := range resp.Entities {
				fmt.Fprintf(g.out, "serves %s\n", e)
			}
			if !resp.Ok {
				return fmt.Errorf("endpoint %s failed the check after %d ms: %s", args[0], resp.DurationMs, resp.Message)
			}
			fmt.Fprintf(g.out, "ok: %s (%d ms)\n", resp.Message, resp.DurationMs)
			return nil
		},
	}
	test.Flags().StringVar(&tenant, "tenant", "", "the endpoint's tenant (an integrator token's own when left out)")
	cmd.AddCommand(test)
	return cmd
}

func newFlow(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "flow", Short: "Try a flow on a sample record, or poll its source now"}
	var tenant, file, key string
	test := &cobra.Command{
		Use:   "test FLOW --file RECORD.json",
		Short: "Map a sample record and say what the target would do with it, writing nothing",
		Long: `Map a sample source record (a change event's payload, as JSON) as the
flow would, and say what its target would do with it: create it, update it
(with the fields that would change, write modes applied), skip it or refuse
it, and why. The target is read, never written; the ledger is not asked, so
the record is planned as a change of a record the ledger knows. --file -
reads the record from standard input. The key is taken from the flow's
keyField, or given with --key.`,
		Example: `  syncline flow test orders --tenant acme --file order.json
  echo '{"sku":"TS-1","name":"T-shirt","price":19.9}' | syncline flow test products --file -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("give the sample record with --file RECORD.json (or --file - for standard input)")
			}
			var r io.Reader = os.Stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("reading the record: %w", err)
				}
				defer f.Close()
				r = f
			}
			b, err := io.ReadAll(io.LimitReader(r, maxSampleBytes+1))
			if err != nil {
				return fmt.Errorf("reading the record: %w", err)
			}
			if len(b) > maxSampleBytes {
				return fmt.Errorf("the record in %s is larger than %d KiB, the most a change event carries", file, maxSampleBytes>>10)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil || m == nil {
				return fmt.Errorf("the record in %s is not a JSON object: %v", file, err)
			}
			record, err := structpb.NewStruct(m)
			if err != nil {
				return fmt.Errorf("the record in %s: %w", file, err)
			}
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.TestFlow(cmd.Context(), &controlplanev1.TestFlowRequest{Tenant: tenant, Flow: args[0], Record: record, Key: key})
			if err != nil {
				return explain(err, g.server)
			}
			printPlan(g.out, resp)
			return nil
		},
	}
	test.Flags().StringVar(&tenant, "tenant", "", "the flow's tenant (an integrator token's own when left out)")
	test.Flags().StringVar(&file, "file", "", "the sample source record, a JSON object (- for standard input)")
	test.Flags().StringVar(&key, "key", "", "the record's key in the source, for a flow without a keyField")
	cmd.AddCommand(test, newFlowSync(g))
	return cmd
}

func newFlowSync(g *globals) *cobra.Command {
	var tenant string
	var fromStart bool
	sync := &cobra.Command{
		Use:   "sync FLOW",
		Short: "Poll a flow's source now, whatever its schedule says",
		Long: `Ask for a poll of the flow's source now: the replica that polls it starts
within a second or so and reads every change since the source's cursor. The
source (an endpoint's entity) is shared by every flow that reads it, so they
all get its changes. ` + "`syncline get flows`" + ` shows when the poll ended, how, and
the cursor. A flow whose source publishes its changes (schedule realtime) has
nothing to poll. --from-start reads the source from the beginning instead of
from its cursor: every record is read again, and those the targets hold
already are skipped as unchanged.`,
		Example: `  syncline flow sync shop-orders --tenant acme
  syncline flow sync shop-orders --from-start`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.resources()
			if err != nil {
				return err
			}
			resp, err := client.SyncFlow(cmd.Context(), &controlplanev1.SyncFlowRequest{Tenant: tenant, Flow: args[0], FromStart: fromStart})
			if err != nil {
				return explain(err, g.server)
			}
			fmt.Fprintf(g.out, "poll of %s (%s) asked for at %s; see syncline get flows\n", resp.Endpoint, resp.Entity,
				resp.RequestedAt.AsTime().Local().Format("2006-01-02 15:04:05"))
			return nil
		},
	}
	sync.Flags().StringVar(&tenant, "tenant", "", "the flow's tenant (an integrator token's own when left out)")
	sync.Flags().BoolVar(&fromStart, "from-start", false, "read the source from the beginning, not from its cursor")
	return sync
}

// printPlan prints what a flow would do with a record.
func printPlan(out io.Writer, r *controlplanev1.TestFlowResponse) {
	what := r.Action
	if r.TargetId != "" {
		what += " (target id " + r.TargetId + ")"
	}
	fmt.Fprintf(out, "key %s: would be %s\n", r.Key, what)
	if r.Code != "" || r.Reason != "" {
		fmt.Fprintf(out, "  %s: %s\n", r.Code, r.Reason)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(out, "  %s: %s -> %s\n", c.Field, jsonOf(c.Current), jsonOf(c.New))
	}
	if r.Note != "" {
		fmt.Fprintf(out, "  note: %s\n", r.Note)
	}
	if r.Mapped != nil {
		b, _ := json.MarshalIndent(r.Mapped.AsMap(), "  ", "  ") // a Struct always encodes
		fmt.Fprintf(out, "  mapped record: %s\n", b)
	}
}

func jsonOf(v *structpb.Value) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v.AsInterface())
	if err != nil {
		return strings.TrimSpace(v.String())
	}
	return string(b)
}
