//! What the emulator cannot do, through `aws-smithy-mocks`: real paging at
//! `maxResults`, repeated tokens, and per-image failures of every code.

use std::sync::{Arc, Mutex};

use aws_sdk_ecr::Client;
use aws_sdk_ecr::operation::batch_delete_image::{BatchDeleteImageError, BatchDeleteImageOutput};
use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
use aws_sdk_ecr::types::{
    ImageDetail, ImageFailure, ImageFailureCode, ImageIdentifier, Repository,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use chrono::Utc;
use ecr_gc::aws::ecr::{Ecr, EcrError};
use ecr_gc::inventory::Inventory;
use ecr_gc::policy::Policy;
use ecr_gc::run::engine::{self, Run, Scope};
use ecr_gc::run::lines::Collected;

fn digest(i: usize) -> String {
    format!("sha256:{i:064x}")
}

fn detail(i: usize) -> ImageDetail {
    ImageDetail::builder()
        .image_digest(digest(i))
        .image_tags(format!("t{i}"))
        .image_pushed_at(DateTime::from_secs(1_700_000_000 + i as i64))
        .image_size_in_bytes(10)
        .build()
}

/// Transient-failure retries without the wait.
const FAST_RETRY: ecr_gc::aws::ecr::ImageRetry = ecr_gc::aws::ecr::ImageRetry {
    attempts: 3,
    base_delay: std::time::Duration::from_millis(1),
};

/// The (maxResults, nextToken) of each request a mock saw.
type Requests = Arc<Mutex<Vec<(Option<i32>, Option<String>)>>>;

/// A DescribeImages rule that serves `total` images in pages of
/// `maxResults`, recording each request's (maxResults, nextToken).
fn paged_describe_images(total: usize, seen: Requests) -> aws_smithy_mocks::Rule {
    mock!(Client::describe_images).then_compute_output(move |req| {
        seen.lock()
            .unwrap()
            .push((req.max_results(), req.next_token().map(str::to_owned)));
        let page = req.max_results().unwrap_or(100) as usize;
        let start: usize = req.next_token().map(|t| t.parse().unwrap()).unwrap_or(0);
        let end = (start + page).min(total);
        DescribeImagesOutput::builder()
            .set_image_details(Some((start..end).map(detail).collect()))
            .set_next_token((end < total).then(|| end.to_string()))
            .build()
    })
}

#[tokio::test]
async fn describe_images_follows_every_page_at_1000() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule = paged_describe_images(2_500, seen.clone());
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let ecr = Ecr::new(client, None);
    let images = ecr.images("r").await.unwrap();
    assert_eq!(images.len(), 2_500);
    assert_eq!(images[2_499].image_digest, digest(2_499));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Some(1000), None),
            (Some(1000), Some("1000".into())),
            (Some(1000), Some("2000".into()))
        ]
    );
    assert_eq!(ecr.api_calls().describe_images, 3);
}

