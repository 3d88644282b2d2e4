package apiserver

import (
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"
)

// Limit is the most one request to an API may carry. connect decodes a whole
// request in memory, so without a bound one request of any size makes the
// process allocate several times its size; with one, memory per request is
// bounded and a request that is too large is refused before it is decoded,
// with an error that names the API, the limit and what to do.
type Limit struct {
	// API names the API in the error, e.g. "the ingest API".
	API string
	// MaxBytes bounds a request's body and its message once decompressed.
	MaxBytes int
	// Hint says what to do instead, e.g. "send fewer changes per request".
	Hint string
}

// The APIs' limits (documented in the README). The control plane's is its
// own (controlplane.MaxApplySize with room for the framing), next to the
// limits of an apply.
var (
	// IngestLimit: a batch of changes, each record at most
	// envelope.MaxPayloadBytes.
	IngestLimit = Limit{API: "the ingest API", MaxBytes: 8 << 20,
		Hint: "send fewer changes per request"}
	// LogLimit: queries of the API log and its reports.
	LogLimit = Limit{API: "the log API", MaxBytes: 64 << 10,
		Hint: "send a shorter query"}
	// DeadLetterLimit: queries, lists of ids, and one edited record.
	DeadLetterLimit = Limit{API: "the dead-letter API", MaxBytes: 2 << 20,
		Hint: "replay or discard fewer ids per call, or by filter"}
	// ProbeLimit: health checks and server reflection.
	ProbeLimit = Limit{API: "health and reflection", MaxBytes: 16 << 10,
		Hint: "send the request message alone"}
)

// Option bounds the decoded (decompressed) message: a compressed body within
// MaxBytes may still expand beyond it.
func (l Limit) Option() connect.HandlerOption {
	return connect.WithReadMaxBytes(l.MaxBytes)
}

// Handler refuses a request to next whose body is larger than MaxBytes: at
// once when its Content-Length says so, else as soon as reading passes the
// limit. It answers with CodeResourceExhausted in the request's protocol.
// Use it with Option, which bounds what a compressed body expands to.
func (l Limit) Handler(next http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > int64(l.MaxBytes) {
			err := l.refuse(fmt.Sprintf("this one is %d bytes", r.ContentLength))
			if errs.IsSupported(r) {
				_ = errs.Write(w, r, err)
				return
			}
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = &limitedBody{ReadCloser: r.Body, left: int64(l.MaxBytes), limit: l}
		next.ServeHTTP(w, r)
	})
}

func (l Limit) refuse(what string) *connect.Error {
	return connect.NewError(connect.CodeResourceExhausted,
		fmt.Errorf("request too large: %s takes at most %s (%d bytes) per request, %s: %s", l.API, Size(l.MaxBytes), l.MaxBytes, what, l.Hint))
}

// limitedBody fails a read past the limit with the Limit's error; connect
// passes a *connect.Error from the body on as it is.
type limitedBody struct {
	io.ReadCloser
	left  int64
	limit Limit
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, b.limit.refuse("this one is longer")
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// Size formats a byte count for people: "8 MiB", "64 KiB", "100 bytes".
func Size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
