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

use ndarray::Array2;
use serde::Serialize;

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

#[derive(Clone, Debug, Serialize)]
/// What `eval` measured on one model.
pub struct PerplexityReport {
    /// exp of the mean negative log-likelihood over the scored tokens.
    pub perplexity: f64,
    /// Mean KL(baseline ‖ engine) over scored positions, nats (with a baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl_mean: Option<f64>,
    /// Fraction of scored positions whose argmax equals the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
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

/// Running sums of one engine's scores.
#[derive(Default)]
struct Tally {
    kl_sum: f64,
    agree: usize,
    total: f64,
    nll_per_chunk: Vec<f64>,
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
    let mut tally: Vec<Tally> = engines.iter().map(|_| Tally::default()).collect();
    let mut count = 0usize;
    let ctx = chunks.first().map_or(0, Vec::len);
    anyhow::ensure!(
        ctx >= 4 || chunks.is_empty(),
        "context {ctx} is too short to score"
    );
    for (i, chunk) in chunks.iter().enumerate() {
        let first = ctx / 2;
        let base_lp: Option<Vec<(Vec<f64>, u32)>> = baseline
            .map(|b| -> anyhow::Result<_> {
                let base = b.chunk_logits(chunk, first)?;
                Ok(base
                    .rows()
                    .into_iter()
                    .take(ctx - 1 - first)
                    .map(|r| {
                        let r = r.as_slice().expect("contiguous logits");
                        (taalasc_float::log_softmax(r), taalasc_float::argmax(r))
                    })
                    .collect())
            })
            .transpose()?;
        for (engine, t) in engines.iter().zip(&mut tally) {
            let logits = engine.chunk_logits(chunk, first)?;
            let mut sum = 0.0;
            for j in first..ctx - 1 {
                let row = logits.row(j - first);
                let row = row.as_slice().expect("contiguous logits");
                let lp = taalasc_float::log_softmax(row);
                sum -= lp[chunk[j + 1] as usize];
                if let Some(base) = &base_lp {
                    let (bp, barg) = &base[j - first];
                    t.kl_sum += bp
                        .iter()
                        .zip(&lp)
                        .map(|(&b, &q)| b.exp() * (b - q))
                        .sum::<f64>();
                    t.agree += (*barg == taalasc_float::argmax(row)) as usize;
                }
            }
            t.nll_per_chunk.push(sum / (ctx - 1 - first) as f64);
            t.total += sum;
        }
        count += ctx - 1 - first;
        progress(i + 1);
    }
    anyhow::ensure!(
        count > 0,
        "the text is shorter than one context of {ctx} tokens: nothing to score"
    );
    Ok(tally
        .into_iter()
        .map(|t| PerplexityReport {
            perplexity: (t.total / count as f64).exp(),
            kl_mean: baseline.map(|_| t.kl_sum / count as f64),
            top1: baseline.map(|_| t.agree as f64 / count as f64),
            chunks: chunks.len(),
            tokens_scored: count,
            ctx,
            text_tokens,
            bos_per_chunk,
            nll_per_chunk: t.nll_per_chunk,
        })
        .collect())
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
    use anyhow::Context;
    anyhow::ensure!(max_chunks != Some(0), "--chunks must be at least 1");
    let body =
        std::fs::read_to_string(text).with_context(|| format!("reading {}", text.display()))?;
    let (loaded, float) = crate::load_float_layers(source, layers)
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
    let list = chunks(&ids, ctx, bos, max_chunks);
    anyhow::ensure!(
        !list.is_empty(),
        "{}: {} tokens do not fill one context of {ctx}",
        text.display(),
        ids.len()
    );
    Ok(Prepared {
        loaded,
        float,
        chunks: list,
        text_tokens: ids.len(),
        bos,
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

/// `taalasc eval`: one checkpoint, or one or more chip images of one source
/// scored on the same chunks in one pass (the float model runs once per
/// chunk). Returns the scores and the float model scored against.
pub fn eval_models(
    models: &[std::path::PathBuf],
    text: &std::path::Path,
    ctx: usize,
    chunks: Option<usize>,
    bos: BosPolicy,
    show_progress: bool,
) -> anyhow::Result<(Vec<Scored>, std::path::PathBuf)> {
    use taalasc_image::ChipImage;
    anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
    anyhow::ensure!(chunks != Some(0), "--chunks must be at least 1");
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
    let prep = prepare(&float_path, layers, text, ctx, chunks, bos)?;
    let bar = progress_bar(prep.chunks.len() as u64, !show_progress);
    let progress = |d: usize| bar.set_position(d as u64);
    let reports = if images.is_empty() {
        vec![perplexity(
            &prep.float,
            &prep.chunks,
            prep.text_tokens,
            prep.bos.is_some(),
            &progress,
        )?]
    } else {
        let refs = images
            .iter()
            .map(|img| taalasc_reference::Reference::new(img, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let engines: Vec<&dyn LogitsEngine> = refs.iter().map(|r| r as &dyn LogitsEngine).collect();
        quality_many(
            &engines,
            Some(&prep.float),
            &prep.chunks,
            prep.text_tokens,
            prep.bos.is_some(),
            &progress,
        )?
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
}
