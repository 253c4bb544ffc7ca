//! The generated organisation and the ECR operations over it.
//!
//! Every (account, region) holds `repositories` repositories of between
//! `images_low` and `images_high` images, shaped like the planner
//! benchmark's registry: 10 % releases (`v1.x.y`), 30 % feature-branch
//! builds, 30 % commit builds, 30 % untagged, pushed over a year. Nothing is
//! stored per image but its state (a byte): names, digests, tags and times
//! are computed from the image's place, and a digest encodes that place, so
//! a re-read by digest needs no index.

use std::fmt::Write;
use std::sync::Mutex;

use serde_json::Value;

/// An image's state.
const ACTIVE: u8 = 0;
const ARCHIVED: u8 = 1;
const DELETED: u8 = 2;

const YEAR: i64 = 31_536_000;

pub struct Shape {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub repositories: usize,
    pub images_low: usize,
    pub images_high: usize,
}

pub struct Registry {
    pub shape: Shape,
    /// The pushes span the year before the fake started (epoch seconds).
    end: i64,
    /// Per (account, region), per repository: each image's state.
    targets: Vec<Vec<Mutex<Vec<u8>>>>,
}

/// An ECR error: its `__type` and message.
pub struct Refusal(pub &'static str, pub String);

type Answer = Result<String, Refusal>;

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Registry {
    pub fn new(shape: Shape) -> Registry {
        let targets = (0..shape.accounts.len() * shape.regions.len())
            .map(|t| {
                (0..shape.repositories)
                    .map(|r| Mutex::new(vec![ACTIVE; image_count(&shape, t, r)]))
                    .collect()
            })
            .collect();
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Registry {
            shape,
            end,
            targets,
        }
    }

    /// The images left (not deleted) across the organisation, and how many
    /// of them are archived.
    pub fn remaining(&self) -> (u64, u64) {
        let (mut left, mut archived) = (0, 0);
        for repo in self.targets.iter().flatten() {
            if let Ok(states) = repo.lock() {
                left += states.iter().filter(|s| **s != DELETED).count() as u64;
                archived += states.iter().filter(|s| **s == ARCHIVED).count() as u64;
            }
        }
        (left, archived)
    }

    pub fn total(&self) -> u64 {
        let mut total = 0;
        for repo in self.targets.iter().flatten() {
            if let Ok(states) = repo.lock() {
                total += states.len() as u64;
            }
        }
        total
    }

    fn target(&self, account: &str, region: &str) -> Result<usize, Refusal> {
        let a = self.shape.accounts.iter().position(|x| x == account);
        let r = self.shape.regions.iter().position(|x| x == region);
        match (a, r) {
            (Some(a), Some(r)) => Ok(a * self.shape.regions.len() + r),
            _ => Err(Refusal(
                "RepositoryNotFoundException",
                format!("no registry {account} in {region}"),
            )),
        }
    }

    fn repository(&self, body: &Value) -> Result<usize, Refusal> {
        let name = body["repositoryName"].as_str().unwrap_or_default();
        name.strip_prefix("team/svc-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|r| *r < self.shape.repositories)
            .ok_or_else(|| {
                Refusal(
                    "RepositoryNotFoundException",
                    format!("The repository with name '{name}' does not exist"),
                )
            })
    }

    pub fn answer(&self, operation: &str, account: &str, region: &str, body: &Value) -> Answer {
        let target = self.target(account, region)?;
        match operation {
            "DescribeRepositories" => Ok(self.describe_repositories(account, region, body)),
            "DescribeImages" => self.describe_images(target, account, body),
            "BatchDeleteImage" => self.batch_delete_image(target, body),
            "UpdateImageStorageClass" => self.update_storage_class(target, account, body),
            "BatchGetImage" => Ok(r#"{"images":[],"failures":[]}"#.to_owned()),
            "GetLifecyclePolicy" => Err(Refusal(
                "LifecyclePolicyNotFoundException",
                "Lifecycle policy does not exist".to_owned(),
            )),
            other => Err(Refusal(
                "UnknownOperationException",
                format!("the fake does not serve {other}"),
            )),
        }
    }

    fn describe_repositories(&self, account: &str, region: &str, body: &Value) -> String {
        let (start, size) = page(body);
        let end = (start + size).min(self.shape.repositories);
        let mut out = String::from(r#"{"repositories":["#);
        for r in start..end {
            if r > start {
                out.push(',');
            }
            let _ = write!(
                out,
                r#"{{"repositoryName":"team/svc-{r:04}","registryId":"{account}","repositoryArn":"arn:aws:ecr:{region}:{account}:repository/team/svc-{r:04}","repositoryUri":"{account}.dkr.ecr.{region}.amazonaws.com/team/svc-{r:04}","createdAt":1767225600}}"#
            );
        }
        out.push(']');
        if end < self.shape.repositories {
            let _ = write!(out, r#","nextToken":"{end}""#);
        }
        out.push('}');
        out
    }

    fn describe_images(&self, target: usize, account: &str, body: &Value) -> Answer {
        let repo = self.repository(body)?;
        let states = self.targets[target][repo]
            .lock()
            .map_err(|_| Refusal("ServerException", "poisoned".into()))?;
        let n = states.len();
        let mut out = String::with_capacity(64 * 1024);
        out.push_str(r#"{"imageDetails":["#);
        let mut first = true;
        let mut detail = |i: usize, out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
            image_detail(out, account, (target, repo, i), n, self.end, states[i]);
        };
        if let Some(ids) = body["imageIds"].as_array() {
            for id in ids {
                let digest = id["imageDigest"].as_str().unwrap_or_default();
                match place(digest).filter(|p| p.0 == target && p.1 == repo && p.2 < n) {
                    Some((_, _, i)) if states[i] != DELETED => detail(i, &mut out),
                    _ => {
                        return Err(Refusal(
                            "ImageNotFoundException",
                            format!(
                                "The image with imageId {{imageDigest:'{digest}'}} does not exist"
                            ),
                        ));
                    }
                }
            }
            out.push_str("]}");
            return Ok(out);
        }
        let any = body["filter"]["imageStatus"].as_str() == Some("ANY");
        let (start, size) = page(body);
        let mut i = start;
        let mut listed = 0;
        while i < n && listed < size {
            if states[i] == ACTIVE || (any && states[i] == ARCHIVED) {
                detail(i, &mut out);
                listed += 1;
            }
            i += 1;
        }
        out.push(']');
        if i < n {
            let _ = write!(out, r#","nextToken":"{i}""#);
        }
        out.push('}');
        Ok(out)
    }

    fn batch_delete_image(&self, target: usize, body: &Value) -> Answer {
        let repo = self.repository(body)?;
        let mut states = self.targets[target][repo]
            .lock()
            .map_err(|_| Refusal("ServerException", "poisoned".into()))?;
        let n = states.len();
        let (mut deleted, mut failures) = (Vec::new(), Vec::new());
        for id in body["imageIds"].as_array().into_iter().flatten() {
            let digest = id["imageDigest"].as_str().unwrap_or_default();
            match place(digest).filter(|p| p.0 == target && p.1 == repo && p.2 < n) {
                Some((_, _, i)) if states[i] != DELETED => {
                    states[i] = DELETED;
                    deleted.push(format!(r#"{{"imageDigest":"{digest}"}}"#));
                }
                _ => failures.push(format!(
                    r#"{{"imageId":{{"imageDigest":"{digest}"}},"failureCode":"ImageNotFound","failureReason":"Requested image not found"}}"#
                )),
            }
        }
        Ok(format!(
            r#"{{"imageIds":[{}],"failures":[{}]}}"#,
            deleted.join(","),
            failures.join(",")
        ))
    }

    fn update_storage_class(&self, target: usize, account: &str, body: &Value) -> Answer {
        let repo = self.repository(body)?;
        let mut states = self.targets[target][repo]
            .lock()
            .map_err(|_| Refusal("ServerException", "poisoned".into()))?;
        let digest = body["imageId"]["imageDigest"].as_str().unwrap_or_default();
        let n = states.len();
        let Some((_, _, i)) = place(digest).filter(|p| p.0 == target && p.1 == repo && p.2 < n)
        else {
            return Err(Refusal(
                "ImageNotFoundException",
                format!("no image {digest}"),
            ));
        };
        let (state, status) = match body["targetStorageClass"].as_str() {
            Some("ARCHIVE") => (ARCHIVED, "ARCHIVED"),
            _ => (ACTIVE, "ACTIVATING"),
        };
        states[i] = state;
        Ok(format!(
            r#"{{"registryId":"{account}","repositoryName":"team/svc-{repo:04}","imageId":{{"imageDigest":"{digest}"}},"imageStatus":"{status}"}}"#
        ))
    }
}

/// How many images repository `r` of target `t` holds.
fn image_count(shape: &Shape, t: usize, r: usize) -> usize {
    let spread = shape.images_high.saturating_sub(shape.images_low) + 1;
    shape.images_low + (mix(((t as u64) << 32) | r as u64) % spread as u64) as usize
}

/// `maxResults` (ECR's default 100, at most 1,000) and where `nextToken`
/// says to start.
fn page(body: &Value) -> (usize, usize) {
    let size = body["maxResults"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
    let start = body["nextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (start, size)
}

/// The digest of image `i` of repository `r` in target `t`: the place in
/// the first 24 hex digits, the rest a hash of it.
fn digest(t: usize, r: usize, i: usize) -> String {
    let place = ((t as u64) << 48) | ((r as u64) << 24) | i as u64;
    format!(
        "sha256:{t:04x}{r:010x}{i:010x}{:016x}{:016x}{:08x}",
        mix(place),
        mix(place ^ 0x5555),
        mix(place ^ 0xaaaa) as u32
    )
}

/// The place a digest encodes, if it is one of ours.
fn place(digest: &str) -> Option<(usize, usize, usize)> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let t = usize::from_str_radix(hex.get(0..4)?, 16).ok()?;
    let r = usize::from_str_radix(hex.get(4..14)?, 16).ok()?;
    let i = usize::from_str_radix(hex.get(14..24)?, 16).ok()?;
    (digest == self::digest(t, r, i)).then_some((t, r, i))
}

fn image_detail(
    out: &mut String,
    account: &str,
    (t, r, i): (usize, usize, usize),
    n: usize,
    end: i64,
    state: u8,
) {
    let pushed = end - YEAR + (i as i64 * YEAR) / n.max(1) as i64;
    let _ = write!(
        out,
        r#"{{"registryId":"{account}","repositoryName":"team/svc-{r:04}","imageDigest":"{}","#,
        digest(t, r, i)
    );
    match i % 10 {
        0 => {
            let _ = write!(out, r#""imageTags":["v1.{}.{}"],"#, i / 100, i % 100);
        }
        1..=3 => {
            let _ = write!(out, r#""imageTags":["feature-{}","sha-{i:x}"],"#, i % 7);
        }
        4..=6 => {
            let _ = write!(out, r#""imageTags":["sha-{i:x}"],"#);
        }
        _ => {}
    }
    let status = if state == ARCHIVED {
        "ARCHIVED"
    } else {
        "ACTIVE"
    };
    let _ = write!(
        out,
        r#""imageSizeInBytes":50000000,"imagePushedAt":{pushed},"imageManifestMediaType":"application/vnd.oci.image.manifest.v1+json","artifactMediaType":"application/vnd.oci.image.config.v1+json","imageStatus":"{status}"}}"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_names_its_place() {
        for (t, r, i) in [(0, 0, 0), (5, 1999, 499), (1, 2, 3)] {
            assert_eq!(place(&digest(t, r, i)), Some((t, r, i)));
        }
        assert_eq!(place("sha256:00"), None);
    }
}
