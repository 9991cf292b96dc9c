//! Perplexity in llama.cpp's convention, so that figures compare directly with
//! `llama-perplexity -c CTX`:
//!
//! 1. tokenize the whole text once (with BOS only if the tokenizer adds one);
//! 2. cut the ids into `floor(n / ctx)` non-overlapping chunks of `ctx` tokens;
//! 3. if the model's tokenizer adds BOS, overwrite each chunk's first token with BOS;
//! 4. run each chunk from an empty KV cache and score only its second half:
//!    the logits at positions `ctx/2 .. ctx-1` predict the tokens after them,
//!    `ctx - 1 - ctx/2` scored tokens per chunk;
//! 5. perplexity = exp(mean negative log-likelihood over all scored tokens).
//!
//! Every total is the sum of per-chunk sums taken in chunk order, so a run
//! over chunks `A..C` and the merge ([`merge_shards`], [`merge_eval_json`])
//! of runs over `A..B` and `B..C` (`eval --chunks-from/--chunks-to --json`)
//! give the same bits; the JSON carries each chunk's sums with their exact
//! f64 bits.
//!
//! Scoring a chip image needs the float source's logits of every chunk; they
//! are cached on disk ([`float_cache_dir`]), one file of `(ctx-1-ctx/2) ×
//! vocab` exact f32 per chunk (SmolLM2, ctx 512: 50,135,096 bytes, so the
//! 147 chunks of a full run would take 7.0 GiB). The folder is capped
//! ([`FLOAT_CACHE_MAX_BYTES`], 4 GiB, about 85 such chunks): past the cap
//! nothing more is stored, and those chunks run the float model every time;
//! cluster shards each fill the cache of their own machine.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Anything that can produce logits for a whole chunk from an empty cache.
pub trait LogitsEngine: Sync {
    /// Logits `[tokens.len() - from, vocab]` for positions `from..`.
    fn chunk_logits(&self, tokens: &[u32], from: usize) -> anyhow::Result<Array2<f32>>;
}

impl LogitsEngine for taalasc_float::FloatModel {
    fn chunk_logits(&self, tokens: &[u32], from: usize) -> anyhow::Result<Array2<f32>> {
        let mut s = self.session();
        Ok(self.forward(&mut s, tokens, from)?)
    }
}

/// Whether to overwrite each chunk's first token with BOS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BosPolicy {
    /// As llama.cpp: only when the tokenizer adds BOS to a fresh prompt.
    Auto,
    /// Every chunk starts with BOS.
    Always,
    /// No chunk gets BOS.
    Never,
}

/// One chunk's exact sums for one model: what shards carry so that merging
/// them gives the bits of a single run (see [`merge_shards`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkSums {
    /// The chunk's index in the text (chunk `i` holds tokens `i·ctx..(i+1)·ctx`).
    pub chunk: usize,
    /// Tokens scored in it.
    pub tokens: usize,
    /// Sum of the negative log-likelihoods of its scored tokens (nats).
    pub nll_sum: f64,
    /// `nll_sum`'s IEEE-754 bits, hex: what merging reads.
    pub nll_sum_bits: String,
    /// Sum of KL(baseline ‖ model) over its scored positions (with a baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_sum: Option<f64>,
    /// `kl_sum`'s bits, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_sum_bits: Option<String>,
    /// Scored positions whose argmax equals the baseline's (with a baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_count: Option<usize>,
}

/// An f64's bits as `0x` and 16 hex digits.
fn f64_bits(x: f64) -> String {
    format!("{:#018x}", x.to_bits())
}

/// The f64 of `bits` ([`f64_bits`]), checked against the decimal `value`
/// written beside it.
fn from_bits(bits: &str, value: f64, what: &str) -> anyhow::Result<f64> {
    let x = bits
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map(f64::from_bits)
        .ok_or_else(|| anyhow::anyhow!("{what}: `{bits}` is not 0x and 16 hex digits"))?;
    anyhow::ensure!(
        x.to_bits() == value.to_bits(),
        "{what}: the bits {bits} ({x}) disagree with the value {value} beside them"
    );
    Ok(x)
}

impl ChunkSums {
    fn new(chunk: usize, tokens: usize, nll: f64, kl: Option<(f64, usize)>) -> ChunkSums {
        ChunkSums {
            chunk,
            tokens,
            nll_sum: nll,
            nll_sum_bits: f64_bits(nll),
            kl_sum: kl.map(|k| k.0),
            kl_sum_bits: kl.map(|k| f64_bits(k.0)),
            top1_count: kl.map(|k| k.1),
        }
    }

