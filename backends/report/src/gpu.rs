//! The GPU serving baseline (a roofline from cited H100/H200 figures) and
//! the rows that compare this system with HC1, HNLPU and the GPUs.

use crate::SourceKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// One GPU's figures, each with its source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuSpec {
    /// `H100 SXM`, `H200 SXM`.
    pub name: String,
    /// HBM bandwidth, bytes per second.
    pub hbm_bytes_per_s: f64,
    /// HBM capacity, bytes.
    pub hbm_bytes: f64,
    /// Dense tensor throughput at 16 bits (BF16), FLOP/s.
    pub peak_flops_16bit: f64,
    /// Dense tensor throughput at 8 bits (FP8), FLOP/s.
    pub peak_flops_8bit: f64,
    /// Board power, W.
    pub board_w: f64,
    /// Rental price, USD per GPU-hour.
    pub usd_per_hour: f64,
    /// Source of each field above, by name.
    pub sources: BTreeMap<String, String>,
}

fn sources(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The H100 SXM and H200 SXM, from the pages cited in their `sources`.
pub fn gpus() -> Vec<GpuSpec> {
    let klock = "https://glennklockwood.com/garden/processors/h100 (H100 SXM5: 80 GB HBM3, 3.35 TB/s, 700 W maximum; BF16 matrix 989.4 TFLOPS dense, FP8 1,978.9 dense)";
    let same_die = "https://aiwiki.ai/wiki/nvidia_h200 (same GH100 silicon as the H100, so the same tensor throughput as the H100 SXM: https://glennklockwood.com/garden/processors/h100)";
    vec![
        GpuSpec {
            name: "H100 SXM".into(),
            hbm_bytes_per_s: 3.35e12,
            hbm_bytes: 80e9,
            peak_flops_16bit: 989.4e12,
            peak_flops_8bit: 1978.9e12,
            board_w: 700.0,
            usd_per_hour: 3.0,
            sources: sources(&[
                ("hbm_bytes_per_s", klock),
                ("hbm_bytes", klock),
                ("peak_flops_16bit", klock),
                ("peak_flops_8bit", klock),
                ("board_w", klock),
                ("usd_per_hour", "assumption: USD 3.00 per GPU-hour, inside the on-demand ranges USD 2.49-3.99 (https://pricegpu.pages.dev/blog/h100-vs-a100-cloud-price, early 2026) and USD 2.50-3.50 at specialty clouds (https://www.mercatus-ai.com/blog/cloud-gpu-pricing, May 2026); no firm list price"),
            ]),
        },
        GpuSpec {
            name: "H200 SXM".into(),
            hbm_bytes_per_s: 4.8e12,
            hbm_bytes: 141e9,
            peak_flops_16bit: 989.4e12,
            peak_flops_8bit: 1978.9e12,
            board_w: 700.0,
            usd_per_hour: 4.0,
            sources: sources(&[
                ("hbm_bytes_per_s", "https://aiwiki.ai/wiki/nvidia_h200 (141 GB HBM3e at 4.8 TB/s); FACTS.md: H200 4.8 TB/s"),
                ("hbm_bytes", "https://aiwiki.ai/wiki/nvidia_h200 (141 GB HBM3e)"),
                ("peak_flops_16bit", same_die),
                ("peak_flops_8bit", same_die),
                ("board_w", "https://www.aiminingco.com/gpu/h200/specs (TDP 700 W, as the H100 SXM)"),
                ("usd_per_hour", "assumption: USD 4.00 per GPU-hour, inside USD 3.50-4.50 at specialty clouds (https://www.mercatus-ai.com/blog/cloud-gpu-pricing, May 2026); no firm list price"),
            ]),
        },
    ]
}

/// The model as a GPU serves it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GpuModel {
    /// Weights stored in HBM (every parameter).
    pub params: u64,
    /// Weights read per decoded token (all but the embedding table, of
    /// which one row is read).
    pub weights_per_token: u64,
    /// K and V values per position (all layers).
    pub kv_values_per_position: u64,
    /// Attention multiply-accumulates per token per position in the cache.
    pub attn_macs_per_position: u64,
}

/// One batch size on one GPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuPoint {
    /// Users decoding together, one token each per step.
    pub batch: u64,
    /// Whether the weights and `batch` KV caches fit the usable HBM.
    pub fits: bool,
    /// Seconds per decode step.
    pub step_s: Option<f64>,
    /// `memory` or `compute`: which roofline term sets the step.
    pub bound: Option<String>,
    /// `1 / step`.
    pub tokens_per_s_per_user: Option<f64>,
    /// `batch / step`.
    pub aggregate_tokens_per_s: Option<f64>,
    /// `board power · step / batch`, J.
    pub energy_per_token_j: Option<f64>,
    /// `price per hour / 3600 · step / batch · 10⁶`, USD.
    pub usd_per_mtoken: Option<f64>,
}

