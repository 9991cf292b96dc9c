//! `taalasc run`: score a prompt and continue it greedily, with the float
//! reference of a checkpoint or the bit-exact integer reference of a chip
//! image.

use crate::build::BuildOptions;
use crate::files::{npy_f32, npy_i64, write_atomic};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use taalasc_frontends::{LoadedModel, TextTokenizer};
use taalasc_image::ChipImage;
use taalasc_reference::Reference;

/// Which executor computes the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    /// The f32 reference of the source checkpoint.
    Float,
    /// The bit-exact integer reference of the chip image (built with default options when MODEL is a checkpoint).
    Reference,
}

/// The prompt: text for the model's tokenizer, or token ids.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Text, tokenized with the model's own tokenizer (BOS as it says).
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
}

/// What `run` produced.
pub struct RunOutcome {
    /// The prompt's token ids.
    pub prompt_tokens: Vec<u32>,
    /// The tokens generated greedily.
    pub generated: Vec<u32>,
    /// Their text, when the model has a tokenizer.
    pub generated_text: Option<String>,
    /// `Some(context)` when generation stopped because the next token would
    /// not fit the context (the chip's, or the checkpoint's
    /// `max_positions`) before `max_tokens` or EOS: what was generated so far
    /// is kept, and a note goes to stderr.
    pub stopped_at_context: Option<usize>,
}

/// The chip image at `model` (or one built in memory with default options
/// from a checkpoint), and the checkpoint that supplies its tokenizer.
pub fn open_image(model: &Path) -> anyhow::Result<(ChipImage, Option<LoadedModel>)> {
    if crate::is_chip_image(model) {
        let image = crate::chip::read_image(model)?;
        let source = crate::image_source(model)
            .ok()
            .and_then(|p| crate::load(&p).ok());
        Ok((image, source))
    } else {
        let loaded = crate::load(model)?;
        let (image, _) =
            crate::build::build_image(&loaded, &BuildOptions::defaults(&loaded.model), None)?;
        Ok((image, Some(loaded)))
    }
}

/// The prompt's token ids (`model` names the model in errors).
pub fn prompt_ids(
    tokenizer: Option<&TextTokenizer>,
    model: &Path,
    prompt: &Prompt,
) -> anyhow::Result<Vec<u32>> {
    let ids = match prompt {
        Prompt::Text(text) => tokenizer
            .with_context(|| {
                format!(
                    "no tokenizer for {}; pass --tokens instead of --prompt",
                    model.display()
                )
            })?
            .encode(text, true)?,
        Prompt::Tokens(t) => t.clone(),
    };
    anyhow::ensure!(!ids.is_empty(), "the prompt has no tokens");
    Ok(ids)
}

