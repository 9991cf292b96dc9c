//! The command line's flags (clap): what each verb takes, with its help
//! text, and their typed form ([`BuildArgs::into_config`]). In the library
//! so that tests can build from the same flags the CLI takes.

use crate::build::AutoTarget;
use crate::config::{BuildConfig, CalibConfig, ChipsConfig, HardwareConfig, LinearFormat};
use crate::eval::BosPolicy;
use crate::run::Executor;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "taalasc",
    version,
    about = "Compile trained transformer checkpoints into synthesizable silicon, with a bit-exact software reference."
)]
/// The `taalasc` command line.
pub struct Cli {
    #[command(subcommand)]
    /// The verb and its flags.
    pub command: Command,
    /// Worker threads of every command (quantization, references, format search; default:
    /// every core). The results do not depend on it.
    #[arg(long, global = true, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Widest SIMD instruction set the float and integer references may use: portable, avx2 or
    /// avx512 (default: the best this CPU has). Every level gives the same bits; a lower one runs
    /// a smaller machine's kernels, e.g. to time them.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub simd: Option<taalasc_ir::SimdLevel>,
}

/// `--threads N`: a positive thread count.
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("--threads must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("--threads `{s}`: expected a positive whole number")),
    }
}

/// Caps the references' SIMD level (`--simd`) for the whole process. Call
/// once, before any reference runs.
pub fn init_simd(level: Option<taalasc_ir::SimdLevel>) {
    if let Some(level) = level {
        taalasc_ir::set_simd_cap(level);
    }
}

/// `--job-threads K`: a positive thread count.
fn parse_job_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "--job-threads `{s}`: expected a positive whole number"
        )),
    }
}

/// Sizes rayon's global thread pool, which every parallel part of taalasc
/// runs on: `threads` workers, or one per core when `None`. Call once,
/// before any parallel work.
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let n = match threads {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    anyhow::ensure!(n > 0, "--threads must be at least 1");
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .with_context(|| format!("--threads {n}: cannot start the thread pool"))
}

