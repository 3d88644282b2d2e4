package allinone_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestReflectionListsTheAPIs: gRPC tools (grpcurl) can discover the APIs
// over plain-text HTTP/2 on the API port.
func TestReflectionListsTheAPIs(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{dir: dir, driver: "sqlite", dsn: tenantFile(t, dir, "acme", "erp.db")})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
	stream := grpcreflect.NewClient(h2c, e.in.APIURL(), connect.WithGRPC()).NewStream(context.Background())
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatalf("listing services by reflection: %v", err)
	}
	for _, want := range []string{"syncline.controlplane.v1.ResourceService", "syncline.eventlog.v1.LogService",
		"syncline.eventlog.v1.DeadLetterService", "syncline.ingest.v1.IngestService", "grpc.health.v1.Health"} {
		if !slices.ContainsFunc(names, func(n protoreflect.FullName) bool { return string(n) == want }) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
}
