//! Reader for thinc's model serialization (`Model.to_bytes`), e.g. `ner/model`.
//!
//! The file is one msgpack map `{nodes, attrs, params, shims}`:
//! * `nodes[i]` = `{index, name, dims, refs}` in breadth-first order from the
//!   root model;
//! * `attrs[i]` = map name -> *msgpack-encoded bytes* (decoded a second time);
//! * `params[i]` = map name -> msgpack-numpy array (a map with binary keys
//!   `nd`, `type`, `kind`, `shape`, `data`);
//! * `shims` hold framework wrappers (empty for spaCy's CPU models).
//!
//! Only what inference needs is kept: node names, dims, refs, attrs and f32
//! parameters. Every error names the file and the node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rmpv::Value;
use serde::Deserialize;

use super::error::ModelError;

/// A dense little-endian float32 array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// One node (layer) of a thinc model tree.
#[derive(Debug, Clone)]
pub struct Node {
    pub index: usize,
    pub name: String,
    /// Dimensions; `None` when thinc left the dimension unset.
    pub dims: HashMap<String, Option<i64>>,
    /// Named references to other nodes, by index.
    pub refs: HashMap<String, usize>,
    /// Attributes, already decoded from their inner msgpack bytes.
    pub attrs: HashMap<String, Value>,
    pub params: HashMap<String, Array>,
}

impl Node {
    /// The dimension `name`, if it is set.
    pub fn dim(&self, name: &str) -> Option<i64> {
        self.dims.get(name).copied().flatten()
    }
}

/// A deserialized thinc model: its nodes, and the file it came from for error
/// messages.
#[derive(Debug, Clone)]
pub struct ThincModel {
    pub path: PathBuf,
    pub nodes: Vec<Node>,
}

/// The file: three lists in step, one entry per node.
#[derive(Deserialize)]
struct File<'a> {
    nodes: Vec<NodeEntry>,
    attrs: Vec<HashMap<String, Value>>,
    #[serde(borrow)]
    params: Vec<HashMap<String, NumpyArray<'a>>>,
}

#[derive(Deserialize)]
struct NodeEntry {
    name: String,
    index: Option<usize>,
    #[serde(default)]
    dims: HashMap<String, Option<i64>>,
    /// Unset references are nil.
    #[serde(default)]
    refs: HashMap<String, Option<usize>>,
}

/// A msgpack-numpy array, its data borrowed from the file's bytes.
#[derive(Deserialize)]
struct NumpyArray<'a> {
    nd: bool,
    #[serde(rename = "type")]
    dtype: String,
    shape: Vec<usize>,
    #[serde(borrow)]
    data: &'a [u8],
}

impl NumpyArray<'_> {
    fn decode(self) -> Result<Array, String> {
        if !self.nd {
            return Err("parameter map lacks nd=true (not a msgpack-numpy array)".into());
        }
        if self.dtype != "<f4" {
            return Err(format!(
                "array dtype {:?} is not supported (need <f4)",
                self.dtype
            ));
        }
        let n = self
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("array shape overflows")?;
        if n.checked_mul(4) != Some(self.data.len()) {
            return Err(format!(
                "array of shape {:?} needs {} bytes, has {}",
                self.shape,
                n.saturating_mul(4),
                self.data.len()
            ));
        }
        let data = self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Array {
            shape: self.shape,
            data,
        })
    }
}

impl ThincModel {
    /// Reads and decodes a thinc model file.
    pub fn load(path: &Path) -> Result<ThincModel, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes the bytes of a thinc model file; `path` is used in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<ThincModel, ModelError> {
        let err = |what: String| ModelError::format(path, what);
        let file: File =
            rmp_serde::from_slice(bytes).map_err(|e| err(format!("not a thinc model: {e}")))?;
        let count = file.nodes.len();
        if file.attrs.len() != count || file.params.len() != count {
            return Err(err(format!(
                "{count} nodes but {} attrs and {} params entries",
                file.attrs.len(),
                file.params.len()
            )));
        }
        let mut nodes = Vec::with_capacity(count);
        let entries = file.nodes.into_iter().zip(file.attrs).zip(file.params);
        for (i, ((entry, attrs), params)) in entries.enumerate() {
            let nerr = |what: String| err(format!("node {i}: {what}"));
            let index = entry.index.unwrap_or(i);
            if index != i {
                return Err(nerr(format!("node index {index} out of order")));
            }
            let mut refs = HashMap::new();
            for (k, v) in entry.refs {
                let Some(v) = v else { continue };
                if v >= count {
                    return Err(nerr(format!("ref {k} points to missing node {v}")));
                }
                refs.insert(k, v);
            }
            // Attribute values are msgpack bytes of their own.
            let mut decoded = HashMap::with_capacity(attrs.len());
            for (k, v) in attrs {
                let v = match v {
                    Value::Binary(b) => rmpv::decode::read_value(&mut &b[..])
                        .map_err(|e| nerr(format!("attr {k} is not msgpack: {e}")))?,
                    other => other,
                };
                decoded.insert(k, v);
            }
            let mut arrays = HashMap::with_capacity(params.len());
            for (k, v) in params {
                let array = v
                    .decode()
                    .map_err(|e| nerr(format!("{} param {k}: {e}", entry.name)))?;
                arrays.insert(k, array);
            }
            nodes.push(Node {
                index,
                name: entry.name,
                dims: entry.dims,
                refs,
                attrs: decoded,
                params: arrays,
            });
        }
        Ok(ThincModel {
            path: path.to_owned(),
            nodes,
        })
    }

    /// A format error about this model's file.
    pub fn error(&self, what: impl Into<String>) -> ModelError {
        ModelError::format(&self.path, what)
    }

    /// Node `i`, or an error naming the file.
    pub fn node(&self, i: usize) -> Result<&Node, ModelError> {
        self.nodes
            .get(i)
            .ok_or_else(|| self.error(format!("model has no node {i}")))
    }

    /// The node that `node` refers to under `name`.
    pub fn get_ref(&self, node: &Node, name: &str) -> Result<&Node, ModelError> {
        let i = node.refs.get(name).ok_or_else(|| {
            self.error(format!(
                "node {} ({}) has no ref {name:?}",
                node.index, node.name
            ))
        })?;
        self.node(*i)
    }

    /// All nodes called exactly `name`, in file (breadth-first) order.
    pub fn nodes_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.name == name)
    }

    /// The parameter `name` of `node`, checked to have exactly `shape`.
    pub fn param(&self, node: &Node, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let a = node.params.get(name).ok_or_else(|| {
            self.error(format!(
                "node {} ({}) has no parameter {name:?}",
                node.index, node.name
            ))
        })?;
        if a.shape != shape {
            return Err(self.error(format!(
                "node {} ({}) parameter {name}: shape {:?}, expected {shape:?}",
                node.index, node.name, a.shape
            )));
        }
        Ok(a.data.clone())
    }

    /// An integer attribute of `node`.
    pub fn attr_u64(&self, node: &Node, name: &str) -> Result<u64, ModelError> {
        node.attrs.get(name).and_then(Value::as_u64).ok_or_else(|| {
            self.error(format!(
                "node {} ({}) lacks integer attr {name:?}",
                node.index, node.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage_with_file_name() {
        let e = ThincModel::from_bytes(b"\xc1", Path::new("x/model")).unwrap_err();
        assert!(e.to_string().contains("x/model"), "{e}");
        let e = ThincModel::from_bytes(b"\x80", Path::new("x/model")).unwrap_err();
        assert!(e.to_string().contains("nodes"), "{e}");
    }
}
