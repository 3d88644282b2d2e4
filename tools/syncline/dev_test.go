package main

import (
	"strings"
	"testing"
)

func TestDevTraceEndpoints(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces.example.com/in"}
	getenv := func(k string) string { return env[k] }
	if cfg := devTrace("http://env.example.com:4318", false, getenv); cfg.OTLPEndpoint != "http://env.example.com:4318" || cfg.OTLPTracesEndpoint != "http://traces.example.com/in" {
		t.Errorf("from the environment: %+v, want the base URL and the traces URL (which wins)", cfg)
	}
	if cfg := devTrace("http://flag.example.com:4318", true, getenv); cfg.OTLPEndpoint != "http://flag.example.com:4318" || cfg.OTLPTracesEndpoint != "" {
		t.Errorf("with --otlp-endpoint: %+v, want the flag's base URL only", cfg)
	}
}

func TestDevRefusesAMalformedOTLPEndpoint(t *testing.T) {
	_, err := run(t, "dev", "--otlp-endpoint", "otel-collector:4318", "--data-dir", t.TempDir(), "--nats-port", "-1", "--http-addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `"otel-collector:4318"`) || !strings.Contains(err.Error(), "http://otel-collector:4318") {
		t.Errorf("syncline dev --otlp-endpoint otel-collector:4318 = %v, want an error naming it and showing the form", err)
	}
}
