//! How ecr-gc counts what a run frees, from `settings`:
//!
//! ```json
//! "settings": {
//!   "exactReclaim": false,
//!   "prices": { "standardPerGbMonth": 0.10, "archivePerGbMonth": 0.10 }
//! }
//! ```
//!
//! * `exactReclaim`: read each manifest of a repository with deletions
//!   planned (BatchGetImage, 100 a call) and count only the layers no kept
//!   image still uses, instead of the sum of image sizes (an upper bound,
//!   since ECR stores a layer once per repository).
//! * `prices`: US dollars per GB-month of each storage class, for the
//!   estimated monthly saving. The defaults are ECR's published prices in
//!   us-east-1 (standard $0.10; archive $0.10 for the first 150 TB a month,
//!   $0.07 beyond). A GB here is 2^30 bytes, as AWS bills storage.
//!
//! Neither changes what is deleted. No I/O.

use serde::Deserialize;

use super::{PolicyError, invalid};

/// The storage prices of the saving estimate, in US dollars per GB-month.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    #[serde(rename = "standardPerGbMonth")]
    pub standard: f64,
    #[serde(rename = "archivePerGbMonth")]
    pub archive: f64,
}

/// ECR's published prices in us-east-1, the first 150 TB a month.
pub const DEFAULT_PRICES: Prices = Prices {
    standard: 0.10,
    archive: 0.10,
};

/// The highest price accepted: a hundred times ECR's, enough for any
/// region or currency of account, and a bound on a typo.
const MAX_PRICE: f64 = 10.0;

/// Bytes in the GB that storage is billed by.
const GB: f64 = (1u64 << 30) as f64;

impl Default for Prices {
    fn default() -> Self {
        DEFAULT_PRICES
    }
}

/// What a run's changes free, in bytes of each storage class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freed {
    /// Deleted from the standard storage class.
    pub standard: u64,
    /// Deleted from the archive.
    pub archive: u64,
    /// Moved from standard storage to the archive.
    pub archived: u64,
}

impl Prices {
    /// The estimated saving a month, in US dollars, of freeing `freed`: a
    /// deletion saves its class's price, a move to the archive the
    /// difference (nothing at the default prices).
    pub fn monthly_saving(&self, freed: Freed) -> f64 {
        let gb = |bytes: u64| bytes as f64 / GB;
        gb(freed.standard) * self.standard
            + gb(freed.archive) * self.archive
            + gb(freed.archived) * (self.standard - self.archive)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrices {
    standard_per_gb_month: Option<f64>,
    archive_per_gb_month: Option<f64>,
}

/// `settings.prices`, each given price checked; a missing one is ECR's.
pub(super) fn parse_prices(raw: Option<RawPrices>) -> Result<Prices, PolicyError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PRICES);
    };
    let price = |value: Option<f64>, field: &str, default: f64| match value {
        None => Ok(default),
        Some(p) if p.is_finite() && (0.0..=MAX_PRICE).contains(&p) => Ok(p),
        Some(p) => Err(invalid(
            format!("settings.prices.{field}"),
            format!("{p} is outside 0 to {MAX_PRICE} US dollars per GB-month"),
        )),
    };
    Ok(Prices {
        standard: price(
            raw.standard_per_gb_month,
            "standardPerGbMonth",
            DEFAULT_PRICES.standard,
        )?,
        archive: price(
            raw.archive_per_gb_month,
            "archivePerGbMonth",
            DEFAULT_PRICES.archive,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(prices: Prices, freed: Freed, expected: f64) {
        let saving = prices.monthly_saving(freed);
        assert!((saving - expected).abs() < 1e-9, "{saving} != {expected}");
    }

    #[test]
    fn a_saving_is_priced_per_class() {
        let gb = 1 << 30;
        let cheap = Prices {
            standard: 0.10,
            archive: 0.07,
        };
        check(DEFAULT_PRICES, Freed::default(), 0.0);
        check(
            DEFAULT_PRICES,
            Freed {
                standard: gb,
                ..Freed::default()
            },
            0.10,
        );
        check(
            DEFAULT_PRICES,
            Freed {
                archive: 10 * gb,
                ..Freed::default()
            },
            1.0,
        );
        // At the default prices, archiving saves nothing.
        check(
            DEFAULT_PRICES,
            Freed {
                archived: gb,
                ..Freed::default()
            },
            0.0,
        );
        check(
            cheap,
            Freed {
                archived: 100 * gb,
                ..Freed::default()
            },
            3.0,
        );
        check(
            cheap,
            Freed {
                standard: gb / 2,
                archive: gb,
                archived: gb,
            },
            0.05 + 0.07 + 0.03,
        );
    }
}