    /// The sums as their exact bits (checked against the decimal values).
    fn exact(&self) -> anyhow::Result<(f64, Option<f64>)> {
        let what = |f: &str| format!("chunk {} {f}", self.chunk);
        let nll = from_bits(&self.nll_sum_bits, self.nll_sum, &what("nll_sum"))?;
        let kl = match (&self.kl_sum_bits, self.kl_sum) {
            (Some(b), Some(v)) => Some(from_bits(b, v, &what("kl_sum"))?),
            (None, None) => None,
            _ => anyhow::bail!("{}: kl_sum and kl_sum_bits come together", what("kl_sum")),
        };
        Ok((nll, kl))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// What `eval` measured on one model, over chunks `chunks_from..chunks_to`
/// of the text. A report is also a shard of a longer run ([`ShardResult`]):
/// `per_chunk` holds the exact sums [`merge_shards`] adds up.
pub struct PerplexityReport {
    /// exp of the mean negative log-likelihood over the scored tokens.
    pub perplexity: f64,
    /// Mean KL(baseline ‖ engine) over scored positions, nats (with a baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_mean: Option<f64>,
    /// Fraction of scored positions whose argmax equals the baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
    /// Chunks scored.
    pub chunks: usize,
    /// Tokens scored (the second half of each chunk).
    pub tokens_scored: usize,
    /// Tokens per chunk.
    pub ctx: usize,
    /// Tokens in the whole text.
    pub text_tokens: usize,
    /// Whether each chunk started with BOS.
    pub bos_per_chunk: bool,
    /// Mean NLL of each chunk (nats per token), in order.
    pub nll_per_chunk: Vec<f64>,
    /// First chunk scored (an index into the text's chunks).
    pub chunks_from: usize,
    /// One past the last chunk scored (half-open range).
    pub chunks_to: usize,
    /// Chunks of `ctx` tokens in the whole text.
    pub text_chunks: usize,
    /// Total negative log-likelihood, the per-chunk sums added in chunk order.
    pub nll_sum: f64,
    /// Total KL, the per-chunk sums added in chunk order (with a baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_sum: Option<f64>,
    /// Scored positions agreeing with the baseline's argmax (with a baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1_count: Option<usize>,
    /// The exact sums of every chunk scored, in chunk order.
    pub per_chunk: Vec<ChunkSums>,
}

/// A report read back from one `eval --chunks-from A --chunks-to B --json`
/// run: one shard of a longer evaluation.
pub type ShardResult = PerplexityReport;

/// How a text was cut, for [`PerplexityReport::from_chunks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    ctx: usize,
    text_tokens: usize,
    text_chunks: usize,
    bos_per_chunk: bool,
}

impl PerplexityReport {
    /// The report of the chunks `per` (consecutive, in order): every total
    /// is the per-chunk sums added in chunk order, so a run and the merge of
    /// its shards give the same bits.
    fn from_chunks(per: Vec<ChunkSums>, cut: Cut) -> anyhow::Result<PerplexityReport> {
        let mut nll = 0.0f64;
        let mut kl: Option<f64> = None;
        let mut agree: Option<usize> = None;
        let mut count = 0usize;
        let mut nll_per_chunk = Vec::with_capacity(per.len());
        let with_kl = per.first().is_some_and(|c| c.kl_sum.is_some());
        for (i, c) in per.iter().enumerate() {
            let (n, k) = c.exact()?;
            anyhow::ensure!(
                k.is_some() == with_kl && c.top1_count.is_some() == with_kl,
                "chunk {}: KL and top-1 are given for some chunks but not for others",
                c.chunk
            );
            if i > 0 {
                anyhow::ensure!(
                    c.chunk == per[i - 1].chunk + 1,
                    "chunk {} follows chunk {}: chunks must be consecutive",
                    c.chunk,
                    per[i - 1].chunk
                );
            }
            anyhow::ensure!(c.tokens > 0, "chunk {} scores no tokens", c.chunk);
            nll += n;
            if let Some(k) = k {
                kl = Some(kl.unwrap_or(0.0) + k);
                agree = Some(agree.unwrap_or(0) + c.top1_count.unwrap_or(0));
            }
            count += c.tokens;
            nll_per_chunk.push(n / c.tokens as f64);
        }
        anyhow::ensure!(
            count > 0,
            "the text is shorter than one context of {} tokens: nothing to score",
            cut.ctx
        );
        Ok(PerplexityReport {
            perplexity: (nll / count as f64).exp(),
            kl_mean: kl.map(|k| k / count as f64),
            top1: agree.map(|a| a as f64 / count as f64),
            chunks: per.len(),
            tokens_scored: count,
            ctx: cut.ctx,
            text_tokens: cut.text_tokens,
            bos_per_chunk: cut.bos_per_chunk,
            nll_per_chunk,
            chunks_from: per[0].chunk,
            chunks_to: per[per.len() - 1].chunk + 1,
            text_chunks: cut.text_chunks,
            nll_sum: nll,
            kl_sum: kl,
            top1_count: agree,
            per_chunk: per,
        })
    }

