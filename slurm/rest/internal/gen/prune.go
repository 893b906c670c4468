// Package gen prepares slurmrestd's OpenAPI documents for code generation.
//
// slurmrestd publishes one large document per release (every plugin version,
// every endpoint). slurmtune uses a handful of operations per API version, so
// Prune keeps only those operations and the components they reach, and
// applies the few documented fixes a document needs to describe what the
// server really sends. The result is committed next to the generated types
// (slurm/rest/vNNNN/openapi.json) and is also what the tests validate
// requests and recorded responses against.
//
// Run it through scripts/gen-rest.sh (or `go generate ./slurm/rest/...`).
package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Profile says what to keep of one source document and how to fix it.
type Profile struct {
	// Name is the API version package, e.g. "v0038".
	Name string
	// Operations are the operationIds to keep.
	Operations []string
	// Fixes are applied after pruning, in order.
	Fixes []Fix
}

// Fix changes the pruned document so that it describes what the server
// really sends. Why says what that is.
type Fix struct {
	Why   string
	Apply func(doc map[string]any) error
}

// setAt replaces (or adds, when the parent exists) the value at a
// slash-separated path below the document root (no JSON-pointer escaping:
// Slurm's names hold dots, never slashes).
func setAt(path string, value any, why string) Fix {
	return Fix{Why: why, Apply: func(doc map[string]any) error { return set(doc, path, value) }}
}

// defaultLike200 gives every operation's default response the schema of
// its 200 response.
func defaultLike200(doc map[string]any) error {
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		pi, _ := item.(map[string]any)
		for _, op := range pi {
			o, _ := op.(map[string]any)
			resps, _ := o["responses"].(map[string]any)
			ok, _ := resps["200"].(map[string]any)
			def, _ := resps["default"].(map[string]any)
			if ok == nil || def == nil || ok["content"] == nil {
				continue
			}
			def["content"] = ok["content"]
		}
	}
	return nil
}

// boolDefaults turns "true"/"false" defaults of boolean schemas into
// booleans.
func boolDefaults(doc map[string]any) error {
	eachSchema(doc, func(s map[string]any) {
		if s["type"] == "boolean" {
			switch s["default"] {
			case "true":
				s["default"] = true
			case "false":
				s["default"] = false
			}
		}
	})
	return nil
}

// widenInt32 makes every int32 integer an int64.
func widenInt32(doc map[string]any) error {
	eachSchema(doc, func(s map[string]any) {
		if s["type"] == "integer" && s["format"] == "int32" {
			s["format"] = "int64"
		}
	})
	return nil
}

