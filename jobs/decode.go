package jobs

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a place in the pipeline file. Line 0 means the value came from a
// --set override, named in Set.
type Pos struct {
	Line, Col int
	Set       string
}

// FieldError is one problem with the pipeline file, at a position.
type FieldError struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Pos.Line == 0 {
		if e.Pos.Set != "" {
			// Messages start with their key: say it once.
			return fmt.Sprintf("%s: --set %s: %s", e.File, e.Pos.Set, strings.TrimPrefix(e.Msg, e.Pos.Set+": "))
		}
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// Errors is every problem found in one pipeline file, in file order.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return es
}

// decoder turns a yaml.Node tree into Go values strictly: unknown keys,
// wrong types and duplicate keys are errors with positions, and every
// decoded field's position is remembered for later validation messages.
type decoder struct {
	file string
	errs Errors
	pos  map[string]Pos
	sets map[*yaml.Node]string
}

func (d *decoder) posOf(n *yaml.Node) Pos {
	if s, ok := d.sets[n]; ok {
		return Pos{Set: s}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{File: d.file, Pos: d.posOf(n), Msg: fmt.Sprintf(format, args...)})
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.pos[path] = d.posOf(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && v.Kind() != reflect.Interface {
		return // absent value: keep the default
	}
	if u, ok := v.Addr().Interface().(nodeUnmarshaler); ok {
		u.unmarshalNode(d, n, path)
		return
	}
	if u, ok := v.Addr().Interface().(scalarUnmarshaler); ok {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: want a scalar, got %s", path, kindName(n))
			return
		}
		if err := u.unmarshalScalar(n.Value); err != nil {
			d.errorf(n, "%s: %v", path, err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: want a mapping, got %s", path, kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				d.errorf(k, "%s: duplicate key %q", path, k.Value)
				continue
			}
			seen[k.Value] = true
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, ev, join(path, k.Value))
			v.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
				// A single string where a list of strings is expected.
				v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), reflect.ValueOf(n.Value)))
				return
			}
			d.errorf(n, "%s: want a list, got %s", path, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.errorf(n, "%s: %v", path, err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, "%s: want a string, got %s", path, kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n)
		if !ok {
			d.errorf(n, "%s: want true or false, got %s", path, kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, "%s: want a whole number, got %s", path, kindName(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, "%s: want a number, got %s", path, kindName(n))
			return
		}
		v.SetFloat(f)
	default:
		panic("jobs: cannot decode into " + v.Type().String())
	}
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch n.Value {
	case "true", "True", "TRUE", "yes", "on":
		return true, true
	case "false", "False", "FALSE", "no", "off":
		return false, true
	}
	return false, false
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping, got %s", nonEmpty(path), kindName(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		idx, ok := fields[k.Value]
		if !ok {
			d.errorf(k, "unknown key %q in %s%s", k.Value, nonEmpty(path), suggest(k.Value, fields))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "duplicate key %q in %s", k.Value, nonEmpty(path))
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.FieldByIndex(idx), join(path, k.Value))
	}
}

func nonEmpty(path string) string {
	if path == "" {
		return "the pipeline file"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields maps yaml keys to field indexes, flattening ",inline" fields.
func structFields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		parts := strings.Split(f.Tag.Get("yaml"), ",")
		if len(parts) > 1 && parts[1] == "inline" && f.Type.Kind() == reflect.Struct {
			for k, idx := range structFields(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if parts[0] == "" || parts[0] == "-" {
			continue
		}
		m[parts[0]] = []int{i}
	}
	return m
}

func suggest(key string, fields map[string][]int) string {
	best, bestD := "", 3
	for f := range fields {
		if dd := editDistance(key, f); dd < bestD || dd == bestD && f < best && best != "" {
			best, bestD = f, dd
		}
	}
	if best == "" {
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		sort.Strings(names)
		return " (known keys: " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev = cur
	}
	return prev[len(b)]
}

// scalarUnmarshaler is implemented by types that parse themselves from one
// YAML scalar (durations, memory sizes).
type scalarUnmarshaler interface {
	unmarshalScalar(s string) error
}

// nodeUnmarshaler is implemented by types that decode themselves from any
// node (a sweep parameter: a list or a range).
type nodeUnmarshaler interface {
	unmarshalNode(d *decoder, n *yaml.Node, path string)
}

// applySet applies one --set key.path=value override to the document,
// creating mappings along the path as needed. The value is read as a YAML
// scalar, so numbers and booleans keep their types.
func applySet(doc *yaml.Node, kv string, sets map[*yaml.Node]string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return fmt.Errorf("--set %s: want key.path=value", kv)
	}
	parts := strings.Split(key, ".")
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("--set %s: empty key in path %q", kv, key)
		}
	}
	var vn yaml.Node
	if strings.ContainsAny(val, "\n\r") {
		// YAML would fold the line breaks of a plain scalar: take it literally.
		vn = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
	} else if err := yaml.Unmarshal([]byte(val), &vn); err != nil || len(vn.Content) == 0 {
		vn = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
	} else {
		vn = *vn.Content[0]
	}
	if vn.Kind != yaml.ScalarNode && !strings.HasPrefix(strings.TrimSpace(val), "[") && !strings.HasPrefix(strings.TrimSpace(val), "{") {
		vn = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
	}
	markSet(&vn, key, sets)
	cur := doc
	for i, p := range parts {
		if cur.Kind != yaml.MappingNode {
			return fmt.Errorf("--set %s: %s is not a mapping", kv, strings.Join(parts[:i], "."))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(cur.Content); j += 2 {
			if cur.Content[j].Value == p {
				next = cur.Content[j+1]
				if i == len(parts)-1 {
					cur.Content[j+1] = &vn
				}
				break
			}
		}
		if i == len(parts)-1 {
			if next == nil {
				k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}
				markSet(k, key, sets)
				cur.Content = append(cur.Content, k, &vn)
			}
			return nil
		}
		if next == nil || next.Kind == yaml.ScalarNode && next.Tag == "!!null" {
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}
			m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			markSet(k, key, sets)
			markSet(m, key, sets)
			if next == nil {
				cur.Content = append(cur.Content, k, m)
			} else {
				*next = *m
				markSet(next, key, sets)
				m = next
			}
			next = m
		}
		cur = next
	}
	return nil
}

func markSet(n *yaml.Node, key string, sets map[*yaml.Node]string) {
	sets[n] = key
	for _, c := range n.Content {
		markSet(c, key, sets)
	}
}
