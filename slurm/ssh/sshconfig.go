package ssh

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SSHConfig is a parsed ssh_config(5) file, reduced to what slurmtune uses:
// Host blocks (patterns with * and ?, negation with !), HostName, User,
// Port, IdentityFile, ProxyJump, ProxyCommand (only to refuse it clearly),
// UserKnownHostsFile, HostKeyAlias, ConnectTimeout, ServerAliveInterval,
// ServerAliveCountMax, IdentityAgent, IdentitiesOnly and Include. Match
// blocks are not evaluated: their options never apply (except "Match all").
type SSHConfig struct {
	blocks []configBlock
}

type configBlock struct {
	// patterns of the Host line; nil for the options before the first Host
	// line (they apply to every host).
	patterns []string
	// never is set for Match blocks slurmtune does not evaluate.
	never bool
	opts  []configOption
}

type configOption struct {
	key  string // lower case keyword
	args []string
	line int
	// include holds the parsed files of an Include option (filled in by
	// LoadSSHConfig; the pure parser leaves it empty).
	include []*SSHConfig
}

// HostConfig is what an SSHConfig says about one host. Zero values mean the
// file does not set the option.
type HostConfig struct {
	HostName            string
	User                string
	Port                int
	IdentityFiles       []string
	ProxyJump           string
	ProxyCommand        string
	UserKnownHostsFiles []string
	HostKeyAlias        string
	ConnectTimeout      time.Duration
	ServerAliveInterval time.Duration
	ServerAliveCountMax int
	IdentityAgent       string
	IdentitiesOnly      bool
}

// ParseSSHConfig parses the text of an ssh_config file. It does no I/O:
// Include options are kept but not followed (LoadSSHConfig follows them).
func ParseSSHConfig(data []byte) (*SSHConfig, error) {
	c := &SSHConfig{blocks: []configBlock{{}}}
	for n, raw := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		key, args, err := splitConfigLine(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if key == "" {
			continue
		}
		switch key {
		case "host":
			if len(args) == 0 {
				return nil, fmt.Errorf("line %d: Host without patterns", lineNo)
			}
			c.blocks = append(c.blocks, configBlock{patterns: args})
			continue
		case "match":
			all := len(args) == 1 && strings.EqualFold(args[0], "all")
			blk := configBlock{patterns: []string{"*"}, never: !all}
			c.blocks = append(c.blocks, blk)
			continue
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("line %d: %s without a value", lineNo, key)
		}
		b := &c.blocks[len(c.blocks)-1]
		b.opts = append(b.opts, configOption{key: key, args: args, line: lineNo})
	}
	return c, nil
}

// splitConfigLine splits one line into its lower-cased keyword and its
// arguments ("Keyword value", "Keyword=value", double-quoted arguments,
// comments).
func splitConfigLine(line string) (string, []string, error) {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || line[0] == '#' {
		return "", nil, nil
	}
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return strings.ToLower(line), nil, nil
	}
	key := strings.ToLower(line[:i])
	rest := strings.TrimLeft(line[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	var args []string
	for rest != "" {
		if rest[0] == '#' {
			break
		}
		var arg string
		if rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return "", nil, errors.New("unterminated quote")
			}
			arg, rest = rest[1:1+end], rest[2+end:]
		} else {
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			arg, rest = rest[:end], rest[end:]
		}
		args = append(args, arg)
		rest = strings.TrimLeft(rest, " \t")
	}
	return key, args, nil
}

// Lookup returns the options that apply to host, the name as given (an
// alias). As in ssh, the first value found for an option wins, except
// IdentityFile and UserKnownHostsFile which accumulate.
func (c *SSHConfig) Lookup(host string) HostConfig {
	var hc HostConfig
	seen := map[string]bool{}
	c.apply(strings.ToLower(host), host, &hc, seen, 0)
	return hc
}

func (c *SSHConfig) apply(lhost, host string, hc *HostConfig, seen map[string]bool, depth int) {
	if c == nil || depth > 16 {
		return
	}
	for _, b := range c.blocks {
		if b.never || (b.patterns != nil && !matchHostPatterns(lhost, b.patterns)) {
			continue
		}
		for _, o := range b.opts {
			if o.key == "include" {
				for _, inc := range o.include {
					inc.apply(lhost, host, hc, seen, depth+1)
				}
				continue
			}
			setOption(hc, host, o, seen)
		}
	}
}

