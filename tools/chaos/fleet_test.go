package chaos_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// services are the five services, in the order they start.
var services = []string{"controlplane", "connector", "mapper", "dedup", "eventlog"}

// buildServices builds the five service binaries into a folder of the test
// and returns it. They are built without -race: ten race-instrumented
// processes on a two-core machine would not settle within the in-suite
// bound; the services' own tests run with -race.
func buildServices(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	args := []string{"build", "-o", bin}
	for _, s := range services {
		args = append(args, "./services/"+s)
	}
	build := exec.Command("go", args...)
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the services: %v\n%s", err, out)
	}
	return bin
}

// fleet is the service processes: two replicas of each service, killed and
// started again by the chaos loop. Every run of a process (from a start to
// its kill, or to the end of the test) writes its JSON log to a file of its
// own, from which the test reads when the run held which consumer.
type fleet struct {
	t    *testing.T
	bin  string
	logs string // folder of the runs' log files
	// env is each service's environment, without SYNCLINE_HTTP_ADDR, which
	// is a free port per run.
	env map[string][]string

	mu       sync.Mutex
	replicas []*replica
	runs     []*run
	// exits are the runs that ended without being killed; failures what
	// went wrong in starting one again.
	exits    []exit
	failures []string
	// closing is set at the end: nothing is started again.
	closing bool
}

// exit is a run that ended without being killed.
type exit struct {
	run   string
	at    time.Time
	after time.Duration
	err   error
	log   string
}

// replica is one replica of a service; it runs as one process at a time.
type replica struct {
	name    string // e.g. "mapper-b"
	service string
	cur     *run // nil while it is down
}

// run is one process of a replica, from its start to its end.
type run struct {
	name    string // the replica's name and the run's number: "mapper-b#3"
	replica *replica
	log     string
	addr    string // its HTTP address
	cmd     *exec.Cmd
	start   time.Time
	// end is when the process was seen dead (zero while it runs); killed
	// says the test killed it.
	end    time.Time
	killed bool
	done   chan struct{}
}

func newFleet(t *testing.T, bin string, env map[string][]string) *fleet {
	f := &fleet{t: t, bin: bin, logs: t.TempDir(), env: env}
	for _, s := range services {
		for _, r := range []string{"a", "b"} {
			f.replicas = append(f.replicas, &replica{name: s + "-" + r, service: s})
		}
	}
	t.Cleanup(f.killAll)
	return f
}

// startAll starts every replica that is down.
func (f *fleet) startAll() {
	for _, r := range f.replicas {
		if f.current(r) == nil {
			f.start(r)
		}
	}
}

// start starts a process of replica r on a free HTTP port.
func (f *fleet) start(r *replica) {
	f.t.Helper()
	if err := f.launch(r); err != nil {
		f.t.Fatal(err)
	}
}

// launch starts a process of replica r, unless one runs, and watches it: a process that ends
// without being killed is started again a second later, as Kubernetes
// restarts a container that exits, and its end is noted (see exits).
func (f *fleet) launch(r *replica) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.cur != nil {
		return nil // started again by watch meanwhile
	}
	n := 1
	for _, x := range f.runs {
		if x.replica == r {
			n++
		}
	}
	ru := &run{name: fmt.Sprintf("%s#%d", r.name, n), replica: r, addr: addr, done: make(chan struct{})}
	ru.log = filepath.Join(f.logs, ru.name+".log")
	out, err := os.Create(ru.log)
	if err != nil {
		return err
	}
	ru.cmd = exec.Command(filepath.Join(f.bin, r.service))
	ru.cmd.Env = append([]string{"SYNCLINE_HTTP_ADDR=" + ru.addr}, f.env[r.service]...)
	ru.cmd.Stdout, ru.cmd.Stderr = out, out
	if err := ru.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting %s: %w", ru.name, err)
	}
	ru.start = time.Now()
	r.cur = ru
	f.runs = append(f.runs, ru)
	go f.watch(ru, out)
	return nil
}

