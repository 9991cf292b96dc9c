//! The plan as text, for people: a header with the chip parameters and
//! macro bits, then each engine (its units, ROMs, attention units and
//! program, one line per instruction), the schedule and the pipeline
//! stages. Deterministic: the same plan gives the same text.
//!
//! ```text
//! plan: 16 lanes, 1 users, context 2048, vocab 49152, 10 scratchpad address bits
//! macro bits: weight ROM 123 stored / 120 packed, vector ROM 4, ...
//!
//! engine 0 (io): 3 instructions, 576 scratchpad words, 18 A8 blocks
//!   units: embed matvec norm out
//!   mat 0: token_embd.weight [49152x576] a4g32, 36 words of 244 bits per row, e0_token_embd_weight.hex
//!   program:
//!     0: embed mat 0 [49152x576] -> @0, 576 cols  ; token_embd
//! ```

use super::{Engine, Instr, Plan, Step};
use std::fmt;

/// `@addr` of a scratchpad word.
struct At(u32);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

/// ` + bias B` when there is one.
struct Opt<'a>(&'a str, Option<usize>);

impl fmt::Display for Opt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(i) => write!(f, " + {} {i}", self.0),
            None => Ok(()),
        }
    }
}

/// One instruction of engine `e`, without its program counter.
fn instr(f: &mut fmt::Formatter<'_>, e: &Engine, i: &Instr) -> fmt::Result {
    match i {
        Instr::Embed {
            mat,
            dst,
            cols,
            positions,
        } => {
            let m = &e.mats[*mat];
            let what = if *positions {
                "adds row pos"
            } else {
                "row token"
            };
            write!(
                f,
                "embed mat {mat} [{}x{}] {what} -> {}, {cols} cols",
                m.rows,
                m.cols,
                At(*dst)
            )
        }
        Instr::Norm {
            src,
            dst,
            n,
            m_n,
            eps,
            gain,
            bias,
        } => write!(
            f,
            "norm {} -> {}, n {n}, gain {gain}{}, m_n {m_n}, eps {eps}",
            At(*src),
            At(*dst),
            Opt("bias", *bias)
        ),
        Instr::Linear {
            mat,
            src,
            dst,
            rows,
            cols,
            load,
            bias,
        } => {
            let m = &e.mats[*mat];
            write!(
                f,
                "linear mat {mat} [{rows}x{cols}] {} -> {}{}{}  ({}, {})",
                At(*src),
                At(*dst),
                Opt("bias", *bias),
                if *load { ", loads A8" } else { ", reuses A8" },
                m.weight,
                m.format
            )
        }
        Instr::Rope {
            table,
            src,
            heads,
            head_dim,
            rot,
        } => write!(
            f,
            "rope table {table} {} in place, {heads} heads of {head_dim}, {rot} rotated",
            At(*src)
        ),
        Instr::Attn {
            unit,
            q,
            k,
            v,
            dst,
            layer,
        } => {
            write!(
                f,
                "attn unit {unit} q {} k {} v {} -> {}",
                At(*q),
                At(*k),
                At(*v),
                At(*dst)
            )?;
            if *layer > 0 {
                write!(f, ", KV region of layer {layer}")?;
            }
            Ok(())
        }
        Instr::Elem { op, a, b, dst, n } => {
            write!(
                f,
                "elem {} {} {} -> {}, n {n}",
                op.name(),
                At(*a),
                At(*b),
                At(*dst)
            )
        }
        Instr::Out { src, n } => write!(f, "out {}, {n} logits", At(*src)),
    }
}

