//! One SDK client per ECR operation and registry, each paced on its own
//! and in its own retry partition.
//!
//! ECR's rate limits are per account, region and operation. The SDK's
//! adaptive rate limiter and its retry quota are per retry partition, and
//! by default every ECR client of a process shares one per region
//! (`ecr-us-east-1`): one account's throttled deletes would slow every other
//! account's listings in that region, and spend their retries. A lane per
//! (registry, region, operation) backs off where ECR pushed back, and only
//! there. Its [`Pace`] spaces the requests ecr-gc sends under the limit it
//! learns from each answer (an interceptor sees every attempt, retries
//! included). The SDK retries in its standard mode; a call whose attempts
//! were all throttled goes back through the pace ([`Lane::paced`]), so no
//! call fails for a few unlucky retries.
//!
//! Measured (BENCHMARKS.md): with one partition per region and no pace, a
//! run over 1,200 repositories at 20 requests a second per operation took
//! 2.3 times the ideal; with lanes, pace and 16 repositories at once, 1.03
//! times, with about 1 % of requests throttled. The SDK's adaptive mode on
//! top of the pace cut a lane to a tenth of the limit for seconds after a
//! throttle: 1.4 to 1.5 times the ideal at 100 a second, against 1.03 in
//! standard mode.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use aws_sdk_ecr::Client;
use aws_sdk_ecr::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_ecr::config::retry::{RetryConfig, RetryMode, RetryPartition};
use aws_sdk_ecr::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ecr::error::{BoxError, ProvideErrorMetadata};
use aws_sdk_ecr::operation::{
    batch_delete_image::BatchDeleteImageError, batch_get_image::BatchGetImageError,
    describe_images::DescribeImagesError, describe_repositories::DescribeRepositoriesError,
    get_lifecycle_policy::GetLifecyclePolicyError, list_images::ListImagesError,
    update_image_storage_class::UpdateImageStorageClassError,
};

use super::pace::Pace;

/// The clients of one registry, one per operation ecr-gc calls.
#[derive(Debug, Clone)]
pub(super) struct Lanes {
    pub describe_repositories: Lane,
    pub describe_images: Lane,
    pub list_images: Lane,
    pub batch_get_image: Lane,
    pub batch_delete_image: Lane,
    pub update_image_storage_class: Lane,
    pub get_lifecycle_policy: Lane,
}

/// One operation's client and its pace.
#[derive(Debug, Clone)]
pub(super) struct Lane {
    client: Client,
    pace: Arc<Pace>,
}

impl Deref for Lane {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// How many times a call goes back through its lane's pace after the SDK's
/// attempts all ended throttled, before its throttling error is returned.
const THROTTLED_ROUNDS: u32 = 3;

impl Lane {
    /// Sends `request` with `send` (its `send()`) at this lane's next slot.
    /// The SDK retries within a call without the pace; if every attempt was
    /// throttled, the call goes back through the pace (which has slowed down
    /// meanwhile), up to [`THROTTLED_ROUNDS`] more times.
    pub async fn paced<B, F, Fut, O, E>(&self, request: B, send: F) -> Result<O, E>
    where
        B: Clone,
        F: Fn(B) -> Fut,
        Fut: Future<Output = Result<O, E>>,
        E: ProvideErrorMetadata,
    {
        let mut round = 0;
        loop {
            self.pace.ready().await;
            let answer = send(request.clone()).await;
            match &answer {
                Err(error)
                    if round < THROTTLED_ROUNDS
                        && error.code().is_some_and(|code| THROTTLING.contains(&code)) =>
                {
                    round += 1;
                }
                _ => return answer,
            }
        }
    }
}

impl Lanes {
    /// Lanes with `client`'s configuration (endpoint, credentials,
    /// attempts, timeouts), for `registry` (`None`: the caller's own).
    pub(super) fn new(client: &Client, registry: Option<&str>) -> Lanes {
        let config = client.config();
        let region = config.region().map_or("default", |r| r.as_ref());
        let registry = registry.unwrap_or("own");
        // Standard mode: the lane's pace is the client-side rate limiter.
        // The SDK's adaptive limiter on top of it cut a lane to a tenth of
        // ECR's limit for seconds after a single throttle (BENCHMARKS.md).
        let retry = config
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::standard)
            .with_retry_mode(RetryMode::Standard);
        let lane = |operation: &str, observe: fn(Arc<Pace>) -> Box<dyn Observer>| {
            let pace = Arc::new(Pace::default());
            let partition = RetryPartition::new(format!("ecr-{registry}-{region}-{operation}"));
            let client = Client::from_conf(
                config
                    .to_builder()
                    .retry_config(retry.clone())
                    .retry_partition(partition)
                    .interceptor(ObserveBox(observe(pace.clone())))
                    .build(),
            );
            Lane { client, pace }
        };
        Lanes {
            describe_repositories: lane(
                "DescribeRepositories",
                Observe::<DescribeRepositoriesError>::boxed,
            ),
            describe_images: lane("DescribeImages", Observe::<DescribeImagesError>::boxed),
            list_images: lane("ListImages", Observe::<ListImagesError>::boxed),
            batch_get_image: lane("BatchGetImage", Observe::<BatchGetImageError>::boxed),
            batch_delete_image: lane("BatchDeleteImage", Observe::<BatchDeleteImageError>::boxed),
            update_image_storage_class: lane(
                "UpdateImageStorageClass",
                Observe::<UpdateImageStorageClassError>::boxed,
            ),
            get_lifecycle_policy: lane(
                "GetLifecyclePolicy",
                Observe::<GetLifecyclePolicyError>::boxed,
            ),
        }
    }
}