    fn cut(&self) -> Cut {
        Cut {
            ctx: self.ctx,
            text_tokens: self.text_tokens,
            text_chunks: self.text_chunks,
            bos_per_chunk: self.bos_per_chunk,
        }
    }
}

/// Merges the shards of one model's evaluation (any order) into the report
/// a single run over their union would give, bit for bit: the per-chunk
/// sums are added in chunk order, as a single run adds them. The shards
/// must cover one range of chunks without a gap or an overlap, and agree on
/// the text (ctx, tokens, chunks, BOS) and on whether KL was measured; the
/// error names the chunks missing or scored twice.
pub fn merge_shards(shards: &[ShardResult]) -> anyhow::Result<PerplexityReport> {
    anyhow::ensure!(!shards.is_empty(), "no shards to merge");
    let mut order: Vec<&ShardResult> = shards.iter().collect();
    order.sort_by_key(|s| (s.chunks_from, s.chunks_to));
    let cut = order[0].cut();
    let mut per = Vec::new();
    for (i, s) in order.iter().enumerate() {
        let range = format!("chunks {}..{}", s.chunks_from, s.chunks_to);
        anyhow::ensure!(
            s.cut() == cut,
            "shard of {range} scored a different text or context ({:?}) than the shard of chunks {}..{} ({:?})",
            s.cut(),
            order[0].chunks_from,
            order[0].chunks_to,
            cut
        );
        anyhow::ensure!(
            s.chunks_from < s.chunks_to
                && s.per_chunk.len() == s.chunks_to - s.chunks_from
                && s.per_chunk
                    .iter()
                    .enumerate()
                    .all(|(k, c)| c.chunk == s.chunks_from + k),
            "shard of {range}: its per-chunk sums do not list chunks {}..{} in order",
            s.chunks_from,
            s.chunks_to
        );
        if i > 0 {
            let prev = order[i - 1];
            anyhow::ensure!(
                s.chunks_from >= prev.chunks_to,
                "shards overlap: chunks {}..{} are in both {}..{} and {range}",
                s.chunks_from,
                prev.chunks_to.min(s.chunks_to),
                prev.chunks_from,
                prev.chunks_to
            );
            anyhow::ensure!(
                s.chunks_from == prev.chunks_to,
                "chunks {}..{} are missing: no shard between {}..{} and {range}",
                prev.chunks_to,
                s.chunks_from,
                prev.chunks_from,
                prev.chunks_to
            );
        }
        per.extend(s.per_chunk.iter().cloned());
    }
    PerplexityReport::from_chunks(per, cut)
}

/// Splits `ids` into chunks as described in the module docs.
pub fn chunks(
    ids: &[u32],
    ctx: usize,
    bos: Option<u32>,
    max_chunks: Option<usize>,
) -> Vec<Vec<u32>> {
    let n = (ids.len() / ctx).min(max_chunks.unwrap_or(usize::MAX));
    (0..n)
        .map(|i| {
            let mut c = ids[i * ctx..(i + 1) * ctx].to_vec();
            if let Some(b) = bos {
                c[0] = b;
            }
            c
        })
        .collect()
}

/// Runs the chunks through `engine`, calling `progress(done)` after each.
pub fn perplexity(
    engine: &dyn LogitsEngine,
    chunks: &[Vec<u32>],
    text_tokens: usize,
    bos_per_chunk: bool,
    progress: &dyn Fn(usize),
) -> anyhow::Result<PerplexityReport> {
    quality(engine, None, chunks, text_tokens, bos_per_chunk, progress)
}

/// [`perplexity`], plus KL divergence and top-1 agreement against a
/// `baseline` engine (the float model) on the same scored positions.
pub fn quality(
    engine: &dyn LogitsEngine,
    baseline: Option<&dyn LogitsEngine>,
    chunks: &[Vec<u32>],
    text_tokens: usize,
    bos_per_chunk: bool,
    progress: &dyn Fn(usize),
) -> anyhow::Result<PerplexityReport> {
    let mut reports = quality_many(
        &[engine],
        baseline,
        chunks,
        text_tokens,
        bos_per_chunk,
        progress,
    )?;
    Ok(reports.remove(0))
}

/// [`quality`] of several engines on the same chunks: the baseline runs
/// once per chunk, and every engine is scored on exactly the same positions.
/// Reports come back in the order of `engines`.
pub fn quality_many(
    engines: &[&dyn LogitsEngine],
    baseline: Option<&dyn LogitsEngine>,
    chunks: &[Vec<u32>],
    text_tokens: usize,
    bos_per_chunk: bool,
    progress: &dyn Fn(usize),
) -> anyhow::Result<Vec<PerplexityReport>> {
    quality_many_at(
        engines,
        baseline,
        0,
        chunks,
        text_tokens,
        bos_per_chunk,
        progress,
    )
}

/// [`quality_many`] of chunks `first..first + chunks.len()` of the text
/// (a [`Prepared::first_chunk`] range): the reports are shards of the run
/// over all chunks, which [`merge_shards`] puts together bit for bit.
pub fn quality_many_at(
    engines: &[&dyn LogitsEngine],
    baseline: Option<&dyn LogitsEngine>,
    first: usize,
    chunks: &[Vec<u32>],
    text_tokens: usize,
    bos_per_chunk: bool,
    progress: &dyn Fn(usize),
) -> anyhow::Result<Vec<PerplexityReport>> {
    let ctx = chunks.first().map_or(0, Vec::len);
    let base = baseline.map(|b| {
        move |_: usize, chunk: &[u32]| -> anyhow::Result<Array2<f32>> {
            b.chunk_logits(chunk, chunk.len() / 2)
        }
    });
    let cut = Cut {
        ctx,
        text_tokens,
        text_chunks: text_tokens.checked_div(ctx).unwrap_or(0),
        bos_per_chunk,
    };
    let indexed: Vec<(usize, &[u32])> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (first + i, c.as_slice()))
        .collect();
    score_chunks(
        engines,
        base.as_ref().map(|b| b as &BaselineFn<'_>),
        &indexed,
        cut,
        progress,
    )
}

/// The baseline's logits of chunk `index` (`tokens`), rows `ctx/2..` (at
/// least the `ctx - 1 - ctx/2` scored ones).
type BaselineFn<'a> = dyn Fn(usize, &[u32]) -> anyhow::Result<Array2<f32>> + 'a;

/// Scores `chunks` (each with its index in the text) on every engine; the
/// baseline gives KL and top-1. Per chunk, the rows are scored in parallel
/// and their values added in row order (the same bits on any number of
/// threads).
fn score_chunks(
    engines: &[&dyn LogitsEngine],
    baseline: Option<&BaselineFn<'_>>,
    chunks: &[(usize, &[u32])],
    cut: Cut,
    progress: &dyn Fn(usize),
) -> anyhow::Result<Vec<PerplexityReport>> {
    use rayon::prelude::*;
    let ctx = cut.ctx;
    anyhow::ensure!(
        ctx >= 4 || chunks.is_empty(),
        "context {ctx} is too short to score"
    );
    let mut per: Vec<Vec<ChunkSums>> = engines.iter().map(|_| Vec::new()).collect();
    for (done, &(index, chunk)) in chunks.iter().enumerate() {
        anyhow::ensure!(
            chunk.len() == ctx,
            "chunk {index} holds {} tokens, not {ctx}",
            chunk.len()
        );
        let first = ctx / 2;
        let scored = ctx - 1 - first;
        let base = baseline.map(|b| b(index, chunk)).transpose()?;
        if let Some(b) = &base {
            anyhow::ensure!(
                b.nrows() >= scored,
                "baseline logits of chunk {index}: too few rows"
            );
        }
        let logits = engines
            .iter()
            .map(|e| e.chunk_logits(chunk, first))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Per scored row: each engine's (NLL, KL, agreement).
        let rows: Vec<Vec<(f64, f64, bool)>> = (0..scored)
            .into_par_iter()
            .map(|r| {
                let bp = base.as_ref().map(|b| {
                    let row = b.row(r);
                    let row = row.as_slice().expect("contiguous logits");
                    (taalasc_float::log_softmax(row), taalasc_float::argmax(row))
                });
                logits
                    .iter()
                    .map(|l| {
                        let row = l.row(r);
                        let row = row.as_slice().expect("contiguous logits");
                        let lp = taalasc_float::log_softmax(row);
                        let nll = lp[chunk[first + r + 1] as usize];
                        match &bp {
                            Some((bp, barg)) => {
                                let kl = bp
                                    .iter()
                                    .zip(&lp)
                                    .map(|(&b, &q)| b.exp() * (b - q))
                                    .sum::<f64>();
                                (nll, kl, *barg == taalasc_float::argmax(row))
                            }
                            None => (nll, 0.0, false),
                        }
                    })
                    .collect()
            })
            .collect();
        for (e, p) in per.iter_mut().enumerate() {
            let (mut nll, mut kl, mut agree) = (0.0f64, 0.0f64, 0usize);
            for r in &rows {
                nll -= r[e].0;
                kl += r[e].1;
                agree += r[e].2 as usize;
            }
            p.push(ChunkSums::new(
                index,
                scored,
                nll,
                base.is_some().then_some((kl, agree)),
            ));
        }
        progress(done + 1);
    }
    per.into_iter()
        .map(|p| PerplexityReport::from_chunks(p, cut))
        .collect()
}

/// A text made ready to score: the float model of the source (its first
/// `layers` decoder layers, as a chip built with `--layers`), and the text
/// tokenized by the source's tokenizer and cut into chunks.
pub struct Prepared {
    /// The float source checkpoint.
    pub loaded: taalasc_frontends::LoadedModel,
    /// Its float reference.
    pub float: taalasc_float::FloatModel,
    /// The chunks to score, BOS included when used.
    pub chunks: Vec<Vec<u32>>,
    /// Tokens of the whole text.
    pub text_tokens: usize,
    /// The BOS token each chunk starts with, if any.
    pub bos: Option<u32>,
    /// The text's index of `chunks[0]`.
    pub first_chunk: usize,
}

/// Reads `text`, loads the float model of `source` and cuts the text into
/// at most `max_chunks` chunks of `ctx` tokens ([`chunks`]).
pub fn prepare(
    source: &std::path::Path,
    layers: Option<usize>,
    text: &std::path::Path,
    ctx: usize,
    max_chunks: Option<usize>,
    policy: BosPolicy,
) -> anyhow::Result<Prepared> {
    anyhow::ensure!(max_chunks != Some(0), "--chunks must be at least 1");
    prepare_range(
        source,
        layers,
        text,
        ctx,
        ChunkRange::first(max_chunks),
        policy,
    )
}

/// [`prepare`] of the chunks `range` of the text (checked against the
/// text's chunks, as `eval --chunks-from/--chunks-to` checks them).
pub fn prepare_range(
    source: &std::path::Path,
    layers: Option<usize>,
    text: &std::path::Path,
    ctx: usize,
    range: ChunkRange,
    policy: BosPolicy,
) -> anyhow::Result<Prepared> {
    use anyhow::Context;
    let t = prepare_text(source, layers, text, ctx, range, policy)?;
    let float = taalasc_float::FloatModel::new(&t.loaded.model, &t.loaded.weights)
        .with_context(|| format!("reading the weights of {}", source.display()))?;
    Ok(Prepared {
        loaded: t.loaded,
        float,
        chunks: t.chunks,
        text_tokens: t.text_tokens,
        bos: t.bos,
        first_chunk: t.range.start,
    })
}

/// How many chunks `prepare(.., ctx, Some(max_chunks), ..)` scores: the
/// first `max_chunks` of the text's chunks of `ctx` tokens, or all there
/// are (the source's tokenizer cuts the text; its weights are not read).
pub fn chunks_scored(
    source: &std::path::Path,
    layers: Option<usize>,
    text: &std::path::Path,
    ctx: usize,
    max_chunks: usize,
    policy: BosPolicy,
) -> anyhow::Result<usize> {
    anyhow::ensure!(max_chunks > 0, "--chunks must be at least 1");
    let t = prepare_text(
        source,
        layers,
        text,
        ctx,
        ChunkRange::first(Some(max_chunks)),
        policy,
    )?;
    Ok(t.range.len())
}

/// Which of the text's chunks to score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkRange {
    /// First chunk (0 when absent).
    pub from: Option<usize>,
    /// One past the last chunk (the text's last when absent).
    pub to: Option<usize>,
}

