//! Distributions of samples.
//!
//! Samples are kept exactly (no histogram buckets): a 10 s run at 50k req/s is
//! 500k `i64`s, 4 MB, and exact nearest-rank percentiles never report a value
//! that was not measured. The percentile itself is the workspace's one
//! ([`synckairos_tests::stats`]), shared with the test suites.

use synckairos_tests::stats::{P50, P90, P99, P999, percentile};

/// Summary of a set of samples in nanoseconds (signed, so lateness may be negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dist {
    /// Number of samples.
    pub count: usize,
    /// Smallest sample.
    pub min: i64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: i64,
    /// 90th percentile.
    pub p90: i64,
    /// 99th percentile.
    pub p99: i64,
    /// 99.9th percentile.
    pub p999: i64,
    /// Largest sample.
    pub max: i64,
}

impl Dist {
    /// Sorts the samples and summarises them; `None` when there are none.
    pub fn from_samples(mut samples: Vec<i64>) -> Option<Dist> {
        samples.sort_unstable();
        let count = samples.len();
        let sum: i128 = samples.iter().map(|&s| i128::from(s)).sum();
        Some(Dist {
            count,
            min: *samples.first()?,
            mean: sum as f64 / count as f64,
            p50: percentile(&samples, P50)?,
            p90: percentile(&samples, P90)?,
            p99: percentile(&samples, P99)?,
            p999: percentile(&samples, P999)?,
            max: *samples.last()?,
        })
    }

    /// The JSON form used in the one-line summary: microseconds with 0.1 µs resolution.
    pub fn to_json_us(self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "min_us": ns_to_us(self.min),
            "mean_us": (self.mean / 100.0).round() / 10.0,
            "p50_us": ns_to_us(self.p50),
            "p90_us": ns_to_us(self.p90),
            "p99_us": ns_to_us(self.p99),
            "p99_9_us": ns_to_us(self.p999),
            "max_us": ns_to_us(self.max),
        })
    }
}

/// Nanoseconds to microseconds rounded to 0.1 µs, for JSON output.
pub fn ns_to_us(ns: i64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// Nanoseconds to a fixed-width millisecond string with µs resolution, for tables.
pub fn fmt_ms(ns: i64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_samples_no_dist() {
        assert_eq!(Dist::from_samples(Vec::new()), None);
    }

    #[test]
    fn dist_sorts_and_summarises() {
        // 1..=1000 shuffled deterministically (multiplication by a unit mod 1001).
        let samples: Vec<i64> = (1..=1000).map(|i| (i * 337) % 1001).collect();
        assert!(samples.iter().all(|&s| (1..=1000).contains(&s)));
        let d = Dist::from_samples(samples).unwrap();
        assert_eq!(d.count, 1000);
        assert_eq!((d.min, d.max), (1, 1000));
        assert_eq!((d.p50, d.p90, d.p99, d.p999), (500, 900, 990, 999));
        assert!((d.mean - 500.5).abs() < 1e-9);
    }

    #[test]
    fn negative_samples_are_kept() {
        let d = Dist::from_samples(vec![-3_000_000, 1_000_000, 2_000_000]).unwrap();
        assert_eq!(d.min, -3_000_000);
        assert_eq!(d.p50, 1_000_000);
        assert_eq!(fmt_ms(d.min), "-3.000");
    }

    #[test]
    fn unit_conversions() {
        assert_eq!(ns_to_us(1_234_567), 1234.6);
        assert_eq!(fmt_ms(1_234_567), "1.235");
        let j = Dist::from_samples(vec![1_000, 2_000]).unwrap().to_json_us();
        assert_eq!(j["p50_us"], 1.0);
        assert_eq!(j["max_us"], 2.0);
        assert_eq!(j["mean_us"], 1.5);
        assert_eq!(j["count"], 2);
    }
}
