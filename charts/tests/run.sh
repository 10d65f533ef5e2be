#!/usr/bin/env bash
# Test suite of the synckairos-operator Helm chart, run by `make test-helm`.
# Uses the real helm binary (HELM) and the tools in the chart venv (CHART_PYTHON);
# `make helm-prereqs` installs both. Every check runs even after a failure, and
# the last line is "helm chart: N passed, N failed"; the exit code is 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."

HELM=${HELM:-charts/tests/.tools/helm}
CHART_PYTHON=${CHART_PYTHON:-charts/tests/.venv/bin/python}
KV=$(dirname "$CHART_PYTHON")/kubernetes-validate
CHART=charts/synckairos-operator
TESTS=charts/tests
NS=sk-test # chartcheck.py assert-render expects this release namespace
# Validate against the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS=(1.27 1.37)
# Kinds kubernetes-validate has no schema for; chartcheck.py validate-custom checks them instead.
CUSTOM_KINDS='SyncKairosCluster|ServiceMonitor'

passed=0
failed=0
failures=()
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# check NAME CMD...: runs CMD, shows its output indented on failure.
check() {
  local name=$1
  shift
  if "$@" >"$WORK/out" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL $name"
    sed 's/^/     | /' "$WORK/out" | head -40
  fi
}

for tool in "$HELM" "$CHART_PYTHON" "$KV"; do
  if [ ! -x "$tool" ]; then
    echo "missing $tool: run 'make helm-prereqs'"
    echo "helm chart: 0 passed, 1 failed"
    exit 1
  fi
done
echo "helm: $("$HELM" version --short)"

# --- drift: the chart ships exactly the generated CRDs, and its values schema follows them
crds_identical() {
  local top chart
  top=$(cd crds && ls -1 ./*.yaml 2>/dev/null)
  chart=$(cd "$CHART/crds" && ls -1 ./*.yaml 2>/dev/null)
  if [ -z "$top" ]; then
    echo "crds/ holds no CRD"
    return 1
  fi
  if [ "$top" != "$chart" ]; then
    printf 'file lists differ:\ncrds/:\n%s\nchart crds/:\n%s\n' "$top" "$chart"
    echo "fix: make chart-crds"
    return 1
  fi
  local f rc=0
  for f in crds/*.yaml; do
    diff -u "$f" "$CHART/crds/$(basename "$f")" || rc=1
  done
  [ $rc -eq 0 ] || echo "fix: make chart-crds"
  return $rc
}
check "chart crds/ identical to crds/" crds_identical
check "values.schema.json cluster.spec matches the CRD" "$CHART_PYTHON" $TESTS/chartcheck.py schema-sync --check

app_version_matches_cargo() {
  local app cargo
  app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' $CHART/Chart.yaml)
  cargo=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
  echo "Chart appVersion=$app, Cargo workspace version=$cargo"
  [ -n "$app" ] && [ "$app" = "$cargo" ]
}
check "Chart.yaml appVersion equals the images' Cargo version" app_version_matches_cargo
check "every value commented; values table in docs/helm.md and README.md" "$CHART_PYTHON" $TESTS/chartcheck.py values-doc

# --- lint and render each values scenario
render_and_validate() {
  local name=$1 out="$WORK/$1.yaml" v rc=0
  shift
  "$HELM" template sk "$CHART" -n "$NS" --include-crds "$@" >"$out" || return 1
  for v in "${KUBE_VERSIONS[@]}"; do
    "$KV" --strict -k "$v.0" "$out" >"$WORK/kv.out" 2>&1 || rc=1
    # A kind without a schema is only a warning to kubernetes-validate: allow just the custom ones.
    if grep -E "Couldn't find schema" "$WORK/kv.out" | grep -vE "kind ($CUSTOM_KINDS) " >&2; then rc=1; fi
    grep -vE '^INFO|Couldn.t find schema' "$WORK/kv.out"
  done
  "$CHART_PYTHON" $TESTS/chartcheck.py validate-custom "$out" || rc=1
  return $rc
}

scenario() {
  local name=$1
  shift
  check "lint --strict [$name]" "$HELM" lint --strict "$CHART" -n "$NS" "$@"
  check "template + kubernetes-validate --strict [$name]" render_and_validate "$name" "$@"
  local files=()
  local a
  for a in "$@"; do [ "$a" != -f ] && files+=("$a"); done
  check "rendered objects follow the values [$name]" "$CHART_PYTHON" $TESTS/chartcheck.py assert-render "$WORK/$name.yaml" "${files[@]}"
}

scenario defaults
for f in $TESTS/values/*.yaml; do
  scenario "$(basename "$f" .yaml)" -f "$f"
done

# --- bad values: helm must refuse them, naming the offending value.
# Each file starts with "# expect: TEXT"; TEXT must appear in helm's error.
refused() {
  local f=$1 expect
  expect=$(sed -n 's/^# expect: //p' "$f" | head -1)
  if [ -z "$expect" ]; then
    echo "$f has no '# expect:' line"
    return 1
  fi
  if "$HELM" template sk "$CHART" -n "$NS" -f "$f" >/dev/null 2>"$WORK/err"; then
    echo "helm accepted $f"
    return 1
  fi
  if ! grep -qF -- "$expect" "$WORK/err"; then
    echo "helm refused $f, but its error does not name: $expect"
    cat "$WORK/err"
    return 1
  fi
  head -3 "$WORK/err"
}
for f in $TESTS/bad-values/*.yaml; do
  check "refuses bad values [$(basename "$f" .yaml)]" refused "$f"
done

check "helm package" "$HELM" package "$CHART" -d "$WORK/pkg"

echo
if [ $failed -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "helm chart: $passed passed, $failed failed"
[ $failed -eq 0 ]