// dropSlashRequired removes "a/b" entries from every schema's required list.
func dropSlashRequired(doc map[string]any) error {
	eachSchema(doc, func(s map[string]any) {
		req, ok := s["required"].([]any)
		if !ok {
			return
		}
		kept := req[:0]
		for _, r := range req {
			if name, _ := r.(string); !strings.Contains(name, "/") {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			delete(s, "required")
		} else {
			s["required"] = kept
		}
	})
	return nil
}

// Profiles are the API versions slurmtune generates types for.
var Profiles = map[string]Profile{
	"v0038": {
		Name: "v0038",
		Operations: []string{
			"slurm_v0_0_38_ping",
			"slurm_v0_0_38_get_jobs",
			"slurm_v0_0_38_get_job",
			"slurm_v0_0_38_submit_job",
			"slurm_v0_0_38_cancel_job",
			"slurmdb_v0_0_38_get_jobs",
		},
		// What Slurm 22.05.8's slurmrestd really sends, recorded from the
		// dev cluster (testdata/v0038 holds the recordings, and the tests
		// validate them against the pruned document).
		Fixes: []Fix{
			setAt("components/schemas/dbv0.0.38_job/properties/allocation_nodes",
				map[string]any{"type": "integer", "description": "Nodes allocated to job"},
				"sends a node count (2), the document says string"),
			setAt("components/schemas/v0.0.38_job_properties/properties/nodes",
				map[string]any{"type": "string", "description": "Node count as sbatch --nodes takes it: N or MIN-MAX"},
				"reads a node count only as a number or a string (\"2\", \"2-4\"); the array "+
					"the document says ([2, 2]) is accepted and ignored: the job gets one node"),
			setAt("components/schemas/v0.0.38_job_properties/properties/exclusive",
				map[string]any{"type": "string", "enum": []any{"user", "mcs", "exclusive"},
					"description": "Whole nodes (exclusive), or shared only with the user's or the MCS label's jobs"},
				"reads --exclusive as \"exclusive\"; the document's \"true\" (and a JSON true) is refused "+
					"with \"Invalid exclusive specification\" (probed against 22.05.8)"),
			setAt("components/schemas/v0.0.38_meta/properties/Slurm/properties/version/properties/major",
				map[string]any{"type": "integer"}, "sends the version numbers as integers"),
			setAt("components/schemas/v0.0.38_meta/properties/Slurm/properties/version/properties/minor",
				map[string]any{"type": "integer"}, "sends the version numbers as integers"),
			setAt("components/schemas/v0.0.38_meta/properties/Slurm/properties/version/properties/micro",
				map[string]any{"type": "integer"}, "sends the version numbers as integers"),
			setAt("components/schemas/dbv0.0.38_job_step/properties/task",
				map[string]any{"type": "object", "description": "Task distribution properties",
					"properties": map[string]any{"distribution": map[string]any{"type": "string"}}},
				"sends task as an object ({\"distribution\": \"Unknown\"}), the document says string"),
			setAt("components/schemas/dbv0.0.38_job_step/properties/step/properties/id",
				map[string]any{"description": "Step id: a number, or batch/extern"},
				"sends a step id as a number (0) or a name (\"batch\"), the document says string"),
			setAt("components/schemas/v0.0.38_error/properties/description",
				map[string]any{"type": "string", "description": "What failed"},
				"adds description and source to each error (\"Failed while looking for jobs\", \"slurm_load_jobs\")"),
			setAt("components/schemas/v0.0.38_error/properties/source",
				map[string]any{"type": "string", "description": "Slurm function that failed"},
				"adds description and source to each error"),
			setAt("components/schemas/dbv0.0.38_error/properties/source",
				map[string]any{"type": "string", "description": "Slurm function that failed"},
				"adds source to each error (\"slurmdb_jobs_get\")"),
			setAt("components/schemas/v0.0.38_error/properties/error_code",
				map[string]any{"type": "integer", "description": "Slurm error number (submit answers)"},
				"names the error number error_code in submit answers (e.g. 2042 for a held job)"),
			{
				Why: "answers errors with the operation's own object (meta, errors, and an " +
					"empty list), not the bare error array the document's default response says",
				Apply: defaultLike200,
			},
			{
				Why:   "(document bug) gives boolean defaults as strings (\"false\"), which OpenAPI validators reject",
				Apply: boolDefaults,
			},
			{
				Why: "sends null for every unset (NO_VAL) value; the document never says nullable",
				Apply: func(doc map[string]any) error {
					eachSchema(doc, func(s map[string]any) {
						if _, ok := s["type"]; ok {
							s["nullable"] = true
						}
					})
					return nil
				},
			},
		},
	},
	"v0040": {
		Name: "v0040",
		Operations: []string{
			"slurm_v0040_get_ping",
			"slurm_v0040_get_jobs",
			"slurm_v0040_get_job",
			"slurm_v0040_post_job_submit",
			"slurm_v0040_delete_job",
			"slurmdb_v0040_get_jobs",
		},
		Fixes: []Fix{{
			Why: "lists nested keys as required (\"nodes/allocation\" in job_resources), which " +
				"JSON Schema reads as a key with a slash that no answer has: dropped",
			Apply: dropSlashRequired,
		}, {
			Why: "declares Slurm's uint32 values (priority, ids, counts) as int32 although they reach " +
				"4294967294 (a job's priority under priority/basic is ~4294901760): int64, so they decode",
			Apply: widenInt32,
		}},
	},
	"v0041": {
		Name: "v0041",
		Operations: []string{
			"slurm_v0041_get_ping",
			"slurm_v0041_get_jobs",
			"slurm_v0041_get_job",
			"slurm_v0041_post_job_submit",
			"slurm_v0041_delete_job",
			"slurmdb_v0041_get_jobs",
		},
		Fixes: []Fix{{
			Why: "lists nested keys as required (\"nodes/allocation\" in job_resources), which " +
				"JSON Schema reads as a key with a slash that no answer has: dropped",
			Apply: dropSlashRequired,
		}, {
			Why: "declares Slurm's uint32 values (priority, ids, counts) as int32 although they reach " +
				"4294967294 (a job's priority under priority/basic is ~4294901760): int64, so they decode",
			Apply: widenInt32,
		}},
	},
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Load reads a JSON or YAML OpenAPI document into plain maps.
func Load(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc any
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		err = yaml.Unmarshal(data, &doc)
	default:
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		err = d.Decode(&doc)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, ok := normalize(doc).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not an object", path)
	}
	return m, nil
}

// normalize turns YAML's map[any]any into map[string]any, recursively.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	}
	return v
}

