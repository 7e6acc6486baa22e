//! Overlapping windows over a long sequence of word pieces.
//!
//! A transformer sees at most `max_position_embeddings` pieces at once. A
//! long article is cut into windows that share `overlap` pieces with their
//! neighbours; each piece takes its prediction from the window where it sits
//! farthest from an edge, so every prediction had context on both sides and
//! each piece is predicted exactly once.

use std::ops::Range;

/// One window: the pieces it runs over, and the pieces it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub run: Range<usize>,
    pub keep: Range<usize>,
}

/// Cuts `len` pieces into windows of at most `capacity` pieces, neighbours
/// sharing `overlap` (clamped below `capacity`). The `keep` ranges partition
/// `0..len` in order.
pub fn plan_windows(len: usize, capacity: usize, overlap: usize) -> Vec<Window> {
    let capacity = capacity.max(1);
    let overlap = overlap.min(capacity - 1);
    if len <= capacity {
        return vec![Window {
            run: 0..len,
            keep: 0..len,
        }];
    }
    let step = capacity - overlap;
    let mut runs = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + capacity).min(len);
        runs.push(start..end);
        if end == len {
            break;
        }
        start += step;
    }
    // Between two neighbours, the shared pieces split at their middle.
    let mut windows = Vec::with_capacity(runs.len());
    let mut keep_start = 0;
    for (i, run) in runs.iter().enumerate() {
        let keep_end = match runs.get(i + 1) {
            Some(next) => {
                let shared = run.end.saturating_sub(next.start);
                next.start + shared.div_ceil(2)
            }
            None => len,
        };
        windows.push(Window {
            run: run.clone(),
            keep: keep_start..keep_end,
        });
        keep_start = keep_end;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_short_sequence_is_one_window() {
        assert_eq!(
            plan_windows(5, 10, 3),
            vec![Window {
                run: 0..5,
                keep: 0..5
            }]
        );
        assert_eq!(plan_windows(0, 10, 3).len(), 1);
    }

    #[test]
    fn neighbours_share_the_overlap_and_split_it() {
        let w = plan_windows(20, 10, 4);
        assert_eq!(w[0].run, 0..10);
        assert_eq!(w[1].run, 6..16);
        assert_eq!(w[2].run, 12..20);
        assert_eq!(w[0].keep, 0..8);
        assert_eq!(w[1].keep, 8..14);
        assert_eq!(w[2].keep, 14..20);
    }

    proptest! {
        #[test]
        fn keeps_partition_the_pieces_inside_their_runs(
            len in 0usize..2000, capacity in 1usize..600, overlap in 0usize..600
        ) {
            let windows = plan_windows(len, capacity, overlap);
            let mut next = 0;
            for w in &windows {
                prop_assert_eq!(w.keep.start, next);
                prop_assert!(w.run.start <= w.keep.start && w.keep.end <= w.run.end);
                prop_assert!(w.run.len() <= capacity.max(1));
                next = w.keep.end;
            }
            prop_assert_eq!(next, len);
        }
    }
}
