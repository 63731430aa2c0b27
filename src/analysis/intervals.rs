//! 95% intervals: Wilson score intervals for proportions, percentile bootstrap for
//! statistics of paired items (seeded, so a report recomputes identically).

use rand::{rngs::StdRng, Rng, SeedableRng};

const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval of `k` successes in `n` trials; `None` when `n` is 0.
pub fn wilson(k: usize, n: usize) -> Option<(f64, f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some((p, (centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Percentile bootstrap of `stat` over `items` (resampled with replacement, 2,000
/// times, seed 0). Resamples where `stat` is undefined are skipped; `None` when the
/// statistic is undefined on the data itself.
pub fn bootstrap<T>(items: &[T], stat: impl Fn(&[&T]) -> Option<f64>) -> Option<(f64, f64, f64)> {
    bootstrap_share(items, stat).0
}

/// [`bootstrap`], and the share of resamples in which `stat` was defined (0 when it
/// is undefined on the data itself): a ratio whose denominator is often 0 in
/// resamples has an interval from fewer draws than it seems.
pub fn bootstrap_share<T>(items: &[T], stat: impl Fn(&[&T]) -> Option<f64>) -> (Option<(f64, f64, f64)>, f64) {
    let all: Vec<&T> = items.iter().collect();
    let Some(value) = stat(&all) else { return (None, 0.0) };
    let mut rng = StdRng::seed_from_u64(0);
    let mut draws: Vec<f64> = Vec::with_capacity(2000);
    let mut sample: Vec<&T> = Vec::with_capacity(items.len());
    for _ in 0..2000 {
        sample.clear();
        sample.extend((0..items.len()).map(|_| &items[rng.random_range(0..items.len())]));
        if let Some(v) = stat(&sample) {
            draws.push(v);
        }
    }
    let share = draws.len() as f64 / 2000.0;
    if draws.is_empty() {
        return (Some((value, value, value)), share);
    }
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((q * (draws.len() - 1) as f64).round() as usize).min(draws.len() - 1)];
    (Some((value, at(0.025), at(0.975))), share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values() {
        // 8 of 10: the Wilson interval is [0.490, 0.943].
        let (p, lo, hi) = wilson(8, 10).unwrap();
        assert!((p - 0.8).abs() < 1e-12 && (lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        let (_, lo, hi) = wilson(0, 20).unwrap();
        assert!(lo == 0.0 && hi > 0.1 && hi < 0.2);
        assert!(wilson(0, 0).is_none());
    }

    #[test]
    fn bootstrap_brackets_the_statistic_and_is_repeatable() {
        let xs: Vec<f64> = (0..100).map(|i| (i % 10) as f64).collect();
        let mean = |s: &[&f64]| Some(s.iter().copied().sum::<f64>() / s.len() as f64);
        let (v, lo, hi) = bootstrap(&xs, mean).unwrap();
        assert!(lo < v && v < hi && (v - 4.5).abs() < 1e-12 && hi - lo < 1.5, "{lo} {v} {hi}");
        assert_eq!(bootstrap(&xs, mean), bootstrap(&xs, mean));
        assert!(bootstrap(&xs, |_| None).is_none());
    }
}
