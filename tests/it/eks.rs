//! The EKS source through the binary: EKS's ListClusters and
//! DescribeCluster from the emulator (which points the cluster at a local
//! Kubernetes API), and that API from `kube_api.py`, over HTTPS with the
//! cluster's own certificate authority, checking every request's bearer
//! token (a presigned STS GetCallerIdentity, signature included) and
//! answering lists in pages with `continue` tokens.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support::{
    Moto, Proxy, assert_failed_closed, cli_run, digests, emulator_put, keep_newest_reading,
    protections, push_tags, python, remaining_tags,
};

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// `kube_api.py` on a free port, killed on drop.
pub struct KubeApi {
    child: Child,
    port: u16,
}

impl KubeApi {
    /// Serves `lists` for cluster `prod`, `page_size` items a page;
    /// `refuse` answers 403 to good tokens.
    pub fn start(lists: Value, page_size: usize, refuse: bool) -> (KubeApi, String) {
        let plan = json!({"cluster": "prod", "secret": "testing", "pageSize": page_size,
                          "lists": lists, "refuse": refuse});
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/kube_api.py");
        let mut child = Command::new("python3")
            .args([script, &plan.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let port = started["port"].as_u64().unwrap() as u16;
        let ca = started["ca"].as_str().unwrap().to_owned();
        (KubeApi { child, port }, ca)
    }

    /// The paths and continue tokens served, in order.
    fn log(&self) -> Vec<(String, Option<String>)> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import ssl,sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],context=ssl._create_unverified_context()).read().decode())",
                &format!("https://127.0.0.1:{}/__log", self.port),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates clusters `prod` and `staging` in the emulator's EKS, and points
/// `prod` at the local API and `staging` at a port where nothing listens.
pub fn seed_clusters(endpoint: &str, api: &KubeApi, ca: &str) {
    const SEED: &str = r#"
import json, sys, urllib.request, boto3
endpoint, api, ca = sys.argv[1:4]
eks = boto3.client("eks", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
for name in ("prod", "staging"):
    eks.create_cluster(name=name, roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": []})
# staging: where nothing listens (moto's invented endpoint would wait on DNS).
for name, url in (("prod", api), ("staging", "https://127.0.0.1:9")):
    request = urllib.request.Request(endpoint + "/__emulator/eks/clusters/" + name, method="PUT",
                                     data=json.dumps({"endpoint": url, "certificateAuthority": ca}).encode())
    urllib.request.urlopen(request).read()
"#;
    let api = format!("https://127.0.0.1:{}", api.port);
    python(&["-c", SEED, endpoint, &api, ca]);
}

pub fn pod(namespace: &str, name: &str, spec: Value, status: Value) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "spec": spec, "status": status})
}

fn template(namespace: &str, name: &str, image: &str) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name},
           "spec": {"template": {"spec": {"containers": [{"image": image}]}}}})
}