#[derive(Subcommand)]
/// The verbs.
pub enum Command {
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
        /// For a chip folder built with RTL: print its hardware plan, one line per
        /// instruction of every engine.
        #[arg(long, conflicts_with_all = ["json", "ir"])]
        plan: bool,
    },
    /// Run a model with the f32 reference: score a prompt and continue it greedily.
    Run {
        /// The checkpoint (see `inspect`) or a chip image folder from `build`.
        model: PathBuf,
        /// The executor (default: float for a checkpoint, reference for a chip image).
        #[arg(long, value_enum)]
        engine: Option<Executor>,
        /// Prompt text, tokenized with the model's own tokenizer.
        #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
        prompt: Option<String>,
        /// Prompt as comma-separated token ids, e.g. `1,2,3`.
        #[arg(long)]
        tokens: Option<String>,
        /// Number of tokens to generate greedily (stops early at EOS). Generation also stops at
        /// the context (the chip's, or the checkpoint's max_positions): the tokens generated so
        /// far are printed, a note goes to stderr, and the exit status is 0.
        #[arg(long, default_value_t = 16)]
        max_tokens: usize,
        /// Generate past EOS: exactly --max-tokens tokens unless the context ends first (for
        /// timing against other tools' fixed-length runs).
        #[arg(long)]
        ignore_eos: bool,
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
        /// The first N tokens of each user are its prompt: they enter the pipeline back to
        /// back (prefill: token t+1 enters layer 0 while token t is in layer 1) instead of
        /// each waiting for the previous token's logits.
        #[arg(long, default_value_t = 0, value_name = "N")]
        prefill: usize,
        /// Dump waves of the whole run to this VCD file (builds a tracing model).
        #[arg(long, value_name = "FILE.vcd")]
        vcd: Option<PathBuf>,
        /// Simulate the chip folder's own Verilog and ROM images where they differ from what
        /// taalasc generates from the image (for mutation tests and hand edits). Without it, sim
        /// compiles only RTL it regenerates itself, and a changed file is an error naming it.
        /// Verilog can run commands ($system): use it only on a folder you trust. The harness
        /// and filelist are always the compiler's.
        #[arg(long)]
        rtl_from_folder: bool,
        /// Split the users into N shards (user u in shard u mod N), each simulated on its own
        /// (its users interleaved in their own slots) one after another; the record in
        /// sim/result.json merges them. Cycle figures then count no interleaving across
        /// shards. Default 1: every user in one run.
        #[arg(long, default_value_t = 1, value_name = "N")]
        shards: usize,
        /// Simulate only shard I of N (users u with u mod N = I) and write its part to
        /// --result instead of sim/result.json: a job of `taalasc jobs`, merged by
        /// `taalasc gather` into the record `--shards N` writes.
        #[arg(long, value_name = "I/N", requires = "result", conflicts_with_all = ["shards", "vcd"])]
        shard: Option<String>,
        /// With --shard: the job result file (written atomically).
        #[arg(long, value_name = "FILE", requires = "shard")]
        result: Option<PathBuf>,
        /// Print one JSON object: bit_exact, positions, cycles_per_token, mac_utilization,
        /// sim_seconds, and per user bit_exact (and more).
        #[arg(long)]
        json: bool,
    },
    /// Synthesize a built chip's compute fabric with Yosys (ROM and SRAM macros as
    /// blackboxes), run `check -assert`, and record the cells per module in report.json.
    ///
    /// With --liberty FILE: map onto that standard-cell library (`dfflibmap`, `abc
    /// -liberty`) and report area in µm² and NAND2-equivalents and the critical path (ns
    /// and FO4) per module. With --unit NAME (no chip): synthesize one hand-written unit
    /// standalone (flattened) onto --liberty, with --param K=V overrides.
    Synth {
        /// A chip folder written by `taalasc build` (with RTL); not with --unit.
        #[arg(required_unless_present = "unit")]
        chip: Option<PathBuf>,
        /// A Liberty library (`.lib` or `.lib.gz`) to map onto.
        #[arg(long, value_name = "FILE")]
        liberty: Option<PathBuf>,
        /// Synthesize this unit (`tls_matvec`, `tls_attn`, ..., `tls_link`, or a module of
        /// an --rtl file) standalone instead of a chip; needs --liberty and --work.
        #[arg(long, value_name = "MODULE", conflicts_with_all = ["chip", "engine", "chip_index"], requires_all = ["liberty", "work"])]
        unit: Option<String>,
        /// With --unit: a parameter override `NAME=VALUE` (repeatable).
        #[arg(long, value_name = "NAME=VALUE", requires = "unit")]
        param: Vec<String>,
        /// With --unit: extra Verilog files to read (repeatable).
        #[arg(long, value_name = "FILE.v", requires = "unit")]
        rtl: Vec<PathBuf>,
        /// With --unit: the work folder (created; the Yosys script and log go there).
        #[arg(long, value_name = "DIR", requires = "unit")]
        work: Option<PathBuf>,
        /// With --unit: print one tab-separated line (unit, params, library, µm², NAND2-eq,
        /// critical path ns, FO4, cells, check) instead of text.
        #[arg(long, requires = "unit")]
        tsv: bool,
        /// Synthesize one engine module (0 = I/O engine, N = decoder layer N-1) instead of
        /// the whole chip.
        #[arg(long)]
        engine: Option<usize>,
        /// For a multi-chip build: the chip (chipK/ folder) to synthesize; with --engine, one
        /// of its engines.
        #[arg(long, value_name = "K")]
        chip_index: Option<usize>,
        /// Write the result to this job result file (atomically) instead of recording it in
        /// the chip's report.json: a job of `taalasc jobs`, merged by `taalasc gather`.
        #[arg(long, value_name = "FILE", conflicts_with = "unit")]
        result: Option<PathBuf>,
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
        /// Score one point of the quality table instead of writing the report: `chip` (the
        /// chip itself and the float model) or one linear-layer format (as --sweep rebuilds
        /// it); needs --text and --result. A job of `taalasc jobs`.
        #[arg(long, value_name = "chip|FORMAT", requires_all = ["text", "result"], conflicts_with_all = ["sweep", "out"])]
        point: Option<String>,
        /// With --point: the job result file (written atomically).
        #[arg(long, value_name = "FILE", requires = "point")]
        result: Option<PathBuf>,
        /// With --point: score only chunks FROM..TO of the --chunks (half-open); the result
        /// carries the per-chunk sums `taalasc gather` merges in chunk order (a job of
        /// `taalasc jobs --chunk-shards`).
        #[arg(long, value_name = "FROM", requires_all = ["point", "chunks_to"])]
        chunks_from: Option<usize>,
        /// One past the last chunk to score (see --chunks-from).
        #[arg(long, value_name = "TO", requires_all = ["point", "chunks_from"])]
        chunks_to: Option<usize>,
    },
    /// Write a chip's synthesis, simulation and quality sweep as independent jobs (RFC 0007):
    /// a ninja file (`ninja -C DIR -j N`) and Slurm array scripts (`sh DIR/submit.sh`).
    ///
    /// One job per engine synthesis, per simulation shard and per sweep point (the chip
    /// itself and each --sweep format), each an ordinary taalasc command that writes its
    /// result atomically to DIR/results/JOB.json; then `taalasc gather DIR` merges them into
    /// the files the single-process commands write. DIR must be new or a jobs folder taalasc
    /// wrote (its results are kept).
    Jobs {
        /// A chip folder written by `taalasc build` (with RTL).
        chip: PathBuf,
        /// The jobs to write (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
        what: Vec<crate::jobs::What>,
        /// The runners to write for (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "ninja,slurm")]
        emit: Vec<crate::jobs::Emit>,
        /// The jobs folder.
        #[arg(short, long)]
        out: PathBuf,
        /// A simulation user's prompt (repeatable, as for `sim`).
        #[arg(long)]
        prompt: Vec<String>,
        /// A simulation user's token ids, e.g. `1,2,3` (repeatable, as for `sim`).
        #[arg(long)]
        tokens: Vec<String>,
        /// Simulation shards (user u in shard u mod N); `gather` writes what `sim --shards N`
        /// writes.
        #[arg(long, default_value_t = 1, value_name = "N")]
        shards: usize,
        /// Linear-layer formats of the quality sweep, comma-separated (one job each).
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<String>,
        /// Text to score quality on (needed for the sweep).
        #[arg(long)]
        text: Option<PathBuf>,
        /// Context length of each scored chunk.
        #[arg(long, default_value_t = 256)]
        ctx: usize,
        /// Chunks of --text to score.
        #[arg(long, default_value_t = 4)]
        chunks: usize,
        /// Jobs per quality point, each scoring a contiguous range of the chunks; `gather`
        /// sums their log-likelihoods in chunk order (the same bits as one job).
        #[arg(long, default_value_t = 1, value_name = "K")]
        chunk_shards: usize,
        /// Chip budget for a chip built without --chip-budget (as for `report`).
        #[arg(long, value_name = "FILE|PRESET")]
        chip_budget: Option<String>,
        /// A Liberty library for the syntheses (as for `synth`).
        #[arg(long, value_name = "FILE")]
        liberty: Option<PathBuf>,
        /// Synthesize only these engines (comma-separated; default every engine).
        #[arg(long = "engine", value_name = "N", value_delimiter = ',')]
        engines: Vec<usize>,
        /// Worker threads of each job: `--threads K` in every job's command, and K CPUs per
        /// Slurm task (default: each job uses every core it is given). With `ninja -j N` on M
        /// cores, K = M / N keeps every core busy without oversubscribing them.
        #[arg(long, value_name = "K", value_parser = parse_job_threads)]
        job_threads: Option<usize>,
    },
    /// Merge the results of the jobs of `taalasc jobs` into the chip folder: synthesis cells
    /// into report.json, the simulation record, and report/ (RFC 0007).
    ///
    /// The files are byte-identical to those of the single-process commands. Any missing,
    /// failed or stale job is named with the command that reruns it, nothing is merged and
    /// the exit status is 1.
    Gather {
        /// The jobs folder.
        dir: PathBuf,
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
        /// Score only the first N chunks (the same as --chunks-to N).
        #[arg(long, conflicts_with_all = ["chunks_from", "chunks_to"])]
        chunks: Option<usize>,
        /// Shard of a longer evaluation: score chunks FROM..TO only (half-open: chunk FROM is
        /// scored, chunk TO is not; chunk i holds tokens i*ctx..(i+1)*ctx of the text). Each
        /// defaults to its end of the text's chunks. `--json` then carries the exact per-chunk
        /// sums that merge into the report of a single run over the union, bit for bit.
        #[arg(long, value_name = "FROM")]
        chunks_from: Option<usize>,
        /// One past the last chunk to score (see --chunks-from).
        #[arg(long, value_name = "TO")]
        chunks_to: Option<usize>,
        /// Whether each chunk starts with BOS (auto: as llama.cpp, when the tokenizer adds BOS).
        #[arg(long, value_enum, default_value_t = BosPolicy::Auto)]
        bos: BosPolicy,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the JSON result (as --json prints it) to FILE, atomically: FILE appears
        /// complete or not at all. Stdout is unchanged (text, or JSON with --json).
        #[arg(long, value_name = "FILE")]
        json_out: Option<PathBuf>,
        /// For a chip image: always run the float model, neither reading nor writing its
        /// cached logits. By default the float logits of each chunk are cached in
        /// $TAALASC_CACHE_DIR/eval (else $XDG_CACHE_HOME/taalasc/eval, else
        /// ~/.cache/taalasc/eval), keyed by the source's and the text's SHA-256, ctx, BOS, the
        /// chunk and this taalasc; one file per chunk of (ctx-1-ctx/2) x vocab f32 (SmolLM2,
        /// ctx 512: 50 MB). The folder is capped at 4096 MiB (TAALASC_EVAL_CACHE_MAX_MB):
        /// chunks past the cap are not stored.
        #[arg(long)]
        no_float_cache: bool,
    },
}

