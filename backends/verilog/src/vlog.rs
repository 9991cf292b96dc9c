//! The small Verilog writer the printers share: literals, multiplexers,
//! port declarations, and the chip's ports as data (token in, logits out,
//! link in and out, cycle counters, debug ports), declared once and used
//! by the chip top (`chip.rs`) and the board top (`board.rs`).
//!
//! Port lines keep the generated text's layout: `    input  wire [7:0]
//! name`, the name at column 26 for constant widths; a width that depends on
//! the plan is followed by three spaces whatever its digits.

use crate::plan::{addr_bits, Widths, PC_BITS, POS_BITS};
use std::fmt::Write as _;
use taalasc_numerics::W_BITS;

/// Most significant bit of a `W48` word (scratchpad words, logits).
pub(crate) const W_MSB: u32 = W_BITS - 1;

/// Bits of a chip-to-chip link word (an `R32` residual value).
pub const LINK_WORD_BITS: u32 = 32;

/// Bits of a cycle counter.
pub const PERF_BITS: u32 = 64;

/// Bits of a user slot on the chip interface.
pub const SLOT_BITS: u32 = 8;

/// Bits of a debug port's token tag (its sequence number).
pub const TAG_BITS: u32 = 16;

/// Verilog literal of an unsigned value of `w` bits.
pub(crate) fn lit(w: u32, v: u64) -> String {
    format!("{w}'d{v}")
}

/// The widest sized literal Verilator accepts (IEEE 1800 lets a tool
/// limit literals to 65,536 bits; Verilator 5.006 refuses 74,752).
pub(crate) const MAX_LITERAL_BITS: u32 = 65_535;

/// A zero of `w` bits: `w'd0`, or past [`MAX_LITERAL_BITS`] (a 512 × 16
/// weight word) the unsized `0`, which an assignment zero-extends (and
/// Verilator's width lint accepts, unlike an 8k-bit replication).
pub(crate) fn zero(w: u32) -> String {
    if w <= MAX_LITERAL_BITS {
        format!("{w}'d0")
    } else {
        "0".into()
    }
}

/// `a | b | ...` over names, or a zero of width `w` when empty.
pub(crate) fn or_all(names: &[String], w: u32) -> String {
    if names.is_empty() {
        zero(w)
    } else {
        names.join(" | ")
    }
}

/// `always @*` multiplexer: `out = srcs[sel]`, zero for other selects.
pub(crate) fn mux(s: &mut String, sel: &str, out: &str, srcs: &[String], w: u32) {
    let sw = addr_bits(srcs.len());
    let _ = writeln!(s, "  always @* begin\n    case ({sel})");
    for (k, src) in srcs.iter().enumerate() {
        let _ = writeln!(s, "      {}: {out} = {src};", lit(sw, k as u64));
    }
    let _ = writeln!(s, "      default: {out} = {};\n    endcase\n  end", zero(w));
}

/// Direction (and kind) of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `input wire`.
    In,
    /// `output wire`, driven by a continuous assignment.
    Out,
    /// An output driven by a register of the module.
    OutReg,
}

/// Width of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// One bit (no range).
    Bit,
    /// A width fixed by the design.
    Fixed(u32),
    /// A width that depends on the plan (vocabulary, scratchpad).
    Plan(u32),
}

/// One port of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Direction and kind.
    pub dir: Dir,
    /// Width in bits.
    pub width: Width,
    /// The port's Verilog name.
    pub name: String,
}

impl Port {
    fn new(dir: Dir, width: Width, name: impl Into<String>) -> Port {
        Port {
            dir,
            width,
            name: name.into(),
        }
    }

    /// The declaration, without its separator: `    input  wire [7:0]    in_slot`.
    pub fn decl(&self) -> String {
        let dir = match self.dir {
            Dir::In => "input  wire",
            Dir::Out => "output wire",
            Dir::OutReg => "output reg ",
        };
        let range = match self.width {
            Width::Bit => " ".repeat(8),
            Width::Fixed(w) => format!("{:<8}", format!("[{}:0]", w - 1)),
            Width::Plan(w) => format!("[{}:0]  ", w - 1),
        };
        format!("    {dir} {range} {}", self.name)
    }

    /// The same port with another direction.
    pub fn as_dir(&self, dir: Dir) -> Port {
        Port {
            dir,
            ..self.clone()
        }
    }
}

