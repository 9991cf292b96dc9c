//! The numeric spec's lookup tables as ROM images (`$readmemh` text).
//!
//! Every entry comes from `taalasc_numerics::tables`; nothing here computes
//! a value of its own.

use taalasc_numerics::tables;

/// One table ROM: file name, entry width in bits, entries.
pub struct TableRom {
    /// File name under the table folder (`exp2.hex`, ...).
    pub file: &'static str,
    /// Entry width in bits (16 to 19).
    pub width: u32,
    /// The entries, entry `i` at line `i` of the file (unsigned, low
    /// `width` bits).
    pub entries: &'static [u32],
}

/// Every table of the datapath, in a fixed order.
pub fn table_roms() -> Vec<TableRom> {
    vec![
        TableRom {
            file: "exp2.hex",
            width: 16,
            entries: tables::exp2_neg_table(),
        },
        TableRom {
            file: "recip.hex",
            width: 17,
            entries: tables::recip_table(),
        },
        TableRom {
            file: "rsqrt.hex",
            width: 19,
            entries: tables::rsqrt_table(),
        },
        TableRom {
            file: "sigmoid.hex",
            width: 16,
            entries: tables::sigmoid_table(),
        },
        TableRom {
            file: "gelu.hex",
            width: 16,
            entries: tables::gelu_gate_table(),
        },
    ]
}

/// `$readmemh` text of unsigned entries of `width` bits.
pub fn hex_lines(width: u32, entries: impl IntoIterator<Item = u64>) -> String {
    let digits = width.div_ceil(4) as usize;
    let mut s = String::new();
    for e in entries {
        debug_assert!(width >= 64 || e >> width == 0);
        s.push_str(&format!("{e:0digits$x}\n"));
    }
    s
}

impl TableRom {
    /// The table's `$readmemh` text.
    pub fn hex(&self) -> String {
        hex_lines(self.width, self.entries.iter().map(|&e| e as u64))
    }
}

/// Writes every table into `dir` (created if needed).
pub fn write_tables(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for t in table_roms() {
        std::fs::write(dir.join(t.file), t.hex())?;
    }
    Ok(())
}

/// Table ROM bits of one instance of `unit` (`norm`: rsqrt; `elem`:
/// sigmoid and GELU; `attn`: exp2 and reciprocal; others none), from the
/// tables themselves.
pub fn unit_table_bits(unit: &str) -> u64 {
    let files: &[&str] = match unit {
        "norm" => &["rsqrt.hex"],
        "elem" => &["sigmoid.hex", "gelu.hex"],
        "attn" => &["exp2.hex", "recip.hex"],
        _ => &[],
    };
    table_roms()
        .iter()
        .filter(|t| files.contains(&t.file))
        .map(|t| t.width as u64 * t.entries.len() as u64)
        .sum()
}
