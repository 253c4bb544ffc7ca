//! The EKS source: what runs, and what may start, in every EKS cluster of
//! the account and region (or the clusters the settings name), read from
//! each cluster's Kubernetes API ([`kubernetes`](super::kubernetes)).
//!
//! The cluster is found with `eks:ListClusters` and `eks:DescribeCluster`
//! (its endpoint and certificate authority). The Kubernetes API is called
//! as AWS's own tooling calls it (`aws eks get-token`): with a bearer token
//! that is a presigned STS `GetCallerIdentity` URL naming the cluster in
//! its signed `x-k8s-aws-id` header, which EKS checks against the
//! cluster's access entries. A fresh token is signed for every request, so
//! none expires during a long read.
//!
//! A cluster that is not ACTIVE or has no endpoint yet runs nothing the API
//! can show; one that cannot be read, for any other reason, fails the
//! source.

use std::time::{Duration, SystemTime};

use aws_sdk_eks::types::ClusterStatus;
use aws_sdk_sts::config::ProvideCredentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use super::kubernetes::{Cluster, Token};
use super::{InUse, in_workload};
use crate::aws::{CallError, Clients, paginate};

/// How long a token is valid, as `aws eks get-token` signs it.
const TOKEN_EXPIRES: Duration = Duration::from_secs(60);

/// The prefix EKS's authenticator expects before the base64url URL.
const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// Every reference in use in the clusters: all of them, or only `named`.
pub async fn read(clients: &Clients, named: Option<&[String]>) -> Result<Vec<InUse>, CallError> {
    let eks = &clients.eks;
    let names = match named {
        Some(named) => named.to_vec(),
        None => list_clusters(eks).await?,
    };
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let signer = Signer::of(clients)?;
    let mut uses = Vec::new();
    for name in names {
        let workload = format!("eks:{name}");
        let Some(cluster) = describe(eks, &name)
            .await
            .map_err(|e| in_workload(e, &workload))?
        else {
            continue;
        };
        let (signer, name) = (&signer, name.as_str());
        let found = cluster.read(move || signer.token(name)).await;
        uses.extend(found.map_err(|e| in_workload(e, &workload))?);
    }
    Ok(uses)
}

async fn list_clusters(eks: &aws_sdk_eks::Client) -> Result<Vec<String>, CallError> {
    paginate(
        "ListClusters",
        |token| {
            eks.list_clusters()
                .max_results(100)
                .set_next_token(token)
                .send()
        },
        |page| {
            Ok((
                page.clusters().to_vec(),
                page.next_token().map(str::to_owned),
            ))
        },
    )
    .await
}

/// The cluster's endpoint and certificate authority; `None` for a cluster
/// that runs nothing yet (CREATING without an endpoint).
async fn describe(eks: &aws_sdk_eks::Client, name: &str) -> Result<Option<Cluster>, CallError> {
    const OP: &str = "DescribeCluster";
    let out = eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| CallError::from_sdk(OP, &e))?;
    let Some(cluster) = out.cluster() else {
        return Err(CallError::new(
            OP,
            "InvalidResponse",
            "no cluster in the answer",
        ));
    };
    let Some(endpoint) = cluster.endpoint() else {
        if cluster.status() == Some(&ClusterStatus::Creating) {
            return Ok(None);
        }
        return Err(CallError::new(
            OP,
            "NoEndpoint",
            "the cluster has no API endpoint",
        ));
    };
    let authority = cluster
        .certificate_authority()
        .and_then(|c| c.data())
        .ok_or_else(|| CallError::new(OP, "NoCertificateAuthority", "no certificate authority"))?;
    let pem = aws_smithy_types::base64::decode(authority).map_err(|e| {
        CallError::new(OP, "InvalidResponse", format!("certificate authority: {e}"))
    })?;
    Cluster::new(name, endpoint, &pem).map(Some)
}

/// Signs tokens with the credentials and region of the target's clients
/// (an assumed role reads its own account's clusters).
struct Signer {
    credentials: aws_sdk_sts::config::SharedCredentialsProvider,
    region: String,
}

impl Signer {
    fn of(clients: &Clients) -> Result<Signer, CallError> {
        const OP: &str = "GetToken";
        let credentials = clients
            .credentials
            .clone()
            .ok_or_else(|| CallError::new(OP, "NoCredentials", "no credentials to sign with"))?;
        let region = clients
            .region
            .clone()
            .ok_or_else(|| CallError::new(OP, "NoRegion", "no region to sign for"))?;
        Ok(Signer {
            credentials,
            region,
        })
    }

    /// A bearer token for `cluster`, signed now.
    async fn token(&self, cluster: &str) -> Result<Token, CallError> {
        const OP: &str = "GetToken";
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| CallError::new(OP, "NoCredentials", e.to_string()))?;
        presign(cluster, &self.region, credentials, SystemTime::now())
            .map_err(|e| CallError::new(OP, "SigningFailed", e))
    }
}

/// The STS host of `region`'s partition.
fn sts_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// `k8s-aws-v1.` and the base64url (unpadded) of a GetCallerIdentity URL
/// presigned at `now` for 60 seconds, with `x-k8s-aws-id: <cluster>` signed.
fn presign(
    cluster: &str,
    region: &str,
    credentials: aws_sdk_sts::config::Credentials,
    now: SystemTime,
) -> Result<Token, String> {
    let url = format!(
        "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
        sts_host(region)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_EXPIRES);
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers = [("x-k8s-aws-id", cluster)];
    let signable = SignableRequest::new(
        "GET",
        &url,
        headers.into_iter(),
        // An empty payload's hash, as `aws eks get-token` signs it; STS
        // does not take UNSIGNED-PAYLOAD.
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut request = http::Request::get(&url)
        .body(())
        .map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    let signed = request.uri().to_string();
    let encoded = aws_smithy_types::base64::encode(signed.as_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    Ok(Token(format!("{TOKEN_PREFIX}{encoded}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token is the presigned URL, base64url without padding, after
    /// `k8s-aws-v1.`: STS's regional host, GetCallerIdentity, 60 seconds,
    /// `x-k8s-aws-id` among the signed headers, the access key and date in
    /// the credential scope.
    #[test]
    fn a_token_is_a_presigned_get_caller_identity() {
        let credentials =
            aws_sdk_sts::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let check = |region: &str, host: &str| {
            let Token(token) = presign("prod", region, credentials.clone(), now).unwrap();
            let encoded = token.strip_prefix(TOKEN_PREFIX).unwrap();
            assert!(!encoded.contains(['=', '+', '/']), "{encoded}");
            let standard = encoded.replace('-', "+").replace('_', "/");
            let padded = format!("{standard}{}", "=".repeat((4 - standard.len() % 4) % 4));
            let url = String::from_utf8(aws_smithy_types::base64::decode(padded).unwrap()).unwrap();
            assert!(url.starts_with(&format!("https://{host}/?")), "{url}");
            for part in [
                "Action=GetCallerIdentity",
                "Version=2011-06-15",
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                &format!("X-Amz-Credential=AKIDEXAMPLE%2F20261118%2F{region}%2Fsts%2Faws4_request"),
                "X-Amz-Date=20261118T",
                "X-Amz-Expires=60",
                "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
                "X-Amz-Signature=",
            ] {
                assert!(url.contains(part), "{part}: {url}");
            }
        };
        check("us-east-1", "sts.us-east-1.amazonaws.com");
        check("cn-north-1", "sts.cn-north-1.amazonaws.com.cn");
    }
}