#[tokio::test]
async fn describe_repositories_follows_every_page_at_1000() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rule = mock!(Client::describe_repositories).then_compute_output(move |req| {
        log.lock()
            .unwrap()
            .push((req.max_results(), req.next_token().map(str::to_owned)));
        let start: usize = req.next_token().map(|t| t.parse().unwrap()).unwrap_or(0);
        let end = (start + req.max_results().unwrap_or(100) as usize).min(1_001);
        DescribeRepositoriesOutput::builder()
            .set_repositories(Some(
                (start..end)
                    .map(|i| {
                        Repository::builder()
                            .repository_name(format!("repo-{i:04}"))
                            .build()
                    })
                    .collect(),
            ))
            .set_next_token((end < 1_001).then(|| end.to_string()))
            .build()
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let names = Ecr::new(client, None).repository_names().await.unwrap();
    assert_eq!(names.len(), 1_001);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_repeated_token_stops_the_listing() {
    let rule = mock!(Client::describe_images).then_compute_output(|_| {
        DescribeImagesOutput::builder()
            .image_details(detail(1))
            .next_token("same")
            .build()
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
    let error = Ecr::new(client, None).images("r").await.unwrap_err();
    assert_eq!(
        error,
        EcrError::RepeatedToken {
            operation: "DescribeImages"
        }
    );
}

/// Every ImageFailureCode ECR documents, in one successful response, kept
/// verbatim and logged; the rest of the batch is deleted.
#[tokio::test]
async fn every_failure_code_is_kept_verbatim_and_logged() {
    let codes = [
        ImageFailureCode::InvalidImageDigest,
        ImageFailureCode::InvalidImageTag,
        ImageFailureCode::ImageTagDoesNotMatchDigest,
        ImageFailureCode::ImageNotFound,
        ImageFailureCode::MissingDigestAndTag,
        ImageFailureCode::ImageReferencedByManifestList,
        ImageFailureCode::KmsError,
        ImageFailureCode::UpstreamAccessDenied,
        ImageFailureCode::UpstreamTooManyRequests,
        ImageFailureCode::UpstreamUnavailable,
        ImageFailureCode::ImageInaccessible,
    ];
    let images: Vec<ImageDetail> = (0..250).map(detail).collect();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = batches.clone();
    let served = codes.clone();
    let describe = mock!(Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .set_image_details(Some(images.clone()))
            .build()
    });
    let delete = mock!(Client::batch_delete_image).then_compute_output(move |req| {
        let ids = req.image_ids();
        seen.lock().unwrap().push(ids.len());
        let mut out = BatchDeleteImageOutput::builder();
        for id in ids {
            let d = id.image_digest().unwrap();
            let i = usize::from_str_radix(d.trim_start_matches("sha256:"), 16).unwrap();
            if i < served.len() {
                out = out.failures(
                    ImageFailure::builder()
                        .image_id(
                            ImageIdentifier::builder()
                                .image_digest(d)
                                .image_tag(format!("t{i}"))
                                .build(),
                        )
                        .failure_code(served[i].clone())
                        .failure_reason(format!("reason {i}: {}", served[i].as_str()))
                        .build(),
                );
            } else {
                out = out.image_ids(
                    ImageIdentifier::builder()
                        .image_digest(d)
                        .image_tag(format!("t{i}"))
                        .build(),
                );
            }
        }
        out.build()
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &delete]);
    let ecr = Ecr::new(client, None).with_image_retry(FAST_RETRY);
    let policy = Policy::parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}],
            "settings":{"allowDeletingEveryImage":true}}"#,
    )
    .unwrap();
    let log = Collected::default();
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![crate::support::repo("rr")]),
        dry_run: false,
        now: Utc::now(),
        stop_at: None,
        detail: Default::default(),
    };
    let report = engine::run(&ecr, &Inventory::none(), &policy, &run, &log)
        .await
        .unwrap();

    // The three transient codes (in the oldest, last chunk) are retried,
    // for those images only, three times.
    assert_eq!(*batches.lock().unwrap(), [100, 100, 50, 3, 3, 3]);
    let repo = &report.repositories[0];
    assert_eq!(repo.planned.len(), 250);
    assert_eq!(repo.deleted.len(), 250 - codes.len());
    // ImageNotFound means already gone: logged, not a failure.
    let not_found = codes
        .iter()
        .position(|c| *c == ImageFailureCode::ImageNotFound)
        .unwrap();
    assert_eq!(repo.failed.len(), codes.len() - 1);
    assert!(
        repo.failed
            .iter()
            .all(|f| f.failure_code != "ImageNotFound")
    );
    let gone: Vec<&str> = repo
        .skipped
        .iter()
        .map(|s| s.image_digest.as_str())
        .collect();
    assert_eq!(gone, [digest(not_found).as_str()]);
    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "image already gone" && l["imageDigest"] == digest(not_found))
    );
    for (i, code) in codes.iter().enumerate() {
        if i == not_found {
            continue;
        }
        let failure = repo
            .failed
            .iter()
            .find(|f| f.failure_code == code.as_str())
            .unwrap();
        assert_eq!(
            failure.failure_reason,
            format!("reason {i}: {}", code.as_str())
        );
        assert_eq!(
            failure.image_id.image_digest.as_deref(),
            Some(digest(i).as_str())
        );
        assert!(
            lines.iter().any(|l| l["message"] == "image not deleted"
                && l["failureCode"] == code.as_str()
                && l["failureReason"] == failure.failure_reason
                && l["imageTag"] == format!("t{i}")
                && l["imageDigest"] == digest(i)
                && l["repositoryName"] == "rr"),
            "no log line for {code:?}"
        );
    }
    assert!(report.has_failures());
    assert_eq!(
        report.api_calls.list_images, 0,
        "every image was accounted for"
    );
}

#[tokio::test]
async fn a_failed_call_reports_each_image_of_its_batch() {
    let delete = mock!(Client::batch_delete_image).then_error(|| {
        BatchDeleteImageError::generic(
            aws_sdk_ecr::error::ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&delete]);
    let outcome = Ecr::new(client, None)
        .delete("r", &[digest(1), digest(2)])
        .await;
    assert!(outcome.deleted.is_empty());
    assert_eq!(outcome.failures.len(), 2);
    assert_eq!(outcome.failures[0].failure_code, "ThrottlingException");
    assert!(outcome.failures[0].failure_reason.contains("Rate exceeded"));
}

/// moto cannot serve running tasks to the Rust SDK, so the task path of the
/// ECS source is tested here: the digest ECS reports wins over the tag.
#[tokio::test]
async fn ecs_tasks_are_in_use_by_the_digest_ecs_reports() {
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_clusters::ListClustersOutput;
    use aws_sdk_ecs::operation::list_services::ListServicesOutput;
    use aws_sdk_ecs::operation::list_task_definition_families::ListTaskDefinitionFamiliesOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::types::{Container, DesiredStatus, Task};

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
    let clusters = mock!(aws_sdk_ecs::Client::list_clusters)
        .then_output(|| ListClustersOutput::builder().cluster_arns(CLUSTER).build());
    let tasks = mock!(aws_sdk_ecs::Client::list_tasks).then_compute_output(|req| {
        let arn = match req.desired_status() {
            Some(DesiredStatus::Running) => "arn:aws:ecs:us-east-1:123456789012:task/prod/running",
            _ => "arn:aws:ecs:us-east-1:123456789012:task/prod/pending",
        };
        ListTasksOutput::builder().task_arns(arn).build()
    });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(|req| {
        assert_eq!(req.tasks().len(), 2, "running and pending, in one call");
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:123456789012:task/prod/running")
                    .containers(
                        Container::builder()
                            .image(format!("{HOST}/web:v1"))
                            .image_digest(digest(1))
                            .build(),
                    )
                    .containers(Container::builder().image(format!("{HOST}/web:v2")).build())
                    .build(),
            )
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:123456789012:task/prod/pending")
                    .containers(
                        Container::builder()
                            .image(format!("{HOST}/web@{}", digest(3)))
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let services = mock!(aws_sdk_ecs::Client::list_services)
        .then_output(|| ListServicesOutput::builder().build());
    let families = mock!(aws_sdk_ecs::Client::list_task_definition_families)
        .then_output(|| ListTaskDefinitionFamiliesOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&clusters, &tasks, &describe, &services, &families]
    );

    let uses = ecr_gc::inventory::ecs::read(&client, 5).await.unwrap();
    let got: Vec<(String, Option<String>, Option<String>)> = uses
        .into_iter()
        .map(|u| (u.workload, u.reference.tag, u.reference.digest))
        .collect();
    assert_eq!(
        got,
        [
            (
                "ecs:prod/task/running".into(),
                Some("v1".into()),
                Some(digest(1))
            ),
            ("ecs:prod/task/running".into(), Some("v2".into()), None),
            ("ecs:prod/task/pending".into(), None, Some(digest(3))),
        ]
    );
}

/// A transient per-image failure that clears on retry ends in a deletion.
#[tokio::test]
async fn a_transient_failure_is_retried_until_it_clears() {
    let calls = Arc::new(Mutex::new(0));
    let seen = calls.clone();
    let delete = mock!(Client::batch_delete_image).then_compute_output(move |req| {
        let mut n = seen.lock().unwrap();
        *n += 1;
        let mut out = BatchDeleteImageOutput::builder();
        for id in req.image_ids() {
            let d = id.image_digest().unwrap();
            if *n < 3 && d == digest(1) {
                out = out.failures(
                    ImageFailure::builder()
                        .image_id(ImageIdentifier::builder().image_digest(d).build())
                        .failure_code(ImageFailureCode::UpstreamUnavailable)
                        .failure_reason("upstream unavailable")
                        .build(),
                );
            } else {
                out = out.image_ids(ImageIdentifier::builder().image_digest(d).build());
            }
        }
        out.build()
    });
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&delete]);
    let ecr = Ecr::new(client, None).with_image_retry(FAST_RETRY);
    let outcome = ecr.delete("r", &[digest(1), digest(2)]).await;
    assert_eq!(outcome.deleted, [digest(2), digest(1)]);
    assert!(outcome.failures.is_empty());
    assert_eq!(*calls.lock().unwrap(), 3);
    assert_eq!(ecr.api_calls().batch_delete_image, 3);
}

