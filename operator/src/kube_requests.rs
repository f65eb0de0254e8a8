//! Counting the operator's Kubernetes requests: the client every controller
//! uses is wrapped so that each request is counted by verb and resource in
//! `tokenops_operator_kube_requests_total{verb,resource}`. The count is taken
//! on the client side, so it reads the same against kube-memserver and a real
//! API server (the scale bench and the request-budget test read it).

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::client::Body;

use crate::metrics::Metrics;

/// `client`, counting every request it sends into `metrics`.
pub fn counted(client: kube::Client, metrics: Arc<Metrics>) -> kube::Client {
    let namespace = client.default_namespace().to_string();
    kube::Client::new(
        Counting {
            inner: client,
            metrics,
        },
        namespace,
    )
}

/// The tower service behind [`counted`]: counts, then sends through the wrapped client.
#[derive(Clone)]
struct Counting {
    inner: kube::Client,
    metrics: Arc<Metrics>,
}

impl tower::Service<Request<Body>> for Counting {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (verb, resource) = classify(
            request.method(),
            request.uri().path(),
            request.uri().query().unwrap_or(""),
            request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        self.metrics.kube_request(verb, &resource);
        let client = self.inner.clone();
        Box::pin(async move { client.send(request).await })
    }
}

/// The verb (`get`, `list`, `watch`, `create`, `apply`, `patch`, `update`,
/// `delete`) and resource (plural, with `/subresource`) of a request.
pub fn classify(
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
) -> (&'static str, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // After /api/v1 or /apis/<group>/<version>: [namespaces, <ns>,] resource [, name [, sub]].
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, resource, more @ ..] => {
            let mut r = vec![*resource];
            r.extend_from_slice(more);
            r
        }
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [] => (path.to_string(), true),
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let verb = match *method {
        Method::GET
            if query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1") =>
        {
            "watch"
        }
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_verb_and_resource() {
        let c = |m: Method, path: &str, query: &str, ct: &str| {
            let (verb, resource) = classify(&m, path, query, ct);
            format!("{verb} {resource}")
        };
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/a/secrets/s", "", ""),
            "get secrets"
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/secrets",
                "labelSelector=x&watch=true",
                ""
            ),
            "watch secrets"
        );
        assert_eq!(
            c(Method::GET, "/apis/tokenops.dev/v1alpha1/apitokens", "", ""),
            "list apitokens"
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/tokenops.dev/v1alpha1/namespaces/a/apitokens/t/status",
                "fieldManager=x&force=true",
                "application/apply-patch+yaml"
            ),
            "apply apitokens/status"
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/tokenops.dev/v1alpha1/namespaces/a/apitokens/t",
                "",
                "application/json-patch+json"
            ),
            "patch apitokens"
        );
        assert_eq!(
            c(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/a/events",
                "",
                ""
            ),
            "create events"
        );
        assert_eq!(c(Method::GET, "/version", "", ""), "get /version");
    }
}