/// One GPU at one precision, batch 1 to 256.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuSeries {
    /// The GPU.
    pub gpu: String,
    /// `BF16` or `FP8`.
    pub precision: String,
    /// Bits per weight and per KV value.
    pub bits: u32,
    /// Weights in HBM, bytes.
    pub weight_bytes: f64,
    /// KV bytes per position per user.
    pub kv_bytes_per_position: f64,
    /// The largest batch whose KV caches fit beside the weights (at most
    /// 256); 0 when the weights alone do not fit.
    pub max_batch: u64,
    /// Why the batch stops there.
    pub limit: String,
    /// Batch 1, 2, 4, ..., 256, and `max_batch` when it is none of those.
    pub points: Vec<GpuPoint>,
}

/// The GPU baseline of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuBaseline {
    /// Positions in each user's KV cache (the build's context).
    pub context: u64,
    /// The model as the GPU serves it.
    pub model: GpuModel,
    /// The GPUs' figures and sources.
    pub gpus: Vec<GpuSpec>,
    /// The roofline's efficiency and capacity rules, each labelled.
    pub assumptions: BTreeMap<String, String>,
    /// Fraction of peak HBM bandwidth reached (an assumption).
    pub bandwidth_efficiency: f64,
    /// Fraction of peak tensor throughput reached (an assumption).
    pub compute_efficiency: f64,
    /// Fraction of HBM usable for weights and KV (an assumption).
    pub usable_hbm: f64,
    /// One series per GPU and precision.
    pub series: Vec<GpuSeries>,
}

/// The batch sizes of the baseline.
pub const BATCHES: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// One decode step at batch `b` and context `t`, `bits` per weight and KV
/// value: `step = max((W_read + b·t·kv) / (BW·eff), 2·(w + a·t)·b /
/// (peak·eff))`. Returns (step seconds, memory-bound?).
pub fn roofline_step(
    g: &GpuSpec,
    m: &GpuModel,
    bits: u32,
    b: u64,
    t: u64,
    bw_eff: f64,
    flop_eff: f64,
) -> (f64, bool) {
    let bytes = bits as f64 / 8.0;
    let read = m.weights_per_token as f64 * bytes
        + b as f64 * t as f64 * m.kv_values_per_position as f64 * bytes;
    let mem = read / (g.hbm_bytes_per_s * bw_eff);
    let peak = if bits <= 8 {
        g.peak_flops_8bit
    } else {
        g.peak_flops_16bit
    };
    let flops =
        2.0 * (m.weights_per_token as f64 + m.attn_macs_per_position as f64 * t as f64) * b as f64;
    let comp = flops / (peak * flop_eff);
    (mem.max(comp), mem >= comp)
}

/// The baseline for `m` at context `t`.
pub fn baseline(m: GpuModel, t: u64) -> GpuBaseline {
    let (bw_eff, flop_eff, usable) = (1.0, 1.0, 0.9);
    let gpus = gpus();
    let mut series = Vec::new();
    for g in &gpus {
        for (precision, bits) in [("BF16", 16u32), ("FP8", 8)] {
            let bytes = bits as f64 / 8.0;
            let weight_bytes = m.params as f64 * bytes;
            let kv = m.kv_values_per_position as f64 * bytes;
            let free = g.hbm_bytes * usable - weight_bytes;
            let (max_batch, limit) = if free < 0.0 {
                (
                    0,
                    format!(
                        "the weights ({:.1} GB) do not fit {:.0}% of one {} ({:.0} GB): no batch fits one GPU",
                        weight_bytes / 1e9,
                        usable * 100.0,
                        g.name,
                        g.hbm_bytes / 1e9
                    ),
                )
            } else {
                let fit = if kv * t as f64 > 0.0 {
                    (free / (kv * t as f64)).floor() as u64
                } else {
                    u64::MAX
                };
                if fit >= 256 {
                    (
                        256,
                        format!(
                            "{} users' KV caches fit; the baseline stops at 256",
                            if fit == u64::MAX {
                                "any number of".to_string()
                            } else {
                                fit.to_string()
                            }
                        ),
                    )
                } else {
                    (
                        fit,
                        format!(
                            "capped at {fit}: {fit} KV caches of {t} positions ({:.2} GB each) fit beside {:.1} GB of weights in {:.0}% of {:.0} GB",
                            kv * t as f64 / 1e9,
                            weight_bytes / 1e9,
                            usable * 100.0,
                            g.hbm_bytes / 1e9
                        ),
                    )
                }
            };
            // The powers of two, and the largest batch that fits.
            let mut batches = BATCHES.to_vec();
            if max_batch > 0 && !batches.contains(&max_batch) {
                batches.push(max_batch);
                batches.sort_unstable();
            }
            let points = batches
                .iter()
                .map(|&b| {
                    if b > max_batch {
                        return GpuPoint {
                            batch: b,
                            fits: false,
                            step_s: None,
                            bound: None,
                            tokens_per_s_per_user: None,
                            aggregate_tokens_per_s: None,
                            energy_per_token_j: None,
                            usd_per_mtoken: None,
                        };
                    }
                    let (s, mem) = roofline_step(g, &m, bits, b, t, bw_eff, flop_eff);
                    GpuPoint {
                        batch: b,
                        fits: true,
                        step_s: Some(s),
                        bound: Some(if mem { "memory" } else { "compute" }.into()),
                        tokens_per_s_per_user: Some(1.0 / s),
                        aggregate_tokens_per_s: Some(b as f64 / s),
                        energy_per_token_j: Some(g.board_w * s / b as f64),
                        usd_per_mtoken: Some(g.usd_per_hour / 3600.0 * s / b as f64 * 1e6),
                    }
                })
                .collect();
            series.push(GpuSeries {
                gpu: g.name.clone(),
                precision: precision.into(),
                bits,
                weight_bytes,
                kv_bytes_per_position: kv,
                max_batch,
                limit,
                points,
            });
        }
    }
    GpuBaseline {
        context: t,
        model: m,
        gpus,
        assumptions: sources(&[
            ("roofline", "step = max((weights read + batch x context x KV bytes) / HBM bandwidth, 2 x (weights read + attention MACs at the context) x batch / peak dense tensor FLOP/s); full attention assumed on the GPU"),
            ("bandwidth_efficiency", "assumption: 1.0, the ideal roofline: an upper bound on the GPU (served kernels reach less)"),
            ("compute_efficiency", "assumption: 1.0, the ideal roofline: an upper bound on the GPU"),
            ("usable_hbm", "assumption: 90% of HBM holds weights and KV caches, the rest activations and runtime"),
            ("board_power", "assumption: the board draws its maximum power at every batch (host, network and cooling not counted)"),
            ("price", "assumption: USD per GPU-hour at rental prices, power included; $/Mtok = price x step / batch"),
            ("precision", "assumption: BF16 weights and KV (16 bits), or FP8 weights and KV (8 bits, FP8 tensor throughput)"),
        ]),
        bandwidth_efficiency: bw_eff,
        compute_efficiency: flop_eff,
        usable_hbm: usable,
        series,
    }
}

