#!/usr/bin/env python3
"""Checks of the synckairos-operator chart that helm and kubernetes-validate cannot do alone.

Subcommands (each exits non-zero with one line per problem on failure):
  schema-sync --check|--write   values.schema.json's cluster.spec equals the CRD's spec schema
  validate-custom RENDERED      SyncKairosCluster objects against the CRD's openAPIV3Schema,
                                ServiceMonitor objects against the subset of its schema we use
  assert-render RENDERED VALUES... the rendered objects say what the merged values ask for
  values-doc                    every value in values.yaml is commented, and the values table of
                                docs/helm.md and README.md is the one values.yaml gives
  values-table [--write]        prints (or writes into docs/helm.md and README.md) the values table

Why a script: the custom resource is not a built-in kind, so kubernetes-validate
skips it; and "the chart does what its values say" needs the values to compute
what to expect.
"""
import base64
import copy
import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART = REPO / "charts" / "synckairos-operator"
CRD_FILE = CHART / "crds" / "synckairos.io_synckairosclusters.yaml"
VALUES_SCHEMA = CHART / "values.schema.json"
# Files that carry the generated values table (between TABLE_START and TABLE_END).
DOCS = [REPO / "docs" / "helm.md", REPO / "README.md"]
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Problems:
    """Collects failures so one run reports all of them, not just the first."""

    def __init__(self):
        self.items = []

    def add(self, msg):
        self.items.append(msg)

    def check(self, cond, msg):
        if not cond:
            self.add(msg)
        return cond

    def exit(self, ok_msg):
        for p in self.items:
            print(f"  FAIL: {p}")
        if self.items:
            sys.exit(1)
        print(f"  {ok_msg}")


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def load_crd():
    docs = load_docs(CRD_FILE)
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise SystemExit(f"expected one CRD in {CRD_FILE}, found {len(crds)}")
    return crds[0]


def crd_version(crd, name="v1alpha1"):
    for v in crd["spec"]["versions"]:
        if v["name"] == name:
            return v
    raise SystemExit(f"CRD has no version {name}")


# CEL rules (x-kubernetes-validations) of the CRD that this script understands. JSON Schema
# can say the first shape (if/then), so values.schema.json refuses it at install time; the
# second compares two fields, which only validate-custom checks. An unknown rule fails
# validate-custom, so a new rule in operator/src/crd.rs cannot slip past these tests.
CEL_NEEDS_WHEN = re.compile(r"^self\.(\w+) != '([^']*)' \|\| has\(self\.(\w+)\)$")
CEL_LESS_EQUAL = re.compile(r"^self\.(\w+) <= self\.(\w+)$")


def cel_as_jsonschema(rule):
    """JSON Schema for a CEL rule, or None when JSON Schema cannot say it."""
    m = CEL_NEEDS_WHEN.match(rule)
    if m:
        field, value, needed = m.groups()
        return {
            "if": {"properties": {field: {"const": value}}, "required": [field]},
            "then": {"required": [needed], "properties": {needed: {"type": "string"}}},
        }
    return None


def cel_holds(rule, obj):
    """Evaluates one supported CEL rule on an object (defaults already applied)."""
    m = CEL_NEEDS_WHEN.match(rule)
    if m:
        field, value, needed = m.groups()
        return obj.get(field) != value or obj.get(needed) is not None
    m = CEL_LESS_EQUAL.match(rule)
    if m:
        a, b = m.groups()
        return obj.get(a) is None or obj.get(b) is None or obj[a] <= obj[b]
    raise ValueError(f"chartcheck.py cannot evaluate the CEL rule {rule!r}: teach cel_holds() about it")


