//! Sizes and money as a person reads them: `1.5 GiB`, `$0.15 a month`.
//! Every saving is said to be an estimate, with the prices it assumed.

use crate::policy::reclaim::Prices;

/// A byte count in the largest binary unit that keeps it at least 1.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// US dollars, to the cent, or `< $0.01` for a little more than nothing.
pub fn dollars(usd: f64) -> String {
    if usd > 0.0 && usd < 0.005 {
        "< $0.01".to_owned()
    } else {
        format!("${usd:.2}")
    }
}

/// `estimated saving $1.23 a month (at $0.10 per GB-month standard,
/// $0.10 archive)`.
pub fn saving(usd: f64, prices: &Prices) -> String {
    format!(
        "estimated saving {} a month (at {} per GB-month standard, {} archive; an estimate, not a bill)",
        dollars(usd),
        price(prices.standard),
        price(prices.archive)
    )
}

/// A price as it was given: `$0.10`, `$0.023`.
fn price(usd: f64) -> String {
    if (usd * 100.0).fract() == 0.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_a_person_says_them() {
        let cases: &[(u64, &str)] = &[
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536 * 1024, "1.5 MiB"),
            (5 << 30, "5.0 GiB"),
            (3 << 40, "3.0 TiB"),
            (u64::MAX, "16384.0 PiB"),
        ];
        for (n, text) in cases {
            assert_eq!(bytes(*n), *text);
        }
        for (usd, text) in [
            (0.0, "$0.00"),
            (0.001, "< $0.01"),
            (1.234, "$1.23"),
            (12.0, "$12.00"),
        ] {
            assert_eq!(dollars(usd), text);
        }
        let prices = Prices {
            standard: 0.1,
            archive: 0.023,
        };
        assert_eq!(
            saving(2.5, &prices),
            "estimated saving $2.50 a month (at $0.10 per GB-month standard, $0.023 archive; an estimate, not a bill)"
        );
    }
}
