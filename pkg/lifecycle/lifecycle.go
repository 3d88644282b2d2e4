// Package lifecycle starts a service's parts in dependency order and stops
// them in reverse, each stop under a deadline. If a part fails to start, the
// parts already started are stopped before the error is returned, so a failed
// start leaves nothing running.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Part is anything with a start and a stop. Start's ctx bounds the start-up
// only; a part that runs in the background keeps its own lifetime until Stop.
type Part interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Funcs adapts two functions to a Part; either may be nil.
type Funcs struct {
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Start calls OnStart.
func (f Funcs) Start(ctx context.Context) error {
	if f.OnStart == nil {
		return nil
	}
	return f.OnStart(ctx)
}

// Stop calls OnStop.
func (f Funcs) Stop(ctx context.Context) error {
	if f.OnStop == nil {
		return nil
	}
	return f.OnStop(ctx)
}

type named struct {
	name string
	part Part
}

// Group is an ordered set of parts. It is not safe for concurrent use: one
// goroutine starts and stops it.
type Group struct {
	log         *slog.Logger
	stopTimeout time.Duration
	parts       []named
	started     int
}

// NewGroup returns an empty group. stopTimeout bounds each part's stop (the
// caller's ctx may bound the whole stop more tightly).
func NewGroup(log *slog.Logger, stopTimeout time.Duration) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log, stopTimeout: stopTimeout}
}

// Add appends a part; parts start in the order they are added.
func (g *Group) Add(name string, p Part) {
	g.parts = append(g.parts, named{name: name, part: p})
}

// Start starts every part in order. On the first failure it stops the parts
// already started, in reverse, and returns the failure.
func (g *Group) Start(ctx context.Context) error {
	for _, p := range g.parts[g.started:] {
		if err := p.part.Start(ctx); err != nil {
			startErr := fmt.Errorf("starting %s: %w", p.name, err)
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.stopTimeout*time.Duration(max(g.started, 1)))
			defer cancel()
			return errors.Join(startErr, g.Stop(stopCtx))
		}
		g.started++
		g.log.Debug("started", "part", p.name)
	}
	return nil
}

// Stop stops the started parts in reverse order, each under the group's stop
// timeout, and goes on past failures so that one stuck part does not keep the
// others running. It returns every failure.
func (g *Group) Stop(ctx context.Context) error {
	var errs []error
	for g.started > 0 {
		g.started--
		p := g.parts[g.started]
		pctx, cancel := context.WithTimeout(ctx, g.stopTimeout)
		if err := p.part.Stop(pctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", p.name, err))
		}
		cancel()
		g.log.Debug("stopped", "part", p.name)
	}
	return errors.Join(errs...)
}