/// A deadline that falls mid-run: the first repository's listing is slow,
/// so its deletions are not attempted and the second repository is not
/// started. Both are reported, and nothing is deleted.
#[tokio::test]
async fn a_deadline_mid_run_stops_new_work_and_reports_what_is_left() {
    let listed = Arc::new(Mutex::new(Vec::new()));
    let seen = listed.clone();
    let describe = mock!(Client::describe_images).then_compute_output(move |req| {
        seen.lock()
            .unwrap()
            .push(req.repository_name().unwrap_or_default().to_owned());
        // The listing takes longer than the time left.
        std::thread::sleep(std::time::Duration::from_millis(300));
        DescribeImagesOutput::builder()
            .set_image_details(Some((0..5).map(detail).collect()))
            .build()
    });
    let delete = mock!(Client::batch_delete_image)
        .then_compute_output(|_| panic!("no delete may start after the stop time"));
    let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&describe, &delete]);
    let stop_at = std::time::Instant::now() + std::time::Duration::from_millis(100);
    let ecr = Ecr::new(client, None).with_stop_at(Some(stop_at));
    let policy = Policy::parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}],
            "settings":{"gracePeriodMinutes":0}}"#,
    )
    .unwrap();
    let run = Run {
        trigger: ecr_gc::run::report::Cause::Manual,
        scope: Scope::Named(vec![
            crate::support::repo("first"),
            crate::support::repo("second"),
        ]),
        dry_run: false,
        now: Utc::now(),
        stop_at: Some(stop_at),
        detail: Default::default(),
    };
    let log = Collected::default();
    let report = engine::run(&ecr, &Inventory::none(), &policy, &run, &log)
        .await
        .unwrap();
    assert_eq!(*listed.lock().unwrap(), ["first"]);
    assert_eq!(report.not_started, ["second"]);
    let first = &report.repositories[0];
    assert_eq!(first.planned.len(), 4);
    assert!(first.deleted.is_empty());
    assert_eq!(first.skipped.len(), 4);
    assert!(
        first
            .skipped
            .iter()
            .all(|s| s.reason.starts_with("not attempted"))
    );
    assert_eq!(report.api_calls.batch_delete_image, 0);
    assert!(
        report.has_failures(),
        "unfinished work is not a silent success"
    );
    assert!(
        log.lines()
            .iter()
            .any(|l| l["message"] == "deadline near: no further repository is started")
    );
}