// watch waits for run ru's process to end.
func (f *fleet) watch(ru *run, out *os.File) {
	err := ru.cmd.Wait()
	out.Close()
	f.mu.Lock()
	ru.end = time.Now()
	r := ru.replica
	if r.cur == ru {
		r.cur = nil
	}
	restart := !ru.killed && !f.closing
	if !ru.killed {
		f.exits = append(f.exits, exit{run: ru.name, at: ru.end, after: ru.end.Sub(ru.start), err: err, log: ru.log})
	}
	f.mu.Unlock()
	close(ru.done)
	if restart {
		time.Sleep(time.Second)
		f.mu.Lock()
		again := r.cur == nil && !f.closing
		f.mu.Unlock()
		if again {
			if err := f.launch(r); err != nil {
				f.mu.Lock()
				f.failures = append(f.failures, "restarting "+r.name+": "+err.Error())
				f.mu.Unlock()
			}
		}
	}
}

// kill kills replica r's process with SIGKILL (no drain, no stop) and
// waits until it is gone; the run's end is then. It reports whether a
// process ran.
func (f *fleet) kill(r *replica) bool {
	f.mu.Lock()
	ru := r.cur
	if ru == nil {
		f.mu.Unlock()
		return false
	}
	ru.killed = true
	f.mu.Unlock()
	_ = ru.cmd.Process.Signal(syscall.SIGKILL)
	<-ru.done
	return true
}

// killAll kills every process, and none is started again.
func (f *fleet) killAll() {
	f.mu.Lock()
	f.closing = true
	f.mu.Unlock()
	for _, r := range f.replicas {
		f.kill(r)
	}
}

func (f *fleet) current(r *replica) *run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return r.cur
}

// addr returns the HTTP address of a running replica of service.
func (f *fleet) addr(service string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.replicas {
		if r.service == service && r.cur != nil {
			return r.cur.addr
		}
	}
	f.t.Fatalf("no replica of %s runs", service)
	return ""
}

// waitReady waits until every replica runs and answers ready.
func (f *fleet) waitReady(d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for _, r := range f.replicas {
		for {
			why := ""
			if ru := f.current(r); ru == nil {
				why = "it is down"
			} else if resp, err := http.Get("http://" + ru.addr + "/readyz"); err != nil {
				why = err.Error()
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					why = resp.Status
				}
			}
			if why == "" {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("%s is not ready after %s: %s; its log ends:\n%s", r.name, d, why, tail(f.lastLog(r), 10))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (f *fleet) lastLog(r *replica) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.runs) - 1; i >= 0; i-- {
		if f.runs[i].replica == r {
			return f.runs[i].log
		}
	}
	return ""
}

// crashes are what went wrong with the processes beyond a clean exit: a run
// whose log shows a panic, a fatal error or a data race, and a replica
// that could not be started again. A process that exits with an error (it
// could not reach NATS in time at its start, say) is started again, as
// Kubernetes would; selfExits lists those.
func (f *fleet) crashes() []string {
	f.mu.Lock()
	runs := append([]*run(nil), f.runs...)
	out := append([]string(nil), f.failures...)
	f.mu.Unlock()
	for _, ru := range runs {
		b, err := os.ReadFile(ru.log)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
			if strings.Contains(string(b), bad) {
				out = append(out, fmt.Sprintf("%s's log shows %q; it ends:\n%s", ru.name, bad, tail(ru.log, 30)))
				break
			}
		}
	}
	return out
}

// selfExits describes the runs that exited by themselves, with the last
// line of each one's log, in two lists: those that ended before since, and
// the rest.
func (f *fleet) selfExits(since time.Time) (before, after []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.exits {
		line := fmt.Sprintf("%s exited by itself after %s (%v): %s", e.run, e.after.Round(time.Millisecond), e.err, strings.TrimSpace(tail(e.log, 1)))
		if e.at.Before(since) {
			before = append(before, line)
		} else {
			after = append(after, line)
		}
	}
	return before, after
}

