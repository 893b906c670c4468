package gen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCommittedDocumentsUpToDate re-prunes each source document and compares
// with the committed vNNNN/openapi.json (what the types are generated from).
// The 24.05 source lives in the shared folder beside the repository; the
// test skips that version when it is absent.
func TestCommittedDocumentsUpToDate(t *testing.T) {
	shared := os.Getenv("SLURM_OPENAPI_DIR")
	if shared == "" {
		shared = filepath.Join("..", "..", "..", "..", "..", "shared", "slurm-openapi")
	}
	for name, src := range map[string]string{
		"v0038": filepath.Join("..", "..", "v0038", "source-22.05.8-live.json"),
		"v0040": filepath.Join(shared, "slurm-24.05.2-openapi.yaml"),
		"v0041": filepath.Join(shared, "slurm-24.05.2-openapi.yaml"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(src); err != nil {
				t.Skipf("source document %s not here", src)
			}
			doc, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			pruned, err := Prune(doc, Profiles[name])
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(pruned)
			if err != nil {
				t.Fatal(err)
			}
			committed, err := os.ReadFile(filepath.Join("..", "..", name, "openapi.json"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, committed) {
				t.Errorf("slurm/rest/%s/openapi.json is stale: run scripts/gen-rest.sh %s", name, name)
			}
		})
	}
}

func TestPruneKeepsOnlyOperations(t *testing.T) {
	src := map[string]any{
		"openapi": "3.0.2",
		"paths": map[string]any{
			"/a": map[string]any{"get": map[string]any{"operationId": "keep", "responses": map[string]any{
				"200": map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/A"}},
					"application/x-yaml": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/A"}}}}}},
				"post": map[string]any{"operationId": "drop"}},
			"/b": map[string]any{"get": map[string]any{"operationId": "other"}},
		},
		"components": map[string]any{"schemas": map[string]any{
			"A": map[string]any{"type": "object", "example": map[string]any{}, "properties": map[string]any{"b": map[string]any{"$ref": "#/components/schemas/B"}, "example": map[string]any{"type": "string"}}},
			"B": map[string]any{"type": "string"},
			"C": map[string]any{"type": "string"},
		}},
	}
	out, err := Prune(src, Profile{Name: "t", Operations: []string{"keep"}})
	if err != nil {
		t.Fatal(err)
	}
	paths := out["paths"].(map[string]any)
	if len(paths) != 1 || len(paths["/a"].(map[string]any)) != 1 {
		t.Errorf("paths %v", paths)
	}
	schemas := out["components"].(map[string]any)["schemas"].(map[string]any)
	if _, ok := schemas["C"]; ok || schemas["B"] == nil {
		t.Errorf("schemas %v", schemas)
	}
	a := schemas["A"].(map[string]any)
	if _, ok := a["example"]; ok {
		t.Error("example kept")
	}
	if _, ok := a["properties"].(map[string]any)["example"]; !ok {
		t.Error("a property named example was dropped")
	}
	if _, err := Prune(src, Profile{Operations: []string{"missing"}}); err == nil {
		t.Error("missing operation accepted")
	}
}
