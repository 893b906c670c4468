package ssh

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestSSHConfigLookup(t *testing.T) {
	const conf = `
# global options come first
User globaluser

Host cluster
    HostName login.example.org
    Port 2222
    IdentityFile ~/.ssh/cluster_ed25519
    ProxyJump bastion

Host login-?? !login-99
    HostName %h.example.org
    User=alice
    IdentityFile "~/.ssh/with space"

Host *.example.org
    ProxyJump jump@gw.example.org:22,second
    Port 22022
    ServerAliveInterval 15
    ServerAliveCountMax 5

Match exec "false"
    User matched

Host cluster *
    User ignored-because-global-user-came-first
    Port 22
    IdentityFile ~/.ssh/id_fallback
    ConnectTimeout 7
    UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh2
    UserKnownHostsFile ~/.ssh/ignored
    IdentitiesOnly yes
    IdentityAgent ~/agent.sock
    HostKeyAlias alias
`
	c, err := ParseSSHConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want HostConfig
	}{
		{"cluster", HostConfig{
			HostName: "login.example.org", User: "globaluser", Port: 2222,
			IdentityFiles:       []string{"~/.ssh/cluster_ed25519", "~/.ssh/id_fallback"},
			ProxyJump:           "bastion",
			ConnectTimeout:      7 * time.Second,
			UserKnownHostsFiles: []string{"~/.ssh/kh1", "~/.ssh/kh2"},
			IdentitiesOnly:      true, IdentityAgent: "~/agent.sock", HostKeyAlias: "alias",
		}},
		{"login-01", HostConfig{
			HostName: "login-01.example.org", User: "globaluser", Port: 22,
			IdentityFiles:       []string{"~/.ssh/with space", "~/.ssh/id_fallback"},
			ConnectTimeout:      7 * time.Second,
			UserKnownHostsFiles: []string{"~/.ssh/kh1", "~/.ssh/kh2"},
			IdentitiesOnly:      true, IdentityAgent: "~/agent.sock", HostKeyAlias: "alias",
		}},
		// Negated pattern: login-99 skips the login-?? block. Matching is on
		// the name as given, not on HostName.
		{"LOGIN-99.example.org", HostConfig{
			User: "globaluser", Port: 22022, ProxyJump: "jump@gw.example.org:22,second",
			ServerAliveInterval: 15 * time.Second, ServerAliveCountMax: 5,
			IdentityFiles:       []string{"~/.ssh/id_fallback"},
			ConnectTimeout:      7 * time.Second,
			UserKnownHostsFiles: []string{"~/.ssh/kh1", "~/.ssh/kh2"},
			IdentitiesOnly:      true, IdentityAgent: "~/agent.sock", HostKeyAlias: "alias",
		}},
	}
	for _, tt := range tests {
		if got := c.Lookup(tt.host); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lookup(%q) =\n%+v\nwant\n%+v", tt.host, got, tt.want)
		}
	}
	var nilConf *SSHConfig
	if got := nilConf.Lookup("x"); !reflect.DeepEqual(got, HostConfig{}) {
		t.Errorf("nil config: %+v", got)
	}
}

func TestParseSSHConfigErrors(t *testing.T) {
	for _, bad := range []string{"Host\n", "HostName\n", `IdentityFile "unterminated`} {
		if _, err := ParseSSHConfig([]byte(bad)); err == nil {
			t.Errorf("ParseSSHConfig(%q) accepted", bad)
		}
	}
	c, err := ParseSSHConfig([]byte("Match all\nUser all\nHost x\nPort 1 # comment\nUnknownOption whatever\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Lookup("x"); got.User != "all" || got.Port != 1 {
		t.Errorf("Lookup = %+v", got)
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true}, {"*", "anything", true}, {"a*", "abc", true}, {"a*c", "abc", true},
		{"a*c", "abd", false}, {"a?c", "abc", true}, {"a?c", "ac", false}, {"*.example.org", "x.example.org", true},
		{"*.example.org", "example.org", false}, {"*a*b*", "xxaxxbxx", true}, {"*a*b", "ba", false},
		{"login-??", "login-01", true}, {"login-??", "login-1", false}, {"", "", true}, {"", "x", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pat, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.pat, tt.s, got)
		}
	}
}