/// One system beside this one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComparisonRow {
    /// The system.
    pub system: String,
    /// `vendor claim`, `simulated after layout (not fabricated)`,
    /// `roofline model`, `taalasc model` or `taalasc measured`.
    pub kind: String,
    /// The model it serves.
    pub model: String,
    /// Chips (or GPUs) per copy of the model.
    pub chips: Option<f64>,
    /// Process node.
    pub node: String,
    /// Silicon per copy of the model, mm².
    pub area_mm2: Option<f64>,
    /// Tokens/s each user sees.
    pub tokens_per_s_per_user: Option<f64>,
    /// Tokens/s of one copy of the model.
    pub aggregate_tokens_per_s: Option<f64>,
    /// Energy per token, J.
    pub energy_per_token_j: Option<f64>,
    /// USD per million tokens.
    pub usd_per_mtoken: Option<f64>,
    /// Power of one copy of the model, W.
    pub power_w: Option<f64>,
    /// Whether `kind` is someone else's figure or ours.
    pub source_kind: SourceKind,
    /// Where the figures come from.
    pub source: String,
}

/// HC1 and HNLPU as published (vendor claims and a simulation).
pub fn published_rows() -> Vec<ComparisonRow> {
    vec![
        ComparisonRow {
            system: "Taalas HC1".into(),
            kind: "vendor claim".into(),
            model: "Llama 3.1 8B (3-bit base, 6-bit parameters)".into(),
            chips: Some(1.0),
            node: "TSMC N6".into(),
            area_mm2: Some(815.0),
            tokens_per_s_per_user: Some(17_000.0),
            aggregate_tokens_per_s: None,
            energy_per_token_j: Some(200.0 / 17_000.0),
            usd_per_mtoken: None,
            power_w: Some(200.0),
            source_kind: SourceKind::Citation,
            source: "FACTS.md, Taalas HC1 vendor claims: about 17k tokens/s per user on one chip (independent demos 14-16k), 815 mm2 N6, about 200 W per card; J/token = 200 W / 17k tokens/s if a card served one stream; context about 6k (observers)".into(),
        },
        ComparisonRow {
            system: "HNLPU".into(),
            kind: "simulated after layout (not fabricated)".into(),
            model: "gpt-oss-120B, 4-bit".into(),
            chips: Some(16.0),
            node: "5 nm".into(),
            area_mm2: Some(16.0 * 827.0),
            tokens_per_s_per_user: None,
            aggregate_tokens_per_s: Some(249_960.0),
            energy_per_token_j: Some(6_900.0 / 249_960.0),
            usd_per_mtoken: None,
            power_w: Some(6_900.0),
            source_kind: SourceKind::Citation,
            source: "Liu et al., HNLPU, ASPLOS '26, arXiv 2508.16151 (FACTS.md): 16 chips of 827 mm2 at 5 nm, 1 GHz, 249,960 tokens/s in total, 6.9 kW; simulated after layout, never fabricated; J/token = 6.9 kW / 249,960 tokens/s".into(),
        },
    ]
}
