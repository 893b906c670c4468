package nvml

import (
	"cmp"
	"errors"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// scrapeGatherer serves a scrape from two registries: the GPU families,
// gathered (collected, validated, sorted) once per snapshot and shared by
// every scrape until the next collection, and the exporter's runtime
// families, gathered per scrape. It halves the CPU a scrape costs, which
// matters on GPU nodes whose cores are busy feeding the GPUs.
type scrapeGatherer struct {
	p       *poller
	gpu     prometheus.Gatherer // registry holding the metricsCollector
	runtime prometheus.Gatherer // registry holding the Go collector

	mu        sync.Mutex
	cachedOf  *snapshot
	cached    []*dto.MetricFamily
	cachedErr error
}

var _ prometheus.TransactionalGatherer = (*scrapeGatherer)(nil)

// Gather implements prometheus.TransactionalGatherer. The returned families
// are shared and must only be read, which is all the promhttp encoders do.
func (g *scrapeGatherer) Gather() ([]*dto.MetricFamily, func(), error) {
	gpu, gerr := g.gpuFamilies()
	rt, rerr := g.runtime.Gather()
	out := make([]*dto.MetricFamily, 0, len(gpu)+len(rt))
	out = append(append(out, gpu...), rt...)
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out, func() {}, errors.Join(gerr, rerr)
}

func (g *scrapeGatherer) gpuFamilies() ([]*dto.MetricFamily, error) {
	s := g.p.current()
	g.mu.Lock()
	defer g.mu.Unlock()
	// The collector reads the snapshot itself; if a newer one was published
	// meanwhile, the next scrape sees cachedOf != current and gathers again.
	if g.cachedOf != s {
		g.cached, g.cachedErr = g.gpu.Gather()
		g.cachedOf = s
	}
	return g.cached, g.cachedErr
}
