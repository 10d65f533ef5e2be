//! Every object the builders generate, for every sample in `operator/examples/` and a few
//! more specs, validated against the official Kubernetes schemas by `kubernetes-validate
//! --strict` (PyPI; `make operator-prereqs` installs it and exports KUBERNETES_VALIDATE).
//! The samples themselves are validated against the generated CRD's structural schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use synckairos_operator::build::{self, postgres, redis, server};
use synckairos_operator::crd::{SyncKairosCluster, crd};
use synckairos_operator::validate::validate;
use synckairos_tests::host::{Verdict, in_ci, verdict};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The validator executable: $KUBERNETES_VALIDATE, else the venv `make operator-prereqs`
/// creates. Missing under CI=true is a failure, not a skip.
fn validator() -> Option<PathBuf> {
    let candidate = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join(".venv-k8s/bin/kubernetes-validate"));
    // The workspace's one missing-tool rule (synckairos_tests::host).
    match verdict(candidate.is_file(), in_ci()) {
        Verdict::Run => Some(candidate),
        Verdict::Fail => panic!(
            "kubernetes-validate not found at {} (run `make operator-prereqs`)",
            candidate.display()
        ),
        Verdict::Skip => {
            eprintln!(
                "SKIPPED: kubernetes-validate not found at {} (run `make operator-prereqs`)",
                candidate.display()
            );
            None
        }
    }
}

fn examples() -> Vec<(String, Value)> {
    let dir = manifest_dir().join("examples");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = yaml_serde::from_str(&text).unwrap();
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    assert!(
        out.len() >= 3,
        "expected the minimal, production and external samples"
    );
    out
}

fn cluster_from(v: &Value) -> SyncKairosCluster {
    let mut s: SyncKairosCluster = serde_json::from_value(v.clone()).unwrap();
    s.metadata.uid = Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into());
    s.metadata.generation = Some(1);
    s
}

/// Every object one cluster produces, as JSON values.
fn all_objects(skc: &SyncKairosCluster) -> Vec<Value> {
    let c = validate(skc).unwrap();
    let d = build::desired(&c);
    let mut v: Vec<Value> = Vec::new();
    let mut push = |x: Value| v.push(x);
    push(serde_json::to_value(redis::password_secret(&c, "pw")).unwrap());
    push(serde_json::to_value(postgres::credentials_secret(&c, "pw")).unwrap());
    push(serde_json::to_value(server::auth_secret_object(&c, "key", "token")).unwrap());
    if let Some(r) = &d.redis {
        push(serde_json::to_value(&r.config).unwrap());
        push(serde_json::to_value(&r.service).unwrap());
        push(serde_json::to_value(&r.statefulset).unwrap());
        push(serde_json::to_value(&r.pdb).unwrap());
    }
    if let Some(p) = &d.postgres {
        push(serde_json::to_value(&p.service).unwrap());
        push(serde_json::to_value(&p.statefulset).unwrap());
    }
    if let Some(j) = &d.migration {
        push(serde_json::to_value(j).unwrap());
    }
    push(serde_json::to_value(&d.server.deployment).unwrap());
    push(serde_json::to_value(&d.server.service).unwrap());
    push(serde_json::to_value(&d.server.pdb).unwrap());
    if let Some(h) = &d.server.hpa {
        push(serde_json::to_value(h).unwrap());
    }
    if let Some(i) = &d.server.ingress {
        push(serde_json::to_value(i).unwrap());
    }
    v
}

fn extra_specs() -> Vec<(String, Value)> {
    let mk = |name: &str, spec: Value| {
        (
            format!("inline:{name}"),
            serde_json::json!({
                "apiVersion": "synckairos.io/v1alpha1", "kind": "SyncKairosCluster",
                "metadata": {"name": name, "namespace": "ns"}, "spec": spec
            }),
        )
    };
    vec![
        mk("empty", serde_json::json!({})),
        mk(
            "no-audit",
            serde_json::json!({"postgres": {"mode": "disabled"}, "server": {"replicas": 0,
                "ingress": {"host": "a.example.com"},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}]}}}}}),
        ),
        mk(
            "memory-engine-open",
            serde_json::json!({"redis": {"mode": "memory"}, "postgres": {"mode": "disabled"},
                "server": {"replicas": 3, "auth": {"enabled": false},
                    "autoscaling": {"minReplicas": 2, "maxReplicas": 3}}}),
        ),
        mk(
            "own-credentials",
            serde_json::json!({"server": {"auth": {"existingSecret": "creds",
                "apiKeysKey": "keys", "tokenSecretKey": "jwt"}}}),
        ),
        mk(
            "big-redis",
            serde_json::json!({"redis": {"shards": 6, "replicasPerShard": 2, "passwordSecret": "mine"},
                "postgres": {"credentialsSecret": "pg"}, "imagePullPolicy": "Always"}),
        ),
    ]
}

fn run_validator(exe: &Path, objects: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let kind = o["kind"].as_str().unwrap();
        // JSON (a subset of YAML): what the operator sends, with no YAML 1.1 surprises.
        let f = dir.path().join(format!("{i:03}-{kind}.json"));
        std::fs::write(&f, serde_json::to_string_pretty(o).unwrap()).unwrap();
        files.push(f);
    }
    let out = Command::new(exe)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate --strict failed:\n{text}"
    );
    let passed = text.matches(" passed for resource ").count();
    assert_eq!(
        passed,
        objects.len(),
        "every object must be reported as passed:\n{text}"
    );
}

