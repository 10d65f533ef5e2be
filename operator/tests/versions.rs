//! One source of truth for what a cluster pulls: the Cargo workspace version. The chart's
//! appVersion and default image names, the operator's default server image and the names
//! `make image` tags must all agree with it, or a `helm install` of a release pulls an
//! image that was never built. This test fails when any of them drifts.

use std::path::PathBuf;

use serde_json::Value;
use synckairos_operator::crd::DEFAULT_SERVER_IMAGE;

fn read(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(rel: &str) -> Value {
    yaml_serde::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `[workspace.package] version` of the root manifest.
fn workspace_version() -> String {
    let text = read("../Cargo.toml");
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("[workspace.package]");
    section
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "version").then(|| v.trim().trim_matches('"').to_string())
        })
        .expect("workspace version")
}

/// `NAME := value` of mk/image.mk: the image names `make image` tags.
fn make_var(name: &str) -> String {
    read("../mk/image.mk")
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(":=")?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{name} in mk/image.mk"))
}

#[test]
fn the_chart_deploys_the_images_this_workspace_builds() {
    let version = workspace_version();
    assert_eq!(
        env!("CARGO_PKG_VERSION"),
        version,
        "the operator crate's version"
    );
    let chart = yaml("../charts/synckairos-operator/Chart.yaml");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version.as_str()),
        "Chart.yaml appVersion (the operator image's default tag)"
    );
    let values = yaml("../charts/synckairos-operator/values.yaml");
    let image = &values["operator"]["image"];
    assert_eq!(
        image["repository"].as_str(),
        Some(make_var("OPERATOR_IMAGE").as_str()),
        "values.yaml operator.image.repository vs the image `make image` builds"
    );
    let tag = image["tag"].as_str().unwrap_or_default();
    assert!(
        tag.is_empty() || tag == version,
        "values.yaml operator.image.tag {tag:?}: empty (= appVersion) or {version}"
    );
    // the cluster's server image, when the chart creates one without naming it
    let spec = &values["cluster"]["spec"];
    if let Some(img) = spec.get("image").and_then(Value::as_str) {
        assert_eq!(img, DEFAULT_SERVER_IMAGE, "values.yaml cluster.spec.image");
    }
}

#[test]
fn the_operator_deploys_the_server_image_of_its_own_version() {
    let version = workspace_version();
    assert_eq!(
        DEFAULT_SERVER_IMAGE,
        format!("{}:{version}", make_var("SERVER_IMAGE")),
        "the operator's default server image vs `make image`'s name and tag"
    );
    // the generated CRD (and the chart's copy and schema) carry the same default
    for crd in [
        "../crds/synckairos.io_synckairosclusters.yaml",
        "../charts/synckairos-operator/crds/synckairos.io_synckairosclusters.yaml",
    ] {
        let doc = yaml(crd);
        let default = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["image"]["default"];
        assert_eq!(default.as_str(), Some(DEFAULT_SERVER_IMAGE), "{crd}");
    }
    // the examples users copy name an image that exists for this version
    for ex in ["examples/minimal.yaml", "examples/production.yaml"] {
        let image = yaml(ex)["spec"]["image"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{ex}: spec.image"));
        assert!(
            image.ends_with(&format!("/{DEFAULT_SERVER_IMAGE}")) || image == DEFAULT_SERVER_IMAGE,
            "{ex}: {image} is not {DEFAULT_SERVER_IMAGE}"
        );
    }
}

#[test]
fn the_build_version_names_this_version_and_a_revision() {
    let v = synckairos_operator::BUILD_VERSION;
    let (version, revision) = v.split_once('+').unwrap_or_else(|| panic!("{v}"));
    assert_eq!(version, workspace_version());
    assert!(
        !revision.is_empty() && revision.chars().all(|c| c.is_ascii_alphanumeric()),
        "{v}: revision"
    );
}

#[test]
fn operator_version_flag_prints_the_build_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_synckairos-operator"))
        .arg("--version")
        .output()
        .expect("run the operator binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "--version exits 0: {stdout}");
    assert_eq!(
        stdout.trim(),
        format!("synckairos-operator {}", synckairos_operator::BUILD_VERSION)
    );
}