// holding is one run's holding of one consumer, from its "running consumer"
// log line to its "stopped consumer" line, or to the run's end (a kill) or,
// for a run still going, to until.
type holding struct {
	durable  string
	run      string
	from, to time.Time
}

// holdings reads every run's log into the consumers it held and when. A
// consumer starts fetching just before its "running consumer" line and has
// stopped before its "stopped consumer" line, so a holding read this way is
// a few milliseconds short at its start; the leases keep seconds between
// two holders of a consumer, so an overlap is still seen.
func (f *fleet) holdings(until time.Time) ([]holding, error) {
	f.mu.Lock()
	runs := append([]*run(nil), f.runs...)
	ends := make([]time.Time, len(runs))
	for i, ru := range runs {
		ends[i] = ru.end
	}
	f.mu.Unlock()
	var out []holding
	for i, ru := range runs {
		end := ends[i]
		if end.IsZero() {
			end = until
		}
		hs, err := readHoldings(ru.log, ru.name, end)
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	return out, nil
}

// logLine is what the test reads of a service's JSON log line.
type logLine struct {
	Time     time.Time `json:"time"`
	Level    string    `json:"level"`
	Msg      string    `json:"msg"`
	Service  string    `json:"service"`
	Consumer string    `json:"consumer"`
}

// warnings counts the warnings and errors in every run's log by service
// and message, what the processes went through, and keeps the first line of
// each, with its run's name.
func (f *fleet) warnings() (counts map[string]int, first map[string]string, err error) {
	f.mu.Lock()
	runs := append([]*run(nil), f.runs...)
	f.mu.Unlock()
	counts, first = map[string]int{}, map[string]string{}
	for _, ru := range runs {
		file, err := os.Open(ru.log)
		if err != nil {
			return nil, nil, err
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l logLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Level == "WARN" || l.Level == "ERROR") {
				k := ru.replica.service + ": " + l.Msg
				if counts[k] == 0 {
					first[k] = ru.name + " " + sc.Text()
				}
				counts[k]++
			}
		}
		err = sc.Err()
		file.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return counts, first, nil
}

// readHoldings reads one run's log. A line cut short by a kill does not
// parse and is passed over.
func readHoldings(path, name string, end time.Time) ([]holding, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	open := map[string]time.Time{}
	var out []holding
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Consumer == "" {
			continue
		}
		switch l.Msg {
		case "running consumer":
			if _, ok := open[l.Consumer]; !ok {
				open[l.Consumer] = l.Time
			}
		case "stopped consumer":
			if from, ok := open[l.Consumer]; ok {
				out = append(out, holding{durable: l.Consumer, run: name, from: from, to: l.Time})
				delete(open, l.Consumer)
			}
		}
	}
	for durable, from := range open {
		out = append(out, holding{durable: durable, run: name, from: from, to: end})
	}
	return out, sc.Err()
}

// overlaps returns, for every consumer, each pair of runs that held it at
// the same time: two readers of one consumer, which its AckAll
// acknowledgements do not survive.
func overlaps(hs []holding) []string {
	by := map[string][]holding{}
	for _, h := range hs {
		by[h.durable] = append(by[h.durable], h)
	}
	var out []string
	for durable, list := range by {
		for i, a := range list {
			for _, b := range list[i+1:] {
				if a.run != b.run && a.from.Before(b.to) && b.from.Before(a.to) {
					out = append(out, fmt.Sprintf("consumer %s was held by %s from %s to %s and by %s from %s to %s",
						durable, a.run, a.from.Format(stamp), a.to.Format(stamp), b.run, b.from.Format(stamp), b.to.Format(stamp)))
				}
			}
		}
	}
	return out
}

const stamp = "15:04:05.000"

// tail is the last n lines of a file, for a failure message.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