/// Runs `prompt` through `model` and generates up to `max_tokens` greedily
/// (stopping at EOS unless `ignore_eos`); with `dump_logits`, writes the
/// prompt positions' logits as `.npy` (float32 from the float executor,
/// int64 `W48` from the reference).
pub fn run(
    model: &Path,
    executor: Option<Executor>,
    prompt: &Prompt,
    max_tokens: usize,
    ignore_eos: bool,
    dump_logits: Option<&PathBuf>,
) -> anyhow::Result<RunOutcome> {
    // The token generation stops at.
    let stop = |eos: Option<u32>| if ignore_eos { None } else { eos };
    let is_image = crate::is_chip_image(model);
    let executor = executor.unwrap_or(if is_image {
        Executor::Reference
    } else {
        Executor::Float
    });
    if is_image && executor == Executor::Float {
        bail!(
            "{} is a chip image: it runs on --engine reference (its float source is named in manifest.json)",
            model.display()
        );
    }
    let dump = |bytes: Vec<u8>| -> anyhow::Result<()> {
        if let Some(path) = dump_logits {
            write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    };
    let (ids, generated, tokenizer, limit, eos) = if executor == Executor::Reference {
        let (image, source) = open_image(model)?;
        let tok = source.and_then(|s| s.tokenizer);
        let ids = prompt_ids(tok.as_ref(), model, prompt)?;
        let limit = image.context;
        fits(&ids, limit, "the chip's context")?;
        let r = Reference::new(&image, rayon::current_num_threads())?;
        let vocab = image.model.hparams.vocab_size;
        let mut session = r.session();
        let logits = r.forward(&mut session, &ids, 0)?;
        dump(npy_i64(&[ids.len(), vocab], &logits))?;
        let mut last = logits[(ids.len() - 1) * vocab..].to_vec();
        let generated = greedy(
            max_tokens,
            limit - ids.len(),
            stop(image.model.hparams.eos_token_id),
            |next| {
                last = match next {
                    Some(t) => r.forward(&mut session, &[t], 0)?,
                    None => return Ok(taalasc_float::argmax(&last)),
                };
                Ok(taalasc_float::argmax(&last))
            },
        )?;
        (
            ids,
            generated,
            tok,
            limit,
            stop(image.model.hparams.eos_token_id),
        )
    } else {
        let (loaded, float) = crate::load_float(model)?;
        let ids = prompt_ids(loaded.tokenizer.as_ref(), model, prompt)?;
        let limit = loaded.model.hparams.max_positions;
        fits(&ids, limit, "the model's max_positions")?;
        let mut session = float.session();
        let logits = float.forward(&mut session, &ids, 0)?;
        let data: Vec<f32> = logits.iter().copied().collect();
        dump(npy_f32(&[logits.nrows(), logits.ncols()], &data))?;
        let mut last = logits.row(logits.nrows() - 1).to_owned();
        let room = limit - ids.len();
        let generated = greedy(
            max_tokens,
            room,
            stop(loaded.model.hparams.eos_token_id),
            |next| {
                if let Some(t) = next {
                    last = float.forward(&mut session, &[t], 0)?.row(0).to_owned();
                }
                Ok(taalasc_float::argmax(
                    last.as_slice().expect("contiguous logits"),
                ))
            },
        )?;
        (
            ids,
            generated,
            loaded.tokenizer,
            limit,
            stop(loaded.model.hparams.eos_token_id),
        )
    };
    // Stopped by the context: fewer than asked, and not at EOS.
    let stopped_at_context = (generated.len() < max_tokens
        && generated.len() == limit - ids.len() + 1
        && generated.last().copied() != eos)
        .then_some(limit);
    let generated_text = tokenizer
        .as_ref()
        .map(|t| t.decode(&generated))
        .transpose()?;
    if let Some(ctx) = stopped_at_context {
        eprintln!(
            "note: generation stopped at the context of {ctx} positions after {} of {max_tokens} tokens ({} prompt + {} generated); the tokens generated so far are printed",
            generated.len(),
            ids.len(),
            generated.len()
        );
    }
    Ok(RunOutcome {
        prompt_tokens: ids,
        generated,
        generated_text,
        stopped_at_context,
    })
}

/// Checks that the prompt fits a context of `limit` positions (`what`).
fn fits(ids: &[u32], limit: usize, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        ids.len() <= limit,
        "the prompt's {} tokens do not fit {what} of {limit} positions",
        ids.len()
    );
    Ok(())
}

/// Greedy generation: `step(None)` gives the argmax after the prompt,
/// `step(Some(t))` feeds `t` and gives the next argmax; stops at `eos`,
/// after `max_tokens`, or when no position is left to feed a token (`room`:
/// positions after the prompt; at most `room + 1` tokens are generated).
fn greedy(
    max_tokens: usize,
    room: usize,
    eos: Option<u32>,
    mut step: impl FnMut(Option<u32>) -> anyhow::Result<u32>,
) -> anyhow::Result<Vec<u32>> {
    let mut generated = Vec::new();
    if max_tokens == 0 {
        return Ok(generated);
    }
    let mut next = step(None)?;
    loop {
        generated.push(next);
        if Some(next) == eos || generated.len() == max_tokens || generated.len() > room {
            return Ok(generated);
        }
        next = step(Some(next))?;
    }
}
