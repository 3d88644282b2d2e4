package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	eventlogv1 "github.com/syncline/syncline/pkg/api/syncline/eventlog/v1"
	"github.com/syncline/syncline/pkg/api/syncline/eventlog/v1/eventlogv1connect"
)

func (g *globals) deadLetters() (eventlogv1connect.DeadLetterServiceClient, error) {
	opts, err := g.clientOptions()
	if err != nil {
		return nil, err
	}
	return eventlogv1connect.NewDeadLetterServiceClient(httpClient(), g.server, opts...), nil
}

func newDeadLetters(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deadletters",
		Aliases: []string{"dlq"},
		Short:   "List, show, edit, replay and discard dead letters",
		Long: `Dead letters are change events that failed for a reason retrying will not
fix. They are kept (sealed) until replayed, discarded or expired. A replay sends
the event again, as a new event, through the ledger: it never makes a second
record in the target.`,
	}
	var tenant string
	cmd.PersistentFlags().StringVar(&tenant, "tenant", "", "the tenant (optional with an integrator token; with the admin token, left out: events addressed to tenants that do not exist)")
	f := &eventlogv1.DeadLetterFilter{}
	filterFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&f.Flow, "flow", "", "only this flow's")
		c.Flags().StringVar(&f.Stage, "stage", "", "only those that failed at this stage: mapper, dedup or connector")
		c.Flags().StringVar(&f.Code, "code", "", "only those with this error code")
		c.Flags().StringVar(&f.RemoteId, "remote-id", "", "only this record's (its key in the source)")
		c.Flags().StringVar(&f.State, "state", "", "open, replayed or discarded")
	}
	var output, pageToken string
	var limit int32
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := g.deadLetters()
			if err != nil {
				return err
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			f.Tenant = tenant
			resp, err := client.ListDeadLetters(cmd.Context(), &eventlogv1.ListDeadLettersRequest{Filter: f, PageSize: limit, PageToken: pageToken})
			if err != nil {
				return explain(err, g.server)
			}
			if resp.NextPageToken != "" {
				defer fmt.Fprintf(g.errOut, "more: add --page-token %s\n", resp.NextPageToken)
			}
			if output == "json" {
				out := make([]json.RawMessage, len(resp.Letters))
				for i, l := range resp.Letters {
					if out[i], err = protojson.Marshal(l); err != nil {
						return err
					}
				}
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDEAD AT\tFLOW\tREMOTE ID\tSTAGE\tCODE\tSTATE\tREASON")
			for _, l := range resp.Letters {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Id, l.DeadAt.AsTime().Format("2006-01-02 15:04:05"),
					l.Flow, l.RemoteId, l.Stage, l.Code, l.State, l.Reason)
			}
			return tw.Flush()
		},
	}
	filterFlags(list)
	list.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	list.Flags().StringVar(&pageToken, "page-token", "", "the next page, as the previous one said")
	list.Flags().Int32Var(&limit, "limit", 100, "letters per page (at most 1000)")

	var withRecord bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter; its record only with --record (the access is logged)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.deadLetters()
			if err != nil {
				return err
			}
			resp, err := client.GetDeadLetter(cmd.Context(), &eventlogv1.GetDeadLetterRequest{Tenant: tenant, Id: args[0], IncludeRecord: withRecord})
			if err != nil {
				return explain(err, g.server)
			}
			b, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, string(b))
			return nil
		},
	}
	show.Flags().BoolVar(&withRecord, "record", false, "include the failed record (the access is logged)")

	var record, file string
	edit := &cobra.Command{
		Use:   "edit ID (--record JSON | --file F)",
		Short: "Replace a dead letter's record with a corrected one, for a replay",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case record != "" && file != "":
				return errors.New("give the record with --record or --file, not both")
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("reading the record: %w", err)
				}
				record = string(b)
			case record == "":
				return errors.New("give the corrected record with --record JSON or --file F")
			}
			client, err := g.deadLetters()
			if err != nil {
				return err
			}
			if _, err := client.EditDeadLetter(cmd.Context(), &eventlogv1.EditDeadLetterRequest{Tenant: tenant, Id: args[0], Record: record}); err != nil {
				return explain(err, g.server)
			}
			fmt.Fprintf(g.out, "dead letter %s edited; replay it with: syncline deadletters replay %s\n", args[0], args[0])
			return nil
		},
	}
	edit.Flags().StringVar(&record, "record", "", "the corrected record as a JSON object")
	edit.Flags().StringVar(&file, "file", "", "read the corrected record from this file")

	replay := &cobra.Command{
		Use:   "replay [ID...] [filters]",
		Short: "Send dead letters again: by id, or every open one the filters select",
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.deadLetters()
			if err != nil {
				return err
			}
			req := &eventlogv1.ReplayDeadLettersRequest{Tenant: tenant, Ids: args}
			if len(args) == 0 {
				req.Filter = f
			}
			resp, err := client.ReplayDeadLetters(cmd.Context(), req)
			if err != nil {
				return explain(err, g.server)
			}
			for _, r := range resp.Replayed {
				fmt.Fprintf(g.out, "replayed %s as event %s\n", r.Id, r.EventId)
			}
			fmt.Fprintf(g.out, "%d dead letters replayed; their outcomes are in syncline logs\n", len(resp.Replayed))
			return nil
		},
	}
	filterFlags(replay)

	discard := &cobra.Command{
		Use:   "discard ID...",
		Short: "Give dead letters up: their events are dropped",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := g.deadLetters()
			if err != nil {
				return err
			}
			resp, err := client.DiscardDeadLetters(cmd.Context(), &eventlogv1.DiscardDeadLettersRequest{Tenant: tenant, Ids: args})
			if err != nil {
				return explain(err, g.server)
			}
			fmt.Fprintf(g.out, "%d dead letters discarded\n", resp.Discarded)
			return nil
		},
	}
	cmd.AddCommand(list, show, edit, replay, discard)
	return cmd
}
