//! What a run frees, counted two ways against the emulator with images of
//! known layer sizes: the image sizes (the upper bound, by default), and
//! with `settings.exactReclaim` the layers no kept image uses, each once,
//! read from the manifests at 100 images a BatchGetImage call. A failed
//! read costs only the exact figure, never a deletion.

use serde_json::{Value, json};

use crate::support::{Moto, Proxy, cli, create_repository, keep_newest_reading, seed};
use crate::support::{policy_file, run_json};

const BASE: u64 = 100_000_000;
const SHARED: u64 = 5_000_000;
const CONFIG: u64 = 1_000;

/// A manifest naming a config and these layers (digest seed, size).
fn manifest(config: &str, layers: &[(&str, u64)]) -> String {
    let blob = |seed: &str, size: u64, media: &str| {
        json!({"mediaType": media, "size": size,
               "digest": format!("sha256:{:0>64}", seed.bytes().map(|b| format!("{b:02x}")).collect::<String>())})
    };
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": blob(config, CONFIG, "application/vnd.docker.container.image.v1+json"),
        "layers": layers.iter().map(|(s, n)| blob(s, *n, "application/vnd.docker.image.rootfs.diff.tar.gzip")).collect::<Vec<_>>()
    })
    .to_string()
}

/// `shared`: three images on one base layer. `old` and `mid` also share a
/// layer only they use; the policy keeps the newest, `new`. Returns the
/// upper bound and the exact bytes of deleting `old` and `mid`.
async fn repository(moto: &Moto) -> (u64, u64) {
    let ecr = moto.ecr();
    create_repository(&ecr, "shared").await;
    let images: [(&str, &[(&str, u64)]); 3] = [
        (
            "old",
            &[("base", BASE), ("both", SHARED), ("old", 1_000_000)],
        ),
        (
            "mid",
            &[("base", BASE), ("both", SHARED), ("mid", 2_000_000)],
        ),
        ("new", &[("base", BASE), ("new", 3_000_000)]),
    ];
    let mut bound = 0;
    for (i, (name, layers)) in images.iter().enumerate() {
        let out = ecr
            .put_image()
            .repository_name("shared")
            .image_manifest(manifest(&format!("config-{name}"), layers))
            .image_tag(*name)
            .send()
            .await
            .unwrap();
        let digest = out
            .image()
            .unwrap()
            .image_id()
            .unwrap()
            .image_digest()
            .unwrap();
        let size: u64 = CONFIG + layers.iter().map(|(_, n)| n).sum::<u64>();
        if *name != "new" {
            bound += size;
        }
        let pushed = crate::support::ago(3.0 - i as f64);
        seed(
            &moto.endpoint,
            "shared",
            digest,
            json!({"imageSizeInBytes": size, "imagePushedAt": pushed}),
        );
    }
    let exact = 2 * CONFIG + SHARED + 1_000_000 + 2_000_000;
    (bound, exact)
}

/// `ecr-gc run` on `shared` through `endpoint`: the exit status, the
/// target's report, and the table.
fn run(endpoint: &str, exact: bool, apply: bool) -> (Option<i32>, Value, String) {
    let mut policy = keep_newest_reading(&[]);
    policy["settings"]["exactReclaim"] = json!(exact);
    policy["settings"]["prices"] = json!({"standardPerGbMonth": 0.5});
    let path = policy_file(&policy);
    let (code, report) = run_json(endpoint, &path, "shared", apply);
    let mut table = String::new();
    if !apply {
        let args = [
            "run",
            "--output",
            "table",
            "--repository",
            "shared",
            "--policy",
        ];
        let printed = cli(endpoint, &args, &path, &[]);
        table = String::from_utf8_lossy(&printed.stdout).into_owned();
    }
    (code, report, table)
}

fn usd(bytes: u64, per_gb: f64) -> f64 {
    (bytes as f64 / f64::from(1u32 << 30) * per_gb * 1e6).round() / 1e6
}

