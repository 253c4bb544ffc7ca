//! One SDK client per ECR operation and registry, each in its own retry
//! partition.
//!
//! ECR's rate limits are per account, region and operation. The SDK's
//! adaptive rate limiter and its retry quota are per retry partition, and
//! by default every ECR client of a process shares one per region
//! (`ecr-us-east-1`): one account's throttled deletes would slow every other
//! account's listings in that region, and spend their retries. A lane per
//! (registry, region, operation) backs off where ECR pushed back, and only
//! there.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::config::retry::RetryPartition;

/// The clients of one registry, one per operation ecr-gc calls.
#[derive(Debug, Clone)]
pub(super) struct Lanes {
    pub describe_repositories: Client,
    pub describe_images: Client,
    pub list_images: Client,
    pub batch_get_image: Client,
    pub batch_delete_image: Client,
    pub update_image_storage_class: Client,
    pub get_lifecycle_policy: Client,
}

impl Lanes {
    /// Lanes with `client`'s configuration (endpoint, credentials, retry
    /// mode, timeouts), for `registry` (`None`: the caller's own).
    pub(super) fn new(client: &Client, registry: Option<&str>) -> Lanes {
        let config = client.config();
        let region = config.region().map_or("default", |r| r.as_ref());
        let registry = registry.unwrap_or("own");
        let lane = |operation: &str| {
            let partition = RetryPartition::new(format!("ecr-{registry}-{region}-{operation}"));
            Client::from_conf(config.to_builder().retry_partition(partition).build())
        };
        Lanes {
            describe_repositories: lane("DescribeRepositories"),
            describe_images: lane("DescribeImages"),
            list_images: lane("ListImages"),
            batch_get_image: lane("BatchGetImage"),
            batch_delete_image: lane("BatchDeleteImage"),
            update_image_storage_class: lane("UpdateImageStorageClass"),
            get_lifecycle_policy: lane("GetLifecyclePolicy"),
        }
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
    }
}
