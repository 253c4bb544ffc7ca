//! A repository's own lifecycle policy: GetLifecyclePolicy, read once per
//! repository when `settings.policySource` is `repository`. A repository
//! without one (`LifecyclePolicyNotFoundException`) has none; every other
//! failure is an error, so the repository is left alone.

use super::{Ecr, EcrError, bump};

impl Ecr {
    /// The `lifecyclePolicyText` of the repository, if it has a policy.
    pub async fn lifecycle_policy(&self, repository: &str) -> Result<Option<String>, EcrError> {
        const OP: &str = "GetLifecyclePolicy";
        bump(&self.calls.get_lifecycle_policy);
        let answer = self
            .lanes
            .get_lifecycle_policy
            .paced(
                self.lanes
                    .get_lifecycle_policy
                    .get_lifecycle_policy()
                    .set_registry_id(self.registry_id.clone())
                    .repository_name(repository),
                |request| request.send(),
            )
            .await;
        match answer {
            Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_owned)),
            Err(error) => {
                let error = EcrError::from_sdk(OP, error);
                if error.code() == "LifecyclePolicyNotFoundException" {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }
}