#[tokio::test]
async fn shared_layers_are_counted_once_only_when_asked() {
    let moto = Moto::start();
    let (bound, exact) = repository(&moto).await;
    let proxy = Proxy::start(&moto.endpoint, json!({"ecr": true}));

    // By default: the image sizes, and no manifest read.
    let (code, report, table) = run(&proxy.endpoint, false, false);
    assert_eq!(code, Some(0), "{report}");
    let repo = &report["targets"][0]["repositories"][0];
    assert_eq!(repo["bytesPlanned"], json!(bound), "{repo}");
    assert!(repo.get("exactReclaim").is_none(), "{repo}");
    assert_eq!(report["targets"][0]["apiCalls"]["BatchGetImage"], 0);
    assert_eq!(
        report["summary"]["estimatedMonthlySaving"]["plannedUsd"],
        json!(usd(bound, 0.5))
    );
    assert_eq!(
        report["pricesUsd"],
        json!({"standardPerGbMonth": 0.5, "archivePerGbMonth": 0.1})
    );
    assert!(
        table.contains("Would free 203.1 MiB (image sizes, an upper bound"),
        "{table}"
    );
    assert!(
        table.contains("estimated saving $0.10 a month (at $0.50 per GB-month standard"),
        "{table}"
    );

    // Exactly, in a dry run: one BatchGetImage for the three manifests.
    let (code, report, table) = run(&proxy.endpoint, true, false);
    assert_eq!(code, Some(0), "{report}");
    let repo = &report["targets"][0]["repositories"][0];
    assert_eq!(
        repo["exactReclaim"],
        json!({"bytesPlanned": exact, "bytesReclaimed": 0, "manifestsRead": 3})
    );
    assert_eq!(repo["bytesPlanned"], json!(bound));
    assert_eq!(report["targets"][0]["apiCalls"]["BatchGetImage"], 1);
    assert_eq!(
        repo["estimatedMonthlySaving"],
        json!({"plannedUsd": usd(exact, 0.5), "reclaimedUsd": 0.0})
    );
    assert!(
        table.contains("Would free 7.6 MiB (shared layers counted once)"),
        "{table}"
    );

    // Applied: both figures of what was deleted.
    let (code, report, _) = run(&proxy.endpoint, true, true);
    assert_eq!(code, Some(0), "{report}");
    let summary = &report["summary"];
    assert_eq!(summary["imagesDeleted"], 2, "{summary}");
    assert_eq!(summary["bytesReclaimed"], json!(bound));
    assert_eq!(summary["exactReclaim"]["bytesReclaimed"], json!(exact));
    assert_eq!(summary["exactReclaim"]["repositoriesCounted"], 1);
    assert_eq!(
        summary["estimatedMonthlySaving"]["reclaimedUsd"],
        json!(usd(exact, 0.5))
    );
}

#[tokio::test]
async fn a_manifest_that_cannot_be_read_costs_the_figure_not_the_deletion() {
    let moto = Moto::start();
    let (bound, _) = repository(&moto).await;
    let proxy = Proxy::start(
        &moto.endpoint,
        json!({"ecr": true, "BatchGetImage": ["denied*"]}),
    );
    let (code, report, _) = run(&proxy.endpoint, true, true);
    assert_eq!(code, Some(0), "{report}");
    let summary = &report["summary"];
    assert_eq!(summary["imagesDeleted"], 2, "{summary}");
    assert_eq!(summary["bytesReclaimed"], json!(bound));
    assert_eq!(
        summary["exactReclaim"]["repositoriesNotCounted"], 1,
        "{summary}"
    );
    let repo = &report["targets"][0]["repositories"][0];
    let error = repo["exactReclaim"]["error"].as_str().unwrap();
    assert!(
        error.contains("only the image sizes are counted") && error.contains("BatchGetImage"),
        "{error}"
    );
    assert_eq!(
        summary["estimatedMonthlySaving"]["reclaimedUsd"],
        json!(usd(bound, 0.5))
    );
}
