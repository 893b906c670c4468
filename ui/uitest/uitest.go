// Package uitest drives slurmtune's dashboard in a real headless Chromium
// (Debian's chromium, through the DevTools protocol with chromedp) for
// tests: it loads a page, waits for its charts, reads back what each chart
// holds from the page itself, and saves a PNG screenshot.
package uitest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// ArtifactDir is where screenshots go: $SLURMTUNE_TEST_ARTIFACTS/<test>, else
// the test's temporary directory.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SLURMTUNE_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds Debian's chromium (or another Chrome) or skips the test (a
// failure under SLURMTUNE_TEST_STRICT=1).
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	slurmtest.Missing(t, "no headless browser: install chromium (apt-get install chromium)")
	return ""
}

// Browser is one headless Chromium for a test.
type Browser struct {
	ctx context.Context
}

// New starts Chromium; it is stopped when the test ends.
func New(t testing.TB) *Browser {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancelC()
		cancelA()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { cancelC(); cancelA() })
	return &Browser{ctx: ctx}
}

// Chart is what one chart container holds after the page's script ran:
// "drawn" with the number of points of every series (read from the uPlot
// object), or "empty" with the message shown.
type Chart struct {
	ID      string   `json:"id"`
	State   string   `json:"state"`
	Points  []int    `json:"points"`
	Labels  []string `json:"labels"`
	Message string   `json:"message"`
}

// Page is what was read from a loaded page.
type Page struct {
	Title  string
	HTML   string
	Charts map[string]Chart
	// Timeline is the data-stage of each timeline row, in order.
	Timeline []string
	// Text is the page's visible text.
	Text string
	// XSS is window.__xss: set only if injected script ran.
	XSS string
}

const readCharts = `(() => {
  const out = {};
  for (const el of document.querySelectorAll("[data-chart]")) {
    const id = el.dataset.chart;
    const u = window.stCharts[id];
    const c = {id, state: el.dataset.state || "", points: [], labels: [], message: ""};
    if (u) {
      for (let i = 1; i < u.data.length; i++) {
        c.points.push(u.data[i].filter((v) => v !== null && v !== undefined).length);
        c.labels.push(u.series[i].label);
      }
    } else {
      const p = el.querySelector(".empty");
      c.message = p ? p.textContent : "";
    }
    out[id] = c;
  }
  return out;
})()`

// Load opens url, waits until the charts are drawn (or found empty), reads
// the page and saves a full-page screenshot to shot (when not "").
func (b *Browser) Load(t testing.TB, url, shot string) Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	var p Page
	err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady("body"))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`window.stChartsReady === true`, chromedp.WithPollingTimeout(30*time.Second)))
	}
	read := func(a func() error) {
		if err == nil {
			err = a()
		}
	}
	read(func() (e error) { p.Title, e = chromedp.Run(ctx, chromedp.Title()); return })
	read(func() (e error) { p.HTML, e = chromedp.Run(ctx, chromedp.OuterHTML("html")); return })
	read(func() (e error) {
		p.Charts, e = chromedp.Run(ctx, chromedp.Evaluate[map[string]Chart](readCharts))
		return
	})
	read(func() (e error) {
		p.Timeline, e = chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#timeline .tl-row")).map((r) => r.dataset.stage)`))
		return
	})
	read(func() (e error) {
		p.Text, e = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		return
	})
	read(func() (e error) {
		p.XSS, e = chromedp.Run(ctx, chromedp.Evaluate[string](`window.__xss === undefined ? "" : String(window.__xss)`))
		return
	})
	var png []byte
	read(func() (e error) { png, e = chromedp.Run(ctx, chromedp.FullScreenshot(100)); return }) // quality 100: PNG
	if err != nil {
		t.Fatalf("load %s in chromium: %v", url, err)
	}
	if shot != "" {
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of %s: %s", url, shot)
	}
	return p
}

// Status loads url and returns the HTTP status of the document.
func (b *Browser) Status(t testing.TB, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(url))
	if err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	return int(resp.Status)
}
