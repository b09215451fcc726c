//! A log-bucketed latency histogram in the style of HdrHistogram.
//!
//! Values (nanoseconds) below `2^(PRECISION+1)` are counted exactly; above that, each power of two
//! is split into `2^PRECISION` equal sub-buckets, so a bucket is never wider than `1/128` of the
//! values it holds and a reported percentile (the bucket's midpoint, clamped to the observed
//! minimum and maximum) is within 0.4% of the true one. Recording is one `leading_zeros`, a
//! shift and an increment: no allocation, no locking. Each worker owns its histograms and the
//! runner merges them at the end.

/// Sub-bucket precision in bits: 128 sub-buckets per power of two.
const PRECISION: u32 = 7;
/// Values at or above `2^MAX_BITS` ns (about 18 minutes) are clamped into the last bucket.
const MAX_BITS: u32 = 40;
const SUB: u64 = 1 << PRECISION;
const LINEAR: u64 = SUB << 1;
const BUCKETS: usize = (LINEAR + (MAX_BITS - PRECISION - 1) as u64 * SUB) as usize;

/// Counts of recorded values, with the exact minimum, maximum and sum.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        let v = v.min((1u64 << MAX_BITS) - 1);
        if v < LINEAR {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - PRECISION;
        let sub = (v >> shift) - SUB;
        (LINEAR + u64::from(msb - PRECISION - 1) * SUB + sub) as usize
    }

    /// The lowest and highest value that land in bucket `i`.
    fn bounds(i: usize) -> (u64, u64) {
        let i = i as u64;
        if i < LINEAR {
            return (i, i);
        }
        let octave = (i - LINEAR) / SUB;
        let sub = (i - LINEAR) % SUB;
        let shift = octave + 1;
        let low = (SUB + sub) << shift;
        (low, low + (1 << shift) - 1)
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    /// The arithmetic mean (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at percentile `q` (0 to 100): the value of rank `ceil(q% of count)`, to within
    /// the bucket precision. 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 100.0);
        let rank = ((q / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        // The extremes are known exactly.
        if rank == 1 {
            return self.min;
        }
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = Self::bounds(i);
                let mid = low + (high - low) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(actual: u64, expected: u64, rel: f64) -> bool {
        (actual as f64 - expected as f64).abs() <= expected as f64 * rel
    }

    #[test]
    fn every_value_lands_in_a_bucket_that_contains_it() {
        let mut v = 1u64;
        while v < (1 << MAX_BITS) {
            for x in [v - 1, v, v + 1, v + v / 3] {
                if x >= 1 << MAX_BITS {
                    continue;
                }
                let (low, high) = Histogram::bounds(Histogram::index(x));
                assert!(low <= x && x <= high, "{x} not in [{low}, {high}]");
                assert!(
                    (high - low) as f64 <= (x as f64 / SUB as f64).max(0.0),
                    "bucket [{low}, {high}] too wide for {x}"
                );
            }
            v = v * 3 / 2 + 1;
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        // 1 µs to 10 ms in 1 µs steps, shuffled order does not matter.
        for us in (1..=10_000u64).rev() {
            h.record(us * 1000);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 10_000_000);
        for (q, expected) in [
            (50.0, 5_000_000),
            (90.0, 9_000_000),
            (99.0, 9_900_000),
            (99.9, 9_990_000),
        ] {
            let got = h.percentile(q);
            assert!(within(got, expected, 0.004), "p{q}: {got} vs {expected}");
        }
        assert_eq!(h.percentile(100.0), 10_000_000);
        assert_eq!(h.percentile(0.0), 1000);
        assert!(within(h.mean() as u64, 5_000_500, 1e-9));
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in [3, 3, 3, 7, 200] {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 3);
        assert_eq!(h.percentile(80.0), 7);
        assert_eq!(h.percentile(99.0), 200);
    }

    #[test]
    fn a_skewed_distribution() {
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(100_000); // 100 µs
        }
        for _ in 0..10 {
            h.record(50_000_000); // 50 ms
        }
        assert!(within(h.percentile(50.0), 100_000, 0.004));
        assert!(within(h.percentile(99.0), 100_000, 0.004));
        assert!(within(h.percentile(99.5), 50_000_000, 0.004));
        assert_eq!(h.max(), 50_000_000);
    }

    #[test]
    fn merging_equals_recording_into_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in 0..5000u64 {
            let x = v * v * 37 + 11;
            if v % 3 == 0 { &mut a } else { &mut b }.record(x);
            all.record(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        assert_eq!(a.min(), all.min());
        assert_eq!(a.max(), all.max());
        for q in [1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.99] {
            assert_eq!(a.percentile(q), all.percentile(q));
        }
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert_eq!(h.percentile(50.0), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.max(), 0);
        assert_eq!(h.mean(), 0.0);
    }
}
