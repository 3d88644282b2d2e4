package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/chromedp/chromedp"
)

// EnvArtifacts names the environment variable that sets where tests keep their artefacts;
// screenshots go to its screenshots folder. Unset, that is the artifacts folder at the root of
// the module under test (the nearest folder up with a go.mod), which git ignores.
const EnvArtifacts = "SYNCLINE_ARTIFACTS"

// Widths are the viewport widths Screenshots takes each page at: a desktop window and a phone.
var Widths = []int{1280, 390}

// screenshotName is what a screenshot may be called: a file name without a folder.
var screenshotName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ScreenshotDir returns the folder screenshots are written to: $SYNCLINE_ARTIFACTS/screenshots,
// or artifacts/screenshots at the root of the module the test runs in.
func ScreenshotDir() (string, error) {
	if dir := os.Getenv(EnvArtifacts); dir != "" {
		return filepath.Join(dir, "screenshots"), nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "artifacts", "screenshots"), nil
}

// moduleRoot returns the nearest folder up from the working directory (a test's package
// folder) that holds a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: set %s to the folder for test artefacts", EnvArtifacts)
		}
		dir = parent
	}
}

// Screenshot writes a PNG of the whole page (not only the viewport) at the current viewport
// width to name.png in ScreenshotDir, replacing any file of that name, and returns its path.
// name is a file name without a folder or extension, such as "connectors-390".
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	path, err := b.screenshot(name)
	if err != nil {
		b.t.Fatal(err)
	}
	return path
}

func (b *Browser) screenshot(name string) (string, error) {
	if !screenshotName.MatchString(name) {
		return "", fmt.Errorf("browsertest: screenshot name %q: use letters, digits, '.', '-' and '_' only, with no folder and no extension", name)
	}
	dir, err := ScreenshotDir()
	if err != nil {
		return "", fmt.Errorf("browsertest: screenshot %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("browsertest: screenshot %s: creating %s: %w", name, dir, err)
	}
	var png []byte
	err = b.do("taking a screenshot", nil, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var err error
		png, err = chromedp.FullScreenshot(100)(ctx, t) // quality 100 is PNG
		return err
	}))
	if err != nil {
		return "", err
	}
	if len(png) == 0 {
		return "", errors.New("browsertest: taking a screenshot: Chromium returned no image")
	}
	path := filepath.Join(dir, name+".png")
	// Written aside and renamed, so a reader never sees half a picture.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, png, 0o644); err != nil {
		return "", fmt.Errorf("browsertest: writing screenshot %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("browsertest: writing screenshot %s: %w", path, err)
	}
	return path, nil
}

// Screenshots writes a full-page screenshot at each of Widths, as name-1280.png and
// name-390.png, keeping the viewport's height, and puts the viewport back as it was. It returns
// the paths. Layouts that change with the width are laid out anew before each picture.
func (b *Browser) Screenshots(name string) []string {
	b.t.Helper()
	w, h := b.width, b.height
	var paths []string
	for _, width := range Widths {
		b.Viewport(width, h)
		paths = append(paths, b.Screenshot(name+"-"+strconv.Itoa(width)))
	}
	b.Viewport(w, h)
	return paths
}
