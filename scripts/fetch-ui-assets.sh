#!/bin/bash
# Re-fetch the dashboard's charting library (uPlot) from the npm registry at
# its pinned version, verify the package against its pinned integrity, and
# write (or with --check, compare) the files committed under ui/assets/vendor.
# The binary embeds those files (go:embed): nothing is fetched at run time and
# neither the build nor CI needs npm.
set -euo pipefail

VERSION=1.6.32
# dist.integrity of uplot@1.6.32 on registry.npmjs.org.
INTEGRITY='sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=='

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/ui/assets/vendor
check=false
[[ ${1:-} == --check ]] && check=true

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$VERSION" >/dev/null)
tgz=$tmp/uplot-$VERSION.tgz
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [[ $got != "$INTEGRITY" ]]; then
  echo "fetch-ui-assets: uplot@$VERSION integrity $got, want $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
declare -A files=([dist/uPlot.iife.min.js]=uPlot.iife.min.js [dist/uPlot.min.css]=uPlot.min.css [LICENSE]=uPlot.LICENSE)
status=0
for src in "${!files[@]}"; do
  if $check; then
    if ! cmp -s "$tmp/package/$src" "$dest/${files[$src]}"; then
      echo "fetch-ui-assets: ui/assets/vendor/${files[$src]} differs from uplot@$VERSION $src" >&2
      status=1
    fi
  else
    install -m 0644 "$tmp/package/$src" "$dest/${files[$src]}"
  fi
done
$check && [[ $status == 0 ]] && echo "ui/assets/vendor matches uplot@$VERSION"
exit $status