fn engine(f: &mut fmt::Formatter<'_>, e: &Engine) -> fmt::Result {
    writeln!(
        f,
        "engine {} ({}): {} instructions, {} scratchpad words, {} A8 blocks",
        e.index,
        e.role,
        e.program.len(),
        e.spad_words,
        e.max_blocks
    )?;
    let units: Vec<&str> = ["matvec", "embed", "norm", "elem", "rope", "attn", "out"]
        .into_iter()
        .filter(|u| e.uses(u))
        .collect();
    writeln!(f, "  units: {}", units.join(" "))?;
    for (k, m) in e.mats.iter().enumerate() {
        writeln!(
            f,
            "  mat {k}: {} [{}x{}] {}, {} words per row, {}; {} bits ({} packed)",
            m.weight,
            m.rows,
            m.cols,
            m.format,
            m.chunks,
            m.macros
                .iter()
                .map(|r| format!("{} {} x {}", r.kind, r.depth, r.width))
                .collect::<Vec<_>>()
                .join(", "),
            m.stored_bits,
            m.packed_bits
        )?;
    }
    for (b, bank) in e.banks.iter().enumerate() {
        let mats: Vec<String> = bank.mats.iter().map(|k| k.to_string()).collect();
        writeln!(
            f,
            "  bank {b}: {}; {}",
            if mats.len() == 1 {
                format!("mat {}", mats[0])
            } else {
                format!("mats {} stacked", mats.join(" "))
            },
            bank.macros
                .iter()
                .map(|r| format!("{} {} x {} {}", r.kind, r.depth, r.width, r.file))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    for (kind, list) in [("gain", &e.gains), ("bias", &e.biases), ("rope", &e.ropes)] {
        for (k, r) in list.iter().enumerate() {
            writeln!(
                f,
                "  {kind} {k}: {}, {} x {} bits, {}",
                r.name, r.depth, r.width, r.file
            )?;
        }
    }
    for (k, a) in e.attns.iter().enumerate() {
        writeln!(
            f,
            "  attn {k}: {}{}, {} heads, {} KV heads of {}, window {}, scale {}>>{}, {} KV bits{}",
            a.node,
            if a.layers > 1 {
                format!(" (serving {} layers, a KV region each)", a.layers)
            } else {
                String::new()
            },
            a.heads,
            a.kv_heads,
            a.head_dim,
            a.window,
            a.scale_mant,
            a.scale_shift,
            a.kv_bits,
            if a.par.is_serial() {
                String::new()
            } else {
                format!(
                    ", {} heads x {} positions x {} blocks per cycle",
                    a.par.heads, a.par.positions, a.par.blocks
                )
            }
        )?;
    }
    writeln!(f, "  program:")?;
    for (pc, (i, node)) in e.program.iter().zip(&e.nodes).enumerate() {
        write!(f, "    {pc}: ")?;
        instr(f, e, i)?;
        writeln!(f, "  ; {node}")?;
    }
    Ok(())
}

impl fmt::Display for Plan {
    /// The plan as text (see the module documentation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.widths();
        // Rows per cycle only when several (one row is the default).
        let rows = if self.rows > 1 {
            format!(" x {} rows per cycle", self.rows)
        } else {
            String::new()
        };
        // Layers per engine only when several share one.
        let shared = if self.layers_per_engine > 1 {
            format!(" ({} layers per engine)", self.layers_per_engine)
        } else {
            String::new()
        };
        writeln!(
            f,
            "plan: {} lanes{rows}, {} users, context {}, vocab {}, {} engines{shared}",
            self.lanes,
            self.users,
            self.context,
            self.vocab,
            self.engines.len()
        )?;
        writeln!(
            f,
            "widths: scratchpad address {} bits, token {} bits, logit index {} bits",
            w.aw, w.tw, w.vw
        )?;
        let m = self.macro_bits();
        writeln!(
            f,
            "macro bits: weight ROM {} in macros / {} format-packed, vector ROM {}, table ROM {}, KV SRAM {}, scratchpad SRAM {}",
            m.weight_rom_stored,
            m.weight_rom_packed,
            m.vector_rom,
            m.table_rom,
            m.kv_sram,
            m.scratchpad_sram
        )?;
        for e in &self.engines {
            writeln!(f)?;
            engine(f, e)?;
        }
        writeln!(f, "\nschedule:")?;
        for s in &self.schedule {
            match s {
                Step::Copy {
                    from,
                    src,
                    to,
                    dst,
                    n,
                    wide,
                } => writeln!(
                    f,
                    "  copy {n} {} words engine {from} {} -> engine {to} {}",
                    if *wide { "W48" } else { "R32" },
                    At(*src),
                    At(*dst)
                )?,
                Step::Run { engine, pc0, pc1 } => {
                    writeln!(f, "  run engine {engine} instructions {pc0}..{pc1}")?
                }
            }
        }
        writeln!(f, "\nstages:")?;
        for (k, s) in self.stages().iter().enumerate() {
            let words: usize = s.copies.iter().map(|c| c.2).sum();
            writeln!(
                f,
                "  {k}: engine {} ({}) instructions {}..{}, {} words in{}",
                s.engine,
                self.engines[s.engine].role,
                s.pc0,
                s.pc1,
                words,
                if s.wide_inputs { " (some W48)" } else { "" }
            )?;
        }
        Ok(())
    }
}

impl Plan {
    /// The plan as text: one line per instruction per engine, with a
    /// header per engine (units, ROMs, attention units), the schedule,
    /// the stages, the chip parameters and macro bits. Same as
    /// `format!("{plan}")`.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}