def cel_errors(schema, value, path=""):
    """Every x-kubernetes-validations rule of a structural schema that `value` breaks."""
    errs = []
    if value is None:
        return errs
    for v in schema.get("x-kubernetes-validations", []):
        try:
            if not cel_holds(v["rule"], value):
                errs.append(f"{path or '<root>'}: {v.get('message', v['rule'])}")
        except ValueError as e:
            errs.append(f"{path or '<root>'}: {e}")
    if isinstance(value, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k in value:
                errs += cel_errors(sub, value[k], f"{path}/{k}")
        if isinstance(schema.get("additionalProperties"), dict):
            for k, v in value.items():
                errs += cel_errors(schema["additionalProperties"], v, f"{path}/{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            errs += cel_errors(schema["items"], v, f"{path}/{i}")
    return errs


def openapi_to_jsonschema(node, strict=True):
    """Turns a CRD's structural OpenAPI v3 schema into JSON Schema.

    - `nullable: true` becomes a "null" member of `type`;
    - `x-kubernetes-int-or-string` becomes integer-or-string;
    - strict: an object with `properties` and no `additionalProperties` /
      `x-kubernetes-preserve-unknown-fields` refuses unknown keys. The API
      server would silently prune them; in values a typo should fail instead.
    - CEL rules JSON Schema can express (cel_as_jsonschema) become `allOf` if/then;
      other `x-kubernetes-*` extensions are dropped (validate-custom evaluates the CEL rules).
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, val in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties", "definitions", "$defs"):
            out[key] = {k: openapi_to_jsonschema(v, strict) for k, v in val.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = openapi_to_jsonschema(val, strict)
        else:
            out[key] = copy.deepcopy(val)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        if "anyOf" not in out:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
    if "required" in out and "properties" in node:
        # The API server fills defaults before it validates: a defaulted field is never missing.
        out["required"] = [r for r in out["required"] if "default" not in node["properties"].get(r, {})]
        if not out["required"]:
            del out["required"]
    cel = [c for c in (cel_as_jsonschema(v["rule"]) for v in node.get("x-kubernetes-validations", [])) if c]
    if cel:
        out["allOf"] = out.get("allOf", []) + cel
    if (
        strict
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def apply_defaults(schema, value):
    """Fills in `default`s the way the API server does for a structural schema, before validation."""
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(sub, value[key])
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for v in value.values():
            apply_defaults(schema["additionalProperties"], v)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(schema["items"], v)
    return value


def custom_resource_schema(version):
    """JSON Schema of a whole custom resource: the CRD's schema, plus the fields every object has."""
    schema = openapi_to_jsonschema(version["schema"]["openAPIV3Schema"])
    schema.setdefault("properties", {})
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    schema["properties"]["metadata"] = {"type": "object"}  # checked separately (name, namespace)
    return schema


def spec_values_schema():
    """The JSON Schema that values.schema.json must hold for cluster.spec."""
    version = crd_version(load_crd())
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    schema = openapi_to_jsonschema(spec)
    schema["description"] = (
        "SyncKairosCluster spec, passed through unchanged. Generated from "
        "crds/synckairos.io_synckairosclusters.yaml by `make chart-crds`; do not edit by hand."
    )
    # Defaults apply on the API server; nothing in values is mandatory.
    schema.pop("required", None)
    return schema


def cmd_schema_sync(args):
    mode = args[0] if args else "--check"
    values_schema = json.loads(VALUES_SCHEMA.read_text())
    want = spec_values_schema()
    have = values_schema["properties"]["cluster"]["properties"].get("spec")
    if mode == "--write":
        values_schema["properties"]["cluster"]["properties"]["spec"] = want
        VALUES_SCHEMA.write_text(json.dumps(values_schema, indent=2) + "\n")
        print(f"  wrote cluster.spec schema into {VALUES_SCHEMA.relative_to(REPO)}")
        return
    p = Problems()
    p.check(
        have == want,
        "values.schema.json cluster.spec differs from the CRD's spec schema: run `make chart-crds`",
    )
    p.exit("values.schema.json cluster.spec matches the CRD")


# Fields of a ServiceMonitor this chart can emit (monitoring.coreos.com/v1); enough to catch typos.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}


def schema_errors(schema, doc):
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(str(x) for x in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def cmd_validate_custom(args):
    docs = load_docs(args[0])
    p = Problems()
    seen = 0
    for d in docs:
        kind = d.get("kind")
        if kind == "SyncKairosCluster":
            crd = load_crd()
            version = crd_version(crd)
            group = crd["spec"]["group"]
            cr_schema = custom_resource_schema(version)
            d = apply_defaults(version["schema"]["openAPIV3Schema"], copy.deepcopy(d))
            p.check(kind == crd["spec"]["names"]["kind"], f"CRD kind is {crd['spec']['names']['kind']}")
            seen += 1
            name = d.get("metadata", {}).get("name", "")
            p.check(d.get("apiVersion") == f"{group}/{version['name']}", f"{kind}/{name}: apiVersion {d.get('apiVersion')!r}")
            p.check(version.get("served") is True, f"CRD version {version['name']} is not served")
            p.check(bool(DNS_SUBDOMAIN.match(name)) and len(name) <= 253, f"{kind}: bad name {name!r}")
            if crd["spec"]["scope"] == "Namespaced":
                p.check(bool(d["metadata"].get("namespace")), f"{kind}/{name}: no namespace")
            for err in schema_errors(cr_schema, d):
                p.add(f"{kind}/{name}: {err}")
            for err in cel_errors(version["schema"]["openAPIV3Schema"], d):
                p.add(f"{kind}/{name}: {err}")
        elif kind == "ServiceMonitor":
            seen += 1
            for err in schema_errors(SERVICE_MONITOR_SCHEMA, d):
                p.add(f"ServiceMonitor: {err}")
    p.exit(f"{seen} custom resource(s) valid against their schemas")


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def granted(rules):
    """{(group, resource, resourceName or None): verbs} of a list of PolicyRules."""
    out = {}
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for name in r.get("resourceNames") or [None]:
                    out.setdefault((g, res, name), set()).update(r.get("verbs", []))
    return out


def compare_grants(p, what, rules, needs):
    """Least privilege both ways: every call the operator makes is allowed, nothing else is."""
    have = granted(rules)
    want = {(g, res, name): set(verbs) for g, res, name, verbs in needs}
    for key in sorted(set(have) | set(want), key=str):
        g, res, name = key
        label = f"{g or 'core'}/{res}" + (f" {name!r}" if name else "")
        missing = sorted(want.get(key, set()) - have.get(key, set()))
        extra = sorted(have.get(key, set()) - want.get(key, set()))
        p.check(not missing, f"{what} misses {missing} on {label}")
        p.check(not extra, f"{what} grants {extra} on {label}, which the operator never uses")


# Every Kubernetes API call in operator/src, as (group, resource, resourceName, verbs).
# Keep in step with the operator: main.rs (Controller::new/.owns: list+watch),
# reconcile.rs (apply = server-side apply patch, which creates through `create`;
# get_opt; Secret create; Pod list; patch_status; kube-runtime's Recorder;
# prune_undesired: list_metadata by label + delete of every prune::Kind).
OPERATOR_NEEDS = [
    ("synckairos.io", "synckairosclusters", None, ["list", "watch"]),
    ("synckairos.io", "synckairosclusters/status", None, ["patch"]),
    ("apps", "statefulsets", None, ["list", "watch", "create", "patch", "delete"]),
    ("apps", "deployments", None, ["get", "list", "watch", "create", "patch"]),
    ("batch", "jobs", None, ["get", "list", "watch", "create", "patch", "delete"]),
    ("", "services", None, ["list", "watch", "create", "patch", "delete"]),
    ("", "configmaps", None, ["list", "create", "patch", "delete"]),
    ("policy", "poddisruptionbudgets", None, ["list", "create", "patch", "delete"]),
    ("autoscaling", "horizontalpodautoscalers", None, ["list", "create", "patch", "delete"]),
    ("networking.k8s.io", "ingresses", None, ["list", "create", "patch", "delete"]),
    ("", "secrets", None, ["get", "create"]),
    ("", "pods", None, ["list"]),
    ("events.k8s.io", "events", None, ["create", "patch"]),
]


def lease_needs(lease_name):
    """leader.rs: get_opt, create when absent, replace (PUT) to renew, take over or release."""
    return [
        ("coordination.k8s.io", "leases", None, ["create"]),
        ("coordination.k8s.io", "leases", lease_name, ["get", "update"]),
    ]


OPERATOR_SRC = REPO / "operator" / "src"


def operator_facts(p):
    """What the chart must agree with, read from the operator's source (read-only):
    the environment it reads, its HTTP paths, the server port and pod labels."""
    def grab(rel, pattern, what, many=False):
        text = (OPERATOR_SRC / rel).read_text()
        found = re.findall(pattern, text, re.S)
        if not found:
            p.add(f"cannot find {what} in operator/src/{rel}: update chartcheck.py")
            return set() if many else None
        return set(found) if many else found[0]

    return {
        "env": grab("main.rs", r'env = "([A-Z_]+)"', "the clap env names", many=True) | {"RUST_LOG"},
        "paths": grab("http.rs", r'\.route\("(/[a-z]+)"', "the HTTP routes", many=True),
        "server_port": int(grab("build/mod.rs", r"pub const SERVER_PORT: i32 = (\d+);", "SERVER_PORT") or 0),
        "admin_port": int(grab("build/mod.rs", r"pub const ADMIN_PORT: i32 = (\d+);", "ADMIN_PORT") or 0),
        "admin_port_name": grab("build/server.rs", r'pub const ADMIN: &str = "([a-z-]+)";', "server::ADMIN"),
        "min_kubernetes": tuple(int(x) for x in (grab("apiserver.rs", r"pub const MIN_KUBERNETES: \(u32, u32\) = \((\d+), (\d+)\);", "MIN_KUBERNETES") or (0, 0))),
        # labels.rs names the key and its value; both must be what the chart selects on.
        "app_name": grab("labels.rs", r'pub const NAME: &str = "app\.kubernetes\.io/name";.*?pub const APP: &str = "([a-z0-9-]+)";', "the app.kubernetes.io/name label (labels::NAME and labels::APP)"),
        "components": {
            c: grab(f"build/{c}.rs", r'pub const COMPONENT: &str = "([a-z-]+)";', f"{c}::COMPONENT")
            for c in ("server", "redis", "postgres")
        },
    }


def cmd_assert_render(args):
    """Checks the rendered chart against the merged values (defaults + the given files)."""
    rendered, value_files = args[0], args[1:]
    release_ns = "sk-test"  # run.sh renders with -n sk-test
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for f in value_files:
        values = deep_merge(values, yaml.safe_load(Path(f).read_text()))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    docs = load_docs(rendered)
    p = Problems()
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    # Every namespaced object says where it goes; every name is a DNS subdomain.
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    for d in docs:
        md = d.get("metadata", {})
        p.check(bool(DNS_SUBDOMAIN.match(md.get("name", ""))), f"{d['kind']}: bad name {md.get('name')!r}")
        if d["kind"] == "Service":
            p.check(bool(DNS_LABEL.match(md.get("name", ""))), f"Service name {md.get('name')!r} is not a DNS-1035 label")
        if d["kind"] not in cluster_scoped:
            p.check(bool(md.get("namespace")), f"{d['kind']}/{md.get('name')}: no metadata.namespace")
        if d["kind"] != "CustomResourceDefinition":
            labels = md.get("labels", {})
            for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"):
                p.check(k in labels, f"{d['kind']}/{md.get('name')}: missing label {k}")

    facts = operator_facts(p)
    op = values["operator"]
    deps = by_kind.get("Deployment", [])
    if p.check(len(deps) == 1, f"expected one Deployment, got {len(deps)}"):
        dep = deps[0]
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        p.check(spec["replicas"] == op["replicas"], f"replicas {spec['replicas']} != operator.replicas {op['replicas']}")
        p.check(labels_match(spec["selector"]["matchLabels"], pod_labels), "Deployment selector does not match its pod labels")
        c = pod["containers"][0]
        img = op["image"]
        repo = f"{img['registry'].rstrip('/')}/{img['repository']}" if img["registry"] else img["repository"]
        want_image = f"{repo}@{img['digest']}" if img["digest"] else f"{repo}:{img['tag'] or chart['appVersion']}"
        p.check(c["image"] == want_image, f"image {c['image']!r} != {want_image!r}")
        p.check(c["imagePullPolicy"] == img["pullPolicy"], "imagePullPolicy not from values")
        p.check(c.get("resources") == op["resources"], "container resources differ from operator.resources")
        sc = c.get("securityContext", {})
        p.check(sc.get("readOnlyRootFilesystem") is True, "root filesystem is not read-only")
        p.check(sc.get("allowPrivilegeEscalation") is False, "privilege escalation not disabled")
        p.check(sc.get("runAsNonRoot") is True or pod.get("securityContext", {}).get("runAsNonRoot") is True, "not forced non-root")
        p.check("ALL" in sc.get("capabilities", {}).get("drop", []), "capabilities not dropped")
        ports = {pt["name"]: pt["containerPort"] for pt in c.get("ports", [])}
        p.check(ports.get("http-metrics") == values["metrics"]["port"], f"metrics port {ports} != {values['metrics']['port']}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = c.get(probe, {}).get("httpGet", {})
            p.check(got.get("path") == path and got.get("port") in ("http-metrics", values["metrics"]["port"]), f"{probe} is not GET {path} on the metrics port: {got}")
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
        chart_env = set(env) - {e["name"] for e in op["extraEnv"]}
        p.check(chart_env == facts["env"], f"the chart sets env {sorted(chart_env)}, the operator reads {sorted(facts['env'])}")
        for probe in ("livenessProbe", "readinessProbe"):
            path = c.get(probe, {}).get("httpGet", {}).get("path")
            p.check(path in facts["paths"], f"{probe} path {path!r} is not an operator route {sorted(facts['paths'])}")
        p.check(env.get("WATCH_NAMESPACE") == values["watchNamespace"], f"WATCH_NAMESPACE {env.get('WATCH_NAMESPACE')!r} != watchNamespace {values['watchNamespace']!r}")
        for e in op["extraEnv"]:
            p.check(e["name"] in env, f"extraEnv {e['name']} missing")
        for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
            want = op[key]
            p.check(pod.get(key, type(want)()) == want, f"pod {key} differs from operator.{key}")
        sa_names = {s["metadata"]["name"] for s in by_kind.get("ServiceAccount", [])}
        if values["serviceAccount"]["create"]:
            p.check(pod["serviceAccountName"] in sa_names, f"pod runs as {pod['serviceAccountName']!r}, not a rendered ServiceAccount")

        # Services select the operator pods on a port the container exposes.
        for svc in by_kind.get("Service", []):
            p.check(labels_match(svc["spec"]["selector"], pod_labels), f"Service {svc['metadata']['name']} selects no operator pod")
            for sp in svc["spec"]["ports"]:
                p.check(sp["targetPort"] in ports or sp["targetPort"] in ports.values(), f"Service port {sp} targets no container port")
        p.check(len(by_kind.get("Service", [])) == (1 if values["metrics"]["service"]["enabled"] else 0), "metrics Service presence differs from metrics.service.enabled")

        # Leader election: several replicas only with a Lease, and the Lease is allowed.
        if op["replicas"] > 1:
            p.check(env.get("LEADER_ELECTION") == "true", "replicas > 1 without leader election")

    # RBAC: the kind follows watchNamespace, and it grants what the operator needs.
    if values["rbac"]["create"]:
        wn = values["watchNamespace"]
        if wn:
            p.check(not by_kind.get("ClusterRole") and not by_kind.get("ClusterRoleBinding"), "namespaced install renders cluster-wide RBAC")
            main_roles = [r for r in by_kind.get("Role", []) if r["metadata"]["namespace"] == wn and not r["metadata"]["name"].endswith("-leader-election")]
        else:
            main_roles = by_kind.get("ClusterRole", [])
        if p.check(len(main_roles) == 1, f"expected one main (Cluster)Role, got {len(main_roles)}"):
            rules = main_roles[0]["rules"]
            compare_grants(p, "operator RBAC", rules, OPERATOR_NEEDS)
            p.check(not any("*" in r.get("verbs", []) or "*" in r.get("resources", []) for r in rules), "RBAC uses wildcards")
        if op["leaderElection"]["enabled"]:
            lease_roles = [r for r in by_kind.get("Role", []) if r["metadata"]["namespace"] == release_ns and r["metadata"]["name"].endswith("-leader-election")]
            if p.check(len(lease_roles) == 1, "no leader-election Role in the release namespace"):
                compare_grants(p, "leader-election RBAC", lease_roles[0]["rules"], lease_needs(op["leaderElection"]["leaseName"]))
        else:
            p.check(not any(r["metadata"]["name"].endswith("-leader-election") for r in by_kind.get("Role", [])), "leader-election Role rendered while leader election is off")
        roles = {(r["kind"], r["metadata"]["name"]) for r in by_kind.get("Role", []) + by_kind.get("ClusterRole", [])}
        for b in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
            p.check((b["roleRef"]["kind"], b["roleRef"]["name"]) in roles, f"{b['kind']} {b['metadata']['name']} refers to a role not rendered")
            for s in b["subjects"]:
                p.check(s["namespace"] == release_ns, f"{b['kind']} subject in namespace {s['namespace']!r}")
    else:
        p.check(not any(by_kind.get(k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")), "rbac.create=false still renders RBAC")

    # The SyncKairosCluster carries cluster.spec unchanged, in a watched namespace.
    crs = by_kind.get("SyncKairosCluster", [])
    cl = values["cluster"]
    if cl["enabled"]:
        if p.check(len(crs) == 1, f"cluster.enabled but {len(crs)} SyncKairosCluster rendered"):
            cr = crs[0]
            p.check((cr.get("spec") or {}) == cl["spec"], "SyncKairosCluster spec differs from cluster.spec")
            want_ns = cl["namespace"] or values["watchNamespace"] or release_ns
            p.check(cr["metadata"]["namespace"] == want_ns, f"SyncKairosCluster in {cr['metadata']['namespace']!r}, want {want_ns!r}")
            if cl["name"]:
                p.check(cr["metadata"]["name"] == cl["name"], "SyncKairosCluster name is not cluster.name")
    else:
        p.check(not crs, "cluster.enabled=false still renders a SyncKairosCluster")

    sms = by_kind.get("ServiceMonitor", [])
    cluster_ns = cl["namespace"] or values["watchNamespace"] or release_ns
    cluster_name = cl["name"] or "sk"  # run.sh: release "sk"
    server_labels = {"app.kubernetes.io/name": facts["app_name"], "app.kubernetes.io/instance": cluster_name, "app.kubernetes.io/component": facts["components"]["server"]}
    if values["metrics"]["serviceMonitor"]["enabled"]:
        op_sms = [m for m in sms if m["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"]
        if p.check(len(op_sms) == 1, "serviceMonitor.enabled but no ServiceMonitor of the operator"):
            sm = op_sms[0]
            svcs = [s for s in by_kind.get("Service", []) if labels_match(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
            p.check(len(svcs) == 1, f"ServiceMonitor selects {len(svcs)} Services, want the metrics Service")
            if svcs:
                names = {pt["name"] for pt in svcs[0]["spec"]["ports"]}
                p.check(all(e["port"] in names for e in sm["spec"]["endpoints"]), "ServiceMonitor endpoint port not on the Service")
        # the server pods' metrics: the operator's server Service, on its admin port only
        srv_sms = [m for m in sms if m not in op_sms]
        if cl["enabled"]:
            if p.check(len(srv_sms) == 1, f"cluster.enabled with serviceMonitor.enabled: want one ServiceMonitor of the server, got {len(srv_sms)}"):
                sm = srv_sms[0]
                p.check(sm["spec"]["selector"]["matchLabels"] == server_labels, f"server ServiceMonitor selects {sm['spec']['selector']['matchLabels']}, the operator labels the server Service {server_labels}")
                p.check(sm["spec"]["namespaceSelector"]["matchNames"] == [cluster_ns], "server ServiceMonitor looks outside the cluster's namespace")
                p.check([e["port"] for e in sm["spec"]["endpoints"]] == [facts["admin_port_name"]], f"server ServiceMonitor scrapes {[e['port'] for e in sm['spec']['endpoints']]}, want the admin port {facts['admin_port_name']!r}")
        else:
            p.check(not srv_sms, "a server ServiceMonitor without a SyncKairosCluster")
    else:
        p.check(not sms, "ServiceMonitor rendered while disabled")

    # The server's credentials: generated by the chart (kept across upgrades by lookup)
    # exactly when the cluster wants auth and names no Secret of its own.
    auth = ((cl["spec"] or {}).get("server") or {}).get("auth") or {}
    want_secret = cl["enabled"] and auth.get("enabled", True) and not auth.get("existingSecret")
    # the only Secret the chart renders: never one named by existingSecret (the user's own)
    auth_secrets = by_kind.get("Secret", [])
    p.check(all(s["metadata"]["name"] == f"{cluster_name}-auth" for s in auth_secrets), f"Secrets rendered: {[s['metadata']['name'] for s in auth_secrets]}, only {cluster_name}-auth may be")
    if want_secret:
        if p.check(len(auth_secrets) == 1, f"auth on without existingSecret: want Secret {cluster_name}-auth, got {len(auth_secrets)}"):
            sec = auth_secrets[0]
            p.check(sec["metadata"]["namespace"] == cluster_ns, f"auth Secret in {sec['metadata']['namespace']!r}, the cluster is in {cluster_ns!r}")
            keys_key, token_key = auth.get("apiKeysKey", "api-keys"), auth.get("tokenSecretKey", "token-secret")
            data = sec.get("data") or {}
            p.check(sorted(data) == sorted([keys_key, token_key]), f"auth Secret keys {sorted(data)}, want {sorted([keys_key, token_key])}")
            token = r"[A-Za-z0-9_-]{43}"
            keys = base64.b64decode(data.get(keys_key, "")).decode()
            p.check(re.fullmatch(f"admin={token}\n", keys) is not None, f"api keys {keys!r} are not one line admin=<32 random bytes, base64url>")
            secret = base64.b64decode(data.get(token_key, "")).decode()
            p.check(re.fullmatch(token, secret) is not None, "token secret is not 32 random bytes in base64url")
            p.check(secret != keys[len("admin="):-1], "API key and token secret are the same value")
    else:
        p.check(not auth_secrets, f"Secret {cluster_name}-auth rendered although auth is off or existingSecret is set")

    # The oldest Kubernetes: Chart.yaml, the schemas run.sh validates against and the
    # operator's startup check (operator/src/apiserver.rs MIN_KUBERNETES) agree.
    major, minor = facts["min_kubernetes"]
    p.check(chart.get("kubeVersion") == f">={major}.{minor}.0-0", f"Chart.yaml kubeVersion {chart.get('kubeVersion')!r}, the operator checks for {major}.{minor}")
    run_sh = (HERE / "run.sh").read_text()
    oldest = re.search(r"^KUBE_VERSIONS=\(([0-9.]+)", run_sh, re.M)
    p.check(oldest is not None and oldest.group(1) == f"{major}.{minor}", f"run.sh validates against {oldest and oldest.group(1)}, the oldest supported Kubernetes is {major}.{minor}")

    nps = by_kind.get("NetworkPolicy", [])
    if values["networkPolicy"]["enabled"]:
        if p.check(len(nps) == 1, "networkPolicy.enabled but no NetworkPolicy"):
            np_ = nps[0]
            sel = np_["spec"]["podSelector"]["matchLabels"]
            cname = cl["name"] or (crs[0]["metadata"]["name"] if crs else "sk")  # run.sh: release "sk"
            if cname:
                p.check(sel.get("app.kubernetes.io/instance") == cname, "NetworkPolicy does not select this cluster's pods")
            want_sel = {"app.kubernetes.io/name": facts["app_name"], "app.kubernetes.io/component": facts["components"]["server"]}
            p.check(all(sel.get(k) == v for k, v in want_sel.items()), f"NetworkPolicy selects {sel}, the operator labels server pods {want_sel}")
            ports = {pt["port"] for rule in np_["spec"]["ingress"] for pt in rule.get("ports", [])}
            want_ports = {facts["server_port"], facts["admin_port"]}
            p.check(ports == want_ports, f"NetworkPolicy opens {sorted(ports)}, the server listens on {sorted(want_ports)}")
            p.check(all(pt.get("protocol") == "TCP" for rule in np_["spec"]["ingress"] for pt in rule.get("ports", [])), "NetworkPolicy port without protocol TCP")
            op_sel = deps[0]["spec"]["selector"]["matchLabels"] if deps else {}
            admin_rules = [r for r in np_["spec"]["ingress"] if {pt["port"] for pt in r.get("ports", [])} == {facts["admin_port"]}]
            p.check(len(admin_rules) == 1 and bool(admin_rules[0].get("from")), "the admin port (/metrics, /ready) must be open to listed peers only")
            admin_from = [f for r in admin_rules for f in r.get("from", [])]
            p.check(
                any(
                    f.get("podSelector", {}).get("matchLabels") == op_sel
                    and f.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": release_ns}
                    for f in admin_from
                ),
                "NetworkPolicy shuts the operator's /ready probe out of the admin port",
            )
            for peer in values["networkPolicy"]["adminFrom"]:
                p.check(peer in admin_from, f"adminFrom peer {peer} not allowed on the admin port")
            if values["networkPolicy"]["egress"]["restrict"]:
                peers = [f.get("podSelector", {}).get("matchLabels", {}) for rule in np_["spec"].get("egress", []) for f in rule.get("to", [])]
                for comp in ("redis", "postgres"):
                    want_peer = {"app.kubernetes.io/name": facts["app_name"], "app.kubernetes.io/instance": cname, "app.kubernetes.io/component": facts["components"][comp]}
                    p.check(want_peer in peers, f"restricted egress does not reach the {comp} pods {want_peer}")
            p.check(("Egress" in np_["spec"]["policyTypes"]) == values["networkPolicy"]["egress"]["restrict"], "Egress policy type differs from egress.restrict")
    else:
        p.check(not nps, "NetworkPolicy rendered while disabled")

    pdbs = by_kind.get("PodDisruptionBudget", [])
    p.check(len(pdbs) == (1 if op["podDisruptionBudget"]["enabled"] else 0), "PodDisruptionBudget presence differs from values")
    p.exit(f"{len(docs)} objects agree with the values")


def values_keys():
    """(path, comment) for each key of values.yaml, from its indentation; comment is the
    text of the `# --` comment block right above the key, or None."""
    stack = []  # (indent, key)
    out = []
    comment = None
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = stripped[4:].strip()
            continue
        if stripped.startswith("#"):
            if comment is not None:
                comment += " " + stripped[1:].strip()
            continue
        m = re.match(r"^( *)([A-Za-z0-9_.-]+):(.*)$", line)
        if not m:
            if stripped:
                comment = None
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        out.append((".".join(k for _, k in stack), comment))
        comment = None
    return out


TABLE_START = "<!-- values-table:start (generated: make chart-docs) -->"
TABLE_END = "<!-- values-table:end -->"


def values_table():
    """The markdown values table of docs/helm.md, from values.yaml's `# --` comments."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    bar = "\\|"
    rows = ["| Value | Default | Description |", "|---|---|---|"]
    for key, comment in values_keys():
        if comment is None:
            continue
        default = values
        for part in key.split("."):
            default = default[part]
        shown = json.dumps(default, separators=(", ", ": "))
        if len(shown) > 60:
            shown = "see values.yaml"
        rows.append(f"| `{key}` | `{shown.replace('|', bar)}` | {comment.replace('|', bar)} |")
    return "\n".join(rows)


def cmd_values_table(args):
    """Writes (--write) the table between the markers of every DOCS file, or prints it."""
    table = values_table()
    if args[:1] != ["--write"]:
        print(table)
        return
    for doc in DOCS:
        text = doc.read_text()
        if TABLE_START not in text or TABLE_END not in text:
            raise SystemExit(f"{doc.relative_to(REPO)} has no values-table markers: add\n{TABLE_START}\n{TABLE_END}")
        start, end = text.index(TABLE_START), text.index(TABLE_END)
        doc.write_text(text[: start + len(TABLE_START)] + "\n" + table + "\n" + text[end:])
        print(f"  wrote the values table into {doc.relative_to(REPO)}")


def cmd_values_doc(_args):
    p = Problems()
    keys = values_keys()
    documented = [k for k, doc in keys if doc is not None]
    # A key is covered when it, or an ancestor, has a `# --` comment, or when all its children are covered.
    names = [k for k, _ in keys]

    def covered(k):
        if any(k == d or k.startswith(d + ".") for d in documented):
            return True
        children = [o for o in names if o.startswith(k + ".") and "." not in o[len(k) + 1 :]]
        return bool(children) and all(covered(c) for c in children)

    for k in names:
        if not covered(k):
            p.add(f"values.yaml: {k} has no `# --` comment")
    want = f"{TABLE_START}\n{values_table()}\n{TABLE_END}"
    for doc in DOCS:
        text = doc.read_text() if doc.exists() else ""
        p.check(
            want in text,
            f"{doc.relative_to(REPO)}: values table is not the one values.yaml's comments give: run `make chart-docs`",
        )
    p.exit(f"{len(documented)} documented values, the values tables of {', '.join(str(d.relative_to(REPO)) for d in DOCS)} match values.yaml")


COMMANDS = {
    "schema-sync": cmd_schema_sync,
    "validate-custom": cmd_validate_custom,
    "assert-render": cmd_assert_render,
    "values-doc": cmd_values_doc,
    "values-table": cmd_values_table,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(f"usage: chartcheck.py {{{'|'.join(COMMANDS)}}} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