impl ChunkRange {
    /// The first `n` chunks (all of them for `None`).
    pub fn first(n: Option<usize>) -> ChunkRange {
        ChunkRange { from: None, to: n }
    }
}

/// The text's tokens cut into chunks, the source loaded (weights mapped, not
/// read), for [`eval_models`].
struct TextChunks {
    loaded: taalasc_frontends::LoadedModel,
    /// Chunks `range`, BOS included when used.
    chunks: Vec<Vec<u32>>,
    range: std::ops::Range<usize>,
    text_tokens: usize,
    text_chunks: usize,
    bos: Option<u32>,
    /// SHA-256 of the text file's bytes.
    text_sha: String,
}

fn prepare_text(
    source: &std::path::Path,
    layers: Option<usize>,
    text: &std::path::Path,
    ctx: usize,
    range: ChunkRange,
    policy: BosPolicy,
) -> anyhow::Result<TextChunks> {
    use anyhow::Context;
    let raw = std::fs::read(text).with_context(|| format!("reading {}", text.display()))?;
    let text_sha = crate::manifest::sha256_hex(&raw);
    let body = String::from_utf8(raw)
        .map_err(|e| anyhow::anyhow!("reading {}: not UTF-8 ({e})", text.display()))?;
    let loaded = crate::load_layers(source, layers)
        .with_context(|| format!("loading the float model {}", source.display()))?;
    let max = loaded.model.hparams.max_positions;
    anyhow::ensure!(
        ctx <= max,
        "--ctx {ctx} is longer than the {max} positions {} supports (max_positions): give --ctx {max} or less",
        source.display()
    );
    let tok = loaded.tokenizer.as_ref().with_context(|| {
        format!(
            "{} ships no tokenizer, so it cannot tokenize --text",
            source.display()
        )
    })?;
    let ids = tok.encode(&body, true)?;
    let adds_bos = tok.bos.is_some() && ids.first() == tok.bos.as_ref();
    let bos = match policy {
        BosPolicy::Auto if adds_bos => tok.bos,
        BosPolicy::Always => Some(
            tok.bos
                .context("--bos always, but the model has no BOS token")?,
        ),
        _ => None,
    };
    let text_chunks = ids.len() / ctx;
    anyhow::ensure!(
        text_chunks > 0,
        "{}: {} tokens do not fill one context of {ctx}",
        text.display(),
        ids.len()
    );
    let from = range.from.unwrap_or(0);
    let to = range.to.unwrap_or(text_chunks);
    anyhow::ensure!(
        range.from.is_none() || range.to.is_none() || from < to,
        "--chunks-from {from} --chunks-to {to}: the range of chunks is empty (give FROM < TO)"
    );
    let to = if range.from.is_none() {
        // --chunks N: the first N chunks, or all there are.
        to.min(text_chunks)
    } else {
        to
    };
    anyhow::ensure!(
        to <= text_chunks && from < to,
        "chunks {from}..{to} are past the {text_chunks} chunks of {ctx} tokens of {} ({} tokens): give --chunks-from/--chunks-to within 0..{text_chunks}",
        text.display(),
        ids.len()
    );
    let all = chunks(&ids, ctx, bos, Some(to));
    Ok(TextChunks {
        loaded,
        chunks: all[from..to].to_vec(),
        range: from..to,
        text_tokens: ids.len(),
        text_chunks,
        bos,
        text_sha,
    })
}

