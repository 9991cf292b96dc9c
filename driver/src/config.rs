//! What a build is asked for: [`BuildConfig`], the typed form of every
//! `taalasc build` flag. The CLI only fills it in; [`crate::pipeline::build`]
//! reads nothing else.

use crate::build::{AutoTarget, GptqOrder, LayerRule, Quantizer};
use std::fmt;
use std::path::PathBuf;
use taalasc_quant::WeightFormat;

/// How the linear layers' format is chosen.
#[derive(Clone, Debug)]
pub enum LinearFormat {
    /// Not given: a4g32, which holds GGUF Q4_1 exactly (reported as picked).
    Default,
    /// One format for every linear layer (`--format`, or `--bits/--group/--sym`).
    Fixed(WeightFormat),
    /// The e-graph pass picks a format per layer within the target (`--bits auto`).
    Auto(AutoTarget),
}

/// Calibration text and how much of it to run (`--calib`).
#[derive(Clone, Debug)]
pub struct CalibConfig {
    /// UTF-8 text, tokenized with the model's own tokenizer.
    pub text: PathBuf,
    /// Windows of 512 tokens (or the model's maximum positions, if fewer).
    pub chunks: usize,
    /// With `--bits auto`: the last calibration tokens on which each
    /// layer's end-to-end KL importance is measured.
    pub probe_tokens: usize,
}

/// The multi-chip part of a build (`--chip-budget`, `--chips`).
#[derive(Clone, Debug)]
pub struct ChipsConfig {
    /// A budget preset (`hc1`, `n3e-reticle`) or a JSON budget file.
    pub budget: String,
    /// At least this many chips.
    pub min_chips: usize,
}

/// The hardware a build lowers to (absent with `--no-rtl`).
#[derive(Clone, Debug)]
pub struct HardwareConfig {
    /// MAC lanes per row of every matrix-vector unit (`--lanes`).
    pub lanes: usize,
    /// Rows per cycle of every matrix-vector unit (`--rows`).
    pub rows: usize,
    /// Decoder layers per layer engine (`--layers-per-engine`; `None`: 1,
    /// or searched with `target_tps_user`).
    pub layers_per_engine: Option<usize>,
    /// Choose the parallelism for this many tokens/s per user instead
    /// (`--target-tps-user`; needs `chips`, the budget it is met on).
    pub target_tps_user: Option<f64>,
    /// Meet `target_tps_user` for the token at the end of this many
    /// positions of context (`--target-context`; default: the middle of
    /// the built context).
    pub target_context: Option<usize>,
    /// User slots, each with its own KV cache region and position counter.
    pub users: usize,
    /// Attention parallelism (`--attn-heads`, `--attn-positions`,
    /// `--attn-blocks`).
    pub attn: taalasc_verilog::plan::AttnParallel,
    /// With `target_tps_user`: search the attention parallelism instead of
    /// keeping `attn` (no `--attn-*` flag given).
    pub search_attn: bool,
    /// Split across chips on a board, or one chip.
    pub chips: Option<ChipsConfig>,
}

/// Every input of `taalasc build`.
#[derive(Clone, Debug)]
pub struct BuildConfig {
    /// The checkpoint.
    pub model: PathBuf,
    /// The chip folder to write.
    pub out: PathBuf,
    /// Replace a chip folder built earlier at `out` (`--force`); nothing
    /// else is ever replaced.
    pub force: bool,
    /// Keep only the first N decoder layers.
    pub layers: Option<usize>,
    /// How the linear layers' format is chosen.
    pub linear: LinearFormat,
    /// Format of the embedding and position tables.
    pub table: WeightFormat,
    /// Per-weight format overrides, no two giving one weight different formats.
    pub layer_rules: Vec<LayerRule>,
    /// KV-cache positions (default: the model's maximum, at most 2048).
    pub context: Option<usize>,
    /// Rounding method (default: GPTQ with calibration text, else RTN).
    pub quantizer: Option<Quantizer>,
    /// GPTQ column order.
    pub gptq_order: GptqOrder,
    /// Calibration text for GPTQ and `--bits auto`.
    pub calib: Option<CalibConfig>,
    /// The hardware to lower to; `None` writes the image only.
    pub hardware: Option<HardwareConfig>,
    /// Stop after this step and write nothing.
    pub stop_after: Option<Step>,
    /// Return these steps' results in their text forms.
    pub dump_after: Vec<Step>,
}

