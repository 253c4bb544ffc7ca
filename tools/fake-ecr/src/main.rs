//! A fast fake of Amazon ECR for ecr-gc's organisation benchmark
//! (`scripts/bench-organisation.py`). It speaks the ECR JSON protocol for
//! DescribeRepositories, DescribeImages (pages up to 1,000, `imageIds`
//! re-reads, the `imageStatus` filter), BatchGetImage, BatchDeleteImage,
//! UpdateImageStorageClass and GetLifecyclePolicy, and STS's
//! GetCallerIdentity and AssumeRole, over a generated organisation held
//! in memory (`registry`). Every answer waits a latency drawn from a range,
//! and each (account, region, operation) has a token bucket that answers
//! `ThrottlingException` as ECR does (`limits`). The account is the
//! request's `registryId`; the region, its signature's credential scope.
//!
//! It is also a Lambda runtime API (`/2018-06-01/runtime/...`, the
//! address for `AWS_LAMBDA_RUNTIME_API`) that hands the function one
//! invocation, `EVENT`, and keeps its answer, so the benchmark runs the real
//! binary as Lambda runs it.
//!
//! `GET /__stats` answers the requests and throttles by operation, the
//! requests answered per (account, region), the images left, and the fake's own CPU time, so a benchmark can check that
//! the figures are ecr-gc's and not the fake's; `GET /__response`, the
//! function's answer once it has one (204 until then).
//!
//! Usage: fake-ecr PORT ACCOUNTS REGIONS REPOSITORIES IMAGES_LOW-HIGH
//!        LATENCY_LOW-HIGH_MS RATE [EVENT_FILE]
//! e.g.   fake-ecr 9900 111111111111,222222222222 us-east-1,eu-west-1 2000 50-500 30-80 20

#![forbid(unsafe_code)]

mod lambda;
mod limits;
mod registry;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use limits::{Buckets, Latency, Random};
use registry::{Refusal, Registry, Shape};

struct Fake {
    registry: Registry,
    latency: Latency,
    buckets: Buckets,
    random: Mutex<Random>,
    /// Requests and throttles by (`account/region`, operation).
    counts: Mutex<BTreeMap<(String, String), (u64, u64)>>,
    runtime: lambda::Runtime,
}

fn range(text: &str) -> Option<(u64, u64)> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    Some((low.parse().ok()?, high.parse().ok()?))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fake-ecr PORT ACCOUNTS REGIONS REPOSITORIES IMAGES_LOW-HIGH LATENCY_LOW-HIGH_MS RATE";
    let (port, accounts, regions, repositories, images, latency, rate, event) =
        match args.as_slice() {
            [p, a, r, n, i, l, t] => (p, a, r, n, i, l, t, None),
            [p, a, r, n, i, l, t, e] => (p, a, r, n, i, l, t, Some(std::fs::read_to_string(e)?)),
            _ => return Err(usage.into()),
        };
    let (images_low, images_high) = range(images).ok_or(usage)?;
    let (low_ms, high_ms) = range(latency).ok_or(usage)?;
    let shape = Shape {
        accounts: accounts.split(',').map(str::to_owned).collect(),
        regions: regions.split(',').map(str::to_owned).collect(),
        repositories: repositories.parse()?,
        images_low: images_low as usize,
        images_high: images_high as usize,
    };
    let fake = Arc::new(Fake {
        registry: Registry::new(shape),
        latency: Latency { low_ms, high_ms },
        buckets: Buckets::new(rate.parse()?),
        random: Mutex::new(Random::new(0x5eed)),
        counts: Mutex::new(BTreeMap::new()),
        runtime: lambda::Runtime::new(event),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(serve(fake, port.parse()?))
}

async fn serve(fake: Arc<Fake>, port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {port}, {} images", fake.registry.total());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let fake = fake.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(fake.clone(), request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

async fn handle(fake: Arc<Fake>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = request.uri().path().to_owned();
    if path == "/__stats" {
        return Ok(reply(StatusCode::OK, "application/json", fake.stats()));
    }
    if path == "/__response" || path.starts_with("/2018-06-01/runtime/") {
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => Bytes::new(),
        };
        return Ok(fake.runtime.answer(&path, &body).await);
    }
    let target = header(&request, "x-amz-target");
    let region = region(&header(&request, "authorization"));
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let Some(operation) = target.strip_prefix("AmazonEC2ContainerRegistry_V20150921.") else {
        return Ok(sts(&body));
    };
    let operation = operation.to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let account = body["registryId"]
        .as_str()
        .unwrap_or("000000000000")
        .to_owned();
    tokio::time::sleep(fake.latency.draw(&fake.random)).await;
    let name = static_name(&operation);
    let admitted = fake.buckets.admit(&account, &region, name);
    fake.count(format!("{account}/{region}"), &operation, !admitted);
    let answer = if admitted {
        fake.registry.answer(&operation, &account, &region, &body)
    } else {
        Err(Refusal("ThrottlingException", "Rate exceeded".to_owned()))
    };
    Ok(match answer {
        Ok(text) => reply(StatusCode::OK, "application/x-amz-json-1.1", text),
        Err(Refusal(code, message)) => reply(
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.1",
            json!({"__type": code, "message": message}).to_string(),
        ),
    })
}

/// The operation names the buckets are keyed by, as `'static` strings.
fn static_name(operation: &str) -> &'static str {
    const KNOWN: [&str; 6] = [
        "DescribeRepositories",
        "DescribeImages",
        "BatchDeleteImage",
        "BatchGetImage",
        "UpdateImageStorageClass",
        "GetLifecyclePolicy",
    ];
    KNOWN
        .iter()
        .find(|k| **k == operation)
        .copied()
        .unwrap_or("other")
}

