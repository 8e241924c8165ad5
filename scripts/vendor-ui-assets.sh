#!/usr/bin/env bash
# Vendor the explorer's graph library into the package: cytoscape.js from the npm
# registry (`npm pack`, which checks the tarball against the registry's integrity
# hash), its ES module build and its licence, plus a record of the version and the
# file's sha256 that tests/ui/test_ui_api.py checks. Run it to upgrade:
#   scripts/vendor-ui-assets.sh [VERSION]
set -euo pipefail
VERSION="${1:-3.35.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/src/engramdb/adapters/ui/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "cytoscape@$VERSION" >/dev/null)
tar -xzf "$WORK/cytoscape-$VERSION.tgz" -C "$WORK"
mkdir -p "$DEST"
cp "$WORK/package/dist/cytoscape.esm.min.mjs" "$DEST/cytoscape.esm.min.mjs"
cp "$WORK/package/LICENSE" "$DEST/cytoscape.LICENSE.txt"
INTEGRITY="$(cd "$WORK" && npm view "cytoscape@$VERSION" dist.integrity)"
SHA256="$(sha256sum "$DEST/cytoscape.esm.min.mjs" | cut -d' ' -f1)"
cat >"$DEST/VENDORED.json" <<EOF
{
  "cytoscape": {
    "version": "$VERSION",
    "file": "cytoscape.esm.min.mjs",
    "from": "npm package cytoscape@$VERSION, dist/cytoscape.esm.min.mjs",
    "npm_integrity": "$INTEGRITY",
    "sha256": "$SHA256",
    "license": "MIT",
    "license_file": "cytoscape.LICENSE.txt"
  }
}
EOF
echo "vendored cytoscape $VERSION (sha256 $SHA256) into $DEST"
