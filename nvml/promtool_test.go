package nvml

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// TestExpositionPromtool lints the /metrics body of every interesting state
// with promtool (skipped without promtool unless SLURMTUNE_TEST_STRICT=1).
func TestExpositionPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil && os.Getenv("SLURMTUNE_TEST_STRICT") != "1" {
		t.Skip("promtool not on PATH (apt-get install prometheus); set SLURMTUNE_TEST_STRICT=1 to fail instead")
	}
	states := map[string]func(t *testing.T) *poller{
		"no library": func(t *testing.T) *poller {
			p := newPoller(noLibrary(), pollerConfig{})
			p.markDown(gonvml.ERROR_LIBRARY_NOT_FOUND)
			return p
		},
		"before first collection": func(t *testing.T) *poller {
			return newPoller(noLibrary(), pollerConfig{})
		},
		"dgxh100 full, lost, unsupported, xid, jobs": func(t *testing.T) *poller {
			f := newFixture(t, dgxh100.New())
			f.tel[3].fail["utilization"] = gonvml.ERROR_GPU_IS_LOST
			f.tel[4].fail["power"] = gonvml.ERROR_NOT_SUPPORTED
			p := startPoller(t, f, pollerConfig{OwnJob: "77"})
			p.Poll(context.Background())
			return p
		},
		"dgxa100 with MIG": func(t *testing.T) *poller {
			f := newFixture(t, dgxa100.New())
			migParent(t, f.devs[1])
			p := startPoller(t, f, pollerConfig{})
			p.Poll(context.Background())
			return p
		},
	}
	for name, mk := range states {
		t.Run(name, func(t *testing.T) {
			p := mk(t)
			srv := newHTTPServer(p, "node1", slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			srv.Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body := rec.Body.String()
			if rec.Code != 200 || !strings.Contains(body, "slurmtune_nvml_up") {
				t.Fatalf("status %d body:\n%s", rec.Code, body)
			}
			checkPromtool(t, body)
		})
	}
}

func migParent(t testing.TB, d *server.Device) {
	t.Helper()
	if ret, _ := d.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	d.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return 2, gonvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(j int) (gonvml.Device, gonvml.Return) {
		return newMIGDevice(j+1, 0, gib, 1001), gonvml.SUCCESS
	}
}
