//! Medians with their range, as every table of the benchmark gives them.

/// The median, the least and the most.
pub fn spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(|a, b| a.total_cmp(b));
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

/// `median (min–max)`, or the one value.
pub fn fmt_spread(xs: Vec<f64>, digits: usize) -> String {
    let (med, min, max) = spread(xs);
    if min == max {
        format!("{med:.digits$}")
    } else {
        format!("{med:.digits$} ({min:.digits$}–{max:.digits$})")
    }
}

/// The median alone.
pub fn median(xs: &[f64]) -> f64 {
    spread(xs.to_vec()).0
}

/// The ratio of two medians.
pub fn ratio(xs: &[f64], base: &[f64]) -> f64 {
    median(xs) / median(base)
}
