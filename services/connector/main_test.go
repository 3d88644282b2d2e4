package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/daemon/daemontest"
	"github.com/syncline/syncline/pkg/natstest"
	"github.com/syncline/syncline/pkg/secret"
)

func TestCommand(t *testing.T) { daemontest.CheckMain(t, spec, run) }

// TestWebhooksNeedNoToken: the service receives webhooks outside the API's
// token check (a sender signs with its endpoint's secret), while its APIs
// stay behind it.
func TestWebhooksNeedNoToken(t *testing.T) {
	s := natstest.Run(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	key, err := secret.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNCLINE_NATS_URL", s.ClientURL())
	t.Setenv("SYNCLINE_HTTP_ADDR", addr)
	t.Setenv("SYNCLINE_ADMIN_TOKEN", "an-admin-token-of-some-length")
	t.Setenv("SYNCLINE_MASTER_KEY", key)
	t.Setenv("SYNCLINE_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run = %v", err)
		}
	})
	post := func(path string) (int, string) {
		resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(`{"id":"1"}`))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := post("/hooks/acme/shop/order")
		if status == http.StatusNotFound && strings.Contains(body, "no webhook here") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a webhook without a token answered %d %s, want the receiver's 404", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, body := post("/syncline.ingest.v1.IngestService/Publish"); status != http.StatusUnauthorized {
		t.Errorf("the ingest API without a token answered %d %s, want 401", status, body)
	}
}
