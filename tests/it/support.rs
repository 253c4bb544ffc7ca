//! Test support: a private emulator per test (`moto_server`, plus the App
//! Runner API moto lacks: `scripts/emulator.py`), an SDK client pointed at
//! it over real HTTP, and helpers to seed repositories.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecr::Client;
use aws_sdk_ecr::config::{BehaviorVersion, Credentials, Region};

/// `scripts/emulator.py` (moto_server and App Runner) on a free loopback
/// port, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/emulator.py");
        let child = Command::new("python3")
            .args([script, "-H", "127.0.0.1", "-p", &port.to_string()])
            // Resolve Lambda image URIs in moto's own ECR, as Lambda does,
            // instead of inventing digests.
            .env("MOTO_LAMBDA_STUB_ECR", "false")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "moto_server must be installed: pip install 'moto[server]' (make test does this)",
            );
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_for_port(port, "moto_server", Duration::from_secs(30));
        Moto { child, endpoint }
    }

    /// An ECR client for this server, with dummy credentials.
    pub fn ecr(&self) -> Client {
        let config = aws_sdk_ecr::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        Client::from_conf(config)
    }

    /// A connector (the Lambda's view) pointed at this server.
    pub async fn connector(&self) -> ecr_gc::aws::Connector {
        connector_at(&self.endpoint, ecr_gc::aws::SdkRetry::default()).await
    }

    /// Environment for a child process (the binary) to reach this server
    /// through the standard chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every client a run needs, pointed at `endpoint`, with `retry`.
pub async fn clients_at(endpoint: &str, retry: ecr_gc::aws::SdkRetry) -> ecr_gc::aws::Clients {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"));
    ecr_gc::aws::Clients::new(&retry.apply(loader).load().await)
}

/// A connector pointed at `endpoint`, with `retry`, in us-east-1 as
/// account 123456789012 (moto's default).
pub async fn connector_at(endpoint: &str, retry: ecr_gc::aws::SdkRetry) -> ecr_gc::aws::Connector {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"));
    ecr_gc::aws::Connector::new(retry.apply(loader).load().await)
}

/// The one target's report of a handler response.
pub fn report_of(response: ecr_gc::lambda::Response) -> ecr_gc::run::report::Report {
    match response {
        ecr_gc::lambda::Response::Collection(c) => {
            assert_eq!(c.targets.len(), 1, "one target expected");
            let target = c.targets.into_iter().next().unwrap();
            target
                .report
                .unwrap_or_else(|| panic!("target failed: {:?}", target.error))
        }
        other => panic!("expected a collection, got {other:?}"),
    }
}

/// A distinct image manifest; moto derives the digest from the layer
/// digests and the size from the config size.
pub fn manifest(seed: &str, size: u64) -> String {
    let layer = format!("{:064x}", fxhash(seed));
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": size,
            "digest": format!("sha256:{:064x}", fxhash(&format!("config-{seed}")))
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 1,
            "digest": format!("sha256:{layer}")
        }]
    })
    .to_string()
}

/// A stable 64-bit hash, widened; enough to make distinct fake digests.
fn fxhash(text: &str) -> u128 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (u128::from(h) << 64) | u128::from(h.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

pub async fn create_repository(ecr: &Client, name: &str) {
    ecr.create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap();
}

/// Pushes one image; `tag` `None` pushes it untagged.
pub async fn push(ecr: &Client, repository: &str, seed: &str, tag: Option<&str>) -> String {
    let out = ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest(seed, 1000))
        .set_image_tag(tag.map(str::to_owned))
        .send()
        .await
        .unwrap();
    out.image()
        .and_then(|i| i.image_id())
        .and_then(|i| i.image_digest())
        .unwrap()
        .to_owned()
}

/// The digests now in `repository`, sorted.
pub async fn digests(ecr: &Client, repository: &str) -> Vec<String> {
    let out = ecr
        .describe_images()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    let mut digests: Vec<String> = out
        .image_details()
        .iter()
        .filter_map(|d| d.image_digest().map(str::to_owned))
        .collect();
    digests.sort();
    digests
}

/// The fault-injecting (and paging, and counting) proxy in front of moto.
pub struct Proxy {
    child: Child,
    pub endpoint: String,
    log: std::path::PathBuf,
}

