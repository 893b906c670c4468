package v0040

// openapi.json is the part of slurmrestd's OpenAPI document for API
// v0.0.40 that slurmtune uses; types.gen.go is generated from it.
//go:generate sh ../../../scripts/gen-rest.sh v0040
