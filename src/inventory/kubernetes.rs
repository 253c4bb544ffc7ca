//! A Kubernetes API, read for the images its workloads run and may start.
//!
//! Read, in every namespace, in pages of 500 (`limit`, `continue`):
//! * pods, of every phase: each container's, init container's and
//!   ephemeral container's image, and the `imageID` digest the kubelet
//!   reports for each;
//! * the pod templates that start pods later: Deployments, ReplicaSets
//!   (a rollback starts an old one again), StatefulSets, DaemonSets, Jobs
//!   and CronJobs (whose next run may be tonight).
//!
//! Workloads are named `eks:<cluster>/<namespace>/<kind>/<name>`, such as
//! `eks:prod/default/pod/web-7d9`. The server is trusted only through the
//! cluster's own certificate authority; any failure (refused, unreachable,
//! a malformed page) fails the read.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::Value;

use super::{InUse, use_of};
use crate::aws::CallError;

/// A bearer token for one cluster.
#[derive(Debug, Clone)]
pub struct Token(pub String);

/// Items per page.
const PAGE: u32 = 500;

/// The largest page read, in bytes: 500 pods are a few MiB.
const MAX_PAGE_BYTES: usize = 64 << 20;

/// How long connecting, and each page, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// What is read: the list path, the kind's name in workloads, and where
/// each item keeps its pod spec.
const KINDS: [(&str, &str, &str); 7] = [
    ("/api/v1/pods", "pod", "/spec"),
    (
        "/apis/apps/v1/deployments",
        "deployment",
        "/spec/template/spec",
    ),
    (
        "/apis/apps/v1/replicasets",
        "replicaset",
        "/spec/template/spec",
    ),
    (
        "/apis/apps/v1/statefulsets",
        "statefulset",
        "/spec/template/spec",
    ),
    (
        "/apis/apps/v1/daemonsets",
        "daemonset",
        "/spec/template/spec",
    ),
    ("/apis/batch/v1/jobs", "job", "/spec/template/spec"),
    (
        "/apis/batch/v1/cronjobs",
        "cronjob",
        "/spec/jobTemplate/spec/template/spec",
    ),
];

/// One cluster's API: its name, endpoint and a client that trusts only its
/// certificate authority.
pub struct Cluster {
    name: String,
    endpoint: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<bytes::Bytes>>,
}

const OP: &str = "KubernetesList";

fn failed(code: &str, message: impl Into<String>) -> CallError {
    CallError::new(OP, code, message)
}

