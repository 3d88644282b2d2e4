// Package natsauth puts Syncline's tokens in front of NATS, so that one set
// of tokens serves the HTTP APIs and the bus.
//
// The NATS server (the embedded one of the all-in-one mode, or an external
// one configured as the README shows) knows one user, ServiceUser, with a
// password: Syncline's own services connect as it and may do anything.
// Every other connection is decided by the server's auth callout (NATS
// 2.10+), which the control plane answers (Responder): the connection's
// token (nats.Token, or the password of any user name) must be the admin
// token or an integrator token the control plane knows. An integrator's
// connection may publish only to ingest.<its tenant>.> and subscribe only
// to its own inbox (InboxPrefix, for JetStream's publish acknowledgements):
// it reads nothing of any stream. The admin token may publish to every
// tenant's ingest subjects, and reads nothing either.
package natsauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/syncline/syncline/pkg/auth"
)

// ServiceUser is the NATS user Syncline's services connect as; the auth
// callout lets it through without asking.
const ServiceUser = "syncline"

// calloutSubject is where the server asks who a connection is.
const calloutSubject = "$SYS.REQ.USER.AUTH"

// globalAccount is the account of a server configured without accounts.
const globalAccount = "$G"

// Grant is how long a connection's authorization lasts. The server then
// closes it and the client reconnects, asking again: a revoked or rotated
// token's connections end within Grant.
const Grant = 5 * time.Minute

// NewIssuerSeed makes the seed of a new callout issuer: an account key pair
// whose public key the server's auth_callout names as its issuer, and whose
// seed signs the callout's answers.
func NewIssuerSeed() (string, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return "", fmt.Errorf("making the NATS callout issuer key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("making the NATS callout issuer key: %w", err)
	}
	return string(seed), nil
}

// NewServicePassword makes a random password for ServiceUser (256 bits).
func NewServicePassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making the NATS service password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Issuer signs the auth callout's answers.
type Issuer struct {
	kp  nkeys.KeyPair
	pub string
}

// ParseIssuer reads an issuer seed (an account seed, "SA…").
func ParseIssuer(seed string) (*Issuer, error) {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("reading the NATS callout issuer seed: %w (make one with `syncline nats-key`)", err)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, errors.New("the NATS callout issuer seed is not an account seed (it starts with SA): make one with `syncline nats-key`")
	}
	return &Issuer{kp: kp, pub: pub}, nil
}

// PublicKey is the issuer's public key, for the server's auth_callout.
func (i *Issuer) PublicKey() string { return i.pub }

// ServerOptions sets a server's authorization: ServiceUser with
// servicePassword, and every other connection through the callout signed by
// issuer.
func ServerOptions(opts *server.Options, issuer *Issuer, servicePassword string) {
	opts.Users = []*server.User{{Username: ServiceUser, Password: servicePassword}}
	opts.AuthCallout = &server.AuthCallout{Issuer: issuer.PublicKey(), AuthUsers: []string{ServiceUser}}
}

// InboxPrefix is the inbox prefix of a connection made with token: the only
// subjects it may subscribe to. It derives from the token, so the client
// needs nothing else, and says nothing about it.
func InboxPrefix(token string) string {
	sum := sha256.Sum256([]byte("syncline-nats-inbox:" + token))
	return "_INBOX_" + hex.EncodeToString(sum[:12])
}

// ClientOptions are the options of a publisher's connection with token.
func ClientOptions(token string) []nats.Option {
	return []nats.Option{nats.Token(token), nats.CustomInboxPrefix(InboxPrefix(token))}
}

// Responder answers the server's auth callout.
type Responder struct {
	nc     *nats.Conn
	issuer *Issuer
	admin  string
	tokens auth.TokenLookup
	log    *slog.Logger
	sub    *nats.Subscription
}

// NewResponder returns a responder on nc (a ServiceUser connection) that
// admits adminToken and the integrator tokens tokens knows.
func NewResponder(nc *nats.Conn, issuer *Issuer, adminToken string, tokens auth.TokenLookup, log *slog.Logger) *Responder {
	return &Responder{nc: nc, issuer: issuer, admin: adminToken, tokens: tokens, log: log}
}

// Start subscribes to the callout in a queue group, so replicas of the
// control plane share it.
func (r *Responder) Start(context.Context) error {
	sub, err := r.nc.QueueSubscribe(calloutSubject, "syncline-auth", r.handle)
	if err != nil {
		return fmt.Errorf("subscribing to the NATS auth callout: %w", err)
	}
	r.sub = sub
	return nil
}

// Stop unsubscribes after the request in hand is answered.
func (r *Responder) Stop(context.Context) error {
	if r.sub == nil {
		return nil
	}
	if err := r.sub.Drain(); err != nil {
		return fmt.Errorf("draining the NATS auth callout subscription: %w", err)
	}
	return nil
}

// lookupTimeout bounds a token lookup: the server waits for the answer only
// for its authorization timeout (a second or two).
const lookupTimeout = time.Second

func (r *Responder) handle(m *nats.Msg) {
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		r.log.Warn("NATS auth callout: an undecodable request", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	userJWT, refusal := r.authorize(ctx, req)
	if refusal != "" {
		r.log.Info("NATS connection refused", "client", req.ClientInformation.Host, "name", req.ClientInformation.Name, "reason", refusal)
	}
	rc := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	rc.Audience = req.Server.ID
	rc.Jwt, rc.Error = userJWT, refusal
	answer, err := rc.Encode(r.issuer.kp)
	if err != nil {
		r.log.Error("NATS auth callout: signing the answer", "error", err)
		return
	}
	if err := m.Respond([]byte(answer)); err != nil {
		r.log.Warn("NATS auth callout: answering", "error", err)
	}
}

// authorize returns the user JWT of a connection, or why it is refused.
func (r *Responder) authorize(ctx context.Context, req *jwt.AuthorizationRequestClaims) (string, string) {
	token := req.ConnectOptions.Token
	if token == "" {
		token = req.ConnectOptions.Password
	}
	if token == "" {
		return "", "no token: connect with an integrator's token (or the admin token) as the NATS token"
	}
	p, err := auth.Identify(ctx, r.admin, r.tokens, token)
	if err != nil {
		return "", err.Error()
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = globalAccount
	uc.Name = p.String()
	uc.Expires = time.Now().Add(Grant).Unix()
	if p.Admin {
		uc.Pub.Allow.Add("ingest.>")
	} else {
		uc.Pub.Allow.Add("ingest." + p.Tenant + ".>")
	}
	uc.Sub.Allow.Add(InboxPrefix(token) + ".>")
	userJWT, err := uc.Encode(r.issuer.kp)
	if err != nil {
		return "", fmt.Sprintf("signing the connection's permissions: %v", err)
	}
	return userJWT, ""
}
