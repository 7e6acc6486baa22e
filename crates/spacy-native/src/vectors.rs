//! The static word vectors of a pipeline (`vocab/vectors`, `vocab/key2row`,
//! `vocab/vectors.cfg`), as spaCy's `Vectors` in `default` mode stores them:
//! a float32 table (`numpy.save` format, rows × width) and a msgpack map from
//! a string id (the token's ORTH) to a table row. Several keys may share a
//! row; a key without a row has no vector.
//!
//! `en_core_web_md` has 20000 rows of width 300 and 684830 keys; its
//! tok2vec layers read them through thinc's `StaticVectors` (see
//! [`super::tok2vec`]). `en_core_web_sm` ships an empty table, which is never
//! loaded.

use std::collections::HashMap;
use std::path::Path;

use super::error::ModelError;

/// A vector table and its key → row map.
#[derive(Clone)]
pub struct Vectors {
    width: usize,
    n_rows: usize,
    /// (n_rows × width), row-major.
    data: Vec<f32>,
    key2row: HashMap<u64, u32>,
}

impl std::fmt::Debug for Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vectors")
            .field("rows", &self.n_rows)
            .field("width", &self.width)
            .field("keys", &self.key2row.len())
            .finish()
    }
}

impl Vectors {
    /// Reads `vectors.cfg`, `vectors` and `key2row` from `vocab_dir`. Only
    /// spaCy's `default` mode keyed by ORTH is supported (not floret).
    pub fn load(vocab_dir: &Path) -> Result<Vectors, ModelError> {
        let cfg_path = vocab_dir.join("vectors.cfg");
        if cfg_path.exists() {
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
            let cfg: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ModelError::format(&cfg_path, format!("not JSON: {e}")))?;
            match cfg.get("mode").and_then(|m| m.as_str()) {
                Some("default") | None => {}
                Some(mode) => {
                    return Err(ModelError::format(
                        &cfg_path,
                        format!("vectors mode {mode:?}: only \"default\" is supported"),
                    ))
                }
            }
            // spaCy's StaticVectors looks vectors up by `vectors.attr`
            // (ORTH = 65 unless the table says otherwise).
            match cfg.get("attr") {
                None => {}
                Some(a) if a.as_str() == Some("ORTH") || a.as_u64() == Some(65) => {}
                Some(a) => {
                    return Err(ModelError::format(
                        &cfg_path,
                        format!("vectors attr {a}: only ORTH is supported"),
                    ))
                }
            }
        }
        let path = vocab_dir.join("vectors");
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        let (n_rows, width, data) =
            parse_npy_f32_2d(&bytes).map_err(|what| ModelError::format(&path, what))?;
        drop(bytes);
        let path = vocab_dir.join("key2row");
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        let key2row = parse_key2row(&bytes, n_rows).map_err(|w| ModelError::format(&path, w))?;
        Ok(Vectors {
            width,
            n_rows,
            data,
            key2row,
        })
    }

    /// Width of a vector (300 for `en_core_web_md`).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of distinct vectors (table rows).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of keys that have a vector.
    pub fn n_keys(&self) -> usize {
        self.key2row.len()
    }

    /// The vector of `key` (a string id), if it has one.
    #[inline]
    pub fn get(&self, key: u64) -> Option<&[f32]> {
        let row = *self.key2row.get(&key)? as usize;
        Some(&self.data[row * self.width..(row + 1) * self.width])
    }
}