/// The error codes AWS answers when a rate limit is hit.
const THROTTLING: [&str; 5] = [
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Tells a pace how each attempt was answered.
trait Observer: Send + Sync + fmt::Debug {
    fn attempt(&self, context: &FinalizerInterceptorContextRef<'_>);
}

/// The observer of one operation, whose errors are `E`.
struct Observe<E> {
    pace: Arc<Pace>,
    error: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for Observe<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observe")
    }
}

impl<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static> Observe<E> {
    fn boxed(pace: Arc<Pace>) -> Box<dyn Observer> {
        Box::new(Observe::<E> {
            pace,
            error: PhantomData,
        })
    }
}

impl<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static> Observer for Observe<E> {
    fn attempt(&self, context: &FinalizerInterceptorContextRef<'_>) {
        let throttled = match context.output_or_error() {
            Some(Err(error)) => error
                .as_operation_error()
                .and_then(|e| e.downcast_ref::<E>())
                .and_then(ProvideErrorMetadata::code)
                .is_some_and(|code| THROTTLING.contains(&code)),
            _ => false,
        };
        self.pace.answered(throttled);
    }
}

/// The SDK's interceptor around an [`Observer`].
#[derive(Debug)]
struct ObserveBox(Box<dyn Observer>);

impl Intercept for ObserveBox {
    fn name(&self) -> &'static str {
        "ecr-gc lane pace"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.attempt(context);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::config::{BehaviorVersion, Region};

    fn partition(client: &Client) -> String {
        client.config().retry_partition().unwrap().to_string()
    }

    /// Each (registry, region, operation) backs off on its own.
    #[test]
    fn each_registry_and_operation_has_its_own_partition() {
        let config = aws_sdk_ecr::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let client = Client::from_conf(config);
        let one = Lanes::new(&client, Some("111122223333"));
        let other = Lanes::new(&client, Some("444455556666"));
        let own = Lanes::new(&client, None);
        for (lanes, expected) in [
            (&one, "ecr-111122223333-eu-west-1-DescribeImages"),
            (&other, "ecr-444455556666-eu-west-1-DescribeImages"),
            (&own, "ecr-own-eu-west-1-DescribeImages"),
        ] {
            assert_eq!(partition(&lanes.describe_images), expected);
        }
        assert_eq!(
            partition(&one.batch_delete_image),
            "ecr-111122223333-eu-west-1-BatchDeleteImage"
        );
        let retry = one.batch_delete_image.config().retry_config().unwrap();
        assert_eq!(
            retry.mode(),
            RetryMode::Standard,
            "the pace limits the rate"
        );
    }

    /// A call whose attempts were all throttled goes back through the pace,
    /// a bounded number of times; any other answer is returned at once.
    #[tokio::test]
    async fn a_throttled_call_goes_back_through_the_pace() {
        use aws_sdk_ecr::error::ErrorMetadata;
        use std::sync::atomic::{AtomicU32, Ordering};
        let config = aws_sdk_ecr::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let lanes = Lanes::new(&Client::from_conf(config), None);
        let error = |code: &str| ErrorMetadata::builder().code(code).build();
        for (answers, sent, ok) in [
            (
                vec![error("ThrottlingException"), error("ThrottlingException")],
                3,
                true,
            ),
            (
                vec![error("ThrottlingException"); 9],
                1 + THROTTLED_ROUNDS,
                false,
            ),
            (vec![error("AccessDeniedException")], 1, false),
        ] {
            let calls = AtomicU32::new(0);
            let answer = lanes
                .batch_delete_image
                .paced((), |()| {
                    let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
                    let answer = answers.get(n).cloned().map_or(Ok(()), Err);
                    async move { answer }
                })
                .await;
            assert_eq!(calls.load(Ordering::SeqCst), sent, "{answers:?}");
            assert_eq!(answer.is_ok(), ok, "{answers:?}");
        }
    }
}
