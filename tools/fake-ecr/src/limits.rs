//! What makes the fake behave like ECR under load: a latency drawn from a
//! range for every answer, and a token bucket per (account, region,
//! operation) that answers `ThrottlingException` when it is empty.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A small, fast pseudo-random source (xorshift64*): the latencies only
/// need to be spread, not unpredictable.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Latency, uniform between `low` and `high` milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub low_ms: u64,
    pub high_ms: u64,
}

impl Latency {
    pub fn draw(&self, random: &Mutex<Random>) -> Duration {
        let spread = self.high_ms.saturating_sub(self.low_ms) + 1;
        let r = random.lock().map(|mut r| r.next()).unwrap_or(0);
        Duration::from_millis(self.low_ms + r % spread)
    }
}

/// Token buckets: `rate` requests a second per (account, region,
/// operation), holding at most one second's worth. `rate` 0 means no limit.
pub struct Buckets {
    rate: f64,
    buckets: Mutex<HashMap<(String, String, &'static str), Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Buckets {
    pub fn new(rate: f64) -> Buckets {
        Buckets {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for this request, or says it is throttled.
    pub fn admit(&self, account: &str, region: &str, operation: &'static str) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let bucket = buckets
            .entry((account.to_owned(), region.to_owned(), operation))
            .or_insert(Bucket {
                tokens: self.rate,
                at: now,
            });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
