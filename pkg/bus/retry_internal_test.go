package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestRetryCreate: a create that times out is tried again, up to
// createTries times; any other error, and a caller's context that ended,
// end it at once.
func TestRetryCreate(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		failures  []error
		wantCalls int
		wantErr   bool
	}{
		{"at once", nil, 1, false},
		{"after two timeouts", []error{context.DeadlineExceeded, fmt.Errorf("creating: %w", context.DeadlineExceeded)}, 3, false},
		{"timeouts every time", []error{context.DeadlineExceeded, context.DeadlineExceeded, context.DeadlineExceeded, context.DeadlineExceeded, context.DeadlineExceeded}, createTries, true},
		{"another error", []error{errors.New("insufficient resources")}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := retryCreate(ctx, func(context.Context) (int, error) {
				calls++
				if calls <= len(tc.failures) {
					return 0, tc.failures[calls-1]
				}
				return 42, nil
			})
			if calls != tc.wantCalls || (err != nil) != tc.wantErr || (err == nil && v != 42) {
				t.Fatalf("%d calls, %v, %v; want %d calls, an error: %v", calls, v, err, tc.wantCalls, tc.wantErr)
			}
		})
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	calls := 0
	if _, err := retryCreate(done, func(context.Context) (int, error) { calls++; return 0, context.DeadlineExceeded }); err == nil || calls != 1 {
		t.Fatalf("with the caller's context ended: %d calls, %v; want 1 and the error", calls, err)
	}
}
