//! The op set of the model IR.
//!
//! Every activation in the graph is a `[positions, width]` matrix: the sequence
//! dimension is implicit, and a node's `width` is its per-position feature count.

use crate::weights::WeightId;
use serde::{Deserialize, Serialize};

/// One tensor operation. Weights are referenced by id and loaded lazily.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Graph input: one token id per position (width 1).
    Tokens,
    /// Row lookup in an embedding table `[vocab, d]`.
    Embed {
        /// The embedding table, `[vocab, width]`.
        table: WeightId,
    },
    /// Adds a learned position embedding `[max_positions, d]` (GPT-2).
    AddPositions {
        /// The position table, `[max_positions, width]`; row `p` is added at
        /// position `p`.
        table: WeightId,
    },
    /// `x / sqrt(mean(x^2) + eps) * gain`.
    RmsNorm {
        /// Per-feature scale, `[width]`.
        gain: WeightId,
        /// Added to the mean square before the square root.
        eps: f32,
    },
    /// `(x - mean) / sqrt(var + eps) * gain + bias`.
    LayerNorm {
        /// Per-feature scale, `[width]`.
        gain: WeightId,
        /// Per-feature offset, `[width]`.
        bias: WeightId,
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// `x W^T + b`, with `W` stored `[out, in]` in canonical layout.
    Linear {
        /// The matrix `W`, `[out, in]`.
        weight: WeightId,
        /// The bias `b`, `[out]`, if any.
        bias: Option<WeightId>,
    },
    /// Rotary position embedding over `n_heads` heads of `head_dim`, rotating the
    /// first `spec.rotary_dim` features of each head in "half" layout: feature `i`
    /// pairs with feature `i + rotary_dim/2` (the Hugging Face `rotate_half` layout).
    Rope {
        /// Heads in the input (query or key/value heads).
        n_heads: usize,
        /// Features per head; the input width is `n_heads * head_dim`.
        head_dim: usize,
        /// Base frequency, rotary width and scaling.
        spec: RopeSpec,
    },
    /// Causal multi-head attention with a KV cache. Inputs: q (port 0),
    /// k (port 1), v (port 2). Scores are scaled by `1/sqrt(head_dim)`.
    /// `window`: sliding-window length (Mistral), if any.
    Attention {
        /// Query heads.
        n_heads: usize,
        /// Key/value heads; each serves `n_heads / n_kv_heads` query heads.
        n_kv_heads: usize,
        /// Features per head.
        head_dim: usize,
        /// Sliding window in positions: a query attends to at most this many
        /// latest positions, itself included. `None` attends to all earlier positions.
        window: Option<usize>,
    },
    /// Element-wise sum of two inputs of equal width.
    Add,
    /// Element-wise product of two inputs of equal width.
    Mul,
    /// `x * sigmoid(x)`.
    Silu,
    /// GELU, tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
    /// Graph output: the logits, width = vocab.
    Logits,
}

impl Op {
    /// Number of graph inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Tokens => 0,
            Op::Attention { .. } => 3,
            Op::Add | Op::Mul => 2,
            _ => 1,
        }
    }

    /// Short lowercase mnemonic used by the text printer and `inspect`.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Tokens => "tokens",
            Op::Embed { .. } => "embed",
            Op::AddPositions { .. } => "add_positions",
            Op::RmsNorm { .. } => "rms_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Linear { .. } => "linear",
            Op::Rope { .. } => "rope",
            Op::Attention { .. } => "attention",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Silu => "silu",
            Op::GeluTanh => "gelu_tanh",
            Op::Logits => "logits",
        }
    }

    /// Weights the op reads, in a fixed order.
    pub fn weights(&self) -> Vec<WeightId> {
        match self {
            Op::Embed { table } | Op::AddPositions { table } => vec![*table],
            Op::RmsNorm { gain, .. } => vec![*gain],
            Op::LayerNorm { gain, bias, .. } => vec![*gain, *bias],
            Op::Linear { weight, bias } => std::iter::once(*weight).chain(*bias).collect(),
            _ => Vec::new(),
        }
    }
}

/// Rotary embedding parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeSpec {
    /// Base of the rotary frequencies: pair `i` turns at
    /// `theta^(-2i / rotary_dim)` radians per position (before scaling).
    pub theta: f64,
    /// Features of each head that rotate (equal to head_dim unless partial rotary).
    pub rotary_dim: usize,
    /// How the base frequencies are scaled for long contexts.
    pub scaling: RopeScaling,
}

/// Frequency scaling applied to the rotary base frequencies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Frequencies as given by `theta`.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// Divisor of every position (equivalently of every frequency).
        factor: f64,
    },
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_positions / low_freq_factor` are
        /// divided by `factor`.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_positions / high_freq_factor` are kept;
        /// between the two bounds the scaling is interpolated smoothly.
        high_freq_factor: f64,
        /// The context length the model was trained at, in positions.
        original_max_positions: f64,
    },
}

impl RopeSpec {
    /// Inverse frequencies, one per rotated pair (`rotary_dim / 2` of them), with
    /// scaling applied. Computed in f64 at build time.
    pub fn inv_freqs(&self) -> Vec<f64> {
        let half = self.rotary_dim / 2;
        (0..half)
            .map(|i| {
                let base = 1.0 / self.theta.powf((2 * i) as f64 / self.rotary_dim as f64);
                match self.scaling {
                    RopeScaling::None => base,
                    RopeScaling::Linear { factor } => base / factor,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_positions,
                    } => {
                        let low_wavelen = original_max_positions / low_freq_factor;
                        let high_wavelen = original_max_positions / high_freq_factor;
                        let wavelen = 2.0 * std::f64::consts::PI / base;
                        if wavelen < high_wavelen {
                            base
                        } else if wavelen > low_wavelen {
                            base / factor
                        } else {
                            let smooth = (original_max_positions / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * base / factor + smooth * base
                        }
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_divides_low_ones() {
        let plain = RopeSpec {
            theta: 500000.0,
            rotary_dim: 128,
            scaling: RopeScaling::None,
        };
        let scaled = RopeSpec {
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_positions: 8192.0,
            },
            ..plain.clone()
        };
        let (p, s) = (plain.inv_freqs(), scaled.inv_freqs());
        assert_eq!(p[0], s[0]);
        assert!((p[63] / s[63] - 8.0).abs() < 1e-12);
        // Somewhere in between the two regimes the ratio is strictly inside (1, 8).
        assert!(p
            .iter()
            .zip(&s)
            .any(|(a, b)| a / b > 1.0 + 1e-9 && a / b < 8.0 - 1e-9));
    }
}