/// One model's scores from [`eval_models`].
pub struct Scored {
    /// The checkpoint or chip image scored.
    pub model: std::path::PathBuf,
    /// Perplexity (and, for a chip image, KL and top-1 against the float model).
    pub report: PerplexityReport,
    /// A chip image's bits per weight, from its `report.json`.
    pub bits_per_weight: Option<f64>,
}

/// What `taalasc eval` scores and how.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// UTF-8 text to score.
    pub text: std::path::PathBuf,
    /// Tokens per chunk.
    pub ctx: usize,
    /// The chunks to score.
    pub range: ChunkRange,
    /// BOS per chunk.
    pub bos: BosPolicy,
    /// Draw a progress bar on a terminal.
    pub show_progress: bool,
    /// Read and write the float baseline's logits in the cache ([`float_cache_dir`]).
    pub float_cache: bool,
}

/// `taalasc eval`: one checkpoint, or one or more chip images of one source
/// scored on the same chunks in one pass (the float model runs once per
/// chunk, or its logits come from the cache). Returns the scores and the
/// float model scored against.
pub fn eval_models(
    models: &[std::path::PathBuf],
    opts: &EvalOptions,
) -> anyhow::Result<(Vec<Scored>, std::path::PathBuf)> {
    use taalasc_image::ChipImage;
    let ctx = opts.ctx;
    anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
    anyhow::ensure!(
        opts.range.to != Some(0),
        "--chunks must be at least 1 (so must --chunks-to)"
    );
    let images: Vec<ChipImage> = if models.iter().any(|m| crate::is_chip_image(m)) {
        models
            .iter()
            .map(|m| {
                anyhow::ensure!(
                    crate::is_chip_image(m),
                    "{} is not a chip image: several models can only be chip images of one source",
                    m.display()
                );
                let image = crate::chip::read_image(m)?;
                anyhow::ensure!(
                    ctx <= image.context,
                    "--ctx {ctx} is longer than the context of {} ({} positions): give --ctx {} or less",
                    m.display(),
                    image.context,
                    image.context
                );
                Ok(image)
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        anyhow::ensure!(
            models.len() == 1,
            "several models can only be chip images of one source; got {} checkpoints",
            models.len()
        );
        Vec::new()
    };
    let mut manifests = Vec::new();
    for m in models.iter().filter(|_| !images.is_empty()) {
        manifests.push(crate::manifest::Manifest::read(m)?);
    }
    let (float_path, layers) = match manifests.first() {
        None => (models[0].clone(), None),
        Some(first) => {
            for (m, man) in models.iter().zip(&manifests).skip(1) {
                anyhow::ensure!(
                    man.source.layers_kept == first.source.layers_kept,
                    "{} and {} keep different numbers of decoder layers (build --layers): score them separately",
                    models[0].display(),
                    m.display()
                );
                let same = match (
                    first.source.path.canonicalize(),
                    man.source.path.canonicalize(),
                ) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => first.source.path == man.source.path,
                };
                anyhow::ensure!(
                    same,
                    "{} was built from {}, but {} from {}: score them separately",
                    m.display(),
                    man.source.path.display(),
                    models[0].display(),
                    first.source.path.display()
                );
            }
            (first.source.path.clone(), first.source.layers_kept)
        }
    };
    // A chip built from a model's first N layers is scored against the
    // float model of the same N layers.
    let text = prepare_text(&float_path, layers, &opts.text, ctx, opts.range, opts.bos)?;
    let cut = Cut {
        ctx,
        text_tokens: text.text_tokens,
        text_chunks: text.text_chunks,
        bos_per_chunk: text.bos.is_some(),
    };
    let indexed: Vec<(usize, &[u32])> = text
        .range
        .clone()
        .zip(text.chunks.iter().map(Vec::as_slice))
        .collect();
    // The float model is read only when a chunk's logits are not cached.
    let float = std::sync::OnceLock::new();
    let get_float = || float_of(&float, &text.loaded, &float_path);
    let bar = progress_bar(indexed.len() as u64, !opts.show_progress);
    let progress = |d: usize| bar.set_position(d as u64);
    let reports = if images.is_empty() {
        let f: &dyn LogitsEngine = get_float()?;
        score_chunks(&[f], None, &indexed, cut, &progress)?
    } else {
        let cache = if opts.float_cache {
            Some(FloatCache::open(&float_path, layers, &text, ctx, opts.bos)?)
        } else {
            None
        };
        let scored_rows = ctx - 1 - ctx / 2;
        let vocab = text.loaded.model.hparams.vocab_size;
        let baseline = |index: usize, chunk: &[u32]| -> anyhow::Result<Array2<f32>> {
            if let Some(c) = &cache {
                if let Some(l) = c.get(index, scored_rows, vocab) {
                    return Ok(l);
                }
            }
            let l = get_float()?.chunk_logits(chunk, ctx / 2)?;
            let l = l.slice(ndarray::s![..scored_rows, ..]).to_owned();
            if let Some(c) = &cache {
                c.put(index, &l);
            }
            Ok(l)
        };
        let refs = images
            .iter()
            .map(|img| taalasc_reference::Reference::new(img, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let engines: Vec<&dyn LogitsEngine> = refs.iter().map(|r| r as &dyn LogitsEngine).collect();
        score_chunks(&engines, Some(&baseline), &indexed, cut, &progress)?
    };
    bar.finish_and_clear();
    let scored = models
        .iter()
        .zip(reports)
        .map(|(model, report)| Scored {
            model: model.clone(),
            report,
            bits_per_weight: (!images.is_empty())
                .then(|| crate::manifest::BuildReportFile::read(model).ok())
                .flatten()
                .map(|r| r.build.bits_per_weight),
        })
        .collect();
    Ok((scored, float_path))
}

/// The float model in `cell`, read from `loaded` on first use.
fn float_of<'f>(
    cell: &'f std::sync::OnceLock<taalasc_float::FloatModel>,
    loaded: &taalasc_frontends::LoadedModel,
    path: &std::path::Path,
) -> anyhow::Result<&'f taalasc_float::FloatModel> {
    use anyhow::Context;
    if cell.get().is_none() {
        let f = taalasc_float::FloatModel::new(&loaded.model, &loaded.weights)
            .with_context(|| format!("reading the weights of {}", path.display()))?;
        let _ = cell.set(f);
    }
    Ok(cell.get().expect("set above"))
}

/// The JSON `eval --json` prints for `scored` (one object, or an array for
/// several chip images): each report, plus for a chip image its path, bits
/// per weight and the float baseline.
pub fn scores_json(
    scored: &[Scored],
    float_path: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let mut out = Vec::new();
    for s in scored {
        let mut v = serde_json::to_value(&s.report)?;
        if s.report.kl_mean.is_some() {
            v["model"] = s.model.display().to_string().into();
            v["bits_per_weight"] = s.bits_per_weight.into();
            v["float_baseline"] = float_path.display().to_string().into();
        }
        out.push(v);
    }
    Ok(if out.len() == 1 {
        out.remove(0)
    } else {
        serde_json::Value::Array(out)
    })
}

/// Merges the JSON outputs of `eval --json` shards (`(name, json)`, name for
/// messages) into the JSON a single run over their union prints, byte for
/// byte once pretty-printed: every shard must score the same models (same
/// order, same paths, bits per weight and float baseline).
pub fn merge_eval_json(
    shards: &[(String, serde_json::Value)],
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    anyhow::ensure!(!shards.is_empty(), "no shards to merge");
    let models = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        match v {
            serde_json::Value::Array(a) => a.clone(),
            o => vec![o.clone()],
        }
    };
    let first = models(&shards[0].1);
    let keys = ["model", "bits_per_weight", "float_baseline"];
    let mut per_model: Vec<Vec<ShardResult>> = vec![Vec::new(); first.len()];
    for (name, v) in shards {
        let ms = models(v);
        anyhow::ensure!(
            ms.len() == first.len(),
            "{name} scores {} models, {} scores {}",
            ms.len(),
            shards[0].0,
            first.len()
        );
        for (i, (m, f)) in ms.iter().zip(&first).enumerate() {
            for k in keys {
                anyhow::ensure!(
                    m.get(k) == f.get(k),
                    "{name}: model {i}'s `{k}` is {}, but {} has {}",
                    m.get(k).unwrap_or(&serde_json::Value::Null),
                    shards[0].0,
                    f.get(k).unwrap_or(&serde_json::Value::Null)
                );
            }
            let r: ShardResult = serde_json::from_value(m.clone())
                .with_context(|| format!("{name}: model {i} is not an eval report"))?;
            per_model[i].push(r);
        }
    }
    let mut out = Vec::new();
    for (i, (shard, f)) in per_model.iter().zip(&first).enumerate() {
        let merged = merge_shards(shard).with_context(|| match f.get("model") {
            Some(m) => format!("merging the shards of {m}"),
            None => format!("merging the shards of model {i}"),
        })?;
        let mut v = serde_json::to_value(&merged)?;
        for k in keys {
            if let Some(x) = f.get(k) {
                v[k] = x.clone();
            }
        }
        out.push(v);
    }
    Ok(if out.len() == 1 {
        out.remove(0)
    } else {
        serde_json::Value::Array(out)
    })
}

