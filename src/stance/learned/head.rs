//! The head: one mention's features, read off its sentence's hidden states,
//! then three logits (negative, neutral, positive), exactly as
//! `training/stance/common.py`'s `Head` computes them.
//!
//! Every mention of a sentence shares the sentence's encoder pass; only the
//! head is per mention, so it stays a few vector operations.

/// How the mention's features are pooled: the manifest's `pooling`.
#[derive(Debug, Clone, PartialEq)]
pub enum Pooling {
    /// `[t ; s ; t ⊙ s]`: `t` the mean of the mention's pieces, `s` the
    /// mean of the sentence's.
    Mean,
    /// `[t ; s ; t ⊙ s ; c ; t ⊙ c]`, with `c` the sentence's states
    /// weighted by `softmax_j((Q t) · h_j / √d)`: a context of the
    /// mention's own, so two targets of one sentence read it differently.
    Attend {
        /// `Q`, d × d, row-major (`q = Q t`).
        query: Vec<f32>,
    },
}

/// The head a manifest names (its `pooling`), before its numbers are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum HeadKind {
    /// [`Pooling::Mean`]; the first adapters, which had only this head, do
    /// not name it.
    #[default]
    #[serde(rename = "target-mean ; sentence-mean ; product")]
    Mean,
    /// [`Pooling::Attend`].
    #[serde(rename = "target-mean ; sentence-mean ; product ; target-attention ; product")]
    Attend,
}

impl HeadKind {
    /// Features per mention, in multiples of the hidden size.
    pub fn width(self) -> usize {
        match self {
            HeadKind::Mean => 3,
            HeadKind::Attend => 5,
        }
    }
}

/// The trained head.
#[derive(Debug, Clone)]
pub struct Head {
    hidden: usize,
    pooling: Pooling,
    /// `weight[label][feature]`, 3 × (width · hidden).
    weight: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

impl Head {
    /// A head whose shapes the caller (the adapter loader) has checked.
    pub(crate) fn new(
        hidden: usize,
        pooling: Pooling,
        weight: Vec<Vec<f32>>,
        bias: Vec<f32>,
    ) -> Self {
        Head {
            hidden,
            pooling,
            weight,
            bias,
        }
    }

    /// Logits of one mention: `states` are its row's hidden states (pieces
    /// × hidden), `pieces` the positions the mention covers, `sentence` the
    /// mean of every row state.
    pub fn logits(&self, states: &[f32], pieces: &[usize], sentence: &[f32]) -> [f32; 3] {
        let d = self.hidden;
        let piece = |p: usize| &states[p * d..(p + 1) * d];
        let t = mean(pieces.iter().map(|&p| piece(p)), d);
        let mut features = Vec::with_capacity(self.weight[0].len());
        features.extend_from_slice(&t);
        features.extend_from_slice(sentence);
        features.extend(t.iter().zip(sentence).map(|(a, b)| a * b));
        if let Pooling::Attend { query } = &self.pooling {
            let q: Vec<f32> = query.chunks_exact(d).map(|row| dot(row, &t)).collect();
            let scale = (d as f32).sqrt();
            let n = states.len() / d;
            let scores: Vec<f32> = (0..n).map(|j| dot(&q, piece(j)) / scale).collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let z: f32 = weights.iter().sum();
            let mut c = vec![0f32; d];
            for (j, w) in weights.iter().enumerate() {
                for (acc, x) in c.iter_mut().zip(piece(j)) {
                    *acc += w / z * x;
                }
            }
            features.extend_from_slice(&c);
            features.extend(t.iter().zip(&c).map(|(a, b)| a * b));
        }
        let mut logits = [0f32; 3];
        for ((out, w), b) in logits.iter_mut().zip(&self.weight).zip(&self.bias) {
            *out = b + dot(w, &features);
        }
        logits
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The mean of `rows`, each `d` long (zeros for none).
pub(crate) fn mean<'a>(rows: impl Iterator<Item = &'a [f32]>, d: usize) -> Vec<f32> {
    let mut acc = vec![0f32; d];
    let mut n = 0usize;
    for row in rows {
        for (a, x) in acc.iter_mut().zip(row) {
            *a += x;
        }
        n += 1;
    }
    let n = n.max(1) as f32;
    acc.iter_mut().for_each(|a| *a /= n);
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pieces in two dimensions: the mention is piece 0.
    const STATES: [f32; 4] = [1.0, 0.0, 0.0, 1.0];

    fn one_hot(width: usize, at: usize) -> Vec<f32> {
        (0..width)
            .map(|i| if i == at { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn mean_pooling_reads_the_mention_the_sentence_and_their_product() {
        // Features [t ; s ; t*s] = [1, 0, .5, .5, .5, 0].
        let weight = vec![vec![1.0; 6], one_hot(6, 3), vec![0.0; 6]];
        let head = Head::new(2, Pooling::Mean, weight, vec![0.0, 0.0, 0.25]);
        let logits = head.logits(&STATES, &[0], &[0.5, 0.5]);
        assert_eq!(logits, [2.5, 0.5, 0.25]);
    }

    #[test]
    fn attending_pooling_weights_the_pieces_by_the_mentions_query() {
        // Q = I: q = t = [1, 0]; scores [1/√2, 0]; a = softmax(scores).
        let a0 = (0.5f32.sqrt()).exp() / ((0.5f32.sqrt()).exp() + 1.0);
        let c = [a0, 1.0 - a0];
        // Features [t ; s ; t*s ; c ; t*c] = [1, 0, .5, .5, .5, 0, c0, c1, c0, 0].
        let weight = vec![vec![1.0; 10], one_hot(10, 7), one_hot(10, 8)];
        let query = vec![1.0, 0.0, 0.0, 1.0];
        let head = Head::new(2, Pooling::Attend { query }, weight, vec![0.0; 3]);
        let logits = head.logits(&STATES, &[0], &[0.5, 0.5]);
        let want = [2.5 + c[0] + c[1] + c[0], c[1], c[0]];
        for (got, want) in logits.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{logits:?} against {want:?}");
        }
        assert!(c[0] > c[1], "the mention attends most to itself");
    }
}