impl BuildConfig {
    /// A configuration with every option at its default: `taalasc build
    /// MODEL -o OUT`.
    pub fn new(model: impl Into<PathBuf>, out: impl Into<PathBuf>) -> BuildConfig {
        BuildConfig {
            model: model.into(),
            out: out.into(),
            force: false,
            layers: None,
            linear: LinearFormat::Default,
            table: "s8g32".parse().expect("valid format"),
            layer_rules: Vec::new(),
            context: None,
            quantizer: None,
            gptq_order: GptqOrder::Act,
            calib: None,
            hardware: Some(HardwareConfig {
                lanes: 16,
                rows: 1,
                layers_per_engine: None,
                target_tps_user: None,
                target_context: None,
                users: 1,
                attn: Default::default(),
                search_attn: true,
                chips: None,
            }),
            stop_after: None,
            dump_after: Vec::new(),
        }
    }

    /// The default output folder for `model`: its name with `.chip`.
    pub fn default_out(model: &std::path::Path) -> PathBuf {
        let stem = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        model.with_file_name(format!("{stem}.chip"))
    }

    /// Checks the options that do not need the model, before any work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.context == Some(0) {
            anyhow::bail!("--context must be at least 1");
        }
        let auto = matches!(self.linear, LinearFormat::Auto(_));
        let gptq = self.quantizer() == Quantizer::Gptq;
        if self.calib.is_none() && (auto || gptq) {
            anyhow::bail!("--bits auto and GPTQ need --calib FILE");
        }
        if let Some(c) = &self.calib {
            anyhow::ensure!(c.chunks > 0, "--calib-chunks must be at least 1");
        }
        if let Some(h) = &self.hardware {
            for (flag, v) in [
                ("--attn-heads", h.attn.heads),
                ("--attn-positions", h.attn.positions),
                ("--attn-blocks", h.attn.blocks),
            ] {
                anyhow::ensure!(v > 0, "{flag} must be at least 1");
            }
            anyhow::ensure!(
                h.attn.positions.is_power_of_two(),
                "--attn-positions {}: expected a power of two",
                h.attn.positions
            );
            if let Some(c) = &h.chips {
                anyhow::ensure!(c.min_chips > 0, "--chips must be at least 1");
            }
            if let Some(n) = h.target_context {
                anyhow::ensure!(
                    h.target_tps_user.is_some(),
                    "--target-context {n} sets where --target-tps-user is met; give --target-tps-user too"
                );
            }
            if let Some(t) = h.target_tps_user {
                anyhow::ensure!(
                    t.is_finite() && t > 0.0,
                    "--target-tps-user {t}: expected a positive number of tokens per second"
                );
                anyhow::ensure!(
                    h.chips.is_some(),
                    "--target-tps-user needs a chip budget (--chip-budget): the die the target is met on"
                );
            }
        }
        if let Some(stop) = self.stop_after {
            if let Some(dump) = self.dump_after.iter().find(|&&d| d > stop) {
                anyhow::bail!(
                    "--dump-after {dump} comes after --stop-after {stop}: it would never run"
                );
            }
        }
        Ok(())
    }

    /// The rounding method: as asked, else GPTQ when calibration text is
    /// given, else RTN.
    pub fn quantizer(&self) -> Quantizer {
        self.quantizer.unwrap_or(if self.calib.is_some() {
            Quantizer::Gptq
        } else {
            Quantizer::Rtn
        })
    }
}

/// The steps of a build, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Step {
    /// Read the checkpoint into the model IR.
    Load,
    /// Check the IR.
    VerifyIr,
    /// Run the float model on the calibration text.
    Calibrate,
    /// Pick each weight's format.
    ChooseFormats,
    /// Quantize every weight into the chip image.
    Quantize,
    /// Check the chip image against the datapath.
    VerifyImage,
    /// Lower the image onto engines.
    Plan,
    /// Cut the pipeline into chips.
    Partition,
    /// Print the RTL.
    Emit,
    /// Complete the chip folder and put it in place.
    Write,
}

impl Step {
    /// The step's name, as `--stop-after` and `--timings` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Load => "load",
            Step::VerifyIr => "verify-ir",
            Step::Calibrate => "calibrate",
            Step::ChooseFormats => "choose-formats",
            Step::Quantize => "quantize",
            Step::VerifyImage => "verify-image",
            Step::Plan => "plan",
            Step::Partition => "partition",
            Step::Emit => "emit",
            Step::Write => "write",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
