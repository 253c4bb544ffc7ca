//! CloudWatch metrics of a collection, in the Embedded Metric Format: one
//! JSON log line per target, which CloudWatch Logs turns into metrics as it
//! ingests the function's log stream. No API call, no permission, no
//! client library.
//!
//! Namespace `ECRGC`. Each metric is published twice from each line: with
//! the dimensions `AccountId` and `Region`, and with none, so a dashboard
//! shows the whole organisation and each target. The format is AWS's
//! specification ("Specification: Embedded metric format"): an `_aws`
//! member with `Timestamp` (epoch milliseconds) and `CloudWatchMetrics`
//! (namespace, dimension sets, metric names and units), and each dimension
//! and metric as a top-level member of the same object.

use serde_json::{Map, Value, json};

use chrono::Utc;

use crate::aws::Connector;
use crate::run::lines::{Line, LogSink};
use crate::run::report::{Collection, Report};

/// The metrics' namespace.
pub const NAMESPACE: &str = "ECRGC";

/// One metric: its name, its CloudWatch unit, and its value in a target's
/// report.
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    value: fn(&Report) -> u64,
}

/// Every metric a target's line carries, in this order.
pub const METRICS: [Metric; 8] = [
    Metric {
        name: "ImagesDeleted",
        unit: "Count",
        value: |r| r.summary.counts.images_deleted,
    },
    Metric {
        name: "ImagesArchived",
        unit: "Count",
        value: |r| r.summary.counts.images_transitioned,
    },
    Metric {
        name: "BytesReclaimed",
        unit: "Bytes",
        value: |r| u64::try_from(r.summary.bytes_reclaimed).unwrap_or(0),
    },
    Metric {
        name: "ImagesFailed",
        unit: "Count",
        value: |r| r.summary.counts.images_failed + r.summary.counts.transitions_failed,
    },
    Metric {
        name: "ImagesProtected",
        unit: "Count",
        value: |r| r.summary.counts.images_protected,
    },
    Metric {
        name: "RepositoriesHeld",
        unit: "Count",
        value: |r| r.summary.repositories_held,
    },
    Metric {
        name: "InventoryIncomplete",
        unit: "Count",
        value: |r| u64::from(r.in_use_sources.iter().any(|s| s.error.is_some())),
    },
    Metric {
        name: "DurationMs",
        unit: "Milliseconds",
        value: |r| r.duration_ms,
    },
];

/// The dimension values of a target that names neither its account nor its
/// region (the caller's own).
pub const OWN_ACCOUNT: &str = "own";

/// Writes the collection's metrics lines to `log`, stamped now: what the
/// Lambda does after each collection, and `run --emf`.
pub fn emit(connector: &Connector, collection: &Collection, log: &dyn LogSink) {
    let region = connector.home().region.as_deref().unwrap_or("default");
    for line in lines(collection, Utc::now().timestamp_millis(), region) {
        log.emit(line);
    }
}