impl Proxy {
    pub fn start(upstream: &str, plan: serde_json::Value) -> Proxy {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("ecr-gc-faults-{port}.log"));
        let child = Command::new("python3")
            .arg(format!(
                "{}/tests/it/fault_proxy.py",
                env!("CARGO_MANIFEST_DIR")
            ))
            .args([port.to_string(), upstream.to_owned(), plan.to_string()])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "the fault proxy", Duration::from_secs(30));
        Proxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// How many faults the proxy served.
    pub fn served(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

impl Proxy {
    /// The requests the proxy has seen, by operation.
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        use std::io::{Read, Write};
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET /__counts HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ecr-gc` binary serving Lambda events under `cargo lambda watch`
/// (its runtime API emulator only: the function is the binary cargo already
/// built), invoked with `cargo lambda invoke`. Both are killed on drop.
pub struct RuntimeLoop {
    watch: Child,
    function: Child,
    port: u16,
    log: std::path::PathBuf,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_ecr-gc");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `ecr-gc ARGS` from the repository's root (so `examples/` resolves),
/// never as a Lambda function, with `env` besides.
pub fn ecr_gc(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(ROOT)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl RuntimeLoop {
    /// Starts the loop with `env` (the endpoint, the policy, ...) added to
    /// what Lambda sets.
    pub fn start(env: &[(&str, String)]) -> RuntimeLoop {
        let port = free_port();
        let watch = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--timeout",
                "60",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .current_dir(ROOT)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "cargo lambda must be installed: pip install cargo-lambda (make test does this)",
            );
        wait_for_port(port, "cargo lambda watch", Duration::from_secs(60));
        let log = std::env::temp_dir().join(format!("ecr-gc-lambda-{port}.log"));
        let function = Command::new(BIN)
            .current_dir(ROOT)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        RuntimeLoop {
            watch,
            function,
            port,
            log,
        }
    }

    /// Invokes the function with the event in `file`: its response, or the
    /// invocation's error as `cargo lambda invoke` prints it.
    pub fn invoke_file(&self, file: &std::path::Path) -> Result<serde_json::Value, String> {
        let out = Command::new("cargo")
            .args([
                "lambda",
                "invoke",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &self.port.to_string(),
                "--output-format",
                "json",
                "--data-file",
            ])
            .arg(file)
            .current_dir(ROOT)
            .output()
            .expect(
                "cargo lambda must be installed: pip install cargo-lambda (make test does this)",
            );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            // cargo lambda wraps the error in a box at the terminal's width:
            // unwrap it into one line.
            let text = format!("{stdout}{stderr}").replace(['│', '×'], " ");
            return Err(text.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("not JSON: {e}: {stdout}{stderr}"))
    }

    /// Invokes the function with `event`.
    pub fn invoke(&self, event: &serde_json::Value) -> Result<serde_json::Value, String> {
        let file = std::env::temp_dir().join(format!(
            "ecr-gc-event-{}-{}.json",
            self.port,
            INVOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&file, event.to_string()).unwrap();
        self.invoke_file(&file)
    }

    /// Every JSON log line the function has written so far.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
}

static INVOCATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for RuntimeLoop {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.watch] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Pushes a multi-arch index over `children` (digests), with the digest
/// ECR would compute (moto invents one otherwise).
pub async fn push_index(
    client: &aws_sdk_ecr::Client,
    repository: &str,
    children: &[String],
    tag: &str,
) -> String {
    use sha2::Digest;
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .zip(["amd64", "arm64", "s390x"])
        .map(|(digest, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": 1000,
                "platform": {"architecture": arch, "os": "linux"}
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    })
    .to_string();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(manifest.as_bytes()));
    client
        .put_image()
        .repository_name(repository)
        .image_manifest(&manifest)
        .image_manifest_media_type("application/vnd.oci.image.index.v1+json")
        .image_digest(&digest)
        .image_tag(tag)
        .send()
        .await
        .unwrap();
    digest
}

/// A repository name the test knows to be valid.
pub fn repo(name: &str) -> ecr_gc::model::RepositoryName {
    ecr_gc::model::RepositoryName::parse(name).unwrap()
}

/// `policy` written to a file of its own, for `--policy`.
pub fn policy_file(policy: &serde_json::Value) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ecr-gc-policy-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    path
}

/// `ecr-gc run --output json --repository REPOSITORY` (with `--apply` when
/// `apply`) through `endpoint`, with the policy at `path`: the exit status
/// and the whole report.
pub fn run_json(
    endpoint: &str,
    path: &std::path::Path,
    repository: &str,
    apply: bool,
) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["run", "--output", "json", "--repository", repository];
    if apply {
        args.push("--apply");
    }
    args.push("--policy");
    let out = cli(endpoint, &args, path, &[]);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// `ecr-gc run --apply --output json` through `endpoint`, with `policy`:
/// the exit status and the one target's report.
pub fn cli_run(
    endpoint: &str,
    policy: &serde_json::Value,
    repository: &str,
) -> (Option<i32>, serde_json::Value) {
    let path = policy_file(policy);
    let out = cli(
        endpoint,
        &[
            "run",
            "--apply",
            "--output",
            "json",
            "--repository",
            repository,
            "--policy",
        ],
        &path,
        &[],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report["targets"][0].clone())
}

/// `ecr-gc ARGS POLICY` as a CLI process, reaching AWS at `endpoint` with
/// test credentials, and `env` besides.
pub fn cli(
    endpoint: &str,
    args: &[&str],
    policy: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg(policy)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The in-use sources that read the account's own APIs, as
/// `settings.inUse` names them; each is on unless switched off.
pub const ACCOUNT_SOURCES: [&str; 10] = [
    "ecs",
    "lambda",
    "events",
    "scheduler",
    "batch",
    "codebuild",
    "stepfunctions",
    "apprunner",
    "sagemaker",
    "eks",
];

/// `settings.inUse` with every account source off and the external list
/// in the SSM parameter `/ecr-gc/in-use` on (see [`publish_in_use`]).
pub fn external_list_only() -> serde_json::Map<String, serde_json::Value> {
    let mut sources: serde_json::Map<String, serde_json::Value> = ACCOUNT_SOURCES
        .iter()
        .map(|s| (s.to_string(), serde_json::json!({"enabled": false})))
        .collect();
    sources.insert(
        "external".into(),
        serde_json::json!({"ssmParameter": "/ecr-gc/in-use"}),
    );
    sources
}

/// A policy that keeps only the newest image by count, with no grace
/// period, and reads only the account sources in `on` (every other one
/// is switched off), so that only they can keep another image.
pub fn keep_newest_reading(on: &[&str]) -> serde_json::Value {
    let sources: serde_json::Map<String, serde_json::Value> = ACCOUNT_SOURCES
        .iter()
        .filter(|s| !on.contains(s))
        .map(|s| (s.to_string(), serde_json::json!({"enabled": false})))
        .collect();
    serde_json::json!({
        "rules": [{
            "rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}
        }],
        "settings": {"gracePeriodMinutes": 0, "inUse": sources}
    })
}

/// Creates `repository` with one image per tag in `tags`, then `newest` a
/// second later (so that a count rule keeping one keeps it alone).
/// Returns the tag of each digest.
pub async fn push_tags(
    client: &Client,
    repository: &str,
    tags: &[&str],
) -> std::collections::BTreeMap<String, String> {
    create_repository(client, repository).await;
    let mut tag_of = std::collections::BTreeMap::new();
    for tag in tags {
        let digest = push(
            client,
            repository,
            &format!("{repository}-{tag}"),
            Some(tag),
        )
        .await;
        tag_of.insert(digest, tag.to_string());
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let newest = push(
        client,
        repository,
        &format!("{repository}-newest"),
        Some("newest"),
    )
    .await;
    tag_of.insert(newest, "newest".into());
    tag_of
}

/// Asserts that a run failed closed on its first in-use source: exit
/// status 1, and that source's error naming every one of `parts`.
#[track_caller]
pub fn assert_failed_closed(code: Option<i32>, report: &serde_json::Value, parts: &[&str]) {
    assert_eq!(code, Some(1), "{report}");
    let error = report["inUseSources"][0]["error"]
        .as_str()
        .unwrap_or_default();
    for part in parts {
        assert!(error.contains(part), "{part}: {error}");
    }
}

/// `PUT` of `body` to the emulator's `path` (its seeding endpoints, such as
/// `/__emulator/ecr/images`), which must answer 200.
pub fn emulator_put(endpoint: &str, path: &str, body: &serde_json::Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "PUT {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1);
    assert_eq!(status, Some("200"), "{response}");
}

/// Sets an image's fields in the emulator beyond what a push gives it
/// (`imagePushedAt`, `lastRecordedPullTime`, `imageStatus`, ...; times in
/// epoch seconds, see [`ago`]).
pub fn seed(endpoint: &str, repository: &str, digest: &str, fields: serde_json::Value) {
    let mut doc = fields;
    doc["repositoryName"] = serde_json::json!(repository);
    doc["imageDigest"] = serde_json::json!(digest);
    emulator_put(endpoint, "/__emulator/ecr/images", &doc);
}

/// `days` before now, in epoch seconds.
pub fn ago(days: f64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    now - days * 86_400.0
}

/// Publishes `images` (image references) as the external in-use list in
/// the SSM parameter `/ecr-gc/in-use` of the default test account.
pub async fn publish_in_use(endpoint: &str, images: &[String]) {
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    ssm.put_parameter()
        .name("/ecr-gc/in-use")
        .value(serde_json::json!({ "images": images }).to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
}

/// Runs `python3` with `args` (a seeding script), which must succeed.
pub fn python(args: &[&str]) {
    let out = Command::new("python3").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The protected images of a target's first repository, as tag (by
/// `tag_of`) to the protection the report gives it.
pub fn protections<'a>(
    target: &'a serde_json::Value,
    tag_of: &'a std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<&'a str, &'a str> {
    target["repositories"][0]["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                tag_of[p["imageDigest"].as_str().unwrap()].as_str(),
                p["protection"].as_str().unwrap(),
            )
        })
        .collect()
}

/// The tags (by `tag_of`) of the images left in `repository`, sorted.
pub async fn remaining_tags(
    client: &Client,
    repository: &str,
    tag_of: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut left: Vec<String> = digests(client, repository)
        .await
        .iter()
        .map(|d| tag_of[d.as_str()].clone())
        .collect();
    left.sort();
    left
}
