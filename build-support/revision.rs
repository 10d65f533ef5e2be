//! The build's version string, shared by the server's and the operator's build.rs
//! (`#[path]`-included): `<workspace version>+<git revision>`, so `--version`,
//! `/v1/time`'s `build_version` and an image's labels name the same commit.
//!
//! The revision comes from `SYNCKAIROS_REVISION` (set by the Dockerfiles' build arg and
//! `make image`), else `git rev-parse --short HEAD`, else "unknown": a build without git
//! (a source tarball, an image build without `.git`) still succeeds.

use std::process::Command;

/// Emits `cargo:rustc-env=SYNCKAIROS_BUILD_VERSION=...` and the rerun triggers that keep
/// it current when HEAD moves or the variable changes.
pub fn emit() {
    println!("cargo:rerun-if-env-changed=SYNCKAIROS_REVISION");
    let from_env = std::env::var("SYNCKAIROS_REVISION")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "unknown");
    let revision = from_env.or_else(|| {
        watch_git_head();
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let revision = revision
        .filter(|r| r.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SYNCKAIROS_BUILD_VERSION={version}+{revision}");
}

/// Rebuild when HEAD or the branch it points to moves (worktrees and packed refs included).
fn watch_git_head() {
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        // git prints paths relative to the current directory (the crate's); make them absolute.
        let p = std::path::Path::new(&path);
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_default()
        };
        if abs.exists() {
            println!("cargo:rerun-if-changed={}", abs.display());
        }
    }
}

/// One git command's trimmed stdout, or None when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