/// One metrics line per target that was collected (a target that could not
/// be reached has no report, and its error is in the log and the response),
/// stamped `timestamp_ms`. `region` names the caller's own region.
pub fn lines(collection: &Collection, timestamp_ms: i64, region: &str) -> Vec<Line> {
    let names: Vec<Value> = METRICS
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit}))
        .collect();
    collection
        .targets
        .iter()
        .filter_map(|t| Some((&t.target, t.report.as_ref()?)))
        .map(|(target, report)| {
            let mut line = Map::new();
            line.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["AccountId", "Region"], []],
                        "Metrics": names,
                    }],
                }),
            );
            let account = target.account_id.as_deref().unwrap_or(OWN_ACCOUNT);
            line.insert("AccountId".into(), json!(account));
            line.insert(
                "Region".into(),
                json!(target.region.as_deref().unwrap_or(region)),
            );
            for metric in &METRICS {
                line.insert(metric.name.into(), json!((metric.value)(report)));
            }
            Line::from_value(Value::Object(line))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::targets::Target;
    use crate::inventory::SourceReport;
    use crate::model::{AccountId, Region};
    use crate::run::report::{Cause, Detail, Summary, TargetReport};

    /// What the specification asks of a line: `_aws` with an integer
    /// `Timestamp` and one directive whose namespace, dimension sets (each
    /// name a string member of the line) and metrics (each name a number
    /// member, each unit one CloudWatch knows) are there. Returns the line.
    pub fn check_format(line: &Line) -> Value {
        let value = line.to_value();
        let aws = &value["_aws"];
        assert!(aws["Timestamp"].is_i64(), "{value}");
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for set in directive["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(value[name.as_str().unwrap()].is_string(), "{name}");
            }
        }
        let units = ["Count", "Bytes", "Milliseconds"];
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(value[metric["Name"].as_str().unwrap()].is_u64(), "{metric}");
            assert!(
                units.contains(&metric["Unit"].as_str().unwrap()),
                "{metric}"
            );
        }
        value
    }

    fn report(deleted: u64, failed_source: bool) -> Report {
        let mut summary = Summary::default();
        summary.counts.images_deleted = deleted;
        summary.counts.images_transitioned = 2;
        summary.counts.images_failed = 1;
        summary.counts.transitions_failed = 1;
        summary.counts.images_protected = 4;
        summary.repositories_held = 1;
        summary.bytes_reclaimed = 5_000;
        Report {
            trigger: Cause::Schedule,
            dry_run: false,
            now: Utc::now(),
            repositories: vec![],
            summary,
            api_calls: Default::default(),
            in_use_sources: vec![SourceReport {
                source: "ecs".into(),
                references: 0,
                error: failed_source.then(|| "AccessDenied".to_owned()),
                note: None,
            }],
            not_started: vec![],
            duration_ms: 1234,
            detail: Detail::Summary,
            repositories_not_listed: 0,
            prices: crate::policy::reclaim::Prices::default(),
        }
    }

    fn check(name: &str, target: Target, report: Option<Report>, expected: Option<Value>) {
        let collection = Collection::new(
            Cause::Schedule,
            false,
            Utc::now(),
            vec![TargetReport {
                target,
                error: None,
                report,
            }],
            0,
            0,
        );
        let lines = lines(&collection, 1_700_000_000_000, "eu-west-1");
        let values: Vec<Value> = lines.iter().map(check_format).collect();
        match expected {
            None => assert!(values.is_empty(), "{name}"),
            Some(expected) => {
                assert_eq!(values.len(), 1, "{name}");
                for (key, want) in expected.as_object().unwrap() {
                    assert_eq!(&values[0][key], want, "{name}: {key}");
                }
            }
        }
    }

    #[test]
    fn a_line_per_collected_target_with_its_counts() {
        let named = Target {
            account_id: Some(AccountId::parse("111122223333").unwrap()),
            region: Some(Region::parse("us-east-1").unwrap()),
        };
        let own = Target {
            account_id: None,
            region: None,
        };
        let cases = [
            (
                "a named target",
                named,
                Some(report(7, false)),
                Some(json!({
                "AccountId": "111122223333", "Region": "us-east-1", "ImagesDeleted": 7,
                "ImagesArchived": 2, "BytesReclaimed": 5000, "ImagesFailed": 2,
                "ImagesProtected": 4, "RepositoriesHeld": 1, "InventoryIncomplete": 0,
                "DurationMs": 1234})),
            ),
            (
                "the caller's own, an inventory incomplete",
                own.clone(),
                Some(report(0, true)),
                Some(json!({
                "AccountId": OWN_ACCOUNT, "Region": "eu-west-1", "ImagesDeleted": 0,
                "InventoryIncomplete": 1})),
            ),
            ("a target not reached", own, None, None),
        ];
        for (name, target, report, expected) in cases {
            check(name, target, report, expected);
        }
    }
}
