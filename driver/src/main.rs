//! The `taalasc` command-line tool.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use taalasc::build::BuildOptions;
use taalasc::eval::{self, BosPolicy};
use taalasc::output::{npy_f32, npy_i64, write_atomic};
use taalasc_image::ChipImage;
use taalasc_reference::Reference;

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

/// Which executor computes the logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Engine {
    /// The f32 reference of the source checkpoint.
    Float,
    /// The bit-exact integer reference of the chip image (built with default options when MODEL is a checkpoint).
    Reference,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize a checkpoint into a chip image: quantized weights, scales and fixed-point constants,
    /// plus graph.json, manifest.json and report.json (bits per layer and per weight).
    ///
    /// Weights already stored in a block format that the chosen chip format holds exactly
    /// (GGUF Q4_1 as a4g32, Q8_0 as s8g32) are imported without re-rounding.
    Build(Box<BuildArgs>),
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
        /// The checkpoint (see `inspect`) or a chip image folder from `build`.
        model: PathBuf,
        /// The executor (default: float for a checkpoint, reference for a chip image).
        #[arg(long, value_enum)]
        engine: Option<Engine>,
        /// Prompt text, tokenized with the model's own tokenizer.
        #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
        prompt: Option<String>,
        /// Prompt as comma-separated token ids, e.g. `1,2,3`.
        #[arg(long)]
        tokens: Option<String>,
        /// Number of tokens to generate greedily (stops early at EOS).
        #[arg(long, default_value_t = 16)]
        max_tokens: usize,
        /// Write the prompt positions' logits as `[positions, vocab]` .npy: float32 from the float
        /// engine, int64 (W48, 24 fraction bits) from the reference.
        #[arg(long, value_name = "OUT.npy")]
        dump_logits: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Simulate a built chip's RTL under Verilator and compare it, bit for bit, with the
    /// integer reference: every unit's output and every logit, at every position.
    ///
    /// Builds the Verilator model on first use (in OUT/sim/), runs each user's tokens from
    /// position 0 (several users interleaved, each in its own slot), compares each user with
    /// the reference run of that user alone, and stops that user's comparison at its first
    /// difference; any difference gives a non-zero exit, naming the user, position, node,
    /// engine and unit.
    Sim {
        /// A chip folder written by `taalasc build` (with RTL).
        chip: PathBuf,
        /// Prompt text, tokenized with the source model's tokenizer (BOS added as it says).
        /// Repeat it for several users: user k gets the k-th prompt, in user slot k, and the
        /// users' tokens are interleaved (each compared with its own reference run).
        #[arg(long, required_unless_present = "tokens")]
        prompt: Vec<String>,
        /// Token ids, comma-separated, e.g. `1,2,3`; repeatable like --prompt (users given
        /// by --tokens come after those given by --prompt).
        #[arg(long)]
        tokens: Vec<String>,
        /// Offer each token after a pseudo-random 0..N idle cycles (fixed seed), so that
        /// arrivals hit every phase of the token pipeline.
        #[arg(long, default_value_t = 0, value_name = "N")]
        arrival_jitter: u32,
        /// Dump waves of the whole run to this VCD file (builds a tracing model).
        #[arg(long, value_name = "FILE.vcd")]
        vcd: Option<PathBuf>,
        /// Print one JSON object: bit_exact, positions, cycles_per_token, mac_utilization,
        /// sim_seconds, and per user bit_exact (and more).
        #[arg(long)]
        json: bool,
    },
    /// Synthesize a built chip's compute fabric with Yosys (ROM and SRAM macros as
    /// blackboxes), run `check -assert`, and record the cells per module in report.json.
    Synth {
        /// A chip folder written by `taalasc build` (with RTL).
        chip: PathBuf,
        /// Synthesize one engine module (0 = I/O engine, N = decoder layer N-1) instead of
        /// the whole chip.
        #[arg(long)]
        engine: Option<usize>,
        /// For a multi-chip build: the chip (chipK/ folder) to synthesize; with --engine, one
        /// of its engines.
        #[arg(long, value_name = "K")]
        chip_index: Option<usize>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The system report of a build: per chip ROM, SRAM and logic area; link traffic; cycles
    /// per stage; tokens/s per user and per chip at the build's users; the context and users
    /// that fit in SRAM; energy and cost per token from the chip budget's cited figures and
    /// stated assumptions; and, with --text, the quality the bits cost (with --sweep, a
    /// quality-versus-area chart across linear-layer formats).
    ///
    /// Writes CHIP/report/report.json and a self-contained CHIP/report/report.html. The
    /// measured cycles of the last `taalasc sim` of the chip are included when there are some.
    Report {
        /// A chip folder written by `taalasc build` (with RTL).
        chip: PathBuf,
        /// UTF-8 text to score quality on (perplexity, KL and top-1 against the float model).
        #[arg(long)]
        text: Option<PathBuf>,
        /// Context length of each scored chunk.
        #[arg(long, default_value_t = 256)]
        ctx: usize,
        /// Chunks of --text to score.
        #[arg(long, default_value_t = 4)]
        chunks: usize,
        /// Linear-layer formats to rebuild and score for the quality-versus-area chart,
        /// comma-separated, e.g. `s3g32,a4g32,s6g32,s8g32` (needs --text).
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<String>,
        /// Chip budget for a chip built without --chip-budget (preset or file; default hc1).
        #[arg(long, value_name = "FILE|PRESET")]
        chip_budget: Option<String>,
        /// Output folder (default CHIP/report).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Perplexity of the model on a text file, in llama.cpp's convention.
    ///
    /// The whole file is tokenized, cut into non-overlapping chunks of --ctx
    /// tokens, and only the second half of each chunk is scored, as
    /// `llama-perplexity -c CTX` does.
    Eval {
        /// The checkpoint (see `inspect`) or a chip image folder from `build`. For a chip image,
        /// also reports KL divergence and top-1 agreement against its float source model.
        /// Several chip images of the same source are scored on the same chunks in one pass
        /// (the float model runs once per chunk); `--json` then prints an array.
        #[arg(required = true, num_args = 1..)]
        models: Vec<PathBuf>,
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

/// `print!` / `println!` to standard output that return the write error
/// instead of panicking, so that a closed pipe (`taalasc inspect --ir | head`)
/// ends the program quietly.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($t)*)?
    }};
}
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?
    }};
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli.command) {
        let closed_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if closed_pipe {
            // The reader has gone (e.g. `| head`): nothing left to say.
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect { model, json, ir } => {
            let m = taalasc::load(&model)?;
            if ir {
                out!("{}", m.model);
            } else if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&taalasc::inspect::report(&m))?
                );
            } else {
                out!(
                    "{}",
                    taalasc::inspect::render(&taalasc::inspect::report(&m))
                );
            }
        }
        Command::Build(args) => build(*args)?,
        Command::Sim {
            chip,
            prompt,
            tokens,
            vcd,
            arrival_jitter,
            json,
        } => sim(
            &chip,
            &prompt,
            &tokens,
            vcd.as_deref(),
            arrival_jitter,
            json,
        )?,
        Command::Synth {
            chip,
            engine,
            chip_index,
            json,
        } => synth(&chip, engine, chip_index, json)?,
        Command::Report {
            chip,
            text,
            ctx,
            chunks,
            sweep,
            chip_budget,
            out,
        } => {
            anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
            let (_, plan, system) = taalasc::system::open_chip(&chip)?;
            if system.is_some() && chip_budget.is_some() {
                bail!("{} was built with a chip budget; --chip-budget applies only to chips built without one", chip.display());
            }
            let opts = taalasc::report::ReportOptions {
                chip: chip.clone(),
                text,
                ctx,
                chunks,
                sweep,
                budget: chip_budget,
                out,
            };
            let dir = taalasc::report::report(&opts, &plan, system)?;
            outln!(
                "wrote {} and {}",
                dir.join("report.json").display(),
                dir.join("report.html").display()
            );
        }
        Command::Run {
            model,
            engine,
            prompt,
            tokens,
            max_tokens,
            dump_logits,
            json,
        } => run(model, engine, prompt, tokens, max_tokens, dump_logits, json)?,
        Command::Eval {
            models,
            text,
            ctx,
            chunks,
            bos,
            json,
        } => eval_cmd(&models, &text, ctx, chunks, bos, json)?,
    }
    Ok(())
}

