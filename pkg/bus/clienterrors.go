package bus

import (
	"log/slog"

	"github.com/nats-io/nats.go"
)

// LogClientErrors is the connection option that logs the NATS client's
// asynchronous errors (a subscription that fell behind and dropped
// messages, a permission the server refused) as warnings on log, with the
// connection's name and the subscription's subject, instead of the
// client's default line on standard error.
func LogClientErrors(log *slog.Logger) nats.Option {
	return nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		attrs := []any{"error", err}
		if nc != nil {
			attrs = append(attrs, "connection", nc.Opts.Name)
		}
		if sub != nil {
			attrs = append(attrs, "subject", sub.Subject)
		}
		log.Warn("NATS client error", attrs...)
	})
}