func setOption(hc *HostConfig, host string, o configOption, seen map[string]bool) {
	v := o.args[0]
	switch o.key {
	case "identityfile":
		hc.IdentityFiles = append(hc.IdentityFiles, v)
		return
	case "userknownhostsfile":
		if seen[o.key] {
			return
		}
		seen[o.key] = true
		hc.UserKnownHostsFiles = append(hc.UserKnownHostsFiles, o.args...)
		return
	}
	if seen[o.key] {
		return
	}
	switch o.key {
	case "hostname":
		hc.HostName = expandPercent(v, map[byte]string{'h': host})
	case "user":
		hc.User = v
	case "port":
		p, err := strconv.Atoi(v)
		if err != nil || p <= 0 || p > 65535 {
			return
		}
		hc.Port = p
	case "proxyjump":
		hc.ProxyJump = v
	case "proxycommand":
		hc.ProxyCommand = strings.Join(o.args, " ")
	case "hostkeyalias":
		hc.HostKeyAlias = v
	case "connecttimeout":
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			hc.ConnectTimeout = time.Duration(n) * time.Second
		}
	case "serveraliveinterval":
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			hc.ServerAliveInterval = time.Duration(n) * time.Second
		}
	case "serveralivecountmax":
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			hc.ServerAliveCountMax = n
		}
	case "identityagent":
		hc.IdentityAgent = v
	case "identitiesonly":
		hc.IdentitiesOnly = strings.EqualFold(v, "yes")
	default:
		return
	}
	seen[o.key] = true
}

// matchHostPatterns reports whether host matches a Host line: at least one
// pattern matches and no negated pattern does.
func matchHostPatterns(host string, patterns []string) bool {
	matched := false
	for _, p := range patterns {
		p = strings.ToLower(p)
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if wildcardMatch(neg, host) {
				return false
			}
			continue
		}
		if wildcardMatch(p, host) {
			matched = true
		}
	}
	return matched
}

// wildcardMatch matches s against a pattern where * is any run of
// characters and ? one character.
func wildcardMatch(pat, s string) bool {
	// Iterative matcher with backtracking to the last star.
	px, sx := 0, 0
	star, mark := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pat) && (pat[px] == '?' || pat[px] == s[sx]):
			px++
			sx++
		case px < len(pat) && pat[px] == '*':
			star, mark = px, sx
			px++
		case star >= 0:
			px = star + 1
			mark++
			sx = mark
		default:
			return false
		}
	}
	for px < len(pat) && pat[px] == '*' {
		px++
	}
	return px == len(pat)
}

// expandPercent replaces %x tokens (and %%) in s.
func expandPercent(s string, tokens map[byte]string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		if v, ok := tokens[s[i]]; ok {
			b.WriteString(v)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(s[i])
	}
	return b.String()
}

// expandHome replaces a leading ~ or ~/ with home.
func expandHome(p, home string) string {
	if p == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return p
}

// LoadSSHConfig reads and parses an ssh_config file and the files its
// Include options name (relative names are looked up in ~/.ssh, glob
// patterns allowed), as ssh does.
func LoadSSHConfig(path string) (*SSHConfig, error) {
	home, _ := userHomeDir()
	return loadSSHConfig(path, home, 0)
}

func loadSSHConfig(path, home string, depth int) (*SSHConfig, error) {
	if depth > 16 {
		return nil, fmt.Errorf("%s: Include nested too deeply", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseSSHConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for bi := range c.blocks {
		b := &c.blocks[bi]
		for oi := range b.opts {
			o := &b.opts[oi]
			if o.key != "include" {
				continue
			}
			for _, pat := range o.args {
				pat = expandHome(pat, home)
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(home, ".ssh", pat)
				}
				files, _ := filepath.Glob(pat)
				for _, f := range files {
					inc, err := loadSSHConfig(f, home, depth+1)
					if err != nil {
						return nil, fmt.Errorf("%s:%d: Include: %w", path, o.line, err)
					}
					o.include = append(o.include, inc)
				}
			}
		}
	}
	return c, nil
}

// jumpSpec is one ProxyJump hop: [user@]host[:port] or ssh://[user@]host[:port].
type jumpSpec struct {
	User string
	Host string
	Port int
}

// parseProxyJump parses a ProxyJump value: a comma-separated list of hops,
// first hop first. "none" means no jump host.
func parseProxyJump(s string) ([]jumpSpec, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "none") {
		return nil, nil
	}
	var hops []jumpSpec
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		part = strings.TrimPrefix(part, "ssh://")
		var j jumpSpec
		if i := strings.LastIndexByte(part, '@'); i >= 0 {
			j.User, part = part[:i], part[i+1:]
			if j.User == "" {
				return nil, fmt.Errorf("ProxyJump %q: empty user", s)
			}
		}
		host, port := part, ""
		if strings.HasPrefix(part, "[") {
			end := strings.IndexByte(part, ']')
			if end < 0 {
				return nil, fmt.Errorf("ProxyJump %q: missing ]", s)
			}
			host = part[1:end]
			rest := part[end+1:]
			if rest != "" {
				if !strings.HasPrefix(rest, ":") {
					return nil, fmt.Errorf("ProxyJump %q: bad address %q", s, part)
				}
				port = rest[1:]
			}
		} else if strings.Count(part, ":") == 1 {
			host, port, _ = strings.Cut(part, ":")
		}
		if host == "" {
			return nil, fmt.Errorf("ProxyJump %q: empty host", s)
		}
		j.Host = host
		if port != "" {
			p, err := strconv.Atoi(port)
			if err != nil || p <= 0 || p > 65535 {
				return nil, fmt.Errorf("ProxyJump %q: bad port %q", s, port)
			}
			j.Port = p
		}
		hops = append(hops, j)
	}
	return hops, nil
}