/// The folder of the float baseline cache: `eval` beside `sim` under the
/// cache root of [`crate::simtree::cache_root`] (`$TAALASC_CACHE_DIR/eval`,
/// else `$XDG_CACHE_HOME/taalasc/eval`, else `$HOME/.cache/taalasc/eval`).
pub fn float_cache_dir() -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::simtree::cache_root()?.with_file_name("eval"))
}

/// Largest total size of the float cache folder (bytes); an entry that would
/// take it past this is not written (the chunk is recomputed next time).
/// `$TAALASC_EVAL_CACHE_MAX_MB` overrides it.
pub const FLOAT_CACHE_MAX_BYTES: u64 = 4 << 30;

/// The first bytes of a float cache entry.
const CACHE_MAGIC: &[u8; 8] = b"TLSCFLG1";

/// The float baseline's logits of chunks, on disk: one file per chunk named
/// by the SHA-256 of everything the logits depend on (the source's content
/// and kept layers, the text's content, ctx, the BOS token, the chunk's
/// index, and this taalasc: version and executable digest). A file is
/// `TLSCFLG1`, rows and vocab (u64 LE), the SHA-256 of the data, then the
/// rows' f32 (LE): exactly the logits, so a cached run gives the same bits.
/// An entry of the wrong length or digest is reported and recomputed.
struct FloatCache {
    dir: std::path::PathBuf,
    key: String,
    max_bytes: u64,
    /// Set once an entry was not written because of the cap.
    full: std::sync::atomic::AtomicBool,
}