/// SendMessageBatch's partial failures, which moto never produces: entries
/// SQS fails on its side are sent again; entries it blames on the sender,
/// and a call that fails as a whole, are reported, never dropped.
#[tokio::test]
async fn fan_out_sends_again_what_sqs_failed_and_reports_what_it_could_not_send() {
    use aws_sdk_sqs::operation::send_message_batch::{
        SendMessageBatchError, SendMessageBatchOutput,
    };
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use ecr_gc::lambda::fanout::{Message, send};

    let ok = |id: &str| {
        SendMessageBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .md5_of_message_body("x")
            .build()
            .unwrap()
    };
    let failed = |id: &str, code: &str, sender_fault: bool| {
        BatchResultErrorEntry::builder()
            .id(id)
            .code(code)
            .message(format!("{code} for {id}"))
            .sender_fault(sender_fault)
            .build()
            .unwrap()
    };
    // First chunk of 10: 8 sent, entry 3 failed by SQS (sent again), entry
    // 7 blamed on the sender (reported).
    let first = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 10)
        .then_output(move || {
            SendMessageBatchOutput::builder()
                .set_successful(Some(
                    (0..10)
                        .filter(|i| *i != 3 && *i != 7)
                        .map(|i| ok(&i.to_string()))
                        .collect(),
                ))
                .set_failed(Some(vec![
                    failed("3", "InternalError", false),
                    failed("7", "InvalidMessageContents", true),
                ]))
                .build()
                .unwrap()
        });
    // The re-send carries only entry 3, and succeeds.
    let again = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|r| {
            r.entries().len() == 1 && r.entries()[0].message_body().contains("svc-03")
        })
        .then_output(move || {
            SendMessageBatchOutput::builder()
                .set_successful(Some(vec![ok("0")]))
                .set_failed(Some(vec![]))
                .build()
                .unwrap()
        });
    // The second chunk (2 messages) fails as a whole.
    let whole = mock!(aws_sdk_sqs::Client::send_message_batch)
        .match_requests(|r| r.entries().len() == 2)
        .then_error(|| {
            SendMessageBatchError::generic(
                aws_sdk_sqs::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("no")
                    .build(),
            )
        });
    let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&first, &again, &whole]);
    let messages: Vec<Message> = (0..12)
        .map(|i| Message {
            account_id: Some(ecr_gc::model::AccountId::parse("111122223333").unwrap()),
            region: Some(ecr_gc::model::Region::parse("eu-west-1").unwrap()),
            repository: crate::support::repo(&format!("svc-{i:02}")),
            dry_run: false,
            now: Some(Utc::now()),
            trigger: ecr_gc::run::report::Cause::Schedule,
            foreign: None,
        })
        .collect();
    let sent = send(
        &client,
        "https://sqs.eu-west-1.amazonaws.com/1/q",
        &messages,
    )
    .await;
    assert_eq!(sent.messages_sent, 9);
    assert_eq!(sent.send_message_batch_calls, 3);
    let lost: Vec<(&str, &str)> = sent
        .failed
        .iter()
        .map(|f| (f.repository.as_str(), f.code.as_str()))
        .collect();
    assert_eq!(
        lost,
        [
            ("svc-07", "InvalidMessageContents"),
            ("svc-10", "AccessDenied"),
            ("svc-11", "AccessDenied")
        ]
    );
}