/// `taalasc eval`: one checkpoint, or one or more chip images of one source.
fn eval_cmd(
    models: &[PathBuf],
    text: &Path,
    ctx: usize,
    chunks: Option<usize>,
    bos: BosPolicy,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(ctx >= 4, "--ctx must be at least 4");
    let images: Vec<ChipImage> = if models.iter().any(|m| taalasc::is_chip_image(m)) {
        models
            .iter()
            .map(|m| {
                anyhow::ensure!(
                    taalasc::is_chip_image(m),
                    "{} is not a chip image: several models can only be chip images of one source",
                    m.display()
                );
                Ok(ChipImage::read(m)?)
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
    let layers = match images.first() {
        Some(_) => {
            let l = taalasc::image_layers(&models[0])?;
            for m in &models[1..] {
                anyhow::ensure!(
                    taalasc::image_layers(m)? == l,
                    "{} and {} keep different numbers of decoder layers (build --layers): score them separately",
                    models[0].display(),
                    m.display()
                );
            }
            l
        }
        None => None,
    };
    let float_path = if images.is_empty() {
        models[0].clone()
    } else {
        let first = taalasc::image_source(&models[0])?;
        for m in &models[1..] {
            let src = taalasc::image_source(m)?;
            let same = match (first.canonicalize(), src.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => first == src,
            };
            anyhow::ensure!(
                same,
                "{} was built from {}, but {} from {}: score them separately",
                m.display(),
                src.display(),
                models[0].display(),
                first.display()
            );
        }
        first
    };
    // A chip built from a model's first N layers is scored against the
    // float model of the same N layers.
    let prep = eval::prepare(&float_path, layers, text, ctx, chunks, bos)?;
    let (float, chunk_list, bos) = (&prep.float, &prep.chunks, prep.bos);
    let n_ids = prep.text_tokens;
    let bar = progress_bar(chunk_list.len() as u64, json);
    let progress = |d: usize| bar.set_position(d as u64);
    let reports = if images.is_empty() {
        vec![eval::perplexity(
            float,
            chunk_list,
            n_ids,
            bos.is_some(),
            &progress,
        )?]
    } else {
        let refs = images
            .iter()
            .map(|img| Reference::new(img, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let engines: Vec<&dyn eval::LogitsEngine> =
            refs.iter().map(|r| r as &dyn eval::LogitsEngine).collect();
        eval::quality_many(
            &engines,
            Some(float),
            chunk_list,
            n_ids,
            bos.is_some(),
            &progress,
        )?
    };
    bar.finish_and_clear();
    let mut out = Vec::new();
    for (model, report) in models.iter().zip(&reports) {
        let bpw: serde_json::Value = if images.is_empty() {
            serde_json::Value::Null
        } else {
            std::fs::read_to_string(model.join("report.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .map(|v| v["bits_per_weight"].clone())
                .unwrap_or(serde_json::Value::Null)
        };
        if json {
            let mut v = serde_json::to_value(report)?;
            if !images.is_empty() {
                v["model"] = model.display().to_string().into();
                v["bits_per_weight"] = bpw;
                v["float_baseline"] = float_path.display().to_string().into();
            }
            out.push(v);
        } else {
            if models.len() > 1 {
                outln!("{}:", model.display());
            }
            if let (Some(kl), Some(top1)) = (report.kl_mean, report.top1) {
                outln!(
                    "chip image vs its float source {}: KL {kl:.5} nats, top-1 agreement {:.2}%, {} bits per weight",
                    float_path.display(),
                    top1 * 100.0,
                    bpw.as_f64().map_or("?".to_string(), |b| format!("{b:.4}"))
                );
            }
            outln!(
                "perplexity {:.4} over {} chunks of {} ({} tokens scored, {} tokens in the text, BOS per chunk: {})",
                report.perplexity, report.chunks, ctx, report.tokens_scored, report.text_tokens, report.bos_per_chunk
            );
        }
    }
    if json {
        let v = if out.len() == 1 {
            out.remove(0)
        } else {
            serde_json::Value::Array(out)
        };
        outln!("{}", serde_json::to_string_pretty(&v)?);
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

#[derive(clap::Args)]
struct BuildArgs {
    /// The checkpoint (see `inspect`).
    model: PathBuf,
    /// Output folder (default: MODEL's name with `.chip`).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Weight bits of every linear layer: 2, 3, 4, 5, 6 or 8; or `auto`: the e-graph pass picks a
    /// format per layer from measured sensitivities, within --rom-budget, --bpw or --loss-budget
    /// (needs --calib).
    #[arg(long)]
    bits: Option<String>,
    /// With --bits auto: total ROM bits (every tensor and scale counted).
    #[arg(long, conflicts_with_all = ["bpw", "loss_budget"])]
    rom_budget: Option<u64>,
    /// With --bits auto: target bits per weight over all parameters, scales included.
    #[arg(long, conflicts_with = "loss_budget")]
    bpw: Option<f64>,
    /// With --bits auto: fewest bits whose summed sensitivity stays below this.
    #[arg(long)]
    loss_budget: Option<f64>,
    /// Calibration text (UTF-8) for GPTQ and for --bits auto's sensitivities.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Calibration windows of 512 tokens to run (GPTQ gains from more: on SmolLM2 uniform
    /// s3g32h, KL 0.77 with 8 windows, 0.65 with 32, 0.60 with 96 at 3x the build time; --bits
    /// auto --bpw 4.0, perplexity 31.76 with 32 windows, 30.69 with 128).
    #[arg(long, default_value_t = 32)]
    calib_chunks: usize,
    /// Rounding method (default: gptq when --calib is given, else rtn).
    #[arg(long, value_enum)]
    quantizer: Option<taalasc::build::Quantizer>,
    /// With --bits auto: calibration tokens (the last ones) on which each layer's end-to-end
    /// KL importance is measured; one float forward per layer.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=4096))]
    probe_tokens: u64,
    /// GPTQ column order: `act` (decreasing input energy, groups fixed up front) or `natural`.
    #[arg(long, value_enum, default_value_t = taalasc::build::GptqOrder::Act)]
    gptq_order: taalasc::build::GptqOrder,
    /// Inputs per scale: 32, 64, 128 or `row`.
    #[arg(long)]
    group: Option<String>,
    /// Symmetric codes (no per-group offset) instead of asymmetric.
    #[arg(long)]
    sym: bool,
    /// Exact linear-layer format name instead of --bits/--group/--sym, e.g. `a4g32`, `s8g32`, `s3row`.
    #[arg(long, conflicts_with_all = ["bits", "group", "sym"])]
    format: Option<String>,
    /// Format of the embedding and position tables.
    #[arg(long, default_value = "s8g32")]
    table_format: String,
    /// Format of the linear layers and tables whose weight names match PATTERN (`*` matches any
    /// characters; names as in `taalasc inspect --ir`), e.g. `layers.*.mlp.down.weight=a6g32h`.
    /// Repeatable; a later rule wins. Overrides --bits/--format/--table-format for those
    /// weights, and --bits auto chooses only among the others.
    #[arg(long = "layer-format", value_name = "PATTERN=FORMAT")]
    layer_format: Vec<taalasc::build::LayerRule>,
    /// Positions held in the KV cache (default: the model's maximum, at most 2048).
    #[arg(long)]
    context: Option<usize>,
    /// MAC lanes of every matrix-vector unit (a power of two, 1 to 256): weights read per
    /// cycle per layer engine.
    #[arg(long, default_value_t = 16)]
    lanes: usize,
    /// User slots: each has its own KV cache region (context positions) and position
    /// counter; `sim` interleaves their tokens.
    #[arg(long, default_value_t = 1)]
    users: usize,
    /// Keep only the first N decoder layers (embedding, final norm and head stay): a slice of
    /// a real model for hardware tests.
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Write the chip image only, without RTL (for quality sweeps: the RTL of a large model
    /// holds its weights again as ROM images).
    #[arg(long)]
    no_rtl: bool,
    /// What one chip may hold: a preset (`hc1`: N6, 815 mm²; `n3e-reticle`) or a JSON budget
    /// file (fields in rfcs/0004-partitioning.md; `"base": "hc1"` fills the rest). The model is
    /// split across as many chips as the budget needs, each chip with its own ROM, KV SRAM and
    /// --users slots, linked on a board (chipK/ and board/ folders).
    #[arg(long, value_name = "FILE|PRESET")]
    chip_budget: Option<String>,
    /// Split across at least N chips (default budget: hc1).
    #[arg(long, value_name = "N")]
    chips: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn build(a: BuildArgs) -> anyhow::Result<()> {
    use taalasc::build::{AutoTarget, Quantizer};
    let loaded = taalasc::load_layers(&a.model, a.layers)?;
    let mut opts = BuildOptions::defaults(&loaded.model);
    let mut picked = Vec::new();
    let auto = a.bits.as_deref() == Some("auto");
    let target = match (a.rom_budget, a.bpw, a.loss_budget) {
        (Some(b), _, _) => Some(AutoTarget::RomBits(b)),
        (_, Some(x), _) => Some(AutoTarget::BitsPerWeight(x)),
        (_, _, Some(l)) => Some(AutoTarget::Loss(l)),
        _ => None,
    };
    if auto != target.is_some() {
        bail!("--bits auto needs one of --rom-budget, --bpw or --loss-budget, and those need --bits auto");
    }
    match (&a.format, &a.bits) {
        (Some(f), _) => opts.linear = f.parse()?,
        (None, Some(b)) if !auto => {
            let bits: u8 = b
                .parse()
                .with_context(|| format!("--bits {b}: expected 2, 3, 4, 5, 6, 8 or auto"))?;
            let g = a.group.clone().unwrap_or_else(|| "32".into());
            let g = if g == "row" { g } else { format!("g{g}") };
            opts.linear = format!("{}{bits}{g}", if a.sym { 's' } else { 'a' }).parse()?;
        }
        (None, Some(_)) => {}
        (None, None) => {
            if a.group.is_some() || a.sym {
                bail!("--group and --sym refine --bits; give --bits too");
            }
            picked.push(format!(
                "linear layers {} (4-bit asymmetric, groups of 32; holds GGUF Q4_1 exactly)",
                opts.linear
            ));
        }
    }
    opts.table = a.table_format.parse()?;
    let pinned = taalasc::build::apply_layer_rules(&loaded.model, &a.layer_format)?;
    match a.context {
        Some(0) => bail!("--context must be at least 1"),
        Some(c) => opts.context = c,
        None => picked.push(format!("context {} positions", opts.context)),
    }
    opts.quantizer = a.quantizer.unwrap_or(if a.calib.is_some() {
        Quantizer::Gptq
    } else {
        Quantizer::Rtn
    });
    if a.quantizer.is_none() {
        picked.push(format!("quantizer {:?}", opts.quantizer).to_lowercase());
    }
    opts.gptq.act_order = a.gptq_order == taalasc::build::GptqOrder::Act;
    let out = a.out.clone().unwrap_or_else(|| {
        let stem = a
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        a.model.with_file_name(format!("{stem}.chip"))
    });
    for p in &picked {
        eprintln!("build: picked {p}");
    }
    let mut calib = match &a.calib {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let tok = loaded.tokenizer.as_ref().with_context(|| {
                format!("{} ships no tokenizer to read --calib", a.model.display())
            })?;
            let ids = tok.encode(&text, true)?;
            let float = taalasc_float::FloatModel::new(&loaded.model, &loaded.weights)?;
            let ctx = 512.min(loaded.model.hparams.max_positions);
            let c = taalasc::calib::Calibration::run(
                &loaded.model,
                &float,
                &ids,
                ctx,
                a.calib_chunks,
                auto,
            )?;
            Some((c, float, ids))
        }
        None if auto || opts.quantizer == Quantizer::Gptq => {
            bail!("--bits auto and GPTQ need --calib FILE")
        }
        None => None,
    };
    let auto_report = match (target, calib.as_mut()) {
        (Some(t), Some((c, float, ids))) => {
            // Importance probe: the last --probe-tokens calibration tokens.
            let n = ids.len();
            let window: Vec<u32> = ids[n.saturating_sub(a.probe_tokens as usize)..].to_vec();
            let choice = taalasc::build::plan_auto(&loaded, c, Some((float, &window)), t, &pinned)?;
            let rep = choice.report;
            eprintln!(
                "build: e-graph pass chose formats for {} layers in {:.3} s ({} e-nodes, {} e-classes, stop: {}); sensitivities took {:.1} s",
                rep.layers, rep.plan.seconds, rep.plan.egraph_nodes, rep.plan.egraph_classes, rep.plan.stop_reason, rep.sensitivity_seconds
            );
            opts.per_weight = choice.formats;
            opts.widths = choice.widths;
            Some(rep)
        }
        _ => None,
    };
    opts.per_weight.extend(pinned);
    // Streamed: each weight is written into OUT's staging folder as it is
    // quantized and dropped; the image keeps metadata only.
    let (image, report) =
        taalasc::build::build_streamed(&loaded, &opts, calib.as_ref().map(|c| &c.0), &out)?;
    // Refuse to write an image the datapath cannot run (e.g. a head_dim that
    // is not a whole activation block): no output that only looks complete.
    taalasc_reference::check_image(&taalasc_image::ImageSource::info(&image))
        .with_context(|| format!("{} cannot be built for this datapath", a.model.display()))?;
    if a.chips == Some(0) {
        bail!("--chips must be at least 1");
    }
    let multi = a.chip_budget.is_some() || a.chips.is_some();
    if multi && a.no_rtl {
        bail!("--chip-budget and --chips plan the hardware; they cannot go with --no-rtl");
    }
    let plan = if a.no_rtl {
        None
    } else {
        Some(
            taalasc_verilog::plan::plan_with(&image, a.lanes, a.users, multi)
                .with_context(|| format!("{} cannot be lowered to RTL", a.model.display()))?,
        )
    };
    let system = match (&plan, multi) {
        (Some(plan), true) => Some(taalasc::system::partition(
            plan,
            a.chip_budget.as_deref().unwrap_or("hc1"),
            a.chips.unwrap_or(1),
        )?),
        _ => None,
    };
    if let Some(sys) = &system {
        eprintln!(
            "build: {} chip(s) on budget `{}` ({}): {}",
            sys.partition.chips.len(),
            sys.budget.name,
            sys.budget.process,
            sys.summary()
        );
    }
    let source = std::fs::canonicalize(&a.model).unwrap_or(a.model.clone());
    let mut manifest = serde_json::json!({
        "format": "taalasc-chip-image-1",
        "source": {
            "path": source.display().to_string(),
            "format": format!("{:?}", loaded.format).to_lowercase(),
            "architecture": loaded.model.hparams.architecture,
        },
        "context": opts.context,
        "linear_format": if auto { "auto".to_string() } else { opts.linear.name() },
        "table_format": opts.table.name(),
        "quantizer": opts.quantizer,
        "calibration": a.calib.as_ref().map(|p| p.display().to_string()),
        "bits_per_weight": report.bits_per_weight,
        "files": ["graph.json", "weights.safetensors", "report.json"],
    });
    if let Some(l) = a.layers {
        manifest["source"]["layers_kept"] = serde_json::json!(l);
    }
    if let Some(plan) = &plan {
        manifest["hardware"] =
            taalasc_verilog::manifest_for(plan, system.as_ref().and_then(|s| s.board.as_ref()))
                .map_err(|m| anyhow::anyhow!("the board cannot be emitted: {m}"))?;
        if let Some(sys) = &system {
            manifest["hardware"]["system"] = serde_json::to_value(sys)?;
        }
    }
    let mut report_json = serde_json::to_value(&report)?;
    if let Some(r) = &auto_report {
        let mut auto = serde_json::to_value(r)?;
        // Wall times vary from run to run; they are printed above, and kept
        // out of the image so the same input gives byte-identical files.
        if let Some(o) = auto.as_object_mut() {
            o.remove("sensitivity_seconds");
        }
        if let Some(o) = auto["plan"].as_object_mut() {
            o.remove("seconds");
        }
        report_json["auto"] = auto;
    }
    let name = loaded.model.hparams.architecture.clone();
    taalasc::build::write_image(
        &out,
        &image,
        &manifest,
        &report_json,
        plan.as_ref().map(|p| (p, name.as_str())),
        system.as_ref().and_then(|s| s.board.as_ref()),
    )?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report_json)?);
    } else {
        let imported = report
            .weights
            .iter()
            .filter(|w| w.method == "import")
            .count();
        outln!(
            "wrote {}: {} weights, {:.4} bits per weight over all {} parameters ({} tensors imported losslessly)",
            out.display(),
            report.weights.len(),
            report.bits_per_weight,
            report.params,
            imported
        );
    }
    Ok(())
}

/// The chip image at `model` (or one built in memory with default options
/// from a checkpoint), and the checkpoint that supplies its tokenizer.
fn open_image(
    model: &std::path::Path,
) -> anyhow::Result<(ChipImage, Option<taalasc_frontends::LoadedModel>)> {
    if taalasc::is_chip_image(model) {
        let image = ChipImage::read(model)?;
        let source = taalasc::image_source(model)
            .ok()
            .and_then(|p| taalasc::load(&p).ok());
        Ok((image, source))
    } else {
        let loaded = taalasc::load(model)?;
        let (image, _) =
            taalasc::build::build_image(&loaded, &BuildOptions::defaults(&loaded.model), None)?;
        Ok((image, Some(loaded)))
    }
}

fn prompt_ids(
    tokenizer: Option<&taalasc_frontends::TextTokenizer>,
    model: &std::path::Path,
    prompt: &Option<String>,
    tokens: &Option<String>,
) -> anyhow::Result<Vec<u32>> {
    let ids = match (prompt, tokens) {
        (Some(text), _) => tokenizer
            .with_context(|| {
                format!(
                    "no tokenizer for {}; pass --tokens instead of --prompt",
                    model.display()
                )
            })?
            .encode(text, true)?,
        (None, Some(t)) => taalasc::parse_tokens(t)?,
        (None, None) => bail!("give --prompt or --tokens"),
    };
    anyhow::ensure!(!ids.is_empty(), "the prompt has no tokens");
    Ok(ids)
}

fn print_run(
    ids: &[u32],
    generated: &[u32],
    tokenizer: Option<&taalasc_frontends::TextTokenizer>,
    dump_logits: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let text = tokenizer.map(|t| t.decode(generated)).transpose()?;
    if json {
        let v = serde_json::json!({
            "prompt_tokens": ids,
            "generated_tokens": generated,
            "generated_text": text,
            "logits_file": dump_logits.map(|p| p.display().to_string()),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("prompt tokens: {ids:?}");
        outln!("generated tokens: {generated:?}");
        if let Some(t) = text {
            outln!("generated text: {t:?}");
        }
    }
    Ok(())
}

fn run(
    model: PathBuf,
    engine: Option<Engine>,
    prompt: Option<String>,
    tokens: Option<String>,
    max_tokens: usize,
    dump_logits: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let is_image = taalasc::is_chip_image(&model);
    let engine = engine.unwrap_or(if is_image {
        Engine::Reference
    } else {
        Engine::Float
    });
    if is_image && engine == Engine::Float {
        bail!(
            "{} is a chip image: it runs on --engine reference (its float source is named in manifest.json)",
            model.display()
        );
    }
    if engine == Engine::Reference {
        let (image, source) = open_image(&model)?;
        let tok = source.as_ref().and_then(|s| s.tokenizer.as_ref());
        let ids = prompt_ids(tok, &model, &prompt, &tokens)?;
        let r = Reference::new(&image, 0)?;
        let vocab = image.model.hparams.vocab_size;
        let mut session = r.session();
        let logits = r.forward(&mut session, &ids, 0)?;
        if let Some(path) = &dump_logits {
            write_atomic(path, &npy_i64(&[ids.len(), vocab], &logits))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let eos = image.model.hparams.eos_token_id;
        let mut generated = Vec::new();
        let mut last = logits[(ids.len() - 1) * vocab..].to_vec();
        while generated.len() < max_tokens {
            let next = taalasc_float::argmax(&last);
            generated.push(next);
            if Some(next) == eos || generated.len() == max_tokens {
                break;
            }
            last = r.forward(&mut session, &[next], 0)?;
        }
        return print_run(&ids, &generated, tok, dump_logits, json);
    }
    let (loaded, float) = taalasc::load_float(&model)?;
    let ids = prompt_ids(loaded.tokenizer.as_ref(), &model, &prompt, &tokens)?;
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
    print_run(
        &ids,
        &generated,
        loaded.tokenizer.as_ref(),
        dump_logits,
        json,
    )
}

/// The plan recorded in a chip folder's manifest (rebuilt from the image,
/// and checked against the recorded one so a stale folder is an error).
/// The image, its hardware plan and, for a multi-chip build, its board.
fn chip_board(
    chip: &std::path::Path,
) -> anyhow::Result<(
    ChipImage,
    taalasc_verilog::Plan,
    Option<taalasc_verilog::board::Board>,
)> {
    let (_, plan, system) = taalasc::system::open_chip(chip)?;
    let image = ChipImage::read(chip)?;
    Ok((image, plan, system.and_then(|s| s.board)))
}

fn sim(
    chip: &std::path::Path,
    prompts: &[String],
    tokens: &[String],
    vcd: Option<&std::path::Path>,
    jitter: u32,
    json: bool,
) -> anyhow::Result<()> {
    use taalasc_verilog::sim;
    let (image, plan, board) = chip_board(chip)?;
    // A board simulates as one design from its board/ folder.
    let (sim_dir, top) = match &board {
        Some(_) => (chip.join("board"), taalasc_verilog::board::BOARD_TOP),
        None => (chip.to_path_buf(), taalasc_verilog::output::TOP),
    };
    let tokenizer = if prompts.is_empty() {
        None
    } else {
        taalasc::image_source(chip)
            .ok()
            .and_then(|p| taalasc::load(&p).ok())
            .and_then(|l| l.tokenizer)
    };
    let mut seqs = Vec::new();
    for p in prompts {
        seqs.push(prompt_ids(
            tokenizer.as_ref(),
            chip,
            &Some(p.clone()),
            &None,
        )?);
    }
    for t in tokens {
        seqs.push(prompt_ids(None, chip, &None, &Some(t.clone()))?);
    }
    anyhow::ensure!(
        seqs.len() <= plan.users,
        "{} users given, the chip has {} user slots (build with --users {})",
        seqs.len(),
        plan.users,
        seqs.len()
    );
    for (u, s) in seqs.iter().enumerate() {
        anyhow::ensure!(
            s.len() <= plan.context,
            "user {u}: {} tokens do not fit the chip's context of {} positions",
            s.len(),
            plan.context
        );
    }
    let vcd_abs = vcd.map(|v| std::path::absolute(v).unwrap_or(v.to_path_buf()));
    eprintln!("sim: building the Verilator model (once per chip folder)...");
    let t0 = std::time::Instant::now();
    let exe = sim::build(&sim_dir, top, vcd.is_some())?;
    let build_s = t0.elapsed().as_secs_f64();
    let inputs = sim::interleave(&seqs, jitter);
    let work = std::path::absolute(sim_dir.join("sim/run"))?;
    let rtl = sim::run_rtl(&exe, &work, &inputs, vcd_abs.as_deref())?;
    let expected = taalasc::expected_traces(&image, &seqs)?;
    let checks = sim::compare(&plan, &expected, &inputs, &rtl)?;
    let bit_exact = checks.iter().all(|c| c.bit_exact);
    let positions: usize = checks.iter().map(|c| c.positions).sum();
    let values: u64 = checks.iter().map(|c| c.values_compared).sum();
    let first = checks.iter().find_map(|c| c.first_mismatch.clone());
    // Each token's position within its own sequence, for the cycle formula.
    let mut next = vec![0usize; seqs.len()];
    let token_pos: Vec<usize> = inputs
        .iter()
        .map(|t| {
            let p = next[t.slot as usize];
            next[t.slot as usize] += 1;
            p
        })
        .collect();
    let perf = taalasc_verilog::perf::summarize(&plan, &rtl.cycles, &token_pos, rtl.total_cycles);
    let ntok = inputs.len();
    let summary = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "bit_exact": bit_exact,
        "users": checks.len(),
        "positions": positions,
        "cycles_per_token": perf.cycles_per_token,
        "throughput_cycles_per_token": perf.throughput_cycles_per_token,
    });
    let rpath = sim_dir.join(taalasc::report::SIM_RESULT);
    let tmp = rpath.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&summary)? + "\n")
        .and_then(|_| std::fs::rename(&tmp, &rpath))
        .with_context(|| format!("writing {}", rpath.display()))?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "bit_exact": bit_exact,
                "positions": positions,
                "values_compared": values,
                "first_mismatch": first,
                "users": checks,
                "cycles_per_token": perf.cycles_per_token,
                "throughput_cycles_per_token": perf.throughput_cycles_per_token,
                "tokens_in_flight": perf.cycles_per_token / perf.throughput_cycles_per_token.max(1.0),
                "phases_per_token": perf.phases,
                "predicted_cycles_per_token": perf.predicted,
                "mac_utilization": perf.mac_utilization,
                "lanes": plan.lanes,
                "sim_seconds": rtl.seconds,
                "sim_tokens_per_second": ntok as f64 / rtl.seconds,
                "build_seconds": build_s,
                "per_token": rtl.cycles,
            }))?
        );
    } else {
        match &first {
            None => outln!(
                "bit-exact: {} user(s), {} positions, {} values compared (every unit output and logit)",
                checks.len(),
                positions,
                values
            ),
            Some(m) => outln!("MISMATCH at {m}"),
        }
        outln!(
            "cycles per token: {:.0} (matvec {:.0}, attention {:.0}, nonlinear {:.0}, control {:.0}); formula {:.0}",
            perf.cycles_per_token,
            perf.phases.matvec,
            perf.phases.attention,
            perf.phases.nonlinear,
            perf.phases.control,
            perf.predicted
        );
        outln!(
            "MAC utilization in matvec phases: {:.1}% ({} lanes); simulated {} tokens in {:.2} s ({:.2} tokens/s)",
            100.0 * perf.mac_utilization,
            plan.lanes,
            ntok,
            rtl.seconds,
            ntok as f64 / rtl.seconds
        );
    }
    if !bit_exact {
        std::process::exit(1);
    }
    Ok(())
}

fn synth(
    chip: &std::path::Path,
    engine: Option<usize>,
    chip_index: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let (_, plan, system) = taalasc::system::open_chip(chip)?;
    let board = system.and_then(|s| s.board);
    // The folder to synthesize in, its sources, its engines and its top.
    let (dir, sources, engines, chip_top) = match (&board, chip_index) {
        (Some(b), Some(k)) => {
            let (src, engs) = taalasc_verilog::board::chip_synth_sources(&plan, b, k)
                .map_err(|m| anyhow::anyhow!("--chip-index {k}: {m}"))?;
            (
                chip.join(format!("chip{k}")),
                src,
                engs,
                format!("taalasc_chip{k}"),
            )
        }
        (Some(b), None) => bail!(
            "{} is a board of {} chips: pick one with --chip-index K",
            chip.display(),
            b.cuts.len() - 1
        ),
        (None, Some(_)) => bail!("--chip-index applies to multi-chip builds only"),
        (None, None) => (
            chip.to_path_buf(),
            taalasc_verilog::output::synth_sources(&plan),
            (0..plan.engines.len()).collect(),
            taalasc_verilog::output::TOP.to_string(),
        ),
    };
    let top = match engine {
        Some(e) => {
            anyhow::ensure!(
                engines.contains(&e),
                "--engine {e}: this chip has engines {:?}",
                engines
            );
            format!("taalasc_engine_{e}")
        }
        None => chip_top,
    };
    eprintln!("synth: yosys synth + check -assert on {top} (macros as blackboxes)...");
    let r = taalasc_verilog::synth::synth_sources(&dir, &sources, &top)?;
    // Record the result in report.json (atomically: temporary file, rename).
    let rpath = chip.join("report.json");
    let mut report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&rpath).with_context(|| format!("reading {}", rpath.display()))?,
    )
    .with_context(|| format!("{} is not JSON", rpath.display()))?;
    let mut entry = serde_json::to_value(&r)?;
    if let Some(o) = entry.as_object_mut() {
        o.remove("seconds");
    }
    report["synth"][&top] = entry;
    report["macro_bits"] = serde_json::to_value(plan.macro_bits())?;
    let tmp = chip.join(".report.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::rename(&tmp, &rpath)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        outln!(
            "{top}: {} cells in total ({:.1} s), check -assert passed; per module:",
            r.total_cells,
            r.seconds
        );
        for (m, c) in &r.modules {
            outln!("  {m:<40} {:>9} cells", c.cells);
        }
        let mb = plan.macro_bits();
        outln!(
            "macros: weight ROM {} bits packed ({} as stored), vectors {} bits, tables {} bits, KV SRAM {} bits, scratchpads {} bits",
            mb.weight_rom_packed, mb.weight_rom_stored, mb.vector_rom, mb.table_rom, mb.kv_sram, mb.scratchpad_sram
        );
    }
    Ok(())
}
