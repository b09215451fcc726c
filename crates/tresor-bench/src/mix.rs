//! The weighted mix of workloads: which workload a worker runs next.
//!
//! Smooth weighted round-robin (the scheme nginx uses for upstreams): every pick adds each
//! weight to its running credit, takes the entry with the most credit and charges it the total.
//! Over any `sum(weights)` consecutive picks each entry comes up exactly `weight` times, and the
//! picks are spread out rather than bunched, so a short run still sees the intended mix. It is
//! deterministic, needs no random numbers, and costs one pass over a handful of weights.

/// One worker's picker over a fixed list of weights.
#[derive(Clone, Debug)]
pub struct Mix {
    weights: Vec<u64>,
    credit: Vec<i64>,
    total: i64,
}

impl Mix {
    /// A picker over `weights` (each at least 1; validated when options are parsed).
    pub fn new(weights: &[u64]) -> Self {
        debug_assert!(!weights.is_empty() && weights.iter().all(|&w| w > 0));
        Mix {
            weights: weights.to_vec(),
            credit: vec![0; weights.len()],
            total: weights.iter().sum::<u64>() as i64,
        }
    }

    /// A picker whose sequence is shifted by `offset` picks, so that concurrent workers do not
    /// all hit the same workload at the same moment.
    pub fn with_offset(weights: &[u64], offset: usize) -> Self {
        let mut m = Mix::new(weights);
        let skip = offset % (m.total.max(1) as usize);
        for _ in 0..skip {
            m.next_index();
        }
        m
    }

    /// The index of the workload to run next.
    pub fn next_index(&mut self) -> usize {
        if self.weights.len() == 1 {
            return 0;
        }
        let mut best = 0;
        for i in 0..self.weights.len() {
            self.credit[i] += self.weights[i] as i64;
            if self.credit[i] > self.credit[best] {
                best = i;
            }
        }
        self.credit[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(weights: &[u64], offset: usize, picks: usize) -> Vec<usize> {
        let mut m = Mix::with_offset(weights, offset);
        let mut c = vec![0; weights.len()];
        for _ in 0..picks {
            c[m.next_index()] += 1;
        }
        c
    }

    #[test]
    fn each_cycle_gives_exactly_the_weights() {
        for weights in [
            vec![1],
            vec![1, 1],
            vec![70, 30],
            vec![5, 1, 3],
            vec![2, 7, 1, 10],
        ] {
            let total: u64 = weights.iter().sum();
            for offset in [0, 1, 3, 17] {
                let c = counts(&weights, offset, total as usize * 4);
                let expected: Vec<usize> = weights.iter().map(|&w| w as usize * 4).collect();
                assert_eq!(c, expected, "weights {weights:?} offset {offset}");
            }
        }
    }

    #[test]
    fn picks_are_spread_not_bunched() {
        // 50/50 alternates; 3:1 never runs the light one twice in a row.
        let mut m = Mix::new(&[1, 1]);
        let seq: Vec<usize> = (0..6).map(|_| m.next_index()).collect();
        assert_eq!(seq, [0, 1, 0, 1, 0, 1]);
        let mut m = Mix::new(&[3, 1]);
        let seq: Vec<usize> = (0..8).map(|_| m.next_index()).collect();
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 2);
        assert!(seq.windows(2).all(|w| !(w[0] == 1 && w[1] == 1)), "{seq:?}");
    }

    #[test]
    fn offsets_desynchronise_workers() {
        let mut a = Mix::with_offset(&[1, 1], 0);
        let mut b = Mix::with_offset(&[1, 1], 1);
        assert_ne!(a.next_index(), b.next_index());
    }
}