func TestParseProxyJump(t *testing.T) {
	tests := []struct {
		in   string
		want []jumpSpec
		bad  bool
	}{
		{"", nil, false},
		{"none", nil, false},
		{"bastion", []jumpSpec{{Host: "bastion"}}, false},
		{"alice@bastion:2200", []jumpSpec{{User: "alice", Host: "bastion", Port: 2200}}, false},
		{"ssh://alice@bastion:2200", []jumpSpec{{User: "alice", Host: "bastion", Port: 2200}}, false},
		{"a@first, second:23", []jumpSpec{{User: "a", Host: "first"}, {Host: "second", Port: 23}}, false},
		{"u@[2001:db8::1]:22", []jumpSpec{{User: "u", Host: "2001:db8::1", Port: 22}}, false},
		{"2001:db8::1", []jumpSpec{{Host: "2001:db8::1"}}, false},
		{"bastion:port", nil, true},
		{"bastion:0", nil, true},
		{"@bastion", nil, true},
		{"a,,b", nil, true},
		{"[::1", nil, true},
	}
	for _, tt := range tests {
		got, err := parseProxyJump(tt.in)
		if (err != nil) != tt.bad || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseProxyJump(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

func TestResolve(t *testing.T) {
	home := t.TempDir()
	defer func(f func() (string, error)) { userHomeDir = f }(userHomeDir)
	userHomeDir = func() (string, error) { return home, nil }
	if err := os.MkdirAll(filepath.Join(home, ".ssh", "config.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(`
Include config.d/*.conf
Host cluster
    HostName login.example.org
    User bob
    IdentityFile %d/.ssh/%r_key
    ProxyJump gw
Host gw
    HostName gw.example.org
    Port 2022
    User gwuser
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config.d", "extra.conf"), []byte("Host cluster\n    Port 2222\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r, err := Config{Host: "cluster", AgentSocket: "none"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	tgt := r.target
	if tgt.host != "login.example.org" || tgt.port != 2222 || tgt.user != "bob" ||
		len(tgt.identityFiles) != 1 || tgt.identityFiles[0].path != filepath.Join(home, ".ssh", "bob_key") {
		t.Errorf("target = %+v", tgt)
	}
	if len(r.jumps) != 1 || r.jumps[0].host != "gw.example.org" || r.jumps[0].port != 2022 || r.jumps[0].user != "gwuser" {
		t.Errorf("jumps = %+v", r.jumps)
	}
	if r.knownHosts[0] != filepath.Join(home, ".ssh", "known_hosts") || r.keepAlive != 30*time.Second || r.timeout != 30*time.Second {
		t.Errorf("resolved = %+v", r)
	}

	// Explicit values win; ProxyJump "none" disables the file's.
	r, err = Config{Host: "cluster", Port: 22, User: "carol", IdentityFile: "~/k", ProxyJump: "none",
		KnownHosts: "~/kh", AgentSocket: "none", Timeout: time.Second, KeepAlive: -1}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.target.port != 22 || r.target.user != "carol" || r.target.identityFiles[0].path != filepath.Join(home, "k") ||
		!r.target.identityFiles[0].explicit || len(r.jumps) != 0 || r.knownHosts[0] != filepath.Join(home, "kh") ||
		r.keepAlive >= 0 || r.timeout != time.Second {
		t.Errorf("explicit: %+v", r)
	}

	// Plain host without a config entry: defaults.
	r, err = Config{Host: "10.0.0.5", ConfigFile: "none", AgentSocket: "none"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.target.port != 22 || r.target.user != currentUser() || len(r.target.identityFiles) != 3 {
		t.Errorf("defaults: %+v", r.target)
	}
	if _, err := (Config{Host: "x", ConfigFile: filepath.Join(home, "missing")}).resolve(); err == nil {
		t.Errorf("missing explicit config file accepted")
	}
	if _, err := (Config{}).resolve(); err == nil {
		t.Errorf("empty host accepted")
	}
	if err := os.WriteFile(filepath.Join(home, "pc"), []byte("Host pc\n ProxyCommand nc %h %p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The first hop's own ProxyJump is followed; a loop is an error.
	if err := os.WriteFile(filepath.Join(home, "chain"), []byte(`Host c
  ProxyJump b1,b2
Host b1
  ProxyJump u@b0:2
Host b2
  ProxyJump ignored
Host loop
  ProxyJump loop
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = Config{Host: "c", ConfigFile: filepath.Join(home, "chain")}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	var chain []string
	for _, j := range r.jumps {
		chain = append(chain, j.String())
	}
	if want := []string{"u@b0:2", currentUser() + "@b1", currentUser() + "@b2"}; !reflect.DeepEqual(chain, want) {
		t.Errorf("jump chain %q, want %q", chain, want)
	}
	if _, err := (Config{Host: "x", ProxyJump: "loop", ConfigFile: filepath.Join(home, "chain")}).resolve(); err == nil {
		t.Errorf("ProxyJump loop accepted")
	}
	if _, err := (Config{Host: "pc", ConfigFile: filepath.Join(home, "pc")}).resolve(); err == nil {
		t.Errorf("ProxyCommand accepted")
	}
}