/// Only EKS protects, and only the `prod` cluster is read (no one answers
/// for `staging`).
fn policy() -> Value {
    let mut policy = keep_newest_reading(&["eks"]);
    policy["settings"]["inUse"]["eks"] = json!({"clusters": ["prod"]});
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_pod_templates_keep_their_images_and_are_named() {
    let moto = Moto::start();
    let client = moto.ecr();
    let tag_of = push_tags(&client, "web", &["v0", "v1", "v2", "v3", "v4", "v5", "v6"]).await;
    let digest_of: BTreeMap<&str, &str> = tag_of
        .iter()
        .map(|(d, t)| (t.as_str(), d.as_str()))
        .collect();
    let image = |tag: &str| format!("{HOST}/web:{tag}");
    let pods = json!([
        pod(
            "default",
            "web-7d9",
            json!({"containers": [{"image": image("v1")}], "initContainers": [{"image": image("v2")}]}),
            json!({})
        ),
        pod(
            "default",
            "debug",
            json!({"containers": [{"image": "busybox"}],
                                       "ephemeralContainers": [{"image": image("v3")}]}),
            json!({})
        ),
        pod(
            "jobs",
            "pinned",
            json!({"containers": [{"image": "web"}]}),
            json!({"containerStatuses": [{"imageID": format!("docker-pullable://{HOST}/web@{}", digest_of["v4"])}]})
        ),
    ]);
    let lists = json!({
        "/api/v1/pods": pods,
        "/apis/batch/v1/cronjobs": [{"metadata": {"namespace": "jobs", "name": "nightly"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": image("v5")}]}}}}}}],
        "/apis/apps/v1/replicasets": [template("default", "web-6c8", &image("v6"))],
    });

    // Refused first (no access entry): nothing is deleted, and the report
    // says what to do.
    let (refusing, ca) = KubeApi::start(lists.clone(), 2, true);
    seed_clusters(&moto.endpoint, &refusing, &ca);
    let (code, report) = cli_run(&moto.endpoint, &policy(), "web");
    assert_failed_closed(
        code,
        &report,
        &[
            "eks:prod",
            "Forbidden",
            "AmazonEKSViewPolicy",
            "settings.inUse.eks.enabled",
        ],
    );
    assert_eq!(digests(&client, "web").await.len(), 8);
    drop(refusing);

    let (api, ca) = KubeApi::start(lists, 2, false);
    let endpoint = format!("https://127.0.0.1:{}", api.port);
    emulator_put(
        &moto.endpoint,
        "/__emulator/eks/clusters/prod",
        &json!({"endpoint": endpoint, "certificateAuthority": ca}),
    );
    let (code, report) = cli_run(&moto.endpoint, &policy(), "web");
    assert_eq!(code, Some(0), "{report}");
    let protection = protections(&report, &tag_of);
    for (tag, workload) in [
        ("v1", "eks:prod/default/pod/web-7d9"),
        ("v2", "eks:prod/default/pod/web-7d9"),
        ("v3", "eks:prod/default/pod/debug"),
        ("v4", "eks:prod/jobs/pod/pinned"),
        ("v5", "eks:prod/jobs/cronjob/nightly"),
        ("v6", "eks:prod/default/replicaset/web-6c8"),
    ] {
        let said = protection.get(tag).copied().unwrap_or_default();
        assert!(
            said.contains(workload),
            "{tag}: {workload} in {protection:?}"
        );
    }
    assert_eq!(
        remaining_tags(&client, "web", &tag_of).await,
        ["newest", "v1", "v2", "v3", "v4", "v5", "v6"]
    );
    // Three pods in pages of two: two pod requests, the second continuing.
    let log = api.log();
    let pods: Vec<&Option<String>> = log
        .iter()
        .filter(|(path, _)| path == "/api/v1/pods")
        .map(|(_, next)| next)
        .collect();
    assert_eq!(pods, [&None, &Some("page-2".to_owned())], "{log:?}");
    assert_eq!(log.len(), 8, "seven kinds, pods in two pages: {log:?}");
}

/// Every cluster is read unless the settings name some: `staging`, which
/// no one answers, fails the source, and so does a cluster EKS will not
/// describe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_cannot_be_read_fails_closed() {
    let moto = Moto::start();
    let client = moto.ecr();
    push_tags(&client, "web", &["v0"]).await;
    let (api, ca) = KubeApi::start(json!({}), 500, false);
    seed_clusters(&moto.endpoint, &api, &ca);

    let (code, report) = cli_run(&moto.endpoint, &keep_newest_reading(&["eks"]), "web");
    assert_failed_closed(
        code,
        &report,
        &["eks:staging", "Unreachable", "settings.inUse.eks.clusters"],
    );
    assert_eq!(digests(&client, "web").await.len(), 2);

    let proxy = Proxy::start(&moto.endpoint, json!({"eks:DescribeCluster": ["denied*"]}));
    let (code, report) = cli_run(&proxy.endpoint, &policy(), "web");
    assert_failed_closed(
        code,
        &report,
        &[
            "eks:prod",
            "DescribeCluster",
            "AccessDenied",
            "eks:DescribeCluster",
        ],
    );
    assert_eq!(digests(&client, "web").await.len(), 2);

    // Readable, and empty: the newest alone is kept.
    let (code, report) = cli_run(&moto.endpoint, &policy(), "web");
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(digests(&client, "web").await.len(), 1);
}

/// The local API's token check is the reference's: it accepts the token
/// botocore (and so `aws eks get-token`) makes for the cluster, and refuses
/// it for another cluster or another secret.
#[test]
fn the_local_api_checks_tokens_as_eks_does() {
    const CHECK: &str = r#"
import base64, json, sys, importlib.util
import botocore.session
script = sys.argv[1]
sys.argv = [script, json.dumps({"cluster": "prod", "secret": "testing"})]
spec = importlib.util.spec_from_file_location("kube_api", script)
api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api)
session = botocore.session.get_session()
session.set_credentials("testing", "testing")
sts = session.create_client("sts", region_name="us-east-1",
                            endpoint_url="https://sts.us-east-1.amazonaws.com")
sts.meta.events.register("before-sign.sts.GetCallerIdentity",
                         lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", "prod"))
url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
token = "Bearer k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
assert api.token_error(token) is None, api.token_error(token)
api.plan["cluster"] = "staging"
assert api.token_error(token) is not None
api.plan.update(cluster="prod", secret="other")
assert api.token_error(token) is not None
"#;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/kube_api.py");
    python(&["-c", CHECK, script]);
}