impl FloatCache {
    fn open(
        source: &std::path::Path,
        layers: Option<usize>,
        text: &TextChunks,
        ctx: usize,
        policy: BosPolicy,
    ) -> anyhow::Result<FloatCache> {
        use anyhow::Context;
        let dir = float_cache_dir()?;
        let src = content_sha256(source)
            .with_context(|| format!("hashing {} for the float cache key", source.display()))?;
        let exe = std::env::current_exe()
            .map_err(anyhow::Error::from)
            .and_then(|p| crate::manifest::file_digest(&p))
            .context("hashing the taalasc executable for the float cache key")?;
        let key = format!(
            "taalasc eval float logits\nversion {}\nexe {exe}\nsource {src}\nlayers {:?}\ntext {}\nctx {ctx}\nbos {:?} {:?}\n",
            env!("CARGO_PKG_VERSION"),
            layers,
            text.text_sha,
            policy,
            text.bos,
        );
        let max_bytes = std::env::var("TAALASC_EVAL_CACHE_MAX_MB")
            .ok()
            .map(|v| {
                v.trim().parse::<u64>().map(|mb| mb << 20).map_err(|_| {
                    anyhow::anyhow!("TAALASC_EVAL_CACHE_MAX_MB=`{v}` is not a number of MiB")
                })
            })
            .transpose()?
            .unwrap_or(FLOAT_CACHE_MAX_BYTES);
        Ok(FloatCache {
            dir,
            key,
            max_bytes,
            full: Default::default(),
        })
    }

    fn path(&self, index: usize) -> std::path::PathBuf {
        let k = crate::manifest::sha256_hex(format!("{}chunk {index}\n", self.key).as_bytes());
        self.dir.join(format!("{k}.f32"))
    }

    /// The cached logits of chunk `index` (`rows × vocab`), if a sound entry
    /// is there.
    fn get(&self, index: usize, rows: usize, vocab: usize) -> Option<Array2<f32>> {
        let path = self.path(index);
        let bytes = std::fs::read(&path).ok()?;
        match decode_entry(&bytes, rows, vocab) {
            Ok(a) => Some(a),
            Err(why) => {
                eprintln!(
                    "note: float cache entry {} of chunk {index} is damaged ({why}); recomputing it",
                    path.display()
                );
                None
            }
        }
    }

