// Package release checks the files `make release` (build.sh here) writes to
// dist/: the C library versions the binaries need, the tarballs and their
// checksums, that the binaries run in an older Debian userland (chroot, and
// qemu-user for arm64), and that the exporter loads NVML with dlopen. The
// tests skip when dist/ has no release build, and fail instead under
// SLURMTUNE_TEST_STRICT=1 (make test builds the release first).
package release