#[test]
fn every_generated_object_passes_kubernetes_validate_strict() {
    let Some(exe) = validator() else { return };
    let mut objects = Vec::new();
    for (_, v) in examples().into_iter().chain(extra_specs()) {
        objects.extend(all_objects(&cluster_from(&v)));
    }
    // the CRD itself is an object too
    objects.push(serde_json::to_value(crd()).unwrap());
    assert!(objects.len() > 40, "only {} objects", objects.len());
    run_validator(&exe, &objects);
}

#[test]
fn the_validator_rejects_an_unknown_field() {
    // Proves the gate above can fail: --strict must catch a field the API does not have.
    let Some(exe) = validator() else { return };
    let skc = cluster_from(&extra_specs()[0].1);
    let mut dep = all_objects(&skc)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] =
        "/x".into();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, yaml_serde::to_string(&dep).unwrap()).unwrap();
    let out = Command::new(&exe).arg("--strict").arg(&f).output().unwrap();
    assert!(!out.status.success(), "an unknown field was accepted");
}

/// A small structural-schema checker: types, unknown fields, required, enums, bounds.
fn check(v: &Value, s: &Value, path: &str, errs: &mut Vec<String>) {
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    if v.is_null() {
        if s.get("nullable") != Some(&Value::Bool(true)) {
            errs.push(format!("{path}: null not allowed"));
        }
        return;
    }
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_string() || v.is_i64()) {
            errs.push(format!("{path}: want int or string"));
        }
        return;
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errs.push(format!("{path}: {v} not in {e:?}"));
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(map) = v.as_object() else {
                errs.push(format!("{path}: want object"));
                return;
            };
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !map.contains_key(r.as_str().unwrap()) {
                    errs.push(format!("{path}: missing {r}"));
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, x) in map {
                let p = format!("{path}.{k}");
                if let Some(ps) = props.and_then(|m| m.get(k)) {
                    check(x, ps, &p, errs);
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    check(x, ap, &p, errs);
                } else if props.is_some() {
                    errs.push(format!("{p}: unknown field"));
                }
            }
        }
        Some("array") => match v.as_array() {
            Some(a) => {
                for (i, x) in a.iter().enumerate() {
                    check(x, &s["items"], &format!("{path}[{i}]"), errs);
                }
            }
            None => errs.push(format!("{path}: want array")),
        },
        Some("string") => {
            if let Some(t) = v.as_str() {
                if let Some(m) = s.get("minLength").and_then(Value::as_u64)
                    && (t.len() as u64) < m
                {
                    errs.push(format!("{path}: shorter than {m}"));
                }
            } else {
                errs.push(format!("{path}: want string"));
            }
        }
        Some("integer") => match v.as_i64() {
            Some(n) => {
                if let Some(m) = s.get("minimum").and_then(Value::as_f64)
                    && (n as f64) < m
                {
                    errs.push(format!("{path}: {n} < {m}"));
                }
                if let Some(m) = s.get("maximum").and_then(Value::as_f64)
                    && (n as f64) > m
                {
                    errs.push(format!("{path}: {n} > {m}"));
                }
            }
            None => errs.push(format!("{path}: want integer")),
        },
        Some("boolean") if !v.is_boolean() => errs.push(format!("{path}: want boolean")),
        Some("number") if !v.is_number() => errs.push(format!("{path}: want number")),
        _ => {}
    }
}

fn crd_schema() -> Value {
    let text = std::fs::read_to_string(
        manifest_dir().join("../crds/synckairos.io_synckairosclusters.yaml"),
    )
    .unwrap();
    let crd: Value = yaml_serde::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn spec_errors(v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let schema = crd_schema();
    check(&v["spec"], &schema["properties"]["spec"], "spec", &mut errs);
    errs
}

#[test]
fn samples_validate_against_the_generated_crd() {
    for (name, v) in examples() {
        assert_eq!(v["apiVersion"], "synckairos.io/v1alpha1", "{name}");
        assert_eq!(v["kind"], "SyncKairosCluster", "{name}");
        let errs = spec_errors(&v);
        assert!(errs.is_empty(), "{name}: {errs:?}");
        // and the operator accepts them
        validate(&cluster_from(&v)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_crd_schema_rejects_bad_samples() {
    let (_, good) = examples().into_iter().next().unwrap();
    let mut bad = good.clone();
    bad["spec"]["redis"] = serde_json::json!({"shards": 2});
    assert!(
        spec_errors(&bad)
            .iter()
            .any(|e| e.contains("spec.redis.shards"))
    );
    let mut bad = good.clone();
    bad["spec"]["server"] = serde_json::json!({"replcas": 2});
    assert!(
        spec_errors(&bad)
            .iter()
            .any(|e| e.contains("unknown field"))
    );
    let mut bad = good;
    bad["spec"]["postgres"] = serde_json::json!({"mode": "sqlite"});
    assert!(!spec_errors(&bad).is_empty());
}
