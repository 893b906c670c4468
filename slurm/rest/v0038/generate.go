package v0038

// openapi.json is the part of slurmrestd's OpenAPI document for API
// v0.0.38 that slurmtune uses; types.gen.go is generated from it.
//go:generate sh ../../../scripts/gen-rest.sh v0038