/// A line of a port list: a comment or a port.
pub enum Item {
    /// A `// ...` line (text without the slashes).
    Comment(&'static str),
    /// A port declaration.
    Port(Port),
}

/// Prints `items` as the lines of a port list: every port but the last
/// ends with a comma.
pub fn port_lines(s: &mut String, items: &[Item]) {
    let last = items.iter().rposition(|i| matches!(i, Item::Port(_)));
    for (k, it) in items.iter().enumerate() {
        match it {
            Item::Comment(c) => {
                let _ = writeln!(s, "    // {c}");
            }
            Item::Port(p) => {
                let sep = if Some(k) == last { "" } else { "," };
                let _ = writeln!(s, "{}{sep}", p.decl());
            }
        }
    }
}

/// Ports as items, after an optional comment.
pub fn items(comment: Option<&'static str>, ports: Vec<Port>) -> Vec<Item> {
    comment
        .map(Item::Comment)
        .into_iter()
        .chain(ports.into_iter().map(Item::Port))
        .collect()
}

/// Clock and reset.
pub fn clock_ports() -> Vec<Port> {
    vec![
        Port::new(Dir::In, Width::Bit, "clk"),
        Port::new(Dir::In, Width::Bit, "rst"),
    ]
}

/// Token input of the first chip.
pub fn token_in_ports(w: Widths) -> Vec<Port> {
    vec![
        Port::new(Dir::In, Width::Bit, "in_valid"),
        Port::new(Dir::Out, Width::Bit, "in_ready"),
        Port::new(Dir::In, Width::Plan(w.tw), "in_token"),
        Port::new(Dir::In, Width::Bit, "in_restart"),
        Port::new(Dir::In, Width::Fixed(SLOT_BITS), "in_slot"),
    ]
}

/// Logits output of the last chip (and its error beat): a line of
/// `w.line` words per beat, `out_count` of them valid.
pub fn logits_out_ports(w: Widths) -> Vec<Port> {
    vec![
        Port::new(Dir::Out, Width::Bit, "out_valid"),
        Port::new(Dir::In, Width::Bit, "out_ready"),
        // One scratchpad line per beat: `out_count` words of `out_logit`.
        Port::new(Dir::Out, Width::Fixed(w.line * W_BITS), "out_logit"),
        Port::new(
            Dir::Out,
            Width::Fixed(crate::plan::count_bits(w.line as usize)),
            "out_count",
        ),
        Port::new(Dir::Out, Width::Plan(w.vw), "out_index"),
        Port::new(Dir::Out, Width::Bit, "out_last"),
        Port::new(Dir::Out, Width::Bit, "out_error"),
        Port::new(Dir::Out, Width::Fixed(SLOT_BITS), "out_slot"),
        Port::new(Dir::Out, Width::Plan(POS_BITS), "out_pos"),
    ]
}

/// Suffixes of the link-in ports (`li_valid`, ...).
pub const LINK_IN: [&str; 3] = ["valid", "ready", "data"];
/// Suffixes of the link-out ports (`lo_valid`, ...).
pub const LINK_OUT: [&str; 4] = ["valid", "ready", "data", "last"];

/// Link input of a chip after the first.
pub fn link_in_ports() -> Vec<Port> {
    vec![
        Port::new(Dir::In, Width::Bit, "li_valid"),
        Port::new(Dir::Out, Width::Bit, "li_ready"),
        Port::new(Dir::In, Width::Fixed(LINK_WORD_BITS), "li_data"),
    ]
}

/// Link output of a chip before the last.
pub fn link_out_ports() -> Vec<Port> {
    vec![
        Port::new(Dir::Out, Width::Bit, "lo_valid"),
        Port::new(Dir::In, Width::Bit, "lo_ready"),
        Port::new(Dir::Out, Width::Fixed(LINK_WORD_BITS), "lo_data"),
        Port::new(Dir::Out, Width::Bit, "lo_last"),
    ]
}

/// The cycle counters (`dir`: registers in a chip, wires in a board).
pub fn perf_ports(dir: Dir) -> Vec<Port> {
    ["perf_matvec", "perf_attn", "perf_nl", "perf_ctrl"]
        .into_iter()
        .map(|n| Port::new(dir, Width::Fixed(PERF_BITS), n))
        .collect()
}

/// The scheduling-conflict flag.
pub fn conflict_port() -> Port {
    Port::new(Dir::Out, Width::Bit, "dbg_conflict")
}

/// Suffixes of engine `e`'s debug ports (`dbg{e}_we`, ...).
pub const DEBUG: [&str; 5] = ["we", "tag", "pc", "addr", "data"];

/// The debug ports of engine `e`: its scratchpad writes, tagged (a line
/// of `w.line` words: mask, line address, data, when `w.line > 1`).
pub fn debug_ports(e: usize, w: Widths) -> Vec<Port> {
    let (we, data) = if w.line > 1 {
        (Width::Fixed(w.line), Width::Fixed(w.line * W_BITS))
    } else {
        (Width::Bit, Width::Fixed(W_BITS))
    };
    vec![
        Port::new(Dir::Out, we, format!("dbg{e}_we")),
        Port::new(Dir::Out, Width::Fixed(TAG_BITS), format!("dbg{e}_tag")),
        Port::new(Dir::Out, Width::Fixed(PC_BITS), format!("dbg{e}_pc")),
        Port::new(Dir::Out, Width::Plan(w.aw), format!("dbg{e}_addr")),
        Port::new(Dir::Out, data, format!("dbg{e}_data")),
    ]
}

/// Names of `ports`.
pub fn names(ports: &[Port]) -> Vec<&str> {
    ports.iter().map(|p| p.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_past_the_literal_limit_are_unsized() {
        assert_eq!(zero(48), "48'd0");
        assert_eq!(zero(MAX_LITERAL_BITS), "65535'd0");
        // 512 lanes × 16 rows of a 4-bit weight word and its scales.
        assert_eq!(zero(74_752), "0");
        let mut s = String::new();
        mux(&mut s, "sel", "o", &["a".into()], 74_752);
        assert!(s.contains("default: o = 0;"), "{s}");
        assert_eq!(or_all(&[], 74_752), "0");
    }
}
