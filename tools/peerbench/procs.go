package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/syncline/syncline/tools/internal/bench"
)

// child is a process this program started: its id, log file, and exited,
// closed with err set when it has ended.
type child struct {
	name   string
	cmd    *exec.Cmd
	pid    int
	log    string
	exited chan struct{}
	err    error
}

// startChild starts path with args and env added to this process's
// environment, its output into log. The child gets SIGKILL if this
// program dies first.
func startChild(name, path, log string, env []string, args ...string) (*child, error) {
	out, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	c := &child{name: name, cmd: cmd, pid: cmd.Process.Pid, log: log, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		out.Close()
		close(c.exited)
	}()
	return c, nil
}

// stop ends the child with SIGTERM, or SIGKILL if it has not ended within
// 30 seconds, and waits for it. It may be called more than once.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		fmt.Fprintf(os.Stderr, "  %s (pid %d) did not stop within 30 s of SIGTERM: killed\n", c.name, c.pid)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// logTail is the last n lines of the child's output.
func (c *child) logTail(n int) string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// natsServer is a nats-server child and its client URL.
type natsServer struct {
	*child
	url string
}

// startNATS starts the nats-server binary with JetStream, its store in
// dir, listening for clients on a random port of 127.0.0.1, which it
// writes into a ports file in dir.
func startNATS(ctx context.Context, path, dir string) (*natsServer, error) {
	c, err := startChild("nats-server", path, filepath.Join(dir, "nats-server.log"), nil,
		"-js", "-sd", filepath.Join(dir, "jetstream"), "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", dir)
	if err != nil {
		return nil, err
	}
	s := &natsServer{child: c}
	deadline := time.Now().Add(30 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var ports struct{ Nats []string }
			if json.Unmarshal(b, &ports) == nil && len(ports.Nats) > 0 {
				s.url = ports.Nats[0]
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("the nats-server wrote no ports file within 30 s; its log:\n%s", c.logTail(20))
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("the nats-server exited: %v; its log:\n%s", c.err, c.logTail(20))
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// natsServerVersion is what the nats-server binary says its version is.
func natsServerVersion(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// bento is a Bento child.
type bento = child

// startBento runs Bento with the peer bench's pipeline, its environment
// (NATS_URL, PG_DSN) added to this process's: bento.yaml's other
// variables (MAX_ACK_PENDING, BATCH_COUNT, BATCH_PERIOD) may come from there.
func startBento(ctx context.Context, path, config, dir string, env []string) (*bento, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return startChild("Bento", path, filepath.Join(dir, "bento.log"), env, "-c", config)
}

// processCPU is a process's CPU time so far, user and system, from
// /proc/<pid>/stat (its every thread included).
func processCPU(pid int) (time.Duration, error) {
	st, err := bench.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return time.Duration(st.UTime+st.STime) * bench.ClockTick, nil
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
