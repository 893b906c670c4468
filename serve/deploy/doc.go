// Package deploy is the deploy controller behind blue-green and canary
// deploys: it puts a new model server (a Slurm job started by the deploy
// stage) behind the slurmtune router, smoke-tests it first, shifts traffic to
// it, and rolls back or retires the old server.
//
// # How a deploy flows
//
// The deploy stage (`slurmtune deploy run`, on a compute node) submits the
// serving job (`--comment=slurmtune:<run>:serve`), which runs
// `slurmtune deploy serve`: it picks a free port, starts the model server
// (vLLM or deploy.serve.command) and, once /health answers, writes
// "host:port" to <run dir>/serve/address. The stage waits for that file, runs
// the smoke tests against the new server directly (Smoke), and only then
// touches the router:
//
//   - first deploy: the server becomes the stable backend (100%).
//   - blue-green: green is added at weight 0 until the router reports it
//     healthy, then takes 100% in one state change; blue stays configured at
//     weight 0 (instant rollback) for deploy.rollback_window, then is removed
//     from the routing state and, once the router has drained it, its job is
//     cancelled.
//   - canary: the candidate gets deploy.canary.percent for
//     deploy.canary.duration; its error rate and p95 latency (router stats)
//     are compared with the stable backend's (Judge). It is rolled back at
//     once when it is clearly worse, else promoted (then as blue-green) or
//     rolled back when the duration ends.
//
// A smoke failure cancels the new serving job and leaves the router as it
// was; the stage exits non-zero, so the run is FAILED.
//
// # Where things live
//
// Everything shared between the deploy stage (compute node) and the login
// side is a file next to the router's state file (Paths), on the shared
// filesystem:
//
//	router.json              routing state (serve.State), watched by the router
//	router.deploy.json       the deployment Record: stable, candidate, previous
//	router.history.jsonl     every switch (Event), append-only, one JSON per line
//	router.stats.json        router stats written by the router (StatsWriter)
//	router.prompts.jsonl     prompts the router forwarded (serve.PromptEntry), read by `slurmtune drift`
//	router.lock              flock(2) lock serialising all of the above
//
// The login-side commands (`slurmtune deploy status|promote|rollback`,
// `slurmtune drift`) import the history file into SQLite (idempotently, by
// event id) and read it from there. When deploy.router.admin_url is set the
// routing state is PUT and the stats are read through the router's admin API
// instead of the files (the record, history and lock stay files).
//
// # The use cases
//
// StageRun is `slurmtune deploy run` (RecordModel alone is `deploy record`
// and strategy record); Deployment is a deployment as the login side finds
// it (Find, ForPipeline), with Status, Switch (promote and rollback by
// hand), Refresh (what every login-side command does first: finish due
// retirements and drains, import the history, sample the router's
// counters into the store), RefreshAll (sync) and DriftTarget (the stable
// model for serve/drift's Check). They reach Slurm through the small Slurm
// interface and the database through Store (Deps).
package deploy
