//! Which item a device reads, as both worlds choose it: a class (P0 and P1 three times in
//! ten each, P2 and P3 twice), then within the class an item whose popularity falls with
//! its rank in publication order (Zipf-like). A class with no item yet makes no read.
//!
//! Map: [`pick_read`]. Not covered: when devices read (the worlds draw exponential waits
//! at `reads_per_device_hour`), the random streams (the caller's).

use sovereign_logic::entropy::Entropy;

/// The read a device makes, drawn from `draw` (a whole number below 10, then — only
/// when the class has items — a number in 0..1); `items_of` says how many items a class
/// has. `(class index, item index within the class)`, or `None` when the class drawn has
/// no item.
pub fn pick_read(
    draw: &mut impl Entropy,
    items_of: impl Fn(usize) -> usize,
) -> Option<(usize, usize)> {
    let class = match draw.below(10) {
        0..=2 => 0,
        3..=5 => 1,
        6..=7 => 2,
        _ => 3,
    };
    let n = items_of(class);
    if n == 0 {
        return None;
    }
    let r = draw.unit();
    let idx = ((n as f64).powf(r) - 1.0)
        .floor()
        .clamp(0.0, (n - 1) as f64) as usize;
    Some((class, idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entropy that answers `below` with `class` and `unit` with `r`.
    struct Scripted {
        class: u64,
        r: f64,
    }

    impl Entropy for Scripted {
        fn next_u64(&mut self) -> u64 {
            unreachable!("below and unit are scripted")
        }
        fn below(&mut self, _n: u64) -> u64 {
            self.class
        }
        fn unit(&mut self) -> f64 {
            self.r
        }
    }

    fn pick(class: u64, r: f64, n: impl Fn(usize) -> usize) -> Option<(usize, usize)> {
        pick_read(&mut Scripted { class, r }, n)
    }

    #[test]
    fn classes_are_drawn_three_three_two_two_and_an_empty_class_reads_nothing() {
        // Goal: the class split and the skip both worlds rely on.
        let got: Vec<_> = (0..10).map(|d| pick(d, 0.0, |_| 1).map(|x| x.0)).collect();
        assert_eq!(got, [0, 0, 0, 1, 1, 1, 2, 2, 3, 3].map(Some));
        assert_eq!(pick(9, 0.5, |c| if c == 3 { 0 } else { 5 }), None);
    }

    #[test]
    fn the_rank_favours_the_first_items_and_stays_in_range() {
        // Goal: r = 0 picks the first item, r close to 1 the one before the last (n^r < n
        // for r < 1: the rule never draws a class's last item — the simulator's rule as
        // it is, kept so that no golden trace changes); never out of range.
        assert_eq!(pick(0, 0.0, |_| 100), Some((0, 0)));
        assert_eq!(pick(0, 0.999_999, |_| 100), Some((0, 98)));
        assert_eq!(pick(0, 0.5, |_| 100), Some((0, 9)));
        assert_eq!(pick(0, 1.0, |_| 1), Some((0, 0)));
    }
}
