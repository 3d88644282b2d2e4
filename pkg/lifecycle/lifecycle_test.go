package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncline/syncline/pkg/lifecycle"
)

type recorder struct{ log []string }

func (r *recorder) part(name string, startErr error) lifecycle.Part {
	return lifecycle.Funcs{
		OnStart: func(context.Context) error { r.log = append(r.log, "start "+name); return startErr },
		OnStop:  func(context.Context) error { r.log = append(r.log, "stop "+name); return nil },
	}
}

func TestStartsInOrderStopsInReverse(t *testing.T) {
	r := &recorder{}
	g := lifecycle.NewGroup(nil, time.Second)
	for _, n := range []string{"bus", "store", "service"} {
		g.Add(n, r.part(n, nil))
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "start bus,start store,start service,stop service,stop store,stop bus"
	if got := strings.Join(r.log, ","); got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
}

func TestFailedStartStopsWhatStarted(t *testing.T) {
	r := &recorder{}
	g := lifecycle.NewGroup(nil, time.Second)
	g.Add("bus", r.part("bus", nil))
	g.Add("store", r.part("store", errors.New("database unreachable")))
	g.Add("service", r.part("service", nil))
	err := g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "starting store: database unreachable") {
		t.Fatalf("Start = %v, want the store's failure named", err)
	}
	want := "start bus,start store,stop bus"
	if got := strings.Join(r.log, ","); got != want {
		t.Errorf("order = %s, want %s: the failed part is not stopped, the ones before it are, the ones after never start", got, want)
	}
	// Stopping again after a failed start does nothing more.
	if err := g.Stop(context.Background()); err != nil || len(r.log) != 3 {
		t.Errorf("second Stop = %v, log %v", err, r.log)
	}
}

func TestStopBoundsEachPartAndGoesOn(t *testing.T) {
	r := &recorder{}
	g := lifecycle.NewGroup(nil, 50*time.Millisecond)
	g.Add("first", r.part("first", nil))
	g.Add("stuck", lifecycle.Funcs{OnStop: func(ctx context.Context) error {
		<-ctx.Done() // never finishes by itself
		return ctx.Err()
	}})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := g.Stop(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stopping stuck") {
		t.Errorf("Stop = %v, want the stuck part's deadline named", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Stop took %s: a stuck part must not hold the rest", time.Since(start))
	}
	if got := strings.Join(r.log, ","); got != "start first,stop first" {
		t.Errorf("log = %s: the part before the stuck one was not stopped", got)
	}
}
