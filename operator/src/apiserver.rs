//! The startup check of the API server's version. An operator started on a server older
//! than it supports (no `policy/v1`, no `autoscaling/v2`, no server-side apply of port lists
//! without `protocol`) would fail later with 404s on every reconcile; instead it says so
//! once, in one log line and in a condition on every `SyncKairosCluster`.

use k8s_openapi::apimachinery::pkg::version::Info;
use kube::Client;

use crate::status::Part;

/// Oldest Kubernetes `(major, minor)` the operator supports: the Helm chart's `kubeVersion`
/// (`charts/synckairos-operator/Chart.yaml`) and the oldest schemas its tests validate
/// against say the same, and `charts/tests/chartcheck.py` checks that they do.
pub const MIN_KUBERNETES: (u32, u32) = (1, 27);

/// `(major, minor)` of a version answer. Managed services decorate the minor (`"27+"`), and
/// some servers leave both fields empty, so `gitVersion` (`v1.27.3-gke.100`) is the fallback.
pub fn parse(info: &Info) -> Option<(u32, u32)> {
    fn leading(s: &str) -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
    if let (Some(major), Some(minor)) = (leading(&info.major), leading(&info.minor)) {
        return Some((major, minor));
    }
    let mut parts = info.git_version.trim_start_matches('v').splitn(3, '.');
    Some((leading(parts.next()?)?, leading(parts.next()?)?))
}

/// The verdict on a version answer; `None` when it names no version.
pub fn verdict(info: &Info) -> Option<Part> {
    let (major, minor) = parse(info)?;
    let (min_major, min_minor) = MIN_KUBERNETES;
    let shown = if info.git_version.is_empty() {
        format!("{major}.{minor}")
    } else {
        info.git_version.clone()
    };
    Some(if (major, minor) >= MIN_KUBERNETES {
        Part::ok(
            "Supported",
            format!(
                "the API server runs Kubernetes {shown} (the operator needs {min_major}.{min_minor} or later)"
            ),
        )
    } else {
        Part::not(
            "KubernetesTooOld",
            format!(
                "the API server runs Kubernetes {shown}, older than the {min_major}.{min_minor} \
                 this operator needs (policy/v1, autoscaling/v2, server-side apply): upgrade \
                 the cluster, or expect its API calls to fail"
            ),
        )
    })
}

/// Reads `/version` once and logs the verdict in one line; `None` when the version could
/// not be read or named nothing (logged too, the operator runs on).
pub async fn check(client: &Client) -> Option<Part> {
    let info = match client.apiserver_version().await {
        Ok(info) => info,
        Err(e) => {
            let why = crate::explain::api_failure("read", "the API server version", "", &e);
            tracing::warn!("{why}");
            return None;
        }
    };
    let v = verdict(&info);
    match &v {
        Some(p) if p.ok => tracing::info!("{}", p.message),
        Some(p) => tracing::error!("{}", p.message),
        None => tracing::warn!(
            git_version = %info.git_version,
            "the API server's /version names no version; not checking it"
        ),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Default::default()
        }
    }

    #[test]
    fn versions_parse_with_decorations_and_fallbacks() {
        assert_eq!(parse(&info("1", "27", "v1.27.3")), Some((1, 27)));
        assert_eq!(parse(&info("1", "27+", "v1.27.3-eks-1")), Some((1, 27)));
        assert_eq!(parse(&info("", "", "v1.31.0-gke.100")), Some((1, 31)));
        assert_eq!(parse(&info("", "", "")), None);
        assert_eq!(parse(&info("x", "y", "garbage")), None);
    }

    #[test]
    fn the_minimum_and_newer_pass_older_fails_with_a_sentence() {
        for ok in [
            info("1", "27", "v1.27.0"),
            info("1", "37", "v1.37.1"),
            info("2", "0", ""),
        ] {
            assert!(verdict(&ok).unwrap().ok, "{ok:?}");
        }
        let old = verdict(&info("1", "20", "v1.20.2")).unwrap();
        assert!(!old.ok);
        assert_eq!(old.reason, "KubernetesTooOld");
        assert!(
            old.message
                .starts_with("the API server runs Kubernetes v1.20.2, older than the 1.27"),
            "{}",
            old.message
        );
        assert_eq!(verdict(&info("", "", "")), None);
        // the boundary, both sides
        assert!(!verdict(&info("1", "26", "")).unwrap().ok);
        assert!(verdict(&info("1", "27", "")).unwrap().ok);
    }
}
