package chain

import (
	"context"
	"errors"
	"testing"

	"github.com/slurmtune/slurmtune/jobs"
)

// TestSelfOnCluster: cluster.slurmtune wins; the local transport runs this
// binary (no plan), the others upload it.
func TestSelfOnCluster(t *testing.T) {
	s := Self{Path: "/opt/slurmtune", Version: "1.2.3"}
	for _, tt := range []struct {
		c    jobs.Cluster
		want string
		plan bool
	}{
		{jobs.Cluster{Transport: "local"}, "/opt/slurmtune", false},
		{jobs.Cluster{Transport: "ssh"}, Upload, true},
		{jobs.Cluster{Transport: "rest", Slurmtune: "/shared/bin/slurmtune"}, "/shared/bin/slurmtune", true},
	} {
		got := s.OnCluster(tt.c)
		b := s.Plan(context.Background(), got, "/w", "login1")
		if got != tt.want || (b != nil) != tt.plan || b != nil && (b.Setting != got || b.Version != "1.2.3" || b.Where != "login1") {
			t.Errorf("%s: OnCluster = %q, plan %+v", tt.c.Transport, got, b)
		}
	}
	// No release build: the error says how to do without one.
	s.FindBuild = func(string, Platform) (string, error) { return "", errors.New("no build for linux/arm64") }
	if _, err := s.build(context.Background(), Platform{"linux", "arm64"}); err == nil || err.Error() != "no build for linux/arm64; or set cluster.slurmtune to slurmtune 1.2.3 on the cluster" {
		t.Errorf("build without a release build: %v", err)
	}
}
