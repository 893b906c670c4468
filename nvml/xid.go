package nvml

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// xidWaitTimeout bounds one nvmlEventSetWait call, and so how long Stop
// waits for the watcher goroutine.
const xidWaitTimeout = 500 * time.Millisecond

// xidWatcher counts XID critical error events per GPU index, from an NVML
// event set waited on by one goroutine.
type xidWatcher struct {
	set     gonvml.EventSet
	devices []gonvml.Device // by index; nil where registration failed
	log     *onceLogger
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	counts map[int]uint64 // only indices whose registration succeeded
	stop   sync.Once
}

// startXIDWatcher creates an event set, registers every device for
// EventTypeXidCriticalError and starts the waiting goroutine. Devices that
// do not support the event (ERROR_NOT_SUPPORTED) simply have no XID count.
func startXIDWatcher(ctx context.Context, lib gonvml.Interface, handles []gonvml.Device, log *onceLogger) (*xidWatcher, error) {
	set, ret := lib.EventSetCreate()
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("create event set: %w", ret)
	}
	w := &xidWatcher{
		set:     set,
		devices: make([]gonvml.Device, len(handles)),
		log:     log,
		done:    make(chan struct{}),
		counts:  make(map[int]uint64),
	}
	for i, h := range handles {
		if h == nil {
			continue
		}
		switch ret := h.RegisterEvents(gonvml.EventTypeXidCriticalError, set); ret {
		case gonvml.SUCCESS:
			w.devices[i] = h
			w.counts[i] = 0
		case gonvml.ERROR_NOT_SUPPORTED:
		default:
			log.Warn(fmt.Sprintf("gpu%d/xid-register", i), "XID event registration failed; no XID count for this GPU",
				"gpu", i, "err", fmt.Errorf("register xid events: %w", ret))
		}
	}
	if len(w.counts) == 0 {
		if ret := set.Free(); ret != gonvml.SUCCESS {
			log.Warn("xid-free", "free NVML event set failed", "err", ret)
		}
		return nil, errors.New("no GPU supports XID events")
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go w.run(ctx)
	return w, nil
}

func (w *xidWatcher) run(ctx context.Context) {
	defer close(w.done)
	timeoutMS := uint32(xidWaitTimeout / time.Millisecond)
	for ctx.Err() == nil {
		data, ret := w.set.Wait(timeoutMS)
		switch ret {
		case gonvml.SUCCESS:
			if data.EventType&gonvml.EventTypeXidCriticalError != 0 {
				w.record(data)
			}
		case gonvml.ERROR_TIMEOUT:
		default:
			// ERROR_GPU_IS_LOST and friends: keep waiting for the other GPUs,
			// but do not spin.
			w.log.Warn("xid-wait/"+ret.String(), "NVML event wait failed", "err", fmt.Errorf("wait xid events: %w", ret))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (w *xidWatcher) record(data gonvml.EventData) {
	idx := w.indexOf(data.Device)
	if idx < 0 {
		w.log.Warn("xid-unknown-device", "XID event for an unknown device", "xid", data.EventData)
		return
	}
	w.mu.Lock()
	w.counts[idx]++
	w.mu.Unlock()
	w.log.log.Warn("XID critical error", "gpu", idx, "xid", data.EventData)
}

// indexOf maps an event's device to its index: by handle identity first,
// by UUID when the binding returns a different handle value.
func (w *xidWatcher) indexOf(dev gonvml.Device) int {
	if dev == nil {
		return -1
	}
	for i, d := range w.devices {
		if d != nil && d == dev {
			return i
		}
	}
	uuid, ret := dev.GetUUID()
	if ret != gonvml.SUCCESS {
		return -1
	}
	for i, d := range w.devices {
		if d == nil {
			continue
		}
		if u, ret := d.GetUUID(); ret == gonvml.SUCCESS && u == uuid {
			return i
		}
	}
	return -1
}

// Count returns the number of XID events seen on GPU idx, and false when
// that GPU is not registered for XID events.
func (w *xidWatcher) Count(idx int) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.counts[idx]
	return n, ok
}

// Stop ends the goroutine, waits for it and frees the event set. It must be
// called before Shutdown. It is safe to call more than once.
func (w *xidWatcher) Stop() {
	w.stop.Do(func() {
		w.cancel()
		<-w.done
		if ret := w.set.Free(); ret != gonvml.SUCCESS {
			w.log.Warn("xid-free", "free NVML event set failed", "err", ret)
		}
	})
}
