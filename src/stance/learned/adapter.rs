//! The trained adapter: what differs from the fetched base encoder.
//!
//! `adapter.json` is the manifest (labels, rank, temperature, the sha256 of
//! the adapter file and of the base model it was trained on, training data
//! and figures); `adapter.safetensors` holds, for every adapted linear layer,
//! either its low-rank factors (`<layer>.lora_a`, `<layer>.lora_b`) or, for
//! a model whose layers were trained whole (`"tuning": "full"`), its
//! difference from the base weight (`<layer>.delta`, float16: half the size,
//! and the difference is small enough that nothing is lost that matters)
//! and its bias; the trained LayerNorms (replacing the base's) and the head
//! (`head.weight`, `head.bias`, and `head.query.weight` for the attending
//! pooling). Loading checks both checksums before anything is used, so a
//! corrupt or mismatched file is a start-up error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::head::{Head, HeadKind, Pooling};

/// The manifest's format tag this runtime reads.
pub const FORMAT: &str = "article-analyzer-stance-adapter/1";

/// Why a learned model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: sha256 is {actual}, the manifest says {expected}", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl AdapterError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AdapterError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        AdapterError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// The base model the adapter was trained on.
#[derive(Debug, Clone, Deserialize)]
pub struct BaseModel {
    pub name: String,
    pub package: String,
    pub model_sha256: String,
    pub tokenizer_sha256: String,
}

/// How and on what the adapter was trained (reported by `GetModels`).
#[derive(Debug, Clone, Deserialize)]
pub struct Training {
    pub data: String,
}

/// `adapter.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub name: String,
    pub version: String,
    pub labels: Vec<String>,
    /// How the layers were adapted.
    #[serde(default)]
    pub tuning: TuningKind,
    /// The low-rank factors' rank and scale (low-rank tuning only).
    #[serde(default)]
    pub rank: Option<usize>,
    #[serde(default)]
    pub alpha: Option<f32>,
    /// Softmax temperature fitted on the dev split (sentence level).
    pub temperature: f32,
    /// Which head the adapter holds (an unknown name is a malformed
    /// manifest).
    #[serde(default)]
    pub pooling: HeadKind,
    pub adapter_sha256: String,
    pub base: BaseModel,
    pub training: Training,
    /// The article-level decision fitted for this model.
    #[serde(default)]
    pub decision: Decision,
}

/// The article-level decision's numbers for one mode: the score
/// `c = learned_weight · z + lexicon_weight · L`, NEUTRAL's logit
/// `neutral_margin + neutral_weight · N` against `±c` (`N` the model's mean
/// P(neutral) over the target's sentences), and the weight of a sentence
/// whose mention is someone else's reported words.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct DecisionSettings {
    pub learned_weight: f32,
    pub lexicon_weight: f32,
    pub neutral_margin: f32,
    /// 0 where a manifest does not say (the first adapter's decision).
    #[serde(default)]
    pub neutral_weight: f32,
    pub reported_weight: f32,
}

/// The decision settings fitted for a model on the development sets by
/// `cargo run --release --example stance_fit`; they live beside the model
/// because they are fitted to its probabilities. A manifest without them
/// (the first adapter's) gets the settings fitted for that adapter.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Decision {
    /// The model and the lexicon's cues (the default engine).
    pub combined: DecisionSettings,
    /// The model alone (`lexicon_weight` 0).
    pub learned_only: DecisionSettings,
}

impl Default for Decision {
    fn default() -> Self {
        Decision {
            combined: DecisionSettings {
                learned_weight: 1.5,
                lexicon_weight: 1.0,
                neutral_margin: 0.4,
                neutral_weight: 0.0,
                reported_weight: 0.25,
            },
            learned_only: DecisionSettings {
                learned_weight: 1.6,
                lexicon_weight: 0.0,
                neutral_margin: 0.34,
                neutral_weight: 0.0,
                reported_weight: 0.25,
            },
        }
    }
}

impl Decision {
    /// Every number finite, the weights not negative (the margin is a
    /// logit and may be).
    fn is_valid(&self) -> bool {
        [self.combined, self.learned_only].iter().all(|d| {
            let weights = [
                d.learned_weight,
                d.lexicon_weight,
                d.neutral_weight,
                d.reported_weight,
            ];
            d.neutral_margin.is_finite() && weights.iter().all(|x| x.is_finite() && *x >= 0.0)
        })
    }
}

/// The manifest's `tuning` (low-rank when absent, as in the first adapters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TuningKind {
    #[default]
    Lora,
    Full,
}