impl Cluster {
    /// A client for `endpoint` (`https://...`) that trusts `authority`
    /// (PEM) and nothing else.
    pub fn new(name: &str, endpoint: &str, authority: &[u8]) -> Result<Cluster, CallError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(authority) {
            let cert = cert.map_err(|e| failed("InvalidCertificate", e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| failed("InvalidCertificate", e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(failed("InvalidCertificate", "no certificate authority"));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed("TlsSetup", e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Cluster {
            name: name.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Every image the cluster's workloads name, each request with a fresh
    /// `token`.
    pub async fn read<F, Fut>(&self, token: F) -> Result<Vec<InUse>, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Token, CallError>>,
    {
        let mut uses = Vec::new();
        for (path, kind, spec) in KINDS {
            let mut next: Option<String> = None;
            loop {
                let page = self.page(path, next.as_deref(), token().await?).await?;
                for item in &page.items {
                    uses.extend(item_uses(&self.name, item, kind, spec));
                }
                match page.metadata.next {
                    Some(token) if !token.is_empty() => {
                        if next.as_deref() == Some(token.as_str()) {
                            return Err(failed(
                                "RepeatedToken",
                                format!("{path}: the same continue token twice"),
                            ));
                        }
                        next = Some(token);
                    }
                    _ => break,
                }
            }
        }
        Ok(uses)
    }

    async fn page(&self, path: &str, next: Option<&str>, token: Token) -> Result<Page, CallError> {
        let mut url = format!("{}{path}?limit={PAGE}", self.endpoint);
        if let Some(next) = next {
            url.push_str("&continue=");
            url.push_str(&encode(next));
        }
        let request = http::Request::get(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", token.0))
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| failed("InvalidRequest", e.to_string()))?;
        let call = async {
            let response =
                self.client.request(request).await.map_err(|e| {
                    failed("Unreachable", format!("{path}: {}: {e:?}", self.endpoint))
                })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_PAGE_BYTES)
                .collect()
                .await
                .map_err(|e| failed("InvalidResponse", format!("{path}: {e}")))?
                .to_bytes();
            Ok::<_, CallError>((status, body))
        };
        let (status, body) = tokio::time::timeout(PAGE_TIMEOUT, call)
            .await
            .map_err(|_| failed("Timeout", format!("{path}: no answer in {PAGE_TIMEOUT:?}")))??;
        if !status.is_success() {
            let code = match status.as_u16() {
                401 => "Unauthorized",
                403 => "Forbidden",
                _ => "HttpError",
            };
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(failed(code, format!("{path}: HTTP {status}: {text}")));
        }
        serde_json::from_slice(&body).map_err(|e| failed("InvalidResponse", format!("{path}: {e}")))
    }
}

/// The images one listed object names, as uses by its workload.
fn item_uses(cluster: &str, item: &Value, kind: &str, spec: &str) -> Vec<InUse> {
    let text = |pointer: &str| item.pointer(pointer).and_then(Value::as_str).unwrap_or("?");
    let workload = format!(
        "eks:{}/{}/{kind}/{}",
        cluster,
        text("/metadata/namespace"),
        text("/metadata/name")
    );
    let mut images = Vec::new();
    if let Some(spec) = item.pointer(spec) {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            images.extend(each(spec, list, "image"));
        }
    }
    if let Some(status) = item.get("status") {
        for list in [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ] {
            images.extend(each(status, list, "imageID"));
        }
    }
    images
        .into_iter()
        .filter_map(|image| use_of(strip_runtime(image), workload.clone()))
        .collect()
}

/// One page of a list.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Default, Deserialize)]
struct ListMeta {
    #[serde(rename = "continue")]
    next: Option<String>,
}

/// Each `field` of the objects in `parent[list]`.
fn each<'a>(parent: &'a Value, list: &str, field: &str) -> Vec<&'a str> {
    parent
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item.get(field).and_then(Value::as_str))
        .collect()
}

/// An `imageID` without the runtime's scheme (`docker-pullable://`).
fn strip_runtime(image: &str) -> &str {
    image.split_once("://").map_or(image, |(_, rest)| rest)
}

/// A continue token, percent-encoded for a query string.
fn encode(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for byte in token.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec images, status digests (without the runtime's scheme), in
    /// every container list; other registries' references skipped later.
    #[test]
    fn a_pod_names_every_container_and_digest() {
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let digest = format!("sha256:{}", "a".repeat(64));
        let pod = serde_json::json!({
            "metadata": {"namespace": "default", "name": "web-7d9"},
            "spec": {
                "containers": [{"image": format!("{host}/web:v1")}],
                "initContainers": [{"image": format!("{host}/init:v1")}],
                "ephemeralContainers": [{"image": format!("{host}/debug:v1")}]
            },
            "status": {"containerStatuses": [{"imageID": format!("docker-pullable://{host}/web@{digest}")}]}
        });
        let uses: Vec<(String, String)> = item_uses("prod", &pod, "pod", "/spec")
            .into_iter()
            .map(|u| (u.workload, u.reference.to_string()))
            .collect();
        let workload = "eks:prod/default/pod/web-7d9".to_owned();
        assert_eq!(
            uses,
            [
                (workload.clone(), format!("{host}/web:v1")),
                (workload.clone(), format!("{host}/init:v1")),
                (workload.clone(), format!("{host}/debug:v1")),
                (workload, format!("{host}/web@{digest}")),
            ]
        );
        assert_eq!(encode("a b/c=="), "a%20b%2Fc%3D%3D");
    }
}