/// Parses a `numpy.save` file holding a C-order little-endian float32 matrix.
fn parse_npy_f32_2d(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-UTF-8 .npy header")?;
    let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.contains("'descr':'<f4'") {
        return Err(format!("only little-endian float32 is supported: {header}"));
    }
    if !compact.contains("'fortran_order':False") {
        return Err(format!("only C order is supported: {header}"));
    }
    let shape = compact
        .split_once("'shape':(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dims, _)| dims)
        .ok_or_else(|| format!("no shape in .npy header: {header}"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad shape {shape:?}: {e}"))?;
    let [rows, cols] = dims[..] else {
        return Err(format!("expected a 2-d table, shape is ({shape})"));
    };
    let body = &bytes[start + header_len..];
    let n = rows
        .checked_mul(cols)
        .filter(|&n| n.checked_mul(4) == Some(body.len()))
        .ok_or_else(|| {
            format!(
                "shape ({rows}, {cols}) does not match {} data bytes",
                body.len()
            )
        })?;
    let mut data = Vec::with_capacity(n);
    data.extend(
        body.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    Ok((rows, cols, data))
}

/// A minimal msgpack reader for the one shape `key2row` has: a map from
/// unsigned integers to (non-negative) integers. Much faster than building an
/// `rmpv::Value` tree for ~700k entries.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let out = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos += n;
        Ok(out)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn map_len(&mut self) -> Result<usize, String> {
        let tag = self.take(1)?[0];
        match tag {
            0x80..=0x8f => Ok(usize::from(tag & 0x0f)),
            0xde => Ok(self.be(2)? as usize),
            0xdf => Ok(self.be(4)? as usize),
            _ => Err(format!("expected a msgpack map, found tag {tag:#04x}")),
        }
    }

    /// An integer; negative values are an error.
    fn uint(&mut self) -> Result<u64, String> {
        let at = self.pos;
        let tag = self.take(1)?[0];
        let v = match tag {
            0x00..=0x7f => return Ok(u64::from(tag)),
            0xcc | 0xd0 => (self.be(1)?, 8),
            0xcd | 0xd1 => (self.be(2)?, 16),
            0xce | 0xd2 => (self.be(4)?, 32),
            0xcf | 0xd3 => (self.be(8)?, 64),
            _ => {
                return Err(format!(
                    "expected an integer at byte {at}, found tag {tag:#04x}"
                ))
            }
        };
        let signed = (0xd0..=0xd3).contains(&tag);
        if signed && v.0 >> (v.1 - 1) & 1 == 1 {
            return Err(format!("negative integer at byte {at}"));
        }
        Ok(v.0)
    }
}

fn parse_key2row(bytes: &[u8], n_rows: usize) -> Result<HashMap<u64, u32>, String> {
    let mut r = Reader { bytes, pos: 0 };
    let n = r.map_len()?;
    let mut map = HashMap::with_capacity(n);
    for _ in 0..n {
        let key = r.uint()?;
        let row = r.uint()?;
        if row >= n_rows as u64 {
            return Err(format!(
                "key {key} maps to row {row}, the table has {n_rows}"
            ));
        }
        map.insert(key, row as u32);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key2row_msgpack() {
        // {5: 0, 2**40: 1, 300: 1} with fixint, uint64, uint16 keys.
        let mut b = vec![0x83, 0x05, 0x00, 0xcf];
        b.extend_from_slice(&(1u64 << 40).to_be_bytes());
        b.extend_from_slice(&[0x01, 0xcd, 0x01, 0x2c, 0xd0, 0x01]);
        let m = parse_key2row(&b, 2).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&5], 0);
        assert_eq!(m[&(1 << 40)], 1);
        assert_eq!(m[&300], 1);
        assert!(parse_key2row(&b, 1).is_err(), "row out of range");
        assert!(
            parse_key2row(&[0x81, 0x01, 0xd0, 0xff], 9).is_err(),
            "negative"
        );
        assert!(parse_key2row(&[0x81, 0x01], 9).is_err(), "truncated");
    }

    #[test]
    fn npy_table() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<118}\n");
        b.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        b.extend_from_slice(padded.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let (r, c, d) = parse_npy_f32_2d(&b).unwrap();
        assert_eq!((r, c), (2, 3));
        assert_eq!(d[5], 6.5);
        assert!(parse_npy_f32_2d(&b[..b.len() - 1]).is_err());
        // en_core_web_sm's empty table: shape (0, 0).
        let empty = format!(
            "{:<118}\n",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 0), }"
        );
        let mut e = b"\x93NUMPY\x01\x00".to_vec();
        e.extend_from_slice(&(empty.len() as u16).to_le_bytes());
        e.extend_from_slice(empty.as_bytes());
        assert_eq!(parse_npy_f32_2d(&e).unwrap().0, 0);
    }
}
