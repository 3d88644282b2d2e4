package console

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"
)

// liveEvery is how often a live page asks the API whether what it shows has changed.
const liveEvery = 2 * time.Second

// liveFor is how long one live stream lasts; the browser opens the next at once (the
// stream's retry), so a stream never outlives a token's revocation by much.
const liveFor = 5 * time.Minute

// live streams a part of a page as server-sent events: every liveEvery it renders the part
// again with render, and sends it when it differs from what was sent last. The page's
// script (static/live.js) puts each event's HTML in place. The stream ends when the client
// goes, after liveFor, or when the console stops.
func (c *Console) live(w http.ResponseWriter, r *http.Request, render func(ctx context.Context) ([]byte, error)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "this server cannot stream", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	flusher.Flush()
	ctx, cancel := context.WithTimeout(r.Context(), liveFor)
	defer cancel()
	var last []byte
	t := time.NewTicker(liveEvery)
	defer t.Stop()
	for {
		part, err := render(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			// Said once in the stream; the page keeps what it shows.
			c.log.Warn("a live page could not be rendered", "path", r.URL.Path, "error", err)
			fmt.Fprintf(w, "event: problem\ndata: %s\n\n", oneLine(err.Error()))
		case !bytes.Equal(part, last):
			last = part
			w.Write([]byte("event: update\n"))
			for _, line := range bytes.Split(part, []byte("\n")) {
				w.Write([]byte("data: "))
				w.Write(line)
				w.Write([]byte("\n"))
			}
			w.Write([]byte("\n"))
		}
		flusher.Flush()
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-t.C:
		}
	}
}

func oneLine(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte(" "))) }

// Close ends the live streams, so that the HTTP server's shutdown does not wait for them.
func (c *Console) Close() {
	c.closeOnce.Do(func() { close(c.done) })
}
