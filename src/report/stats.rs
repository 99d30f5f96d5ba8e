//! How uncertain a measured figure is, so a comparison flags only differences larger than
//! run-to-run noise. Every figure gets a 95 % confidence interval; two runs' figures differ
//! beyond noise when their intervals do not overlap.
//!
//! - A latency percentile: the distribution-free interval of a quantile from order statistics
//!   (Conover, *Practical Nonparametric Statistics*, §3.2): with n sorted values, the q-quantile
//!   lies between the values of rank `nq − z√(nq(1−q))` and `1 + nq + z√(nq(1−q))` with ~95 %
//!   probability, whatever the latency distribution (it is skewed and multi-modal: no normal
//!   approximation of the values themselves). A rank outside 1..=n leaves that side unbounded: a
//!   p99 of 40 requests has no upper bound, so it cannot be called different.
//! - A throughput: completions in a window are a count; its noise is Poisson (√N). Tokens per
//!   second vary with the number of requests completed, so they get the same relative interval.
//! - An error rate: the Wilson score interval of a proportion.
//!
//! Non-overlap of two 95 % intervals is a conservative test (about the 0.5 % level for equal
//! widths): a flag means a real change, not a lucky draw; no flag does not prove "no change".
//! The intervals take requests as independent draws. Near saturation a queue makes neighbouring
//! requests' latencies move together, which makes the true interval wider than these: a flag on
//! a change of a few percent at a saturated stage deserves a second run before it is believed.

/// z of a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A figure and its confidence interval; a side is `None` when the data cannot bound it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The estimate.
    pub value: f64,
    /// Lower bound.
    pub lo: Option<f64>,
    /// Upper bound.
    pub hi: Option<f64>,
}

impl Interval {
    /// Whether `self` lies wholly below `other`.
    pub fn below(&self, other: &Interval) -> bool {
        matches!((self.hi, other.lo), (Some(h), Some(l)) if h < l)
    }

    /// Both sides bounded.
    pub fn bounded(&self) -> bool {
        self.lo.is_some() && self.hi.is_some()
    }
}

/// The 1-based ranks bounding the q-quantile's interval in a sample of `n` (may fall outside 1..=n).
pub fn ranks(n: usize, q: f64, z: f64) -> (f64, f64) {
    let nf = n as f64;
    let half = z * (nf * q * (1.0 - q)).sqrt();
    ((nf * q - half).round(), (1.0 + nf * q + half).round())
}

/// The smallest sample whose q-quantile interval has an upper bound.
pub fn min_sample_bounding(q: f64, z: f64) -> usize {
    (1..1_000_000).find(|&n| ranks(n, q, z).1 <= n as f64).unwrap_or(usize::MAX)
}

/// The q-quantile of `sorted` (nearest rank) and its order-statistic interval; `None` when empty.
pub fn quantile(sorted: &[f64], q: f64, z: f64) -> Option<Interval> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let rank = ((q * nf).ceil() as usize).clamp(1, n);
    let (lo_rank, hi_rank) = ranks(n, q, z);
    let at = |r: f64| (r >= 1.0 && r <= nf).then(|| sorted[r as usize - 1]);
    Some(Interval { value: sorted[rank - 1], lo: at(lo_rank), hi: at(hi_rank) })
}

/// A rate of `count` events in `seconds`, and its Poisson interval (normal approximation; with
/// no event, the upper bound is z²/T, the score interval's).
pub fn poisson_rate(count: u64, seconds: f64, z: f64) -> Option<Interval> {
    if seconds <= 0.0 {
        return None;
    }
    let n = count as f64;
    let half = if count == 0 { z * z } else { z * n.sqrt() };
    Some(Interval { value: n / seconds, lo: Some(((n - half) / seconds).max(0.0)), hi: Some((n + half) / seconds) })
}

/// `value` (e.g. tokens/s) carried by `count` completions: the same relative interval as their
/// Poisson count.
pub fn scaled_by_count(value: f64, count: u64, z: f64) -> Option<Interval> {
    if count == 0 {
        return None;
    }
    let rel = z / (count as f64).sqrt();
    Some(Interval { value, lo: Some((value * (1.0 - rel)).max(0.0)), hi: Some(value * (1.0 + rel)) })
}

/// The proportion `k / n` and its Wilson score interval.
pub fn proportion(k: u64, n: u64, z: f64) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let center = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 or n the bound is exactly 0 or 1 (the formula leaves rounding dust there).
    let lo = if k == 0.0 { 0.0 } else { (center - half).max(0.0) };
    let hi = if k == n { 1.0 } else { (center + half).min(1.0) };
    Some(Interval { value: p, lo: Some(lo), hi: Some(hi) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_median_interval_covers_the_middle_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let i = quantile(&v, 0.5, Z95).unwrap();
        // 50 ± 1.96·5 = 40.2 .. 60.8 → ranks 40 and 61.
        assert_eq!((i.value, i.lo, i.hi), (50.0, Some(40.0), Some(61.0)));
        let p99 = quantile(&v, 0.99, Z95).unwrap();
        assert_eq!(p99.value, 99.0);
        assert_eq!(p99.hi, None, "100 requests cannot bound a p99 from above");
        let n = min_sample_bounding(0.99, Z95);
        assert!(quantile(&vec![0.0; n], 0.99, Z95).unwrap().hi.is_some());
        assert!(quantile(&vec![0.0; n - 1], 0.99, Z95).unwrap().hi.is_none());
        assert!(quantile(&[], 0.5, Z95).is_none());
    }

    #[test]
    fn the_median_interval_holds_the_true_median_about_95_percent_of_the_time() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Exponential samples (median ln 2): skewed, as latencies are.
        let truth = std::f64::consts::LN_2;
        let trials = 2000;
        let covered = (0..trials)
            .filter(|_| {
                let mut v: Vec<f64> = (0..200).map(|_| -(1.0 - rng.random::<f64>()).ln()).collect();
                v.sort_by(f64::total_cmp);
                let i = quantile(&v, 0.5, Z95).unwrap();
                i.lo.unwrap() <= truth && truth <= i.hi.unwrap()
            })
            .count();
        let rate = covered as f64 / trials as f64;
        assert!((0.93..=0.975).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn separated_intervals_and_overlapping_ones() {
        let a = Interval { value: 1.0, lo: Some(0.9), hi: Some(1.1) };
        let b = Interval { value: 1.5, lo: Some(1.2), hi: Some(1.8) };
        let c = Interval { value: 1.15, lo: Some(1.05), hi: None };
        assert!(a.below(&b) && !b.below(&a));
        assert!(!a.below(&c), "overlapping");
        assert!(!c.below(&b), "an unbounded top is never below anything");
    }

    #[test]
    fn counts_and_proportions() {
        let r = poisson_rate(100, 10.0, Z95).unwrap();
        assert_eq!(r.value, 10.0);
        assert!((r.hi.unwrap() - r.value - 1.96).abs() < 1e-3, "{r:?}");
        assert_eq!(poisson_rate(0, 10.0, Z95).unwrap().lo, Some(0.0));
        let p = proportion(0, 100, Z95).unwrap();
        assert_eq!((p.value, p.lo), (0.0, Some(0.0)));
        assert!(p.hi.unwrap() > 0.03 && p.hi.unwrap() < 0.04, "{p:?}");
        let t = scaled_by_count(1000.0, 400, Z95).unwrap();
        assert!((t.lo.unwrap() - 902.0).abs() < 0.1, "{t:?}");
    }
}
