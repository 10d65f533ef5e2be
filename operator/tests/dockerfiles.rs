//! No Docker engine runs here, so the Dockerfiles are checked statically: multi-stage,
//! non-root runtime, and they build binaries that exist under the names they copy.

use std::path::PathBuf;

fn read(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check(dockerfile: &str, package: &str, bin: &str) {
    let d = read(dockerfile);
    let froms: Vec<&str> = d.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "{dockerfile}: not multi-stage");
    assert!(
        froms.last().unwrap().contains("distroless"),
        "{dockerfile}: runtime is not minimal"
    );
    let user = d.lines().rfind(|l| l.starts_with("USER ")).expect("USER");
    assert!(
        !user.contains("root") && !user.contains(" 0"),
        "{dockerfile}: runs as root"
    );
    assert!(
        d.contains(&format!("-p {package} --bin {bin}")),
        "{dockerfile}: does not build {bin}"
    );
    assert!(
        d.contains(&format!("/usr/local/bin/{bin}\"]")),
        "{dockerfile}: entrypoint is not {bin}"
    );
}

#[test]
fn server_and_operator_dockerfiles() {
    check("../Dockerfile", "synckairos", "synckairos");
    check("Dockerfile", "synckairos-operator", "synckairos-operator");
    // the binary names must be real
    assert!(read("Cargo.toml").contains("name = \"synckairos-operator\"\npath = \"src/main.rs\""));
    assert!(read("../server/Cargo.toml").contains("name = \"synckairos\""));
    // the operator's migration Job relies on the server image running `migrate`
    assert!(read("../server/src/config.rs").contains("Migrate"));
}
