//! spaCy's `Tagger` (`Tagger.v2`, `normalize = false`): a `softmax` layer
//! over the vectors of the shared tok2vec (through a `Tok2VecListener`); the
//! tag of a token is the arg-max class (`scores.argmax(axis=1)`, first
//! maximum on ties). Softmax is monotonic, so the arg-max of the logits is
//! taken directly.

use std::path::Path;
use std::sync::Arc;

use super::error::ModelError;
use super::thinc::ThincModel;
use super::tok2vec::Linear;

/// The tagger: output layer and tag names (`tagger/cfg` `labels`, in class
/// order).
#[derive(Debug, Clone)]
pub struct Tagger {
    softmax: Linear,
    labels: Vec<Arc<str>>,
}

impl Tagger {
    /// Loads `<tagger_dir>/model` and the labels of `<tagger_dir>/cfg`;
    /// `width` is the width of the listened-to tok2vec.
    pub fn load(tagger_dir: &Path, width: usize) -> Result<Tagger, ModelError> {
        let cfg_path = tagger_dir.join("cfg");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
        let cfg: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::format(&cfg_path, format!("not JSON: {e}")))?;
        let labels: Vec<Arc<str>> = cfg
            .get("labels")
            .and_then(|l| l.as_array())
            .ok_or_else(|| ModelError::format(&cfg_path, "no `labels` array"))?
            .iter()
            .map(|l| l.as_str().map(Arc::from))
            .collect::<Option<_>>()
            .ok_or_else(|| ModelError::format(&cfg_path, "a label is not a string"))?;
        let model = ThincModel::load(&tagger_dir.join("model"))?;
        let node = model
            .nodes_named("softmax")
            .next()
            .ok_or_else(|| model.error("no softmax layer (not a Tagger.v2 model)"))?;
        let n_out = node.dim("nO").unwrap_or(-1);
        if n_out != labels.len() as i64 {
            return Err(model.error(format!(
                "softmax has nO {n_out} but tagger/cfg lists {} labels",
                labels.len()
            )));
        }
        if let Some(v) = node.attrs.get("softmax_normalize") {
            // Only the arg-max is used, which normalisation does not change;
            // the attribute is checked to catch unknown layer variants.
            if v.as_bool().is_none() {
                return Err(model.error("softmax_normalize is not a boolean"));
            }
        }
        let softmax = Linear::load(&model, node, width, labels.len())?;
        Ok(Tagger { softmax, labels })
    }

    /// Tag names in class order.
    pub fn labels(&self) -> &[Arc<str>] {
        &self.labels
    }

    /// Class index of every token, given the tok2vec output (`n × width`).
    pub fn predict(&self, n: usize, tokvecs: &[f32]) -> Vec<usize> {
        let k = self.labels.len();
        let mut scores = vec![0.0f32; n * k];
        self.softmax.forward(n, tokvecs, &mut scores);
        scores
            .chunks_exact(k)
            .map(|row| {
                let mut best = 0;
                for (c, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = c;
                    }
                }
                best
            })
            .collect()
    }
}
