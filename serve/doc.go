// Package serve implements the slurmtune router: an HTTP reverse proxy that
// sits in front of OpenAI-compatible model servers (vLLM or the demo server)
// running as Slurm jobs.
//
// The router splits traffic across backends by integer weight (smooth
// weighted round-robin over the healthy backends), actively health-checks
// every backend, streams responses (SSE) through unbuffered, and is
// reconfigured without dropping requests: the routing table is an immutable
// snapshot swapped with an atomic pointer, requests already in flight finish
// on the backend they were sent to, and removed backends drain before their
// connections are closed.
//
// The routing State lives in a JSON file (see State, WriteState and
// ReadState) on a shared filesystem so that a deploy job on a compute node
// can drive the router; the router polls it and reloads it. An optional
// bearer-token guarded admin endpoint (PUT /admin/state) does the same over
// HTTP. Metrics are exposed on the router's own Prometheus registry at
// /metrics, and Router.Stats gives windowed per-backend error rate and p95
// latency for canary analysis.
//
// Request bodies up to Config.MaxBufferedBody are read before they are
// forwarded, so a request whose backend cannot be connected to is sent to
// another one (and the dead backend leaves the rotation until a probe
// passes), and so the prompts of answered completion requests can be
// written to a PromptLog for data drift checks. Larger bodies stream in full
// duplex.
package serve