/// How an adapted weight is rebuilt from the base, checked against the
/// manifest once at load.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tuning {
    /// `W + scale · B A`, with `scale = alpha / rank`.
    LowRank { scale: f64 },
    /// `W + delta`.
    Whole,
}

impl Manifest {
    fn tuning(&self) -> Option<Tuning> {
        match (self.tuning, self.rank, self.alpha) {
            (TuningKind::Lora, Some(rank), Some(alpha)) if rank > 0 && alpha.is_finite() => {
                Some(Tuning::LowRank {
                    scale: f64::from(alpha) / rank as f64,
                })
            }
            (TuningKind::Full, None, None) => Some(Tuning::Whole),
            _ => None,
        }
    }
}

/// A checked adapter, ready to merge into its base.
#[derive(Debug)]
pub struct Adapter {
    pub manifest: Manifest,
    tuning: Tuning,
    tensors: HashMap<String, Tensor>,
    path: PathBuf,
}

/// The file's sha256, read in chunks (the base weights are 90 MB).
fn sha256_of(path: &Path) -> Result<String, AdapterError> {
    let mut file = std::fs::File::open(path).map_err(|e| AdapterError::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| AdapterError::io(path, e))?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn check_sha(path: &Path, expected: &str) -> Result<(), AdapterError> {
    let actual = sha256_of(path)?;
    if actual != expected {
        return Err(AdapterError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

impl Adapter {
    /// Reads and checks `dir/adapter.json` and `dir/adapter.safetensors`
    /// against each other and against the base directory's files.
    pub fn load(dir: &Path, base: &Path) -> Result<Adapter, AdapterError> {
        let manifest_path = dir.join("adapter.json");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| AdapterError::io(&manifest_path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            AdapterError::invalid(&manifest_path, format!("malformed manifest: {e}"))
        })?;
        if manifest.format != FORMAT {
            return Err(AdapterError::invalid(
                &manifest_path,
                format!("format {:?}, this build reads {FORMAT:?}", manifest.format),
            ));
        }
        if manifest.labels != ["negative", "neutral", "positive"] {
            return Err(AdapterError::invalid(
                &manifest_path,
                format!(
                    "labels {:?}, expected negative, neutral, positive",
                    manifest.labels
                ),
            ));
        }
        let tuning = manifest.tuning().ok_or_else(|| {
            AdapterError::invalid(
                &manifest_path,
                "a low-rank adapter needs rank > 0 and a finite alpha; \
                 a fully tuned one (\"tuning\": \"full\") has neither",
            )
        })?;
        if !(manifest.temperature.is_finite() && manifest.temperature > 0.0) {
            return Err(AdapterError::invalid(
                &manifest_path,
                "temperature must be > 0",
            ));
        }
        if !manifest.decision.is_valid() {
            return Err(AdapterError::invalid(
                &manifest_path,
                "the decision settings must be finite and not negative",
            ));
        }
        let path = dir.join("adapter.safetensors");
        check_sha(&path, &manifest.adapter_sha256)?;
        check_sha(&base.join("model.safetensors"), &manifest.base.model_sha256)?;
        check_sha(
            &base.join("tokenizer.json"),
            &manifest.base.tokenizer_sha256,
        )?;
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| AdapterError::invalid(&path, e.to_string()))?;
        Ok(Adapter {
            manifest,
            tuning,
            tensors,
            path,
        })
    }

    fn bad(&self, message: impl Into<String>) -> AdapterError {
        AdapterError::invalid(&self.path, message)
    }

    /// Rebuilds every adapted weight (`W + alpha / rank · B A`, or
    /// `W + delta`) and replaces the trained LayerNorms and biases, in the
    /// base's tensors.
    pub fn merge_into(&self, base: &mut HashMap<String, Tensor>) -> Result<(), AdapterError> {
        let mut merged = 0;
        for (key, value) in &self.tensors {
            // A low-rank factor B is read with its A.
            let second_factor = key.ends_with(".lora_b") && self.tuning != Tuning::Whole;
            if key.starts_with("head.") || second_factor {
                continue;
            }
            let update = match (self.tuning, key.rsplit_once('.')) {
                (Tuning::LowRank { scale }, Some((stem, "lora_a"))) => {
                    let b = self
                        .tensors
                        .get(&format!("{stem}.lora_b"))
                        .ok_or_else(|| self.bad(format!("{key} has no lora_b")))?;
                    let delta = b
                        .matmul(value)
                        .and_then(|d| d.affine(scale, 0.0))
                        .map_err(|e| self.bad(format!("{stem}: {e}")))?;
                    Some((stem, delta))
                }
                (Tuning::Whole, Some((stem, "delta"))) => {
                    let delta = value
                        .to_dtype(candle_core::DType::F32)
                        .map_err(|e| self.bad(format!("{key}: {e}")))?;
                    Some((stem, delta))
                }
                (_, Some((_, suffix @ ("lora_a" | "lora_b" | "delta")))) => {
                    return Err(self.bad(format!(
                        "{key}: a {suffix} tensor does not belong in a {} adapter",
                        if self.tuning == Tuning::Whole {
                            "fully tuned"
                        } else {
                            "low-rank"
                        }
                    )))
                }
                _ => None,
            };
            if let Some((stem, delta)) = update {
                let name = format!("{stem}.weight");
                let w = base
                    .get(&name)
                    .ok_or_else(|| self.bad(format!("the base has no {name}")))?;
                if delta.dims() != w.dims() {
                    return Err(self.bad(format!(
                        "{stem}: update {:?} does not fit the base weight {:?}",
                        delta.dims(),
                        w.dims()
                    )));
                }
                let sum = (w + delta).map_err(|e| self.bad(format!("{stem}: {e}")))?;
                base.insert(name, sum);
            } else {
                let w = base
                    .get(key)
                    .ok_or_else(|| self.bad(format!("the base has no {key}")))?;
                if w.dims() != value.dims() {
                    return Err(self.bad(format!(
                        "{key}: shape {:?}, the base has {:?}",
                        value.dims(),
                        w.dims()
                    )));
                }
                let value = value
                    .to_dtype(candle_core::DType::F32)
                    .map_err(|e| self.bad(format!("{key}: {e}")))?;
                base.insert(key.clone(), value);
            }
            merged += 1;
        }
        if merged == 0 {
            return Err(self.bad("no adapter tensors"));
        }
        Ok(())
    }

    /// The head: 3 × (width · hidden) weights and 3 biases, and for the
    /// attending pooling its hidden × hidden query.
    pub fn head(&self, hidden: usize) -> Result<Head, AdapterError> {
        let width = self.manifest.pooling.width();
        let tensor = |key: &str| {
            self.tensors
                .get(key)
                .ok_or_else(|| self.bad(format!("no {key}")))
        };
        let (w, b) = (tensor("head.weight")?, tensor("head.bias")?);
        if w.dims() != [3, width * hidden] || b.dims() != [3] {
            return Err(self.bad(format!(
                "head is {:?} + {:?}, expected [3, {}] + [3]",
                w.dims(),
                b.dims(),
                width * hidden
            )));
        }
        let rows = w.to_vec2::<f32>().map_err(|e| self.bad(e.to_string()))?;
        let bias = b.to_vec1::<f32>().map_err(|e| self.bad(e.to_string()))?;
        let pooling = if self.manifest.pooling == HeadKind::Attend {
            let q = tensor("head.query.weight")?;
            if q.dims() != [hidden, hidden] {
                return Err(self.bad(format!(
                    "head.query.weight is {:?}, expected [{hidden}, {hidden}]",
                    q.dims()
                )));
            }
            let query = q
                .flatten_all()
                .and_then(|q| q.to_vec1::<f32>())
                .map_err(|e| self.bad(e.to_string()))?;
            Pooling::Attend { query }
        } else {
            Pooling::Mean
        };
        Ok(Head::new(hidden, pooling, rows, bias))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// A model directory with a two-by-two "base" and the given adapter
    /// tensors and manifest fields; returns the loaded adapter (or why not).
    fn adapter(
        tensors: &[(&str, Tensor)],
        tuning: serde_json::Value,
    ) -> (tempfile::TempDir, Result<Adapter, AdapterError>) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(base.join("model.safetensors"), b"base weights").unwrap();
        std::fs::write(base.join("tokenizer.json"), b"{}").unwrap();
        let map: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        let file = dir.path().join("adapter.safetensors");
        candle_core::safetensors::save(&map, &file).unwrap();
        let mut manifest = serde_json::json!({
            "format": FORMAT, "name": "test", "version": "0", "temperature": 1.0,
            "labels": ["negative", "neutral", "positive"],
            "adapter_sha256": sha256_of(&file).unwrap(),
            "base": {
                "name": "b", "package": "p",
                "model_sha256": sha256_of(&base.join("model.safetensors")).unwrap(),
                "tokenizer_sha256": sha256_of(&base.join("tokenizer.json")).unwrap(),
            },
            "training": {"data": "none"},
        });
        for (k, v) in tuning.as_object().unwrap() {
            manifest[k] = v.clone();
        }
        std::fs::write(dir.path().join("adapter.json"), manifest.to_string()).unwrap();
        let loaded = Adapter::load(dir.path(), &base);
        (dir, loaded)
    }

    fn t(rows: &[[f32; 2]; 2]) -> Tensor {
        Tensor::new(rows, &Device::Cpu).unwrap()
    }

    fn base() -> HashMap<String, Tensor> {
        HashMap::from([
            ("l.weight".to_string(), t(&[[1.0, 2.0], [3.0, 4.0]])),
            (
                "l.bias".to_string(),
                Tensor::new(&[0.0f32, 0.0], &Device::Cpu).unwrap(),
            ),
        ])
    }

    fn merged(adapter: &Adapter) -> Result<(Vec<Vec<f32>>, Vec<f32>), AdapterError> {
        let mut weights = base();
        adapter.merge_into(&mut weights)?;
        Ok((
            weights["l.weight"].to_vec2().unwrap(),
            weights["l.bias"].to_vec1().unwrap(),
        ))
    }

    #[test]
    fn a_low_rank_adapter_adds_alpha_over_rank_times_b_a() {
        let a = Tensor::new(&[[1.0f32, 1.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1.0f32], [0.0]], &Device::Cpu).unwrap();
        let tuning = serde_json::json!({"rank": 1, "alpha": 2.0});
        let (_dir, loaded) = adapter(&[("l.lora_a", a), ("l.lora_b", b)], tuning);
        let (w, bias) = merged(&loaded.unwrap()).unwrap();
        assert_eq!(w, [[3.0, 4.0], [3.0, 4.0]]);
        assert_eq!(bias, [0.0, 0.0]);
    }

    #[test]
    fn a_fully_tuned_adapter_adds_its_float16_difference_and_replaces_the_bias() {
        let delta = t(&[[0.5, 0.0], [0.0, -0.25]]).to_dtype(DType::F16).unwrap();
        let bias = Tensor::new(&[1.0f32, -1.0], &Device::Cpu).unwrap();
        let tuning = serde_json::json!({"tuning": "full"});
        let (_dir, loaded) = adapter(&[("l.delta", delta), ("l.bias", bias)], tuning);
        let (w, bias) = merged(&loaded.unwrap()).unwrap();
        assert_eq!(w, [[1.5, 2.0], [3.0, 3.75]]);
        assert_eq!(bias, [1.0, -1.0]);
    }

    #[test]
    fn tensors_of_the_other_tuning_are_refused() {
        let delta = t(&[[0.5, 0.0], [0.0, -0.25]]);
        let tuning = serde_json::json!({"rank": 1, "alpha": 2.0});
        let (_dir, loaded) = adapter(&[("l.delta", delta)], tuning);
        let err = merged(&loaded.unwrap()).unwrap_err().to_string();
        assert!(err.contains("l.delta") && err.contains("low-rank"), "{err}");
    }

    #[test]
    fn a_manifest_with_neither_rank_nor_full_tuning_is_refused() {
        let (_dir, loaded) = adapter(
            &[("l.bias", base()["l.bias"].clone())],
            serde_json::json!({}),
        );
        let err = loaded.unwrap_err().to_string();
        assert!(
            err.contains("adapter.json") && err.contains("rank"),
            "{err}"
        );
    }

    #[test]
    fn decision_settings_come_from_the_manifest_and_must_be_sane() {
        let bias = Tensor::new(&[1.0f32, -1.0], &Device::Cpu).unwrap();
        let settings = serde_json::json!({"learned_weight": 2.0, "lexicon_weight": 0.5,
                                          "neutral_margin": 0.3, "reported_weight": 0.5});
        let tuning = serde_json::json!({"tuning": "full",
            "decision": {"combined": settings, "learned_only": settings}});
        let (_dir, loaded) = adapter(&[("l.bias", bias.clone())], tuning);
        let decision = loaded.unwrap().manifest.decision;
        assert_eq!(decision.combined.learned_weight, 2.0);
        assert_eq!(decision.learned_only.reported_weight, 0.5);
        assert_eq!(decision.combined.neutral_weight, 0.0, "absent: 0");

        let mut bad = settings.clone();
        bad["neutral_weight"] = (-1.0).into();
        let tuning = serde_json::json!({"tuning": "full",
            "decision": {"combined": settings, "learned_only": bad}});
        let (_dir, loaded) = adapter(&[("l.bias", bias)], tuning);
        let err = loaded.unwrap_err().to_string();
        assert!(err.contains("decision"), "{err}");
    }
}