    /// Stores chunk `index`'s logits; failures only note on stderr (the
    /// cache is an optimisation).
    fn put(&self, index: usize, logits: &Array2<f32>) {
        use std::sync::atomic::Ordering;
        let bytes = encode_entry(logits);
        let used: u64 = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if used + bytes.len() as u64 > self.max_bytes {
            if !self.full.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "note: the float cache {} holds {} MiB; chunk {index}'s {} MiB would pass its cap of {} MiB (TAALASC_EVAL_CACHE_MAX_MB), so it and later chunks are not stored",
                    self.dir.display(),
                    used >> 20,
                    bytes.len() >> 20,
                    self.max_bytes >> 20
                );
            }
            return;
        }
        let r = std::fs::create_dir_all(&self.dir)
            .and_then(|_| crate::files::write_atomic(&self.path(index), &bytes));
        if let Err(e) = r {
            eprintln!(
                "note: could not store chunk {index}'s float logits in {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// A float cache entry's bytes (see [`FloatCache`]).
fn encode_entry(l: &Array2<f32>) -> Vec<u8> {
    let mut data = Vec::with_capacity(l.len() * 4);
    for x in l.iter() {
        data.extend_from_slice(&x.to_le_bytes());
    }
    let mut out = Vec::with_capacity(8 + 16 + 32 + data.len());
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&(l.nrows() as u64).to_le_bytes());
    out.extend_from_slice(&(l.ncols() as u64).to_le_bytes());
    out.extend_from_slice(&sha256(&data));
    out.extend_from_slice(&data);
    out
}

/// The logits of a float cache entry, checked: magic, shape, length and digest.
fn decode_entry(b: &[u8], rows: usize, vocab: usize) -> Result<Array2<f32>, String> {
    const HEAD: usize = 8 + 16 + 32;
    if b.len() < HEAD || &b[..8] != CACHE_MAGIC {
        return Err("not a float cache entry".into());
    }
    let word = |i: usize| u64::from_le_bytes(b[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes"));
    if (word(0), word(1)) != (rows as u64, vocab as u64) {
        return Err(format!(
            "{}x{} logits, expected {rows}x{vocab}",
            word(0),
            word(1)
        ));
    }
    let data = &b[HEAD..];
    if data.len() != rows * vocab * 4 {
        return Err(format!(
            "{} bytes of logits, expected {}",
            data.len(),
            rows * vocab * 4
        ));
    }
    if sha256(data)[..] != b[24..HEAD] {
        return Err("the logits do not match their SHA-256".into());
    }
    let v = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    Array2::from_shape_vec((rows, vocab), v).map_err(|e| e.to_string())
}

/// SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// SHA-256 of a checkpoint's content: a file's bytes, or for a folder the
/// digests and relative paths of every file below it. Files are streamed
/// ([`crate::manifest::file_digest`]): memory does not grow with their size.
fn content_sha256(path: &std::path::Path) -> anyhow::Result<String> {
    use crate::manifest::file_digest;
    if path.is_dir() {
        let mut list = String::new();
        for rel in crate::files::files_below(path)? {
            list += &format!("{} {rel}\n", file_digest(&path.join(&rel))?);
        }
        Ok(crate::manifest::sha256_hex(list.as_bytes()))
    } else {
        file_digest(path)
    }
}

/// A progress bar on stderr over `len` chunks (hidden when `quiet` or when
/// stderr is not a terminal).
pub fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} chunks, eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine whose logits make token `t+1` have probability 1/2 and the
    /// rest share the other half uniformly: NLL = ln 2 for every scored token.
    struct Half(usize);
    impl LogitsEngine for Half {
        fn chunk_logits(&self, tokens: &[u32], from: usize) -> anyhow::Result<Array2<f32>> {
            let v = self.0;
            let mut out = Array2::zeros((tokens.len() - from, v));
            for (r, &t) in tokens[from..].iter().enumerate() {
                let next = (t as usize + 1) % v;
                // p(next) = e^a / (e^a + (v-1)) = 1/2  =>  a = ln(v-1)
                out[[r, next]] = ((v - 1) as f32).ln();
            }
            Ok(out)
        }
    }

    #[test]
    fn llama_cpp_chunking_and_scoring() {
        let ids: Vec<u32> = (0..37).map(|i| i % 10).collect();
        let c = chunks(&ids, 8, Some(9), None);
        assert_eq!(c.len(), 4);
        assert_eq!(c[1][0], 9, "first token replaced by BOS");
        assert_eq!(c[1][1], ids[9]);
        let r = perplexity(&Half(10), &chunks(&ids, 8, None, None), 37, false, &|_| {}).unwrap();
        // ctx 8: positions 4, 5, 6 are scored in each chunk.
        assert_eq!(r.tokens_scored, 4 * 3);
        assert!((r.perplexity - 2.0).abs() < 1e-6, "{}", r.perplexity);
    }

    /// An engine that is `Half` with its logits scaled by `k` (k = 1: Half).
    struct Scaled(usize, f32);
    impl LogitsEngine for Scaled {
        fn chunk_logits(&self, tokens: &[u32], from: usize) -> anyhow::Result<Array2<f32>> {
            Ok(Half(self.0).chunk_logits(tokens, from)? * self.1)
        }
    }

    #[test]
    fn many_engines_score_as_each_alone() {
        let ids: Vec<u32> = (0..50).map(|i| (i * 7) % 10).collect();
        let c = chunks(&ids, 10, None, None);
        let (a, b) = (Scaled(10, 0.5), Scaled(10, 2.0));
        let base = Half(10);
        let many = quality_many(&[&a, &b], Some(&base), &c, 50, false, &|_| {}).unwrap();
        for (engine, got) in [(&a as &dyn LogitsEngine, &many[0]), (&b, &many[1])] {
            let alone = quality(engine, Some(&base), &c, 50, false, &|_| {}).unwrap();
            assert_eq!(got.perplexity, alone.perplexity);
            assert_eq!(got.kl_mean, alone.kl_mean);
            assert_eq!(got.nll_per_chunk, alone.nll_per_chunk);
        }
        // Same argmax as the baseline; KL > 0 since the distributions differ.
        assert_eq!(many[0].top1, Some(1.0));
        assert!(many[0].kl_mean.unwrap() > 0.01 && many[1].kl_mean.unwrap() > 0.01);
        assert_ne!(many[0].perplexity, many[1].perplexity);
    }

    #[test]
    fn shards_merge_to_the_bits_of_one_run() {
        let mut x = 12345u64;
        let ids: Vec<u32> = (0..90)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 10) as u32
            })
            .collect();
        let c = chunks(&ids, 10, None, None);
        assert_eq!(c.len(), 9);
        let idx: Vec<(usize, &[u32])> = c
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.as_slice()))
            .collect();
        let cut = Cut {
            ctx: 10,
            text_tokens: 90,
            text_chunks: 9,
            bos_per_chunk: false,
        };
        let (e, base) = (Scaled(10, 0.7), Scaled(10, 1.3));
        let bf = |_: usize, ch: &[u32]| base.chunk_logits(ch, 5);
        let score = |r: std::ops::Range<usize>| {
            score_chunks(&[&e], Some(&bf), &idx[r], cut, &|_| {})
                .unwrap()
                .remove(0)
        };
        let whole = score(0..9);
        let json = |r: &PerplexityReport| serde_json::to_string_pretty(r).unwrap();
        let parts = [score(5..9), score(0..4), score(4..5)];
        // Through JSON, as shards travel.
        let back: Vec<ShardResult> = parts
            .iter()
            .map(|p| serde_json::from_str(&json(p)).unwrap())
            .collect();
        assert_eq!(json(&merge_shards(&back).unwrap()), json(&whole));
        assert_eq!(whole.chunks_from, 0);
        assert_eq!(whole.chunks_to, 9);
        // The chunks' NLL differ, so the order of the sums matters.
        let per: std::collections::BTreeSet<u64> = whole
            .per_chunk
            .iter()
            .map(|c| c.nll_sum.to_bits())
            .collect();
        assert!(per.len() >= 2, "{:?}", whole.nll_per_chunk);
        let gap = merge_shards(&[score(0..4), score(5..9)]).unwrap_err();
        assert!(gap.to_string().contains("chunks 4..5 are missing"), "{gap}");
        let over = merge_shards(&[score(0..5), score(3..9)]).unwrap_err();
        assert!(over.to_string().contains("overlap: chunks 3..5"), "{over}");
        let mut other = score(4..9);
        other.ctx = 12;
        let e = merge_shards(&[score(0..4), other]).unwrap_err();
        assert!(e.to_string().contains("different text or context"), "{e}");
    }

    #[test]
    fn cache_entries_round_trip_and_damage_is_named() {
        let l = Array2::from_shape_fn((3, 5), |(r, c)| (r as f32 - 1.5) * c as f32 / 7.0);
        let b = encode_entry(&l);
        let back = decode_entry(&b, 3, 5).unwrap();
        let bits = |a: &Array2<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&l));
        assert!(decode_entry(&b[..b.len() - 1], 3, 5)
            .unwrap_err()
            .contains("bytes"));
        assert!(decode_entry(&b, 5, 3).unwrap_err().contains("expected 5x3"));
        let mut d = b.clone();
        d[b.len() - 2] ^= 0x40;
        assert!(decode_entry(&d, 3, 5).unwrap_err().contains("SHA-256"));
        assert!(decode_entry(b"nonsense", 3, 5).is_err());
    }
}
