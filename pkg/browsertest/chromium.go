package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvChromium names the environment variable that points the tests at a Chromium binary.
// Unset, the tests run the first of chromium and chromium-browser on PATH.
const EnvChromium = "SYNCLINE_TEST_CHROMIUM"

// stopTimeout bounds how long Stop waits for Chromium to close before it kills it.
const stopTimeout = 10 * time.Second

// shared is the one Chromium of the test package: started by the first New, stopped by Stop.
var shared struct {
	once sync.Once
	err  error

	mu            sync.Mutex // guards the fields below against a Stop racing a late New
	stopped       bool
	browserCtx    context.Context
	browserCancel context.CancelFunc
	allocCancel   context.CancelFunc
	dataDir       string
	output        *tailBuffer
}

// chromiumPath returns the Chromium binary the tests run: $SYNCLINE_TEST_CHROMIUM, or chromium
// or chromium-browser on PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s is %q, which is not an executable (%v): point it at a Chromium binary or unset it", EnvChromium, p, err)
		}
		return path, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("no chromium or chromium-browser on PATH: run `make chromium` (installs Debian's chromium) or set %s to a Chromium binary", EnvChromium)
}

// browser returns the context of the package's Chromium, starting it on the first call.
func browser() (context.Context, error) {
	shared.once.Do(func() { shared.err = start() })
	if shared.err != nil {
		return nil, shared.err
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.stopped {
		return nil, errors.New("browsertest: the package's Chromium was stopped (Stop runs after the package's tests, in TestMain)")
	}
	return shared.browserCtx, nil
}

// start starts the package's Chromium: headless, with a profile in a new temporary directory,
// and with the flags it needs to run as root in a container (no sandbox, no GPU, no /dev/shm).
func start() error {
	path, err := chromiumPath()
	if err != nil {
		return fmt.Errorf("browsertest: %w", err)
	}
	dir, err := os.MkdirTemp("", "browsertest-chromium-")
	if err != nil {
		return fmt.Errorf("browsertest: creating Chromium's profile directory: %w", err)
	}
	output := &tailBuffer{max: 8 << 10}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.Flag("headless", "new"),
		// The tests run as root in containers, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		// Pages scroll and lay out the same on every machine: no overlay scrollbars eat width.
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.CombinedOutput(output),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, browserCancel := chromedp.NewContext(allocCtx)
	// The first Do starts the browser and ties its life to browserCtx, so it has no deadline;
	// the allocator gives up on its own when Chromium does not answer.
	if err := chromedp.Do(browserCtx); err != nil {
		browserCancel()
		allocCancel()
		_ = os.RemoveAll(dir)
		return fmt.Errorf("browsertest: starting %s: %w\nChromium said:\n%s", path, err, output.String())
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.browserCtx, shared.browserCancel, shared.allocCancel = browserCtx, browserCancel, allocCancel
	shared.dataDir, shared.output = dir, output
	return nil
}

// Stop closes the package's Chromium, if a test started it, and removes its profile. Call it
// from the package's TestMain after m.Run:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := browsertest.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
//
// Without it, Chromium still ends with the test binary (it is killed when its parent exits),
// but its profile directory is left in the temporary directory.
func Stop() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.stopped || shared.browserCtx == nil {
		shared.stopped = true
		return nil
	}
	shared.stopped = true
	ctx, cancel := context.WithTimeout(shared.browserCtx, stopTimeout)
	err := chromedp.Cancel(ctx)
	cancel()
	shared.browserCancel()
	shared.allocCancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("browsertest: closing Chromium: %w", err)
	} else {
		err = nil
	}
	if rmErr := os.RemoveAll(shared.dataDir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("browsertest: removing Chromium's profile %s: %w", shared.dataDir, rmErr))
	}
	return err
}

// tailBuffer keeps the last max bytes written to it: what Chromium printed last, for the
// error when it does not start.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(string(b.buf))
	if s == "" {
		return "(nothing)"
	}
	return s
}
