#!/usr/bin/env bash
# Fails when the generated files (DeepCopy, CRDs, RBAC, the chart's CRD copies) are stale:
# it regenerates them and compares with what was there before. On failure the files are
# left regenerated, so committing them is the fix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
paths=(api config/crd/bases config/rbac/role.yaml charts/spanflow/files README.md)

snapshot() { find "${paths[@]}" -type f 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum; }

before=$(snapshot)
make --no-print-directory manifests generate >/dev/null
after=$(snapshot)
if [[ "$before" != "$after" ]]; then
  echo "verify-gen: generated files were stale; they are regenerated now, commit them:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "verify-gen: generated files are up to date"