// Prune returns a new document with only p's operations, the components they
// reach, and p's fixes applied.
func Prune(src map[string]any, p Profile) (map[string]any, error) {
	want := map[string]bool{}
	for _, op := range p.Operations {
		want[op] = true
	}
	paths, _ := src["paths"].(map[string]any)
	outPaths := map[string]any{}
	found := map[string]bool{}
	for path, item := range paths {
		pi, ok := item.(map[string]any)
		if !ok {
			continue
		}
		kept := map[string]any{}
		for _, m := range methods {
			op, ok := pi[m].(map[string]any)
			if !ok {
				continue
			}
			id, _ := op["operationId"].(string)
			if want[id] {
				kept[m] = op
				found[id] = true
			}
		}
		if len(kept) == 0 {
			continue
		}
		if params, ok := pi["parameters"]; ok {
			kept["parameters"] = params
		}
		outPaths[path] = kept
	}
	var missing []string
	for _, op := range p.Operations {
		if !found[op] {
			missing = append(missing, op)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("operations not in the document: %s", strings.Join(missing, ", "))
	}

	comps, _ := src["components"].(map[string]any)
	outComps := map[string]any{}
	// Walk $refs from the kept paths until no new component is reached.
	queue := refs(outPaths, nil)
	seen := map[string]bool{}
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		if seen[ref] {
			continue
		}
		seen[ref] = true
		kind, name, ok := splitRef(ref)
		if !ok {
			return nil, fmt.Errorf("unsupported $ref %q", ref)
		}
		group, _ := comps[kind].(map[string]any)
		def, ok := group[name]
		if !ok {
			return nil, fmt.Errorf("$ref %q: no such component", ref)
		}
		og, _ := outComps[kind].(map[string]any)
		if og == nil {
			og = map[string]any{}
			outComps[kind] = og
		}
		og[name] = def
		queue = refs(def, queue)
	}
	if ss, ok := comps["securitySchemes"]; ok {
		outComps["securitySchemes"] = ss
	}

	out := map[string]any{"paths": outPaths, "components": outComps}
	for _, k := range []string{"openapi", "info", "servers", "security"} {
		if v, ok := src[k]; ok {
			out[k] = v
		}
	}
	// Deep copy so fixes never touch the source.
	out, err := clone(out)
	if err != nil {
		return nil, err
	}
	// Examples are documentation only (openapi-generator's placeholders in
	// the 24.05 document, some not even of the right type).
	dropKeys(out, "example", "examples")
	// slurmtune speaks JSON only; without the YAML media types the generated
	// client needs no YAML decoder.
	dropKeys(out, "application/x-yaml")
	for _, f := range p.Fixes {
		if err := f.Apply(out); err != nil {
			return nil, fmt.Errorf("fix (%s): %w", f.Why, err)
		}
	}
	return out, nil
}

// Marshal writes the document as indented JSON with sorted keys.
func Marshal(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func clone(m map[string]any) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// dropKeys deletes keys from every object except where the object is a
// schema's properties map or a components group (there keys are names).
func dropKeys(v any, keys ...string) {
	var walk func(v any, names bool)
	walk = func(v any, names bool) {
		switch t := v.(type) {
		case map[string]any:
			if !names {
				for _, k := range keys {
					delete(t, k)
				}
			}
			for k, e := range t {
				walk(e, !names && (k == "properties" || k == "schemas" || k == "paths" ||
					k == "parameters" && isMap(e) || k == "responses" || k == "securitySchemes"))
			}
		case []any:
			for _, e := range t {
				walk(e, false)
			}
		}
	}
	walk(v, false)
}

func isMap(v any) bool { _, ok := v.(map[string]any); return ok }

func refs(v any, acc []string) []string {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "$ref" {
				if s, ok := t[k].(string); ok {
					acc = append(acc, s)
				}
				continue
			}
			acc = refs(t[k], acc)
		}
	case []any:
		for _, e := range t {
			acc = refs(e, acc)
		}
	}
	return acc
}

func splitRef(ref string) (kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return "", "", false
	}
	kind, name, ok = strings.Cut(rest, "/")
	return kind, name, ok && name != "" && !strings.Contains(name, "/")
}

func set(doc map[string]any, path string, value any) error {
	parts := strings.Split(path, "/")
	cur := doc
	for i, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			return fmt.Errorf("no object at %s", strings.Join(parts[:i+1], "/"))
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = value
	return nil
}

// eachSchema calls fn on every schema object: the components' schemas and,
// below them and below the operations, every properties/items/
// additionalProperties/allOf/oneOf/anyOf member and every media type's and
// parameter's schema.
func eachSchema(doc map[string]any, fn func(map[string]any)) {
	var walkSchema func(s any)
	walkSchema = func(s any) {
		m, ok := s.(map[string]any)
		if !ok {
			return
		}
		if _, isRef := m["$ref"]; isRef {
			return
		}
		fn(m)
		if props, ok := m["properties"].(map[string]any); ok {
			for _, p := range props {
				walkSchema(p)
			}
		}
		walkSchema(m["items"])
		walkSchema(m["additionalProperties"])
		for _, k := range []string{"allOf", "oneOf", "anyOf"} {
			if l, ok := m[k].([]any); ok {
				for _, e := range l {
					walkSchema(e)
				}
			}
		}
	}
	comps, _ := doc["components"].(map[string]any)
	if schemas, ok := comps["schemas"].(map[string]any); ok {
		for _, s := range schemas {
			walkSchema(s)
		}
	}
	// Inline schemas in responses (request bodies and parameters are what we
	// send: left as the document says).
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		pi, _ := item.(map[string]any)
		for _, op := range pi {
			o, _ := op.(map[string]any)
			resps, _ := o["responses"].(map[string]any)
			for _, r := range resps {
				rm, _ := r.(map[string]any)
				content, _ := rm["content"].(map[string]any)
				for _, mt := range content {
					if mm, ok := mt.(map[string]any); ok {
						walkSchema(mm["schema"])
					}
				}
			}
		}
	}
}
