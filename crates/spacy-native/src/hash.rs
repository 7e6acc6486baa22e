//! The two hash functions spaCy and thinc use at inference time.
//!
//! * [`murmurhash64a`] (MurmurHash2, 64-bit "A" variant) turns strings into
//!   the 64-bit ids that spaCy stores for every lexical attribute
//!   (`murmurhash.mrmr.hash64`, seed 1).
//! * [`murmurhash3_u64`] is thinc's `NumpyOps.hash`: MurmurHash3 x64_128 over
//!   the 8 little-endian bytes of one id, which `HashEmbed` uses to pick four
//!   embedding rows per id.
//!
//! Both must be bit-exact with the C implementations, or every feature row
//! changes, so they are written out here rather than taken from a crate with
//! possibly different seeding conventions.

const M64A: u64 = 0xc6a4_a793_5bd1_e995;
const R64A: u32 = 47;

/// MurmurHash64A of `data` with `seed`, as in Austin Appleby's reference
/// code (little-endian 8-byte blocks, tail bytes folded in from high to low).
pub fn murmurhash64a(data: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M64A);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M64A);
        k ^= k >> R64A;
        k = k.wrapping_mul(M64A);
        h ^= k;
        h = h.wrapping_mul(M64A);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M64A);
    }
    h ^= h >> R64A;
    h = h.wrapping_mul(M64A);
    h ^= h >> R64A;
    h
}

/// spaCy's raw string hash: MurmurHash64A of the UTF-8 bytes with seed 1.
///
/// This is *not* yet a string id: the empty string and spaCy's built-in
/// symbols map to small integers instead (see `vocab::string_id`).
pub fn hash_string(s: &str) -> u64 {
    murmurhash64a(s.as_bytes(), 1)
}

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// thinc's `MurmurHash3_x86_128_uint64`: MurmurHash3 x64_128 of the 8
/// little-endian bytes of `key` with `seed`, returned as the four 32-bit
/// words `[lo(h1), hi(h1), lo(h2), hi(h2)]` in the order `HashEmbed` uses.
///
/// The key is exactly one 8-byte tail block, so the general block loop of
/// MurmurHash3 never runs and the function collapses to this straight line.
#[inline]
pub fn murmurhash3_u64(key: u64, seed: u32) -> [u32; 4] {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let seed = u64::from(seed);
    let mut k1 = key.wrapping_mul(C1);
    k1 = k1.rotate_left(31);
    k1 = k1.wrapping_mul(C2);
    let mut h1 = seed ^ k1;
    let mut h2 = seed;
    h1 ^= 8;
    h2 ^= 8;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    [h1 as u32, (h1 >> 32) as u32, h2 as u32, (h2 >> 32) as u32]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vectors from the runtime notes §2 (verified against Python).
    #[test]
    fn string_hashes_match_spacy() {
        assert_eq!(hash_string("apple"), 8566208034543834098);
        assert_eq!(hash_string("Hello"), 15777305708150031551);
        assert_eq!(hash_string("U.S."), 16611556673110956997);
        assert_eq!(hash_string("€"), 7817016891017139529);
        assert_eq!(hash_string("naïve"), 16224804062388677344);
        assert_eq!(hash_string("PERSON"), 11121653176597302729);
    }

    /// Notes §4: `apple` with seed 8 gives these four raw u32 words.
    #[test]
    fn hash_embed_words_match_thinc() {
        assert_eq!(
            murmurhash3_u64(8566208034543834098, 8),
            [2653853934, 3922826080, 3980780901, 3736755472]
        );
        let rows = murmurhash3_u64(14862748245026736845, 9).map(|w| w % 1000);
        assert_eq!(rows, [768, 799, 974, 683]);
        let rows = murmurhash3_u64(16838316573854262908, 10).map(|w| w % 2500);
        assert_eq!(rows, [212, 641, 2136, 597]);
        let rows = murmurhash3_u64(16072095006890171862, 11).map(|w| w % 2500);
        assert_eq!(rows, [714, 447, 1963, 1109]);
    }
}
