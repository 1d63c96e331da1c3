//! Exact similarity: the dot product (cosine, since every vector is
//! L2-normalised) and the best-n selection both index paths end with.

/// A scored candidate: `row` is the caller's handle for the vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored<R> {
    pub score: f32,
    pub row: R,
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators: the compiler vectorises the loop
    // (it may not reassociate one running sum), and two SSE registers of
    // partial sums hide the add latency.
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// Keeps the best `n` of `scored`, best first. `tie` orders equal scores,
/// so the same candidates always come back in the same order.
pub(crate) fn best<R>(
    mut scored: Vec<Scored<R>>,
    n: usize,
    tie: impl Fn(&R, &R) -> std::cmp::Ordering,
) -> Vec<Scored<R>> {
    let n = n.min(scored.len());
    if n == 0 {
        return Vec::new();
    }
    let by = |a: &Scored<R>, b: &Scored<R>| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| tie(&a.row, &b.row))
    };
    if n < scored.len() {
        scored.select_nth_unstable_by(n - 1, by);
        scored.truncate(n);
    }
    scored.sort_by(by);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_is_a_dot_product() {
        for len in [0, 3, 8, 13, 384] {
            let a: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 3.0).collect();
            let want: f32 = a.iter().map(|x| x * x).sum();
            assert_eq!(dot(&a, &a), want, "len {len}");
        }
    }

    #[test]
    fn best_is_sorted_truncated_and_breaks_ties_by_the_row() {
        let s = |score, row| Scored { score, row };
        let got = best(
            vec![s(0.5, 3), s(0.9, 1), s(0.5, 2), s(0.1, 0)],
            3,
            |a: &i32, b: &i32| a.cmp(b),
        );
        assert_eq!(got, vec![s(0.9, 1), s(0.5, 2), s(0.5, 3)]);
        assert!(best(Vec::<Scored<i32>>::new(), 3, |a, b| a.cmp(b)).is_empty());
    }
}