#[derive(clap::Args)]
/// The flags of `taalasc build`.
pub struct BuildArgs {
    /// The checkpoint (see `inspect`).
    pub model: PathBuf,
    /// Output folder (default: MODEL's name with `.chip`). It must not exist, unless it is a chip
    /// folder taalasc built earlier and --force is given; nothing else is ever replaced.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Replace the chip folder taalasc built earlier at the output path. A path holding
    /// anything else (a file, a model, a folder with files taalasc did not write) is still an
    /// error, and is left untouched.
    #[arg(long)]
    pub force: bool,
    /// Weight bits of every linear layer: 2, 3, 4, 5, 6 or 8; or `auto`: the e-graph pass picks a
    /// format per layer from measured sensitivities, within --rom-budget, --bpw or --loss-budget
    /// (needs --calib).
    #[arg(long)]
    pub bits: Option<String>,
    /// With --bits auto: total ROM bits (every tensor and scale counted).
    #[arg(long, conflicts_with_all = ["bpw", "loss_budget"])]
    pub rom_budget: Option<u64>,
    /// With --bits auto: target bits per weight over all parameters, scales included.
    #[arg(long, conflicts_with = "loss_budget")]
    pub bpw: Option<f64>,
    /// With --bits auto: fewest bits whose summed sensitivity stays below this.
    #[arg(long)]
    pub loss_budget: Option<f64>,
    /// Calibration text (UTF-8) for GPTQ and for --bits auto's sensitivities.
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Calibration windows of 512 tokens to run (GPTQ gains from more: on SmolLM2 uniform
    /// s3g32h, KL 0.77 with 8 windows, 0.65 with 32, 0.60 with 96 at 3x the build time; --bits
    /// auto --bpw 4.0, perplexity 31.76 with 32 windows, 30.69 with 128).
    #[arg(long, default_value_t = 32)]
    pub calib_chunks: usize,
    /// Rounding method (default: gptq when --calib is given, else rtn).
    #[arg(long, value_enum)]
    pub quantizer: Option<crate::build::Quantizer>,
    /// With --bits auto: calibration tokens (the last ones) on which each layer's end-to-end
    /// KL importance is measured; one float forward per layer.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=4096))]
    pub probe_tokens: u64,
    /// GPTQ column order: `act` (decreasing input energy, groups fixed up front) or `natural`.
    #[arg(long, value_enum, default_value_t = crate::build::GptqOrder::Act)]
    pub gptq_order: crate::build::GptqOrder,
    /// Inputs per scale: 32, 64, 128 or `row`.
    #[arg(long)]
    pub group: Option<String>,
    /// Symmetric codes (no per-group offset) instead of asymmetric.
    #[arg(long)]
    pub sym: bool,
    /// Exact linear-layer format name instead of --bits/--group/--sym, e.g. `a4g32`, `s8g32`, `s3row`.
    #[arg(long, conflicts_with_all = ["bits", "group", "sym"])]
    pub format: Option<String>,
    /// Format of the embedding and position tables.
    #[arg(long, default_value = "s8g32")]
    pub table_format: String,
    /// Format of the linear layers and tables whose weight names match PATTERN (`*` matches any
    /// characters; names as in `taalasc inspect --ir`), e.g. `layers.*.mlp.down.weight=a6g32h`.
    /// Repeatable; two rules that give one weight different formats are an error. Overrides --bits/--format/--table-format for those
    /// weights, and --bits auto chooses only among the others.
    #[arg(long = "layer-format", value_name = "PATTERN=FORMAT")]
    pub layer_format: Vec<crate::build::LayerRule>,
    /// Positions held in the KV cache (default: the model's maximum, at most 2048).
    #[arg(long)]
    pub context: Option<usize>,
    /// MAC lanes per row of every matrix-vector unit (a power of two, 1 to 16384; at least a
    /// matrix's columns reads whole rows): columns read per cycle per row.
    #[arg(long, default_value_t = 16, conflicts_with = "target_tps_user")]
    pub lanes: usize,
    /// Rows per cycle of every matrix-vector unit (a power of two, 1 to 256): each layer engine
    /// reads lanes x rows weights per cycle from a ROM word of `rows` row slices.
    #[arg(long, default_value_t = 1, conflicts_with = "target_tps_user")]
    pub rows: usize,
    /// Decoder layers per layer engine (1 to the model's layers): one matrix-vector unit,
    /// attention unit and set of element units serves them in turn, their matrices stacked
    /// in shared ROM banks and their KV caches in regions of one attention unit. Less logic
    /// for the same speed per user; fewer tokens in flight at once. Default 1; with
    /// --target-tps-user, both 1 and all layers are tried unless this is given.
    #[arg(long, value_name = "N")]
    pub layers_per_engine: Option<usize>,
    /// Pick the parallelism that reaches N tokens/s per user on the chip budget
    /// (`--chip-budget`, default hc1): matrix-vector lanes and rows, the attention parallelism
    /// (unless an --attn-* flag fixes it) and the layers per engine (unless given); fewest
    /// chips, then least area. An unreachable target is an error that gives the best
    /// reachable figure and what limits it.
    #[arg(long, value_name = "N")]
    pub target_tps_user: Option<f64>,
    /// Meet --target-tps-user for the token at the end of N positions of context (1 to
    /// --context; default: the middle of the context, where the report's headline figure is).
    #[arg(long, value_name = "N", requires = "target_tps_user")]
    pub target_context: Option<usize>,
    /// User slots: each has its own KV cache region (context positions) and position
    /// counter; `sim` interleaves their tokens.
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// Attention: query heads per pass over the KV cache (divides the query heads per KV
    /// head; they read each K/V word once). Default 1; with --target-tps-user, the three
    /// --attn-* options are searched unless one is given.
    #[arg(long, value_name = "N")]
    pub attn_heads: Option<usize>,
    /// Attention: KV positions per cycle (a power of two dividing --context; the K and V
    /// caches are banked by position).
    #[arg(long, value_name = "N")]
    pub attn_positions: Option<usize>,
    /// Attention: 32-value blocks of head_dim per cycle (divides head_dim/32; head_dim/32 is
    /// a whole head per cycle).
    #[arg(long, value_name = "N")]
    pub attn_blocks: Option<usize>,
    /// Keep only the first N decoder layers (embedding, final norm and head stay): a slice of
    /// a real model for hardware tests.
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Write the chip image only, without RTL (for quality sweeps: the RTL of a large model
    /// holds its weights again as ROM images).
    #[arg(long)]
    pub no_rtl: bool,
    /// Plan, cost and partition the hardware from the checkpoint's shapes and the chosen
    /// formats only, and write the system report (report.json, report.html) into the output
    /// folder: no weight is quantized and no RTL is written (seconds for an 8B model). Needs
    /// --chip-budget or --chips; the figures equal `taalasc report` on the built chip.
    #[arg(long, conflicts_with_all = ["no_rtl", "stop_after", "dump_after", "calib"])]
    pub estimate: bool,
    /// What one chip may hold: a preset (`hc1`: N6, 815 mm²; `n3e-reticle`) or a JSON budget
    /// file (fields in rfcs/0004-partitioning.md; `"base": "hc1"` fills the rest). The model is
    /// split across as many chips as the budget needs, each chip with its own ROM, KV SRAM and
    /// --users slots, linked on a board (chipK/ and board/ folders).
    #[arg(long, value_name = "FILE|PRESET")]
    pub chip_budget: Option<String>,
    /// Split across at least N chips (default budget: hc1).
    #[arg(long, value_name = "N")]
    pub chips: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print each build step's wall time to stderr (always kept in OUT/timings.json).
    #[arg(long)]
    pub timings: bool,
    /// Stop after this step and write nothing (steps: load, verify-ir, calibrate,
    /// choose-formats, quantize, verify-image, plan, partition, emit, write).
    #[arg(long, value_enum, value_name = "STEP")]
    pub stop_after: Option<crate::Step>,
    /// Print this step's result in its text form to stdout (e.g. `plan`: one line per
    /// instruction of every engine); repeatable.
    #[arg(long, value_enum, value_name = "STEP")]
    pub dump_after: Vec<crate::Step>,
}

impl BuildArgs {
    /// The typed build configuration of these flags.
    pub fn into_config(self) -> anyhow::Result<BuildConfig> {
        let a = self;
        let target = match (a.rom_budget, a.bpw, a.loss_budget) {
            (Some(b), _, _) => Some(AutoTarget::RomBits(b)),
            (_, Some(x), _) => Some(AutoTarget::BitsPerWeight(x)),
            (_, _, Some(l)) => Some(AutoTarget::Loss(l)),
            _ => None,
        };
        let auto = a.bits.as_deref() == Some("auto");
        if auto != target.is_some() {
            bail!("--bits auto needs one of --rom-budget, --bpw or --loss-budget, and those need --bits auto");
        }
        let linear = match (&a.format, &a.bits, target) {
            (Some(f), _, _) => LinearFormat::Fixed(f.parse()?),
            (None, Some(_), Some(t)) => LinearFormat::Auto(t),
            (None, Some(b), None) => {
                let bits: u8 = b
                    .parse()
                    .with_context(|| format!("--bits {b}: expected 2, 3, 4, 5, 6, 8 or auto"))?;
                let g = a.group.clone().unwrap_or_else(|| "32".into());
                let g = if g == "row" { g } else { format!("g{g}") };
                LinearFormat::Fixed(format!("{}{bits}{g}", if a.sym { 's' } else { 'a' }).parse()?)
            }
            (None, None, _) => {
                if a.group.is_some() || a.sym {
                    bail!("--group and --sym refine --bits; give --bits too");
                }
                LinearFormat::Default
            }
        };
        let multi = a.chip_budget.is_some() || a.chips.is_some() || a.target_tps_user.is_some();
        let attn_given =
            a.attn_heads.is_some() || a.attn_positions.is_some() || a.attn_blocks.is_some();
        if a.no_rtl && attn_given {
            bail!("--attn-heads, --attn-positions and --attn-blocks plan the hardware; they cannot go with --no-rtl");
        }
        if multi && a.no_rtl {
            bail!("--chip-budget, --chips and --target-tps-user plan the hardware; they cannot go with --no-rtl");
        }
        let hardware = (!a.no_rtl).then(|| HardwareConfig {
            lanes: a.lanes,
            target_tps_user: a.target_tps_user,
            target_context: a.target_context,
            rows: a.rows,
            layers_per_engine: a.layers_per_engine,
            users: a.users,
            attn: taalasc_verilog::plan::AttnParallel {
                heads: a.attn_heads.unwrap_or(1),
                positions: a.attn_positions.unwrap_or(1),
                blocks: a.attn_blocks.unwrap_or(1),
            },
            search_attn: !attn_given,
            chips: multi.then(|| ChipsConfig {
                budget: a.chip_budget.clone().unwrap_or_else(|| "hc1".into()),
                min_chips: a.chips.unwrap_or(1),
            }),
        });
        Ok(BuildConfig {
            out: a.out.unwrap_or_else(|| BuildConfig::default_out(&a.model)),
            force: a.force,
            model: a.model,
            layers: a.layers,
            linear,
            table: a.table_format.parse()?,
            layer_rules: a.layer_format,
            context: a.context,
            quantizer: a.quantizer,
            gptq_order: a.gptq_order,
            calib: a.calib.map(|text| CalibConfig {
                text,
                chunks: a.calib_chunks,
                probe_tokens: a.probe_tokens as usize,
            }),
            hardware,
            stop_after: a.stop_after,
            dump_after: a.dump_after,
        })
    }
}
