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

fn key_str(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => s.as_str(),
        Value::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn map_get<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| key_str(k) == Some(key))
        .map(|(_, v)| v)
}

/// Decodes a msgpack-numpy array (`{nd: true, type, kind, shape, data}`).
fn decode_array(v: &Value) -> Result<Array, String> {
    let map = v.as_map().ok_or("parameter is not a msgpack-numpy map")?;
    if map_get(map, "nd").and_then(Value::as_bool) != Some(true) {
        return Err("parameter map lacks nd=true (not a msgpack-numpy array)".into());
    }
    let dtype = map_get(map, "type")
        .and_then(key_str)
        .ok_or("array lacks its dtype")?;
    if dtype != "<f4" {
        return Err(format!("array dtype {dtype:?} is not supported (need <f4)"));
    }
    let shape = map_get(map, "shape")
        .and_then(Value::as_array)
        .ok_or("array lacks its shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<Vec<usize>>>()
        .ok_or("array shape holds a non-integer")?;
    let data = match map_get(map, "data") {
        Some(Value::Binary(b)) => b,
        _ => return Err("array lacks its binary data".into()),
    };
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("array shape overflows")?;
    if data.len() != n * 4 {
        return Err(format!(
            "array of shape {shape:?} needs {} bytes, has {}",
            n * 4,
            data.len()
        ));
    }
    let data = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Array { shape, data })
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
        let root = rmpv::decode::read_value(&mut &bytes[..])
            .map_err(|e| err(format!("not a thinc model (invalid msgpack: {e})")))?;
        let top = root
            .as_map()
            .ok_or_else(|| err("not a thinc model (top level is not a map)".into()))?;
        let section = |name: &str| -> Result<&Vec<Value>, ModelError> {
            map_get(top, name)
                .and_then(Value::as_array)
                .ok_or_else(|| err(format!("not a thinc model (no `{name}` array)")))
        };
        let nodes_v = section("nodes")?;
        let attrs_v = section("attrs")?;
        let params_v = section("params")?;
        if attrs_v.len() != nodes_v.len() || params_v.len() != nodes_v.len() {
            return Err(err(format!(
                "{} nodes but {} attrs and {} params entries",
                nodes_v.len(),
                attrs_v.len(),
                params_v.len()
            )));
        }
        let mut nodes = Vec::with_capacity(nodes_v.len());
        for (i, node_v) in nodes_v.iter().enumerate() {
            let nerr = |what: String| err(format!("node {i}: {what}"));
            let m = node_v
                .as_map()
                .ok_or_else(|| nerr("node entry is not a map".into()))?;
            let name = map_get(m, "name")
                .and_then(key_str)
                .ok_or_else(|| nerr("node has no name".into()))?
                .to_owned();
            let index = map_get(m, "index")
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .unwrap_or(i);
            if index != i {
                return Err(nerr(format!("node index {index} out of order")));
            }
            let mut dims = HashMap::new();
            if let Some(dm) = map_get(m, "dims").and_then(Value::as_map) {
                for (k, v) in dm {
                    if let Some(k) = key_str(k) {
                        dims.insert(k.to_owned(), v.as_i64());
                    }
                }
            }
            let mut refs = HashMap::new();
            if let Some(rm) = map_get(m, "refs").and_then(Value::as_map) {
                for (k, v) in rm {
                    if let (Some(k), Some(v)) = (key_str(k), v.as_u64()) {
                        if v as usize >= nodes_v.len() {
                            return Err(nerr(format!("ref {k} points to missing node {v}")));
                        }
                        refs.insert(k.to_owned(), v as usize);
                    }
                }
            }
            let mut attrs = HashMap::new();
            if let Some(am) = attrs_v[i].as_map() {
                for (k, v) in am {
                    let Some(k) = key_str(k) else { continue };
                    let decoded = match v {
                        Value::Binary(b) => rmpv::decode::read_value(&mut &b[..])
                            .map_err(|e| nerr(format!("attr {k} is not msgpack: {e}")))?,
                        other => other.clone(),
                    };
                    attrs.insert(k.to_owned(), decoded);
                }
            }
            let mut params = HashMap::new();
            if let Some(pm) = params_v[i].as_map() {
                for (k, v) in pm {
                    let Some(k) = key_str(k) else { continue };
                    let array =
                        decode_array(v).map_err(|e| nerr(format!("{name} param {k}: {e}")))?;
                    params.insert(k.to_owned(), array);
                }
            }
            nodes.push(Node {
                index,
                name,
                dims,
                refs,
                attrs,
                params,
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
