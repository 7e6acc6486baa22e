//! GELU, softmax and LayerNorm over slices, written so that the compiler
//! vectorises them, and compiled once more for AVX2 and for AVX-512 (picked at run
//! time).
//!
//! Why: the exact GELU needs `erf`, and the standard library's is a scalar
//! call per element; in candle's BERT it took 14% of the encoder's time. Here
//! `erf` is Abramowitz & Stegun's formula 7.1.26 (absolute error under
//! 1.5e-7) over a branch-free `exp` (Cody-Waite reduction, degree-6
//! polynomial, relative error about 2e-7), both plain arithmetic that the
//! compiler turns into vector instructions. Without fused multiply-adds
//! (Rust does not contract `a * b + c`) every variant gives the same bits.

/// Defines `pub fn $name(args) -> ret` calling `$kernel(args)` compiled for
/// the best instruction set the CPU has.
macro_rules! dispatch {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $kernel:ident) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}

dispatch! {
    /// `gelu(x) = x · Φ(x)` (the exact form, `hidden_act: "gelu"`), in place.
    fn gelu(xs: &mut [f32]) => gelu_kernel
}

dispatch! {
    /// Softmax of one row, in place. An empty row stays empty.
    fn softmax(row: &mut [f32]) => softmax_kernel
}

dispatch! {
    /// `v = LayerNorm(v + delta)` with `gamma`, `beta` and `eps`, in place
    /// (BERT's residual connection and norm). All four slices are as long.
    fn add_layer_norm(v: &mut [f32], delta: &[f32], gamma: &[f32], beta: &[f32], eps: f32) => add_layer_norm_kernel
}

dispatch! {
    /// `v = LayerNorm(v)` with `gamma`, `beta` and `eps`, in place.
    fn layer_norm(v: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => layer_norm_kernel
}

/// Independent partial sums: a sum or maximum over this many lanes, then
/// over the lanes, so that the compiler can keep them in vector registers
/// (one running `f32` is a chain of dependent additions it may not reorder).
const LANES: usize = 16;

/// `Σ f(x)` over `xs`, lane by lane.
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a += f(x);
        }
    }
    for (a, &x) in acc.iter_mut().zip(tail) {
        *a += f(x);
    }
    acc.iter().sum()
}

/// The largest of `xs` (`-inf` when empty), lane by lane.
#[inline(always)]
fn lane_max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &x) in acc.iter_mut().zip(chunk) {
            *a = a.max(x);
        }
    }
    for (a, &x) in acc.iter_mut().zip(tail) {
        *a = a.max(x);
    }
    acc.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

#[inline(always)]
fn add_layer_norm_kernel(v: &mut [f32], delta: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    for (a, b) in v.iter_mut().zip(delta) {
        *a += b;
    }
    layer_norm_kernel(v, gamma, beta, eps)
}

#[inline(always)]
fn layer_norm_kernel(v: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = v.len() as f32;
    let mean = lane_sum(v, |a| a) / n;
    let var = lane_sum(v, |a| (a - mean) * (a - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((a, g), b) in v.iter_mut().zip(gamma).zip(beta) {
        *a = (*a - mean) * inv * g + b;
    }
}

#[inline(always)]
fn gelu_kernel(xs: &mut [f32]) {
    for x in xs.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn softmax_kernel(row: &mut [f32]) {
    let max = lane_max(row);
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let sum = lane_sum(row, |x| x);
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `e^x` for `f32`, branch-free. Below about -87 it gives about 1e-38 (not
/// 0), above 88 it saturates at about 2e38: neither happens in a softmax
/// (arguments ≤ 0, and e^-87 is nothing next to the row's 1) or in `erf`.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, the first exact in few bits, so `x - n ln 2` loses
    // nothing for |n| ≤ 128.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// Abramowitz & Stegun 7.1.26.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf64(x: f64) -> f64 {
        // A series that converges everywhere it is used here (|x| ≤ 6),
        // summed in f64 as the reference.
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
    }

    #[test]
    fn gelu_is_the_exact_gelu_within_2e_7() {
        let xs: Vec<f32> = (-6000..=6000).map(|i| i as f32 * 1e-3).collect();
        let mut got = xs.clone();
        gelu(&mut got);
        for (x, g) in xs.iter().zip(&got) {
            let x = *x as f64;
            let want = 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2));
            assert!(
                (*g as f64 - want).abs() < 2e-7 * x.abs().max(1.0),
                "gelu({x}) = {g}, want {want}"
            );
        }
    }

    #[test]
    fn exp_is_within_3e_7_relative() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn layer_norm_is_the_definition_within_1e_6() {
        // 37 elements: two full lanes and a tail.
        let n = 37;
        let v: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.61).sin() * 3.0 + 0.5)
            .collect();
        let delta: Vec<f32> = (0..n).map(|i| (i as f32 * 0.23).cos()).collect();
        let gamma: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 0.01).collect();
        let beta: Vec<f32> = (0..n).map(|i| i as f32 * -0.02).collect();
        let eps = 1e-12;
        let x: Vec<f64> = v.iter().zip(&delta).map(|(a, b)| (a + b) as f64).collect();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n as f64;
        let want: Vec<f64> = (0..n)
            .map(|i| (x[i] - mean) / (var + eps).sqrt() * gamma[i] as f64 + beta[i] as f64)
            .collect();
        let mut got = v.clone();
        add_layer_norm(&mut got, &delta, &gamma, &beta, eps as f32);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
        let mut summed: Vec<f32> = v.iter().zip(&delta).map(|(a, b)| a + b).collect();
        layer_norm(&mut summed, &gamma, &beta, eps as f32);
        assert_eq!(
            summed, got,
            "the norm alone after the addition gives the same bits"
        );
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = vec![1.0, 3.0, -2.0, 3.0, 40.0, -80.0];
        softmax(&mut row);
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert!(row[4] > row[1] && row[1] == row[3] && row[3] > row[0] && row[0] > row[2]);
        let mut empty: Vec<f32> = Vec::new();
        softmax(&mut empty);
    }
}