/// A service in the middle of a deployment runs the task definitions of
/// its PRIMARY and ACTIVE deployments: both are in use, and an INACTIVE
/// one (done, drained) is not. moto keeps no deployment history.
#[tokio::test]
async fn ecs_services_use_their_primary_and_active_deployments_only() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::list_clusters::ListClustersOutput;
    use aws_sdk_ecs::operation::list_services::ListServicesOutput;
    use aws_sdk_ecs::operation::list_task_definition_families::ListTaskDefinitionFamiliesOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::types::{ContainerDefinition, Deployment, Service, TaskDefinition};

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
    let td = |rev: u32| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/web:{rev}");
    let clusters = mock!(aws_sdk_ecs::Client::list_clusters)
        .then_output(|| ListClustersOutput::builder().cluster_arns(CLUSTER).build());
    let tasks =
        mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
    let services = mock!(aws_sdk_ecs::Client::list_services).then_output(|| {
        ListServicesOutput::builder()
            .service_arns("arn:aws:ecs:us-east-1:123456789012:service/prod/web")
            .build()
    });
    let describe = mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(move |_| {
        let deployment = |status: &str, rev: u32| {
            Deployment::builder()
                .status(status)
                .task_definition(td(rev))
                .build()
        };
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_name("web")
                    .task_definition(td(3))
                    .deployments(deployment("PRIMARY", 3))
                    .deployments(deployment("ACTIVE", 2))
                    .deployments(deployment("INACTIVE", 1))
                    .build(),
            )
            .build()
    });
    let definition =
        mock!(aws_sdk_ecs::Client::describe_task_definition).then_compute_output(|req| {
            let arn = req.task_definition().unwrap().to_owned();
            let rev = arn.rsplit(':').next().unwrap().to_owned();
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(&arn)
                        .container_definitions(
                            ContainerDefinition::builder()
                                .image(format!("{HOST}/web:v{rev}"))
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let families = mock!(aws_sdk_ecs::Client::list_task_definition_families)
        .then_output(|| ListTaskDefinitionFamiliesOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [
            &clusters,
            &tasks,
            &services,
            &describe,
            &definition,
            &families
        ]
    );
    let uses = ecr_gc::inventory::ecs::read(&client, 5).await.unwrap();
    let mut got: Vec<(String, String)> = uses
        .into_iter()
        .map(|u| (u.workload, u.reference.tag.unwrap()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("ecs:prod/web".to_owned(), "v2".to_owned()),
            ("ecs:prod/web".to_owned(), "v3".to_owned()),
        ]
    );
}

/// Batch through mocks (moto would try to run the jobs in Docker): every
/// page of ACTIVE job definitions, and the jobs not yet finished of every
/// queue, described in one call, protect their images.
#[tokio::test]
async fn batch_definitions_page_and_unfinished_jobs_are_in_use() {
    use aws_sdk_batch::operation::describe_job_definitions::DescribeJobDefinitionsOutput;
    use aws_sdk_batch::operation::describe_job_queues::DescribeJobQueuesOutput;
    use aws_sdk_batch::operation::describe_jobs::DescribeJobsOutput;
    use aws_sdk_batch::operation::list_jobs::ListJobsOutput;
    use aws_sdk_batch::types::{
        ContainerDetail, ContainerProperties, EksContainerDetail, EksPodPropertiesDetail,
        EksPropertiesDetail, JobDefinition, JobDetail, JobQueueDetail, JobStatus, JobSummary,
        NodeProperties, NodeRangeProperty,
    };

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let image = |tag: &str| format!("{HOST}/jobs:{tag}");
    let definition = |name: &str, revision: i32| {
        JobDefinition::builder()
            .job_definition_name(name)
            .job_definition_arn(format!(
                "arn:aws:batch:us-east-1:123456789012:job-definition/{name}:{revision}"
            ))
            .revision(revision)
            .r#type("container")
    };
    let definitions =
        mock!(aws_sdk_batch::Client::describe_job_definitions).then_compute_output(move |req| {
            assert_eq!(req.status(), Some("ACTIVE"));
            match req.next_token() {
                None => DescribeJobDefinitionsOutput::builder()
                    .job_definitions(
                        definition("etl", 7)
                            .container_properties(
                                ContainerProperties::builder().image(image("v1")).build(),
                            )
                            .build(),
                    )
                    .next_token("page-2")
                    .build(),
                Some(_) => DescribeJobDefinitionsOutput::builder()
                    .job_definitions(
                        definition("mpi", 1)
                            .node_properties(
                                NodeProperties::builder()
                                    .node_range_properties(
                                        NodeRangeProperty::builder()
                                            .target_nodes("0:")
                                            .container(
                                                ContainerProperties::builder()
                                                    .image(image("v2"))
                                                    .build(),
                                            )
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            }
        });
    let queues = mock!(aws_sdk_batch::Client::describe_job_queues).then_output(|| {
        DescribeJobQueuesOutput::builder()
            .job_queues(JobQueueDetail::builder().job_queue_name("q").build())
            .build()
    });
    let listed = Arc::new(Mutex::new(Vec::new()));
    let seen = listed.clone();
    let list = mock!(aws_sdk_batch::Client::list_jobs).then_compute_output(move |req| {
        assert_eq!(req.job_queue(), Some("q"));
        let status = req.job_status().cloned().unwrap();
        seen.lock().unwrap().push(status.clone());
        let id = match status {
            JobStatus::Submitted => "j-submitted",
            JobStatus::Runnable => "j-runnable",
            _ => return ListJobsOutput::builder().build(),
        };
        ListJobsOutput::builder()
            .job_summary_list(JobSummary::builder().job_id(id).job_name(id).build())
            .build()
    });
    let image = |tag: &str| format!("{HOST}/jobs:{tag}");
    let describe = mock!(aws_sdk_batch::Client::describe_jobs).then_compute_output(move |req| {
        assert_eq!(req.jobs(), ["j-submitted", "j-runnable"], "one call");
        let job = |id: &str| {
            JobDetail::builder()
                .job_id(id)
                .job_name(id)
                .job_queue("q")
                .status(JobStatus::Runnable)
                .job_definition("etl:6")
                .started_at(0)
        };
        DescribeJobsOutput::builder()
            .jobs(
                job("j-submitted")
                    .container(ContainerDetail::builder().image(image("v3")).build())
                    .build(),
            )
            .jobs(
                job("j-runnable")
                    .eks_properties(
                        EksPropertiesDetail::builder()
                            .pod_properties(
                                EksPodPropertiesDetail::builder()
                                    .init_containers(
                                        EksContainerDetail::builder().image(image("v4")).build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let client = mock_client!(
        aws_sdk_batch,
        RuleMode::MatchAny,
        [&definitions, &queues, &list, &describe]
    );

    let uses = ecr_gc::inventory::batch::read(&client).await.unwrap();
    let got: Vec<(String, Option<String>)> = uses
        .into_iter()
        .map(|u| (u.workload, u.reference.tag))
        .collect();
    let want: Vec<(String, Option<String>)> = [
        ("batch:job-definition/etl:7", "v1"),
        ("batch:job-definition/mpi:1", "v2"),
        ("batch:q/job/j-submitted", "v3"),
        ("batch:q/job/j-runnable", "v4"),
    ]
    .iter()
    .map(|(w, t)| (w.to_string(), Some(t.to_string())))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        *listed.lock().unwrap(),
        [
            JobStatus::Submitted,
            JobStatus::Pending,
            JobStatus::Runnable,
            JobStatus::Starting,
            JobStatus::Running
        ]
    );
    assert_eq!(definitions.num_calls(), 2, "both pages");
}

/// App Runner through mocks: every page of services is read, a DELETED
/// service and one deleted between the listing and its description protect
/// nothing, and a code-repository service names no image.
#[tokio::test]
async fn app_runner_services_page_and_deleted_ones_protect_nothing() {
    use aws_sdk_apprunner::operation::describe_service::{
        DescribeServiceError, DescribeServiceOutput,
    };
    use aws_sdk_apprunner::operation::list_services::ListServicesOutput;
    use aws_sdk_apprunner::types::error::ResourceNotFoundException;
    use aws_sdk_apprunner::types::{
        CodeRepository, ImageRepository, ImageRepositoryType, Service, ServiceStatus,
        ServiceSummary, SourceCodeVersion, SourceCodeVersionType, SourceConfiguration,
    };

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    fn arn(name: &str) -> String {
        format!("arn:aws:apprunner:us-east-1:123456789012:service/{name}/0")
    }
    let summary = |name: &str, status: ServiceStatus| {
        ServiceSummary::builder()
            .service_name(name)
            .service_arn(arn(name))
            .status(status)
            .build()
    };
    let list = mock!(aws_sdk_apprunner::Client::list_services).then_compute_output(move |req| {
        assert_eq!(req.max_results(), Some(20));
        match req.next_token() {
            None => ListServicesOutput::builder()
                .service_summary_list(summary("web", ServiceStatus::Running))
                .service_summary_list(summary("gone", ServiceStatus::Deleted))
                .next_token("page-2")
                .build()
                .unwrap(),
            Some(_) => ListServicesOutput::builder()
                .service_summary_list(summary("paused", ServiceStatus::Paused))
                .service_summary_list(summary("racing", ServiceStatus::Running))
                .service_summary_list(summary("from-code", ServiceStatus::Running))
                .build()
                .unwrap(),
        }
    });
    let image = |tag: &str| {
        SourceConfiguration::builder()
            .image_repository(
                ImageRepository::builder()
                    .image_identifier(format!("{HOST}/web:{tag}"))
                    .image_repository_type(ImageRepositoryType::Ecr)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let described = Arc::new(Mutex::new(Vec::new()));
    let seen = described.clone();
    let describe = mock!(aws_sdk_apprunner::Client::describe_service)
        .match_requests(|req| !req.service_arn().unwrap_or_default().contains("/racing/"))
        .then_compute_output(move |req| {
            let arn = req.service_arn().unwrap().to_owned();
            seen.lock().unwrap().push(arn.clone());
            let source = if arn.contains("/web/") {
                image("v1")
            } else if arn.contains("/paused/") {
                image("v2")
            } else {
                SourceConfiguration::builder()
                    .code_repository(
                        CodeRepository::builder()
                            .repository_url("https://github.com/example/app")
                            .source_code_version(
                                SourceCodeVersion::builder()
                                    .r#type(SourceCodeVersionType::Branch)
                                    .value("main")
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build()
            };
            let service = Service::builder()
                .service_name("s")
                .service_id("0")
                .service_arn(&arn)
                .created_at(DateTime::from_secs(0))
                .updated_at(DateTime::from_secs(0))
                .status(ServiceStatus::Running)
                .source_configuration(source)
                .build()
                .unwrap();
            DescribeServiceOutput::builder().service(service).build()
        });
    let racing = mock!(aws_sdk_apprunner::Client::describe_service)
        .match_requests(|req| req.service_arn().unwrap_or_default().contains("/racing/"))
        .then_error(|| {
            DescribeServiceError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Service not found")
                    .build(),
            )
        });
    let client = mock_client!(
        aws_sdk_apprunner,
        RuleMode::MatchAny,
        [&list, &describe, &racing]
    );

    let uses = ecr_gc::inventory::services::app_runner(&client)
        .await
        .unwrap();
    let got: Vec<(String, Option<String>)> = uses
        .into_iter()
        .map(|u| (u.workload, u.reference.tag))
        .collect();
    assert_eq!(
        got,
        [
            ("apprunner:service/web".to_owned(), Some("v1".to_owned())),
            ("apprunner:service/paused".to_owned(), Some("v2".to_owned())),
        ]
    );
    assert_eq!(
        *described.lock().unwrap(),
        [arn("web"), arn("paused"), arn("from-code")],
        "the DELETED service is not described"
    );
}

/// SageMaker through mocks (moto finishes every training job at once and
/// reports no deployed images): every page of models, a model served from a
/// model package, a model deleted mid-read, an endpoint's resolved images
/// and its configuration's models (a deleted configuration leaves the
/// deployed images), and training jobs in progress.
#[tokio::test]
async fn sagemaker_models_endpoints_and_training_jobs_are_in_use() {
    use aws_sdk_sagemaker::error::ErrorMetadata;
    use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
    use aws_sdk_sagemaker::operation::describe_endpoint_config::{
        DescribeEndpointConfigError, DescribeEndpointConfigOutput,
    };
    use aws_sdk_sagemaker::operation::describe_model::{DescribeModelError, DescribeModelOutput};
    use aws_sdk_sagemaker::operation::describe_model_package::DescribeModelPackageOutput;
    use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
    use aws_sdk_sagemaker::operation::list_endpoints::ListEndpointsOutput;
    use aws_sdk_sagemaker::operation::list_models::ListModelsOutput;
    use aws_sdk_sagemaker::operation::list_training_jobs::ListTrainingJobsOutput;
    use aws_sdk_sagemaker::types::{
        AlgorithmSpecification, ContainerDefinition, DeployedImage, EndpointSummary,
        InferenceSpecification, ModelPackageContainerDefinition, ModelSummary, ProductionVariant,
        ProductionVariantSummary, TrainingJobStatus, TrainingJobSummary,
    };

    const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    fn image(tag: &str) -> String {
        format!("{HOST}/ml:{tag}")
    }
    let missing = |what: &str| {
        ErrorMetadata::builder()
            .code("ValidationException")
            .message(format!("Could not find {what}"))
            .build()
    };
    let model = |name: &str| ModelSummary::builder().model_name(name).build();
    let list_models =
        mock!(aws_sdk_sagemaker::Client::list_models).then_compute_output(move |req| {
            match req.next_token() {
                None => ListModelsOutput::builder()
                    .models(model("reco-model"))
                    .models(model("packaged"))
                    .next_token("page-2")
                    .build(),
                Some(_) => ListModelsOutput::builder().models(model("racing")).build(),
            }
        });
    let describe_model = mock!(aws_sdk_sagemaker::Client::describe_model)
        .match_requests(|req| req.model_name() != Some("racing"))
        .then_compute_output(|req| {
            let container = if req.model_name() == Some("reco-model") {
                ContainerDefinition::builder().image(image("v1")).build()
            } else {
                ContainerDefinition::builder()
                    .model_package_name("reco-package/3")
                    .build()
            };
            DescribeModelOutput::builder()
                .primary_container(container)
                .build()
        });
    let racing_model = mock!(aws_sdk_sagemaker::Client::describe_model)
        .match_requests(|req| req.model_name() == Some("racing"))
        .then_error(move || DescribeModelError::generic(missing("model 'racing'")));
    let package = mock!(aws_sdk_sagemaker::Client::describe_model_package).then_output(|| {
        DescribeModelPackageOutput::builder()
            .inference_specification(
                InferenceSpecification::builder()
                    .containers(
                        ModelPackageContainerDefinition::builder()
                            .image(image("v2"))
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let list_endpoints = mock!(aws_sdk_sagemaker::Client::list_endpoints).then_output(|| {
        ListEndpointsOutput::builder()
            .endpoints(EndpointSummary::builder().endpoint_name("reco").build())
            .endpoints(EndpointSummary::builder().endpoint_name("orphan").build())
            .build()
    });
    let digest = format!("sha256:{:064x}", 7);
    let resolved = format!("{HOST}/ml@{digest}");
    let describe_endpoint = mock!(aws_sdk_sagemaker::Client::describe_endpoint)
        .then_compute_output(move |req| {
            let name = req.endpoint_name().unwrap();
            DescribeEndpointOutput::builder()
                .endpoint_name(name)
                .endpoint_config_name(format!("{name}-config"))
                .production_variants(
                    ProductionVariantSummary::builder()
                        .variant_name("main")
                        .deployed_images(
                            DeployedImage::builder()
                                .specified_image(image("v3"))
                                .resolved_image(&resolved)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let config = mock!(aws_sdk_sagemaker::Client::describe_endpoint_config)
        .match_requests(|req| req.endpoint_config_name() == Some("reco-config"))
        .then_output(|| {
            DescribeEndpointConfigOutput::builder()
                .production_variants(
                    ProductionVariant::builder()
                        .variant_name("main")
                        .model_name("reco-model")
                        .build(),
                )
                .build()
        });
    let orphan_config = mock!(aws_sdk_sagemaker::Client::describe_endpoint_config)
        .match_requests(|req| req.endpoint_config_name() == Some("orphan-config"))
        .then_error(move || {
            DescribeEndpointConfigError::generic(missing("endpoint configuration 'orphan-config'"))
        });
    let list_jobs =
        mock!(aws_sdk_sagemaker::Client::list_training_jobs).then_compute_output(|req| {
            assert_eq!(req.status_equals(), Some(&TrainingJobStatus::InProgress));
            ListTrainingJobsOutput::builder()
                .training_job_summaries(
                    TrainingJobSummary::builder()
                        .training_job_name("nightly-train")
                        .build(),
                )
                .build()
        });
    let describe_job = mock!(aws_sdk_sagemaker::Client::describe_training_job).then_output(|| {
        DescribeTrainingJobOutput::builder()
            .algorithm_specification(
                AlgorithmSpecification::builder()
                    .training_image(image("v4"))
                    .build(),
            )
            .build()
    });
    let client = mock_client!(
        aws_sdk_sagemaker,
        RuleMode::MatchAny,
        [
            &list_models,
            &describe_model,
            &racing_model,
            &package,
            &list_endpoints,
            &describe_endpoint,
            &config,
            &orphan_config,
            &list_jobs,
            &describe_job
        ]
    );

    let uses = ecr_gc::inventory::sagemaker::read(&client).await.unwrap();
    let got: Vec<(String, String)> = uses
        .into_iter()
        .map(|u| (u.workload, u.reference.to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("sagemaker:model/reco-model", image("v1")),
        ("sagemaker:model/packaged", image("v2")),
        ("sagemaker:endpoint/reco", format!("{HOST}/ml@{digest}")),
        ("sagemaker:endpoint/reco", image("v1")),
        ("sagemaker:endpoint/orphan", format!("{HOST}/ml@{digest}")),
        ("sagemaker:training-job/nightly-train", image("v4")),
    ]
    .into_iter()
    .map(|(w, r)| (w.to_owned(), r))
    .collect();
    assert_eq!(got, want);
}

/// The archive: a listing asks for archived images (`imageStatus: ANY`),
/// page by page, only when told to; UpdateImageStorageClass answers are
/// read, never assumed: ImageNotFound is gone, a server error is retried, an
/// answer other than ARCHIVED is a failure, and the deadline stops the
/// calls.
mod archive {
    use super::*;
    use aws_sdk_ecr::operation::update_image_storage_class::{
        UpdateImageStorageClassError, UpdateImageStorageClassOutput,
    };
    use aws_sdk_ecr::types::{ImageStatus, ImageStatusFilter};
    use aws_smithy_mocks::MockResponse::{Error, Output};
    use aws_smithy_types::error::ErrorMetadata;

    #[tokio::test]
    async fn archived_images_are_listed_only_when_asked_for_on_every_page() {
        let filters = Arc::new(Mutex::new(Vec::new()));
        let seen = filters.clone();
        let rule = mock!(Client::describe_images).then_compute_output(move |req| {
            seen.lock()
                .unwrap()
                .push(req.filter().and_then(|f| f.image_status()).cloned());
            let start: usize = req.next_token().map(|t| t.parse().unwrap()).unwrap_or(0);
            let end = (start + 1_000).min(1_500);
            DescribeImagesOutput::builder()
                .set_image_details(Some(
                    (start..end)
                        .map(|i| {
                            let status = if i % 2 == 0 { "ARCHIVED" } else { "ACTIVE" };
                            ImageDetail::builder()
                                .image_digest(digest(i))
                                .image_pushed_at(DateTime::from_secs(1_700_000_000))
                                .image_status(ImageStatus::from(status))
                                .last_archived_at(DateTime::from_secs(1_710_000_000))
                                .build()
                        })
                        .collect(),
                ))
                .set_next_token((end < 1_500).then(|| end.to_string()))
                .build()
        });
        let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let ecr = Ecr::new(client, None);
        let all = ecr.images_with("r", true).await.unwrap();
        assert_eq!(all.len(), 1_500);
        assert_eq!(
            all.iter()
                .filter(|i| i.image_status == ecr_gc::model::ImageStatus::Archived)
                .count(),
            750
        );
        assert!(all[0].last_archived_at.is_some());
        ecr.images("r").await.unwrap();
        assert_eq!(
            *filters.lock().unwrap(),
            [
                Some(ImageStatusFilter::Any),
                Some(ImageStatusFilter::Any),
                None,
                None
            ]
        );
    }

    fn failed(code: &str) -> UpdateImageStorageClassError {
        UpdateImageStorageClassError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message(format!("{code} from the mock"))
                .build(),
        )
    }

    fn answered(status: &str) -> UpdateImageStorageClassOutput {
        UpdateImageStorageClassOutput::builder()
            .image_status(ImageStatus::from(status))
            .build()
    }

    #[tokio::test]
    async fn archive_answers_are_read_not_assumed() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let server_errors = Arc::new(Mutex::new(0));
        let seen = calls.clone();
        let errors = server_errors.clone();
        let rule = mock!(Client::update_image_storage_class).then_compute_response(move |req| {
            let digest = req
                .image_id()
                .and_then(|i| i.image_digest())
                .unwrap()
                .to_owned();
            seen.lock().unwrap().push((
                digest.clone(),
                req.target_storage_class().map(|t| t.as_str().to_owned()),
                req.registry_id().map(str::to_owned),
            ));
            match digest.as_str() {
                d if d == digest_of(1) => Output(answered("ARCHIVED")),
                d if d == digest_of(2) => Error(failed("ImageNotFoundException")),
                d if d == digest_of(3) => {
                    let mut n = errors.lock().unwrap();
                    *n += 1;
                    if *n <= 2 {
                        Error(failed("ServerException"))
                    } else {
                        Output(answered("ARCHIVED"))
                    }
                }
                d if d == digest_of(4) => Output(answered("ACTIVE")),
                _ => Error(failed("ImageStorageClassUpdateNotSupportedException")),
            }
        });
        let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let ecr = Ecr::new(
            client,
            Some(ecr_gc::model::AccountId::parse("123456789012").unwrap()),
        )
        .with_image_retry(FAST_RETRY);
        let digests: Vec<String> = (1..=5).map(digest_of).collect();
        let outcome = ecr.transition("r", &digests).await;
        assert_eq!(outcome.archived, [digest_of(1), digest_of(3)]);
        assert_eq!(outcome.already_gone, [digest_of(2)]);
        let failures: Vec<(String, String)> = outcome
            .failures
            .iter()
            .map(|f| {
                (
                    f.image_id.image_digest.clone().unwrap(),
                    f.failure_code.clone(),
                )
            })
            .collect();
        assert_eq!(
            failures,
            [
                (digest_of(4), "NotArchived".to_owned()),
                (
                    digest_of(5),
                    "ImageStorageClassUpdateNotSupportedException".to_owned()
                )
            ]
        );
        assert_eq!(
            outcome.failures[1].failure_reason,
            "ImageStorageClassUpdateNotSupportedException from the mock"
        );
        let calls = calls.lock().unwrap().clone();
        // One call per image, by digest, to ARCHIVE, naming the registry;
        // the one that failed twice with a server error was tried again.
        assert!(calls.iter().all(|(_, target, registry)| {
            target.as_deref() == Some("ARCHIVE") && registry.as_deref() == Some("123456789012")
        }));
        assert_eq!(calls.iter().filter(|c| c.0 == digest_of(3)).count(), 3);
        assert_eq!(calls.len(), 4 + 3);
        assert_eq!(
            ecr.api_calls().update_image_storage_class,
            calls.len() as u64
        );
    }

    #[tokio::test]
    async fn the_deadline_stops_archiving_between_images() {
        let rule = mock!(Client::update_image_storage_class).then_output(|| answered("ARCHIVED"));
        let client = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&rule]);
        let ecr = Ecr::new(client, None).with_stop_at(Some(std::time::Instant::now()));
        let digests: Vec<String> = (1..=3).map(digest_of).collect();
        let outcome = ecr.transition("r", &digests).await;
        assert!(outcome.archived.is_empty());
        assert_eq!(outcome.not_attempted, digests);
        assert_eq!(ecr.api_calls().update_image_storage_class, 0);
    }

    fn digest_of(i: usize) -> String {
        digest(i)
    }
}
