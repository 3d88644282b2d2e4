package daemon_test

import (
	"strings"
	"testing"

	"github.com/syncline/syncline/pkg/daemon"
)

var everything = daemon.Spec{Name: "test", Store: true, API: true, MasterKey: true}

func TestConfigFromEnvTakesTheDocumentedForms(t *testing.T) {
	for _, name := range everything.Variables() {
		t.Setenv(name, "")
	}
	t.Setenv("SYNCLINE_DATABASE_URL", "sqlite:/var/lib/syncline/state.db")
	t.Setenv("SYNCLINE_ADMIN_TOKEN", "0123456789abcdef")
	t.Setenv("SYNCLINE_NATS_URL", "nats://u:p@nats-0:4222, tls://nats-1:4222,nats-2")
	t.Setenv("SYNCLINE_HTTP_ADDR", "127.0.0.1:9090")
	t.Setenv("SYNCLINE_MASTER_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	t.Setenv("SYNCLINE_PARTITIONS", "8")
	t.Setenv("SYNCLINE_REPLICAS", "3")
	t.Setenv("SYNCLINE_LOG_LEVEL", "debug")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")
	c, err := daemon.ConfigFromEnv(everything)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bus.Partitions != 8 || c.Bus.Replicas != 3 || c.Secrets == nil || c.HTTPAddr != "127.0.0.1:9090" || c.LogLevel != "debug" {
		t.Errorf("ConfigFromEnv = %+v", c)
	}
}

// TestConfigErrorsKeepSecretsOut: an error names the variable, never the
// password or key in its value, since it ends up in the pod's log.
func TestConfigErrorsKeepSecretsOut(t *testing.T) {
	for _, name := range everything.Variables() {
		t.Setenv(name, "")
	}
	t.Setenv("SYNCLINE_DATABASE_URL", "mysql://syncline:hunter2-db@db/syncline")
	t.Setenv("SYNCLINE_ADMIN_TOKEN", "hunter2-tok")
	t.Setenv("SYNCLINE_NATS_URL", "nats://u:hunter2-nats@nats-0:4222,mqtt://nats-1")
	t.Setenv("SYNCLINE_MASTER_KEY", "hunter2-key")
	_, err := daemon.ConfigFromEnv(everything)
	if err == nil {
		t.Fatal("ConfigFromEnv took a MySQL URL, a short token, an MQTT server and a key that is no key")
	}
	for _, name := range []string{"SYNCLINE_DATABASE_URL", "SYNCLINE_ADMIN_TOKEN", "SYNCLINE_NATS_URL", "SYNCLINE_MASTER_KEY"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes a secret:\n%v", err)
	}
}