fn header(request: &Request<Incoming>, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The region of a SigV4 `Authorization` header's credential scope.
fn region(authorization: &str) -> String {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|scope| scope.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_owned()
}

/// STS's query protocol: AssumeRole (credentials for the role's account)
/// and GetCallerIdentity (the caller is account 000000000000).
fn sts(body: &[u8]) -> Reply {
    let form = String::from_utf8_lossy(body);
    let field = |name: &str| {
        form.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(|v| v.replace("%3A", ":").replace("%2F", "/"))
            .unwrap_or_default()
    };
    const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
    let text = match field("Action").as_str() {
        "AssumeRole" => {
            let role = field("RoleArn");
            let account = role.split(':').nth(4).unwrap_or("000000000000");
            format!(
                r#"<AssumeRoleResponse xmlns="{NS}"><AssumeRoleResult><Credentials><AccessKeyId>ASIA{account}</AccessKeyId><SecretAccessKey>fake</SecretAccessKey><SessionToken>fake</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAFAKE:ecr-gc</AssumedRoleId><Arn>arn:aws:sts::{account}:assumed-role/ecr-gc/ecr-gc</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></AssumeRoleResponse>"#
            )
        }
        _ => format!(
            r#"<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult><Arn>arn:aws:iam::000000000000:user/bench</Arn><UserId>AIDAFAKE</UserId><Account>000000000000</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#
        ),
    };
    reply(StatusCode::OK, "text/xml", text)
}

impl Fake {
    fn count(&self, target: String, operation: &str, throttled: bool) {
        if let Ok(mut counts) = self.counts.lock() {
            let entry = counts.entry((target, operation.to_owned())).or_default();
            entry.0 += 1;
            entry.1 += u64::from(throttled);
        }
    }

    /// Requests and throttles by operation; the requests answered (not
    /// throttled) by target and operation; the images; the fake's CPU.
    fn stats(&self) -> String {
        let counts = self.counts.lock().map(|c| c.clone()).unwrap_or_default();
        let mut requests = BTreeMap::<&str, u64>::new();
        let mut throttled = BTreeMap::<&str, u64>::new();
        let mut answered = BTreeMap::<&str, BTreeMap<&str, u64>>::new();
        for ((target, operation), (all, refused)) in &counts {
            *requests.entry(operation).or_default() += all;
            *throttled.entry(operation).or_default() += refused;
            *answered
                .entry(target)
                .or_default()
                .entry(operation)
                .or_default() += all - refused;
        }
        let (left, archived) = self.registry.remaining();
        json!({
            "requests": requests,
            "throttled": throttled,
            "answeredByTarget": answered,
            "images": self.registry.total(),
            "imagesLeft": left,
            "imagesArchived": archived,
            "cpuSeconds": cpu_seconds(),
        })
        .to_string()
    }
}

/// This process's user and system CPU time, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields; after the ")" they are
    // the 12th and 13th (index 11 and 12). Linux's clock tick is 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}
