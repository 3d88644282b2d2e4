package natsauth_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncline/syncline/pkg/auth"
	"github.com/syncline/syncline/pkg/bus"
	"github.com/syncline/syncline/pkg/natsauth"
	"github.com/syncline/syncline/pkg/natsserver"
)

const adminToken = "sla_admin-token-for-the-tests-0123456789"

// tokens knows one integrator token per tenant.
type tokens map[string][2]string

func (t tokens) LookupToken(_ context.Context, hash string) (string, string, error) {
	for tok, who := range t {
		if auth.Hash(tok) == hash {
			return who[0], who[1], nil
		}
	}
	return "", "", auth.ErrUnknownToken
}

var known = tokens{
	"sli_acme-token-0123456789":   {"acme", "shop-to-erp"},
	"sli_globex-token-0123456789": {"globex", "sync"},
}

// rig is an embedded server that requires credentials, the control plane's
// responder, and the service's own connection.
type rig struct {
	url     string
	service jetstream.JetStream
}

func newRig(t *testing.T) *rig {
	t.Helper()
	seed, err := natsauth.NewIssuerSeed()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := natsauth.ParseIssuer(seed)
	if err != nil {
		t.Fatal(err)
	}
	s, err := natsserver.Start(natsserver.Config{Dir: t.TempDir(), Port: -1,
		Auth: &natsserver.Auth{Issuer: issuer, ServicePassword: "service-password-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	nc, err := s.Connect("test-service")
	if err != nil {
		t.Fatalf("the service's own connection: %v", err)
	}
	t.Cleanup(nc.Close)
	r := natsauth.NewResponder(nc, issuer, adminToken, known, slog.New(slog.DiscardHandler))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(context.Background(), js, bus.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	return &rig{url: s.ClientURL(), service: js}
}

// connect connects as a publisher would; it returns the connection and the
// asynchronous errors the server sent it (permission violations).
func (r *rig) connect(t *testing.T, opts ...nats.Option) (*nats.Conn, <-chan error, error) {
	t.Helper()
	errs := make(chan error, 16)
	opts = append(opts, nats.Timeout(5*time.Second), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(r.url, opts...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, errs, err
}

func publish(nc *nats.Conn, subject string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.Publish(ctx, subject, []byte("x"))
	return err
}

func TestConnectionsNeedAToken(t *testing.T) {
	r := newRig(t)
	for name, opts := range map[string][]nats.Option{
		"no credentials":         nil,
		"an unknown token":       natsauth.ClientOptions("sli_never-issued-0123456789"),
		"a service user guessed": {nats.UserInfo(natsauth.ServiceUser, "guess")},
		"an empty token":         {nats.Token("")},
	} {
		if _, _, err := r.connect(t, opts...); err == nil {
			t.Errorf("%s: connected, want refused", name)
		}
	}
}

// TestIntegratorPublishesToItsTenantOnly: an integrator's token publishes
// to its own tenant's ingest subjects and nowhere else, and reads nothing.
func TestIntegratorPublishesToItsTenantOnly(t *testing.T) {
	r := newRig(t)
	nc, errs, err := r.connect(t, natsauth.ClientOptions("sli_acme-token-0123456789")...)
	if err != nil {
		t.Fatalf("connecting with acme's token: %v", err)
	}
	if err := publish(nc, "ingest.acme.shop.order"); err != nil {
		t.Errorf("publishing to its own tenant: %v", err)
	}
	for _, subject := range []string{"ingest.globex.shop.order", "flow.acme.orders.0", "push.acme.orders.0", "audit.acme.orders", "dlq.acme.mapper", "$JS.API.STREAM.INFO.SYNCLINE_INGEST"} {
		if err := publish(nc, subject); err == nil {
			t.Errorf("publishing to %s: stored, want refused", subject)
		}
	}
	if _, err := nc.SubscribeSync(">"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-drainUntil(errs, "subscription"):
		if err == nil {
			t.Error("subscribing to everything was not refused")
		}
	case <-time.After(5 * time.Second):
		t.Error("subscribing to everything was not refused within 5s")
	}
	// Only acme's one event is stored: nothing refused got through.
	st, err := r.service.Stream(context.Background(), bus.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("the ingest stream holds %d messages, want acme's 1", info.State.Msgs)
	}
}

// drainUntil returns the first error of errs that mentions what.
func drainUntil(errs <-chan error, what string) <-chan error {
	out := make(chan error, 1)
	go func() {
		for err := range errs {
			if strings.Contains(strings.ToLower(err.Error()), what) {
				out <- err
				return
			}
		}
	}()
	return out
}

func TestAdminPublishesToEveryTenant(t *testing.T) {
	r := newRig(t)
	nc, _, err := r.connect(t, natsauth.ClientOptions(adminToken)...)
	if err != nil {
		t.Fatalf("connecting with the admin token: %v", err)
	}
	for _, subject := range []string{"ingest.acme.shop.order", "ingest.globex.shop.order"} {
		if err := publish(nc, subject); err != nil {
			t.Errorf("the admin publishing to %s: %v", subject, err)
		}
	}
	if err := publish(nc, "flow.acme.orders.0"); err == nil {
		t.Error("the admin token published past the ingest stream")
	}
}

func TestParseIssuerRefusesOtherSeeds(t *testing.T) {
	for _, seed := range []string{"", "not a seed", "SUAM3RQ4A3SCLJXKT3SJ6CPYRRNXUDDIA3QL6HJMZNZ7FOUKJQJHXY5LJA"} {
		if _, err := natsauth.ParseIssuer(seed); err == nil || !strings.Contains(err.Error(), "nats-key") {
			t.Errorf("ParseIssuer(%q) = %v, want an error saying how to make one", seed, err)
		}
	}
}

func TestIdentifyNamesTheRefusal(t *testing.T) {
	_, err := auth.Identify(context.Background(), adminToken, known, "sli_nope")
	if !errors.Is(err, auth.ErrUnknownToken) || !strings.Contains(err.Error(), "not recognised") {
		t.Errorf("Identify(unknown) = %v, want ErrUnknownToken saying it is not recognised", err)
	}
}
