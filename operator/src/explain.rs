//! One human sentence per failure, for conditions, Events and logs: `kubectl describe` is
//! the operator's user interface, so a failure names the object, says what the API server
//! answered (status code and its message, never a Rust `Debug` dump of the client error)
//! and what to do about it. Pure functions of plain values, unit-tested below.

use crate::apiserver::MIN_KUBERNETES;

/// What the API server answered to one call: its status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// HTTP status code of the answer.
    pub code: u16,
    /// The `message` of the API's `Status` (its `reason` when the message is empty).
    pub message: &'a str,
}

/// `Could not <verb> <kind> <name>: the API server answered <code> (<message>); <advice>.`
/// `answer` is `None` when no answer came (connection refused, timeout, TLS...), and then
/// `transport` says what happened instead.
pub fn sentence(
    verb: &str,
    kind: &str,
    name: &str,
    answer: Option<Answer<'_>>,
    transport: &str,
) -> String {
    let what = if name.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} {name}")
    };
    let Some(a) = answer else {
        return format!(
            "Could not {verb} {what}: the API server did not answer ({transport}); \
             the operator retries with backoff, check that the API server is reachable from \
             the operator pod."
        );
    };
    let (major, minor) = MIN_KUBERNETES;
    let advice = match a.code {
        401 => {
            "the operator's credentials were refused: check its ServiceAccount token".to_string()
        }
        403 => {
            let (rbac, resource) = rbac_need(verb, kind);
            format!(
                "grant the operator's ServiceAccount `{rbac}` on {resource} in its Role or \
                 ClusterRole (the Helm chart's rbac.create does)"
            )
        }
        404 => format!(
            "check that the namespace exists and that the API server serves {kind} \
             (Kubernetes {major}.{minor} or later)"
        ),
        409 => "another writer changed it at the same time; the operator retries".to_string(),
        400 | 422 => "the API server rejected the object: fix the spec field it names, or \
                      report an operator bug if it names none"
            .to_string(),
        429 | 500..=599 => {
            "the API server is overloaded or failing; the operator retries with backoff".to_string()
        }
        _ => "the operator retries with backoff".to_string(),
    };
    let message = a.message.trim().trim_end_matches('.');
    format!(
        "Could not {verb} {what}: the API server answered {} ({message}); {advice}.",
        a.code
    )
}

/// The RBAC verb and resource a call needs: server-side apply is a `patch` (which may
/// create), a status write a `patch` of the `status` subresource.
fn rbac_need(verb: &str, kind: &str) -> (String, String) {
    match verb {
        "apply" => ("patch".into(), kind.into()),
        "patch status" => ("patch".into(), format!("{kind}/status")),
        v => (v.into(), kind.into()),
    }
}

/// [`sentence`] for a client error: the API's `Status` when it answered, the error's own
/// text (transport errors carry no `Debug` dump) when it did not.
pub fn api_failure(verb: &str, kind: &str, name: &str, err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.as_str()
            } else {
                status.message.as_str()
            };
            let answer = Answer {
                code: status.code,
                message,
            };
            sentence(verb, kind, name, Some(answer), "")
        }
        other => sentence(verb, kind, name, None, &other.to_string()),
    }
}

/// A Secret the spec relies on lacks a key.
pub fn missing_key(secret: &str, key: &str) -> String {
    format!(
        "Secret {secret} has no key {key}: add it (kubectl edit secret {secret}) or point the \
         spec at a Secret that has it."
    )
}

/// The external Redis Secret gives the server no address.
pub fn no_redis_address(secret: &str, exists: bool) -> String {
    let what = if exists {
        "has neither REDIS_URL nor REDIS_CLUSTER_NODES"
    } else {
        "does not exist"
    };
    format!(
        "Secret {secret} (redis.externalSecret) {what}: without a Redis address every server \
         pod would run the single-node memory engine with sessions of its own, so nothing is \
         deployed; add REDIS_URL or REDIS_CLUSTER_NODES to it, or set redis.mode memory for \
         one server pod without Redis."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            status: Some(kube::core::response::StatusSummary::Failure),
            code,
            message: message.into(),
            metadata: Some(Default::default()),
            reason: reason.into(),
            details: None,
        }))
    }

    #[test]
    fn an_api_answer_is_one_sentence_with_code_message_and_advice() {
        let e = api(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        let s = api_failure("patch", "PodDisruptionBudget", "demo-server", &e);
        assert_eq!(
            s,
            "Could not patch PodDisruptionBudget demo-server: the API server answered 404 \
             (the server could not find the requested resource); check that the namespace \
             exists and that the API server serves PodDisruptionBudget (Kubernetes 1.27 or \
             later)."
        );
        // the client error's own Display carries the Debug dump; ours never does
        assert!(e.to_string().contains("Status {"));
        for dump in ["Status {", "Some(", "ListMeta", "ApiError"] {
            assert!(!s.contains(dump), "{dump} in {s}");
        }
    }

    #[test]
    fn the_advice_follows_the_status_code() {
        let say = |code, msg| api_failure("create", "Secret", "demo-auth", &api(code, "R", msg));
        assert!(
            say(403, "forbidden")
                .contains("grant the operator's ServiceAccount `create` on Secret")
        );
        assert!(say(401, "Unauthorized").contains("ServiceAccount token"));
        assert!(say(409, "conflict").contains("retries"));
        assert!(say(422, "spec.ports: Invalid").contains("fix the spec field"));
        assert!(say(500, "etcd timeout").contains("overloaded or failing"));
        assert!(say(418, "teapot").ends_with("the operator retries with backoff."));
        // an empty message falls back to the reason; a trailing period is not doubled
        assert!(
            api_failure("get", "Secret", "x", &api(404, "NotFound", ""))
                .contains("answered 404 (NotFound)")
        );
        assert!(!say(500, "boom.").contains(".)"));
    }

    #[test]
    fn no_answer_says_so_and_keeps_the_transport_error() {
        let s = sentence("list", "Pod", "app=x", None, "connection refused");
        assert_eq!(
            s,
            "Could not list Pod app=x: the API server did not answer (connection refused); \
             the operator retries with backoff, check that the API server is reachable from \
             the operator pod."
        );
    }

    #[test]
    fn a_secret_without_a_redis_address_says_which_and_what_to_add() {
        let missing = no_redis_address("r", false);
        assert!(missing.starts_with("Secret r (redis.externalSecret) does not exist: "));
        let empty = no_redis_address("r", true);
        assert!(empty.contains("has neither REDIS_URL nor REDIS_CLUSTER_NODES"));
        assert!(empty.contains("add REDIS_URL or REDIS_CLUSTER_NODES"));
    }

    #[test]
    fn a_missing_key_names_the_secret_and_the_key() {
        assert_eq!(
            missing_key("my-auth", "token-secret"),
            "Secret my-auth has no key token-secret: add it (kubectl edit secret my-auth) or \
             point the spec at a Secret that has it."
        );
    }
}
