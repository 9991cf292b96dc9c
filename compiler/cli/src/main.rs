//! The `taalasc` command-line tool.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use taalasc::eval::{self, BosPolicy};
use taalasc::output::{npy_f32, write_atomic};

#[derive(Parser)]
#[command(
    name = "taalasc",
    version,
    about = "Compile trained transformer checkpoints into synthesizable silicon, with a bit-exact software reference."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a checkpoint's architecture and, per layer, its ops, parameter count and bytes at the source dtype.
    ///
    /// Reads only headers and metadata: weights stay memory-mapped and unread.
    Inspect {
        /// A Hugging Face folder, a .safetensors file with config.json beside it, a model.safetensors.index.json, or a .gguf file.
        model: PathBuf,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Print the IR graph in its text form.
        #[arg(long, conflicts_with = "json")]
        ir: bool,
    },
    /// Run a model with the f32 reference: score a prompt and continue it greedily.
    Run {
        /// The checkpoint (see `inspect`).
        model: PathBuf,
        /// Prompt text, tokenized with the model's own tokenizer.
        #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
        prompt: Option<String>,
        /// Prompt as comma-separated token ids, e.g. `1,2,3`.
        #[arg(long)]
        tokens: Option<String>,
        /// Number of tokens to generate greedily (stops early at EOS).
        #[arg(long, default_value_t = 16)]
        max_tokens: usize,
        /// Write the prompt positions' logits as float32 `[positions, vocab]` .npy.
        #[arg(long, value_name = "OUT.npy")]
        dump_logits: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Perplexity of the model on a text file, in llama.cpp's convention.
    ///
    /// The whole file is tokenized, cut into non-overlapping chunks of --ctx
    /// tokens, and only the second half of each chunk is scored, as
    /// `llama-perplexity -c CTX` does.
    Eval {
        /// The checkpoint (see `inspect`).
        model: PathBuf,
        /// UTF-8 text to score.
        #[arg(long)]
        text: PathBuf,
        /// Context length of each chunk.
        #[arg(long, default_value_t = 512)]
        ctx: usize,
        /// Score only the first N chunks.
        #[arg(long)]
        chunks: Option<usize>,
        /// Whether each chunk starts with BOS (auto: as llama.cpp, when the tokenizer adds BOS).
        #[arg(long, value_enum, default_value_t = BosPolicy::Auto)]
        bos: BosPolicy,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli.command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect { model, json, ir } => {
            let m = taalasc::load(&model)?;
            if ir {
                print!("{}", m.model);
            } else if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&taalasc::inspect::report(&m))?
                );
            } else {
                print!(
                    "{}",
                    taalasc::inspect::render(&taalasc::inspect::report(&m))
                );
            }
        }
        Command::Run {
            model,
            prompt,
            tokens,
            max_tokens,
            dump_logits,
            json,
        } => run(model, prompt, tokens, max_tokens, dump_logits, json)?,
        Command::Eval {
            model,
            text,
            ctx,
            chunks,
            bos,
            json,
        } => {
            anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
            let body = std::fs::read_to_string(&text)
                .with_context(|| format!("reading {}", text.display()))?;
            let (loaded, float) = taalasc::load_float(&model)?;
            let tok = loaded.tokenizer.as_ref().with_context(|| {
                format!(
                    "{} ships no tokenizer, so it cannot tokenize --text",
                    model.display()
                )
            })?;
            let ids = tok.encode(&body, true)?;
            let adds_bos = tok.bos.is_some() && ids.first() == tok.bos.as_ref();
            let bos = match bos {
                BosPolicy::Auto if adds_bos => tok.bos,
                BosPolicy::Always => Some(
                    tok.bos
                        .with_context(|| "--bos always, but the model has no BOS token")?,
                ),
                _ => None,
            };
            let chunk_list = eval::chunks(&ids, ctx, bos, chunks);
            if chunk_list.is_empty() {
                bail!(
                    "{}: {} tokens do not fill one context of {ctx}",
                    text.display(),
                    ids.len()
                );
            }
            let bar = progress_bar(chunk_list.len() as u64, json);
            let report = eval::perplexity(&float, &chunk_list, ids.len(), bos.is_some(), &|d| {
                bar.set_position(d as u64)
            })?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "perplexity {:.4} over {} chunks of {} ({} tokens scored, {} tokens in the text, BOS per chunk: {})",
                    report.perplexity, report.chunks, ctx, report.tokens_scored, report.text_tokens, report.bos_per_chunk
                );
            }
        }
    }
    Ok(())
}

fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
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

fn run(
    model: PathBuf,
    prompt: Option<String>,
    tokens: Option<String>,
    max_tokens: usize,
    dump_logits: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let (loaded, float) = taalasc::load_float(&model)?;
    let ids = match (&prompt, &tokens) {
        (Some(text), _) => loaded
            .tokenizer
            .as_ref()
            .with_context(|| {
                format!(
                    "{} ships no tokenizer; pass --tokens instead of --prompt",
                    model.display()
                )
            })?
            .encode(text, true)?,
        (None, Some(t)) => taalasc::parse_tokens(t)?,
        (None, None) => bail!("give --prompt or --tokens"),
    };
    anyhow::ensure!(!ids.is_empty(), "the prompt has no tokens");
    let mut session = float.session();
    let logits = float.forward(&mut session, &ids, 0)?;
    if let Some(path) = &dump_logits {
        let data: Vec<f32> = logits.iter().copied().collect();
        write_atomic(path, &npy_f32(&[logits.nrows(), logits.ncols()], &data))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let eos = loaded.model.hparams.eos_token_id;
    let mut generated = Vec::new();
    let mut last = logits.row(logits.nrows() - 1).to_owned();
    while generated.len() < max_tokens {
        let next = taalasc_float::argmax(last.as_slice().expect("contiguous"));
        generated.push(next);
        if Some(next) == eos || generated.len() == max_tokens {
            break;
        }
        last = float.forward(&mut session, &[next], 0)?.row(0).to_owned();
    }
    let text = match &loaded.tokenizer {
        Some(t) => Some(t.decode(&generated)?),
        None => None,
    };
    if json {
        let v = serde_json::json!({
            "prompt_tokens": ids,
            "generated_tokens": generated,
            "generated_text": text,
            "logits_file": dump_logits.map(|p| p.display().to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("prompt tokens: {ids:?}");
        println!("generated tokens: {generated:?}");
        if let Some(t) = text {
            println!("generated text: {t:?}");
        }
    }
    Ok(())
}
