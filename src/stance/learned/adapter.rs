//! The trained adapter: what differs from the fetched base encoder.
//!
//! `adapter.json` is the manifest (labels, rank, temperature, the sha256 of
//! the adapter file and of the base model it was trained on, training data
//! and figures); `adapter.safetensors` holds the low-rank factors of every
//! adapted linear layer (`<layer>.lora_a`, `<layer>.lora_b`), the trained
//! LayerNorms (replacing the base's) and the head (`head.weight`,
//! `head.bias`, and `head.query.weight` for the attending pooling). Loading
//! checks both checksums before anything is used, so a corrupt or
//! mismatched file is a start-up error naming it.

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
    pub rank: usize,
    pub alpha: f32,
    /// Softmax temperature fitted on the dev split (sentence level).
    pub temperature: f32,
    /// Which head the adapter holds (an unknown name is a malformed
    /// manifest).
    #[serde(default)]
    pub pooling: HeadKind,
    pub adapter_sha256: String,
    pub base: BaseModel,
    pub training: Training,
}

/// A checked adapter, ready to merge into its base.
#[derive(Debug)]
pub struct Adapter {
    pub manifest: Manifest,
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
        if manifest.rank == 0 || !manifest.alpha.is_finite() {
            return Err(AdapterError::invalid(
                &manifest_path,
                "rank must be > 0 and alpha finite",
            ));
        }
        if !(manifest.temperature.is_finite() && manifest.temperature > 0.0) {
            return Err(AdapterError::invalid(
                &manifest_path,
                "temperature must be > 0",
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
            tensors,
            path,
        })
    }

    fn bad(&self, message: impl Into<String>) -> AdapterError {
        AdapterError::invalid(&self.path, message)
    }

    /// Adds `alpha / rank · B A` to every adapted weight and replaces the
    /// trained LayerNorms, in the base's tensors.
    pub fn merge_into(&self, base: &mut HashMap<String, Tensor>) -> Result<(), AdapterError> {
        let scale = f64::from(self.manifest.alpha) / self.manifest.rank as f64;
        let mut merged = 0;
        for (key, value) in &self.tensors {
            if key.starts_with("head.") || key.ends_with(".lora_b") {
                continue;
            }
            if let Some(stem) = key.strip_suffix(".lora_a") {
                let b = self
                    .tensors
                    .get(&format!("{stem}.lora_b"))
                    .ok_or_else(|| self.bad(format!("{key} has no lora_b")))?;
                let name = format!("{stem}.weight");
                let w = base
                    .get(&name)
                    .ok_or_else(|| self.bad(format!("the base has no {name}")))?;
                let delta = b
                    .matmul(value)
                    .and_then(|d| d.affine(scale, 0.0))
                    .map_err(|e| self.bad(format!("{stem}: {e}")))?;
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
                base.insert(key.clone(), value.clone());
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
