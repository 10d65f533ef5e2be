//! The one percentile function of the workspace: the black-box and audit
//! suites and the load generator (`synckairos-bench`) all report latencies
//! with it, so their numbers mean the same thing.
//!
//! Nearest rank over exact samples: it never reports a value that was not
//! measured, and quantiles are integer basis points so p99.9 is exact.

/// A quantile in basis points (1/100 of a percent), so p99.9 is exact integer
/// arithmetic (`9990`) instead of a float that rounds the rank the wrong way.
pub type Basis = u32;

/// The median.
pub const P50: Basis = 5000;
/// 90th percentile.
pub const P90: Basis = 9000;
/// 99th percentile.
pub const P99: Basis = 9900;
/// 99.9th percentile.
pub const P999: Basis = 9990;

/// Nearest-rank percentile of an ascending-sorted slice: the smallest sample
/// such that at least `q` (in basis points) of all samples are `<=` it.
/// `None` for an empty slice or `q > 10000`. Works for any sample type
/// (`i64` nanoseconds, `Duration`, ...).
pub fn percentile<T: Copy>(sorted: &[T], q: Basis) -> Option<T> {
    if sorted.is_empty() || q > 10_000 {
        return None;
    }
    let n = sorted.len() as u128;
    // rank = ceil(q * n / 10000), 1-based, at least 1.
    let rank = (u128::from(q) * n).div_ceil(10_000).max(1);
    let idx = usize::try_from(rank - 1).ok()?;
    sorted.get(idx).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, P50), Some(50));
        assert_eq!(percentile(&v, P90), Some(90));
        assert_eq!(percentile(&v, P99), Some(99));
        assert_eq!(percentile(&v, P999), Some(100));
        assert_eq!(percentile(&v, 10_000), Some(100));
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&v, 1), Some(1));
    }

    #[test]
    fn p999_of_a_thousand_is_the_999th_not_the_max() {
        // A float rank (0.999 * 1000 = 999.0000000000001) would round up to the max.
        let v: Vec<i64> = (1..=1000).collect();
        assert_eq!(percentile(&v, P999), Some(999));
        let v: Vec<i64> = (1..=10_000).collect();
        assert_eq!(percentile(&v, P999), Some(9990));
        assert_eq!(percentile(&v, P99), Some(9900));
    }

    #[test]
    fn small_and_empty_inputs() {
        assert_eq!(percentile::<i64>(&[], P50), None);
        assert_eq!(percentile(&[7i64], P50), Some(7));
        assert_eq!(percentile(&[7i64], P999), Some(7));
        assert_eq!(percentile(&[1i64, 2], P50), Some(1));
        assert_eq!(percentile(&[1i64, 2], 5001), Some(2));
        assert_eq!(percentile(&[1i64, 2], 10_001), None);
    }

    #[test]
    fn durations_work_too() {
        let v: Vec<Duration> = (1..=4).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, P50), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&v, P99), Some(Duration::from_millis(4)));
        assert_eq!(percentile::<Duration>(&[], P99), None);
    }
}
