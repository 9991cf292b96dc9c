//! Verilog text of a plan: one module per engine and the chip top.
//!
//! The printer never changes the plan (all decisions, limits and derived widths are in `plan/`); it
//! writes instances of the hand-written units in `rtl/` (contract:
//! `rtl/UNITS.md`), the engines' memory macros, their program decoders and
//! the chip controller. Output is deterministic: the same plan gives the
//! same bytes.

use crate::plan::{addr_bits, count_bits, Engine, Instr, Plan, Widths, PC_BITS, POS_BITS};
use crate::vlog::{lit, mux, or_all, W_MSB};
use std::fmt::Write as _;
use taalasc_numerics::W_BITS;

/// A program-decoder field: `(name, width)`.
struct Field(&'static str, u32);

fn fields(e: &Engine, w: &Widths) -> Vec<Field> {
    let aw = w.aw;
    let sel = |n: usize| addr_bits(n.max(1));
    let mut f = vec![Field("d_unit", 3)];
    if e.uses("matvec") || e.uses("embed") {
        // The weight bank read, and (stacked banks) the matrix's first
        // word in each of the bank's macros.
        f.push(Field("d_mat", sel(e.banks.len())));
        f.extend(bank_base_fields(e).into_iter().map(|(n, b)| Field(n, b)));
    }
    if e.uses("matvec") {
        f.extend([
            Field("d_mv_src", aw),
            Field("d_mv_dst", aw),
            Field("d_mv_rows", 24),
            Field("d_mv_cols", 20),
            Field("d_mv_load", 1),
            Field("d_mv_has_bias", 1),
            Field("d_bias", sel(e.biases.len())),
        ]);
    }
    if e.uses("matvec") || e.uses("embed") {
        f.extend([Field("d_asym", 1), Field("d_code_bias", 8)]);
    }
    if e.uses("embed") {
        f.extend([
            Field("d_em_dst", aw),
            Field("d_em_cols", 20),
            Field("d_em_pos", 1),
        ]);
    }
    if e.uses("norm") {
        f.extend([
            Field("d_nm_src", aw),
            Field("d_nm_dst", aw),
            Field("d_nm_n", 20),
            Field("d_nm_mn", 41),
            Field("d_nm_eps", 48),
            Field("d_nm_layer", 1),
            Field("d_gain", sel(e.gains.len())),
            Field("d_nbias", sel(e.gains.len())),
        ]);
    }
    if e.uses("elem") {
        f.extend([
            Field("d_el_op", 3),
            Field("d_el_a", aw),
            Field("d_el_b", aw),
            Field("d_el_dst", aw),
            Field("d_el_n", 20),
        ]);
    }
    if e.uses("rope") {
        f.extend([
            Field("d_rp_src", aw),
            Field("d_rp_heads", 8),
            Field("d_rp_hd", 10),
            Field("d_rp_rot", 10),
            Field("d_rope", sel(e.ropes.len())),
        ]);
    }
    if e.uses("attn") {
        f.extend([
            Field("d_at_q", aw),
            Field("d_at_k", aw),
            Field("d_at_v", aw),
            Field("d_at_dst", aw),
            Field("d_attn", sel(e.attns.len())),
        ]);
        if let Some(l) = attn_layer_bits(e) {
            f.push(Field("d_at_layer", l));
        }
    }
    if e.uses("out") {
        f.extend([Field("d_out_src", aw), Field("d_out_n", w.vw)]);
    }
    f
}

/// The base-word fields of the engine's stacked weight banks, `(name,
/// bits)`: `d_cbase` and `d_sbase`, and `d_ebase` when a stacked bank has
/// `Row8` exponents (none when no bank holds two matrices).
fn bank_base_fields(e: &Engine) -> Vec<(&'static str, u32)> {
    let stacked: Vec<_> = e.banks.iter().filter(|b| b.mats.len() > 1).collect();
    ["d_cbase", "d_sbase", "d_ebase"]
        .into_iter()
        .enumerate()
        .filter_map(|(k, name)| {
            stacked
                .iter()
                .filter_map(|b| b.macros.get(k).map(|r| addr_bits(r.depth)))
                .max()
                .map(|bits| (name, bits))
        })
        .collect()
}

/// Bits of the layer field of the engine's attention instructions (`None`
/// when every unit serves one layer).
fn attn_layer_bits(e: &Engine) -> Option<u32> {
    let n = e.attns.iter().map(|a| a.layers).max().unwrap_or(1);
    (n > 1).then(|| addr_bits(n))
}

/// The bank select and base-word fields of an instruction reading matrix
/// `mat`.
fn mat_fields(e: &Engine, mat: usize) -> Vec<(&'static str, String)> {
    let m = &e.mats[mat];
    let mut d = vec![("d_mat", lit(addr_bits(e.banks.len()), m.bank as u64))];
    for (k, (name, b)) in bank_base_fields(e).into_iter().enumerate() {
        // A matrix of a bank without this macro reads none of it.
        let depth = m.macros.get(k).map_or(0, |r| r.depth);
        d.push((name, lit(b, (m.slot * depth) as u64)));
    }
    d
}

/// The KV region an attention unit serving `layers` layers uses: the
/// user's slot times its layers plus the instruction's layer (the plan
/// keeps users times layers within the unit's 8-bit slot field).
fn slot_of(layers: usize) -> String {
    if layers == 1 {
        "slot".into()
    } else {
        format!("slot * 8'd{layers} + at_layer8")
    }
}

/// Unit codes of `d_unit`.
fn unit_code(unit: &str) -> u64 {
    match unit {
        "matvec" => 1,
        "embed" => 2,
        "norm" => 3,
        "elem" => 4,
        "rope" => 5,
        "attn" => 6,
        "out" => 7,
        _ => 0,
    }
}

/// Decoder assignments of one instruction.
fn decode(i: &Instr, e: &Engine, w: &Widths) -> Vec<(&'static str, String)> {
    let aw = w.aw;
    let a = |v: u32| lit(aw, v as u64);
    let mut d = vec![("d_unit", lit(3, unit_code(i.unit())))];
    match i {
        Instr::Embed {
            mat,
            dst,
            cols,
            positions,
        } => {
            let m = &e.mats[*mat];
            d.extend(mat_fields(e, *mat));
            d.extend([
                ("d_asym", lit(1, m.asym as u64)),
                ("d_code_bias", lit(8, m.code_bias as u64)),
                ("d_em_dst", a(*dst)),
                ("d_em_cols", lit(20, *cols as u64)),
                ("d_em_pos", lit(1, *positions as u64)),
            ]);
        }
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
            d.extend(mat_fields(e, *mat));
            d.extend([
                ("d_asym", lit(1, m.asym as u64)),
                ("d_code_bias", lit(8, m.code_bias as u64)),
                ("d_mv_src", a(*src)),
                ("d_mv_dst", a(*dst)),
                ("d_mv_rows", lit(24, *rows as u64)),
                ("d_mv_cols", lit(20, *cols as u64)),
                ("d_mv_load", lit(1, *load as u64)),
                ("d_mv_has_bias", lit(1, bias.is_some() as u64)),
                (
                    "d_bias",
                    lit(addr_bits(e.biases.len()), bias.unwrap_or(0) as u64),
                ),
            ]);
        }
        Instr::Norm {
            src,
            dst,
            n,
            m_n,
            eps,
            gain,
            bias,
        } => {
            let gw = addr_bits(e.gains.len());
            d.extend([
                ("d_nm_src", a(*src)),
                ("d_nm_dst", a(*dst)),
                ("d_nm_n", lit(20, *n as u64)),
                ("d_nm_mn", lit(41, *m_n as u64)),
                ("d_nm_eps", lit(48, *eps as u64)),
                ("d_nm_layer", lit(1, bias.is_some() as u64)),
                ("d_gain", lit(gw, *gain as u64)),
                ("d_nbias", lit(gw, bias.unwrap_or(0) as u64)),
            ]);
        }
        Instr::Elem {
            op,
            a: x,
            b,
            dst,
            n,
        } => d.extend([
            ("d_el_op", lit(3, *op as u64)),
            ("d_el_a", a(*x)),
            ("d_el_b", a(*b)),
            ("d_el_dst", a(*dst)),
            ("d_el_n", lit(20, *n as u64)),
        ]),
        Instr::Rope {
            table,
            src,
            heads,
            head_dim,
            rot,
        } => d.extend([
            ("d_rp_src", a(*src)),
            ("d_rp_heads", lit(8, *heads as u64)),
            ("d_rp_hd", lit(10, *head_dim as u64)),
            ("d_rp_rot", lit(10, *rot as u64)),
            ("d_rope", lit(addr_bits(e.ropes.len()), *table as u64)),
        ]),
        Instr::Attn {
            unit,
            q,
            k,
            v,
            dst,
            layer,
        } => {
            d.extend([
                ("d_at_q", a(*q)),
                ("d_at_k", a(*k)),
                ("d_at_v", a(*v)),
                ("d_at_dst", a(*dst)),
                ("d_attn", lit(addr_bits(e.attns.len()), *unit as u64)),
            ]);
            if let Some(l) = attn_layer_bits(e) {
                d.push(("d_at_layer", lit(l, *layer as u64)));
            }
        }
        Instr::Out { src, n } => {
            d.extend([("d_out_src", a(*src)), ("d_out_n", lit(w.vw, *n as u64))])
        }
    }
    d
}

/// A bank of vector ROMs behind one read port: each ROM `{p}{k}` is enabled
/// when `sel` names it, and `out` multiplexes their data by `sel`.
#[allow(clippy::too_many_arguments)]
fn rom_bank(
    s: &mut String,
    roms: &[crate::plan::VecRom],
    p: &str,
    width: u32,
    en: &str,
    addr: &str,
    sel: &str,
    out: &str,
) {
    let sw = addr_bits(roms.len());
    for (k, r) in roms.iter().enumerate() {
        let ab = addr_bits(r.depth);
        let _ = writeln!(s, "  wire [{}:0] {p}{k}_q;  // {}", width - 1, r.name);
        let _ = writeln!(
            s,
            "  tls_rom #(.W({width}), .D({}), .AW({ab}), .FILE({{ROM_DIR, \"{}\"}})) {p}{k} (\n    .clk(clk), .en({en} && {sel} == {}), .addr({addr}[{}:0]), .data({p}{k}_q)\n  );",
            r.depth,
            r.file,
            lit(sw, k as u64),
            ab - 1
        );
    }
    let srcs: Vec<String> = (0..roms.len()).map(|k| format!("{p}{k}_q")).collect();
    mux(s, sel, out, &srcs, width);
}

/// Control ports of unit `u` (`go_u`, `done_u`, `busy_u_w` in the engine).
fn ctl_ports(u: &str) -> String {
    format!(".clk(clk), .rst(rst), .start(go_{u}), .done(done_{u}), .busy(busy_{u}_w)")
}

/// Scratchpad ports of unit `u`: read port a, read port b when it has one,
/// the write port.
fn spad_ports(u: &str, rb: bool) -> String {
    let b = if rb {
        format!(".rb_en({u}_rb_en), .rb_addr({u}_rb_addr), .rb_data(spad_b),\n    ")
    } else {
        String::new()
    };
    format!(".ra_en({u}_ra_en), .ra_addr({u}_ra_addr), .ra_data(spad_a),\n    {b}.w_en({u}_w_en), .w_addr({u}_w_addr), .w_data({u}_w_data)")
}

/// What every section of an engine module derives from the plan.
struct EngineCx<'a> {
    plan: &'a Plan,
    e: &'a Engine,
    w: Widths,
    aw: u32,
    lanes: usize,
    /// Rows per cycle of the matvec unit: row slices per weight ROM word
    /// (`tls_wfetch`'s `ROWS`), and the scratchpad's write line.
    rows: usize,
    /// Bits of one expanded row slice of a weight word (8-bit codes, 36-bit
    /// scale fields); the units read `rows` of them.
    wide_bits: usize,
    /// Units the program uses, in sequencer order.
    units: Vec<&'static str>,
    /// Address bits of the widest weight ROM, gain ROM and RoPE table.
    waw: u32,
    gaw: u32,
    taw: u32,
}

/// The module of engine `e`.
pub fn engine_module(plan: &Plan, e: &Engine) -> String {
    let w = plan.widths();
    let lanes = plan.lanes;
    let max_aw = |it: &mut dyn Iterator<Item = usize>| it.map(addr_bits).max().unwrap_or(1);
    let cx = EngineCx {
        plan,
        e,
        w,
        aw: w.aw,
        lanes,
        rows: plan.rows,
        wide_bits: crate::plan::expanded_slice_bits(lanes),
        units: ["matvec", "embed", "norm", "elem", "rope", "attn", "out"]
            .into_iter()
            .filter(|u| e.uses(u))
            .collect(),
        waw: max_aw(&mut e.mats.iter().map(|m| m.depth())),
        gaw: max_aw(&mut e.gains.iter().map(|g| g.depth)),
        taw: max_aw(&mut e.ropes.iter().map(|r| r.depth)),
    };
    let mut s = String::new();
    header(&mut s, &cx);
    decoder(&mut s, &cx);
    sequencer(&mut s, &cx);
    scratchpad(&mut s, &cx);
    weight_roms(&mut s, &cx);
    vector_roms(&mut s, &cx);
    unit_instances(&mut s, &cx);
    let _ = writeln!(s, "endmodule");
    s
}

/// The module header and its ports.
fn header(s: &mut String, cx: &EngineCx) {
    let EngineCx { e, w, aw, .. } = *cx;
    let name = format!("taalasc_engine_{}", e.index);
    let _ = writeln!(
        s,
        "// Engine {} ({}): {} instructions. Generated by taalasc; do not edit.",
        e.index,
        e.role,
        e.program.len()
    );
    // Engines without norm, elem or attention units read no tables.
    let tables = ["norm", "elem", "attn"].iter().any(|u| e.uses(u));
    let table_dir = if tables {
        "    parameter TABLE_DIR = \"rom/tables/\","
    } else {
        "    /* verilator lint_off UNUSEDPARAM */\n    parameter TABLE_DIR = \"rom/tables/\",\n    /* verilator lint_on UNUSEDPARAM */"
    };
    let _ = writeln!(
        s,
        "module {name} #(\n{table_dir}\n    parameter ROM_DIR = \"rom/\"\n) ("
    );
    let _ = writeln!(
        s,
        "    input  wire          clk,\n    input  wire          rst,"
    );
    let _ = writeln!(s, "    input  wire          start,");
    let _ = writeln!(
        s,
        "    input  wire [{}:0]    pc0,\n    input  wire [{}:0]    pc1,",
        PC_BITS - 1,
        PC_BITS - 1
    );
    let _ = writeln!(s, "    input  wire [{}:0]   token,", w.tw - 1);
    let _ = writeln!(s, "    input  wire [{}:0]   pos,", POS_BITS - 1);
    let _ = writeln!(s, "    input  wire [7:0]    slot,");
    let _ = writeln!(s, "    output reg           done,");
    // The copy path and the logits port move whole lines of `rows` words:
    // a line read, a masked line write, `o_count` words per beat.
    let (v, lmsb) = (cx.rows, cx.rows * W_BITS as usize - 1);
    let _ = writeln!(s, "    input  wire          x_re,\n    input  wire [{}:0]   x_raddr,\n    output wire [{lmsb}:0]   x_rdata,", aw - 1);
    let _ = writeln!(s, "    input  wire [{}:0]    x_we,\n    input  wire [{}:0]   x_waddr,\n    input  wire [{lmsb}:0]   x_wdata,", v - 1, aw - 1);
    let _ = writeln!(s, "    output wire          o_valid,\n    input  wire          o_ready,\n    output wire [{lmsb}:0]   o_data,\n    output wire [{}:0]    o_count,\n    output wire [{}:0]   o_index,\n    output wire          o_last,", count_bits(v) - 1, w.vw - 1);
    if cx.rows == 1 {
        let _ = writeln!(s, "    output wire          dbg_we,\n    output wire [{}:0]   dbg_addr,\n    output wire [{W_MSB}:0]   dbg_data,\n    output wire [{}:0]    dbg_pc,", aw - 1, PC_BITS - 1);
    } else {
        // Line writes: mask, line address, `rows` words.
        let _ = writeln!(s, "    output wire [{}:0]   dbg_we,\n    output wire [{}:0]   dbg_addr,\n    output wire [{}:0]   dbg_data,\n    output wire [{}:0]    dbg_pc,", cx.rows - 1, aw - 1, cx.rows * W_BITS as usize - 1, PC_BITS - 1);
    }
    let _ = writeln!(s, "    output wire          busy_mv,\n    output wire          busy_attn,\n    output wire          busy_nl\n);");
}

/// The program decoder: the fields of the instruction at `pc`.
fn decoder(s: &mut String, cx: &EngineCx) {
    let EngineCx { e, w, .. } = *cx;
    // Program decoder.
    let fl = fields(e, &w);
    let _ = writeln!(s, "\n  // ---- program decoder ----");
    let _ = writeln!(
        s,
        "  reg [{}:0] pc;\n  reg [{}:0] pc_end;\n  reg running;\n  reg issued;",
        PC_BITS - 1,
        PC_BITS - 1
    );
    for f in &fl {
        let _ = writeln!(s, "  reg [{}:0] {};", f.1 - 1, f.0);
    }
    let _ = writeln!(s, "  always @* begin");
    for f in &fl {
        let _ = writeln!(s, "    {} = {}'d0;", f.0, f.1);
    }
    let _ = writeln!(s, "    case (pc)");
    for (pc, ins) in e.program.iter().enumerate() {
        let _ = writeln!(
            s,
            "      {}: begin  // {}",
            lit(PC_BITS, pc as u64),
            e.nodes[pc]
        );
        for (k, v) in decode(ins, e, &w) {
            let _ = writeln!(s, "        {k} = {v};");
        }
        let _ = writeln!(s, "      end");
    }
    let _ = writeln!(s, "      default: ;\n    endcase\n  end");
}

/// The sequencer: issues one instruction at a time to its unit.
fn sequencer(s: &mut String, cx: &EngineCx) {
    let EngineCx { ref units, .. } = *cx;
    // Sequencer.
    let _ = writeln!(s, "\n  // ---- sequencer: one instruction at a time ----");
    for u in units {
        let _ = writeln!(s, "  reg go_{u};\n  wire done_{u};\n  wire busy_{u}_w;");
    }
    let dones: Vec<String> = units.iter().map(|u| format!("done_{u}")).collect();
    let _ = writeln!(s, "  wire unit_done = {};", or_all(&dones, 1));
    let _ = writeln!(s, "  always @(posedge clk) begin\n    if (rst) begin\n      pc <= {}'d0;\n      pc_end <= {}'d0;\n      running <= 1'b0;\n      issued <= 1'b0;\n      done <= 1'b0;", PC_BITS, PC_BITS);
    for u in units {
        let _ = writeln!(s, "      go_{u} <= 1'b0;");
    }
    let _ = writeln!(s, "    end else begin\n      done <= 1'b0;");
    for u in units {
        let _ = writeln!(s, "      go_{u} <= 1'b0;");
    }
    let _ = writeln!(s, "      if (start) begin\n        pc <= pc0;\n        pc_end <= pc1;\n        running <= 1'b1;\n        issued <= 1'b0;\n      end else if (running) begin\n        if (!issued) begin\n          if (pc == pc_end) begin\n            running <= 1'b0;\n            done <= 1'b1;\n          end else begin\n            issued <= 1'b1;");
    for u in units {
        let _ = writeln!(s, "            go_{u} <= (d_unit == 3'd{});", unit_code(u));
    }
    let _ = writeln!(s, "          end\n        end else if (unit_done) begin\n          issued <= 1'b0;\n          pc <= pc + 1'b1;\n        end\n      end\n    end\n  end");
}

/// Units that read scratchpad lines and write masked lines (`V` lanes).
const LINE_UNITS: [&str; 5] = ["elem", "norm", "rope", "embed", "attn"];

/// The scratchpad's line read outputs (`V` words each): read by the
/// vector-wide units and the matvec unit's load (port b: those with two
/// operands, and the load), unused without one.
fn spad_lines(s: &mut String, v: usize, units: &[&str]) {
    let la: Vec<&str> = LINE_UNITS.iter().copied().chain(["matvec"]).collect();
    for (port, users) in [
        ("la", &la[..]),
        ("lb", &["elem", "rope", "matvec", "attn"][..]),
    ] {
        let decl = format!("  wire [{}:0] spad_{port};", v * W_BITS as usize - 1);
        if units.iter().any(|u| users.contains(u)) {
            let _ = writeln!(s, "{decl}");
        } else {
            let _ = writeln!(
                s,
                "  /* verilator lint_off UNUSEDSIGNAL */\n{decl}\n  /* verilator lint_on UNUSEDSIGNAL */"
            );
        }
    }
}

/// The scratchpad (2 read ports, 1 write port) and the units' port signals.
fn scratchpad(s: &mut String, cx: &EngineCx) {
    if cx.rows > 1 {
        return scratchpad_lines(s, cx);
    }
    let EngineCx {
        e, aw, ref units, ..
    } = *cx;
    // Scratchpad port signals of every unit.
    let _ = writeln!(
        s,
        "\n  // ---- scratchpad (2 read ports, 1 write port) ----"
    );
    let mut ra_en = vec!["x_re".to_string()];
    let mut ra_addr = vec![format!("(x_re ? x_raddr : {aw}'d0)")];
    let mut rb_en: Vec<String> = Vec::new();
    let mut rb_addr: Vec<String> = Vec::new();
    let mut w_en: Vec<String> = Vec::new();
    let mut w_addr: Vec<String> = Vec::new();
    let mut w_data: Vec<String> = Vec::new();
    for u in units {
        let _ = writeln!(s, "  wire {u}_ra_en;\n  wire [{}:0] {u}_ra_addr;", aw - 1);
        ra_en.push(format!("{u}_ra_en"));
        ra_addr.push(format!("{u}_ra_addr"));
        if matches!(*u, "elem" | "matvec" | "rope" | "attn") {
            let _ = writeln!(s, "  wire {u}_rb_en;\n  wire [{}:0] {u}_rb_addr;", aw - 1);
            rb_en.push(format!("{u}_rb_en"));
            rb_addr.push(format!("{u}_rb_addr"));
        }
        if *u != "out" {
            let _ = writeln!(
                s,
                "  wire {u}_w_en;\n  wire [{}:0] {u}_w_addr;\n  wire [{W_MSB}:0] {u}_w_data;",
                aw - 1
            );
            w_en.push(format!("{u}_w_en"));
            w_addr.push(format!("{u}_w_addr"));
            w_data.push(format!("{u}_w_data"));
        }
    }
    let _ = writeln!(s, "  wire [{W_MSB}:0] spad_a;\n  wire [{W_MSB}:0] spad_b;");
    spad_lines(s, 1, units);
    for u in LINE_UNITS.iter().filter(|u| units.contains(u)) {
        // One lane: a line unit's mask is its write enable.
        let _ = writeln!(
            s,
            "  /* verilator lint_off UNUSEDSIGNAL */\n  wire {u}_w_mask;\n  /* verilator lint_on UNUSEDSIGNAL */"
        );
    }
    let _ = writeln!(s, "  wire u_we = {};", or_all(&w_en, 1));
    let _ = writeln!(
        s,
        "  wire [{}:0] u_waddr = {};",
        aw - 1,
        or_all(&w_addr, aw)
    );
    let _ = writeln!(
        s,
        "  wire [{W_MSB}:0] u_wdata = {};",
        or_all(&w_data, W_BITS)
    );
    let _ = writeln!(
        s,
        "  tls_sram2r #(.W({W_BITS}), .D({}), .AW({aw})) spad (\n    .clk(clk),\n    .we(u_we | x_we),\n    .waddr(x_we ? x_waddr : u_waddr),\n    .wdata(x_we ? x_wdata : u_wdata),\n    .rea({}),\n    .raddra({}),\n    .rdataa(spad_a),\n    .rlinea(spad_la),\n    .reb({}),\n    .raddrb({}),\n    .rdatab(spad_b),\n    .rlineb(spad_lb)\n  );",
        e.spad_words,
        ra_en.join(" | "),
        ra_addr.join(" | "),
        or_all(&rb_en, 1),
        or_all(&rb_addr, aw),
    );
    let _ = writeln!(s, "  assign x_rdata = spad_a;");
    let _ = writeln!(s, "  assign dbg_we = u_we;\n  assign dbg_addr = u_waddr;\n  assign dbg_data = u_wdata;\n  assign dbg_pc = pc;");
}

/// The scratchpad with a line write port of `rows` words (`rows > 1`): the
/// matvec unit writes whole lines (mask, aligned address, `rows` words);
/// every other unit's one-word write, and the copy path's, becomes a line
/// write with a one-hot mask at `addr & ~(rows - 1)`.
fn scratchpad_lines(s: &mut String, cx: &EngineCx) {
    let EngineCx {
        e,
        aw,
        rows: v,
        ref units,
        ..
    } = *cx;
    let lw = v * W_BITS as usize;
    let lg = v.trailing_zeros();
    let _ = writeln!(
        s,
        "\n  // ---- scratchpad (2 read ports, 1 line write port of {v} words) ----"
    );
    let mut ra_en = vec!["x_re".to_string()];
    let mut ra_addr = vec![format!("(x_re ? x_raddr : {aw}'d0)")];
    let mut rb_en: Vec<String> = Vec::new();
    let mut rb_addr: Vec<String> = Vec::new();
    let mut w_en: Vec<String> = Vec::new();
    let mut w_addr: Vec<String> = Vec::new();
    let mut w_data: Vec<String> = Vec::new();
    let _ = writeln!(s, "  wire x_w = |x_we;");
    for u in units {
        let _ = writeln!(s, "  wire {u}_ra_en;\n  wire [{}:0] {u}_ra_addr;", aw - 1);
        ra_en.push(format!("{u}_ra_en"));
        ra_addr.push(format!("{u}_ra_addr"));
        if matches!(*u, "elem" | "matvec" | "rope" | "attn") {
            let _ = writeln!(s, "  wire {u}_rb_en;\n  wire [{}:0] {u}_rb_addr;", aw - 1);
            rb_en.push(format!("{u}_rb_en"));
            rb_addr.push(format!("{u}_rb_addr"));
        }
        if *u == "matvec" {
            let _ = writeln!(
                s,
                "  wire [{}:0] {u}_w_en;\n  wire [{}:0] {u}_w_addr;\n  wire [{}:0] {u}_w_data;",
                v - 1,
                aw - 1,
                lw - 1
            );
        } else if LINE_UNITS.contains(u) {
            // The vector-wide units write masked lines.
            let _ = writeln!(
                s,
                "  wire {u}_w_en;\n  wire [{}:0] {u}_w_mask;\n  wire [{}:0] {u}_w_addr;\n  wire [{}:0] {u}_w_data;",
                v - 1,
                aw - 1,
                lw - 1
            );
        } else if *u != "out" {
            let _ = writeln!(
                s,
                "  wire {u}_w_en;\n  wire [{}:0] {u}_w_addr;\n  wire [{W_MSB}:0] {u}_w_data;",
                aw - 1
            );
            w_en.push(format!("{u}_w_en"));
            w_addr.push(format!("{u}_w_addr"));
            w_data.push(format!("{u}_w_data"));
        }
    }
    // One-word reads: units at the line width read lines, so these may be
    // unused.
    let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire [{W_MSB}:0] spad_a;\n  wire [{W_MSB}:0] spad_b;\n  /* verilator lint_on UNUSEDSIGNAL */");
    spad_lines(s, v, units);
    // One-word writes of the other units (one unit runs at a time; idle
    // units drive zeros).
    let _ = writeln!(s, "  wire u_we = {};", or_all(&w_en, 1));
    let _ = writeln!(
        s,
        "  wire [{}:0] u_waddr = {};",
        aw - 1,
        or_all(&w_addr, aw)
    );
    let _ = writeln!(
        s,
        "  wire [{W_MSB}:0] u_wdata = {};",
        or_all(&w_data, W_BITS)
    );
    let hi = aw - 1;
    let line = |a: &str| format!("{{{a}[{hi}:{lg}], {lg}'d0}}");
    let onehot = |a: &str| format!("({}'d1 << {a}[{}:0])", v, lg - 1);
    let (mv_we, mv_addr, mv_data) = if units.contains(&"matvec") {
        (
            "matvec_w_en".to_string(),
            "matvec_w_addr".to_string(),
            "matvec_w_data".to_string(),
        )
    } else {
        (format!("{v}'d0"), format!("{aw}'d0"), format!("{lw}'d0"))
    };
    // Masked line writes of the vector-wide units (idle ones drive zeros).
    let lu: Vec<&str> = LINE_UNITS
        .iter()
        .copied()
        .filter(|u| units.contains(u))
        .collect();
    let (el_we, el_addr, el_data) = if lu.is_empty() {
        (format!("{v}'d0"), format!("{aw}'d0"), format!("{lw}'d0"))
    } else {
        let we: Vec<String> = lu
            .iter()
            .map(|u| format!("({{{v}{{{u}_w_en}}}} & {u}_w_mask)"))
            .collect();
        let ad: Vec<String> = lu.iter().map(|u| format!("{u}_w_addr")).collect();
        let da: Vec<String> = lu.iter().map(|u| format!("{u}_w_data")).collect();
        (we.join(" | "), ad.join(" | "), da.join(" | "))
    };
    let _ = writeln!(
        s,
        "  wire [{}:0] l_we = ({mv_we}) | {el_we} | ({{{v}{{u_we}}}} & {});",
        v - 1,
        onehot("u_waddr")
    );
    let _ = writeln!(
        s,
        "  wire [{}:0] l_waddr = {mv_addr} | {el_addr} | (u_we ? {} : {aw}'d0);",
        aw - 1,
        line("u_waddr")
    );
    let _ = writeln!(
        s,
        "  wire [{}:0] l_wdata = {mv_data} | {el_data} | {{{v}{{u_wdata}}}};",
        lw - 1
    );
    let _ = writeln!(
        s,
        "  tls_sram2r #(.W({W_BITS}), .D({}), .AW({aw}), .V({v})) spad (\n    .clk(clk),\n    .we(x_w ? x_we : l_we),\n    .waddr(x_w ? {} : l_waddr),\n    .wdata(x_w ? x_wdata : l_wdata),\n    .rea({}),\n    .raddra({}),\n    .rdataa(spad_a),\n    .rlinea(spad_la),\n    .reb({}),\n    .raddrb({}),\n    .rdatab(spad_b),\n    .rlineb(spad_lb)\n  );",
        e.spad_words,
        line("x_waddr"),
        ra_en.join(" | "),
        ra_addr.join(" | "),
        or_all(&rb_en, 1),
        or_all(&rb_addr, aw),
    );
    // The copy path reads and writes whole lines (masked: the last line of
    // a vector may be partial).
    let _ = writeln!(s, "  assign x_rdata = spad_la;");
    let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire [{}:0] unused_x_lane = x_waddr[{}:0];  // copies move whole lines\n  /* verilator lint_on UNUSEDSIGNAL */", lg - 1, lg - 1);
    let _ = writeln!(s, "  assign dbg_we = l_we;\n  assign dbg_addr = l_waddr;\n  assign dbg_data = l_wdata;\n  assign dbg_pc = pc;");
}

/// The weight ROMs behind one read port: per weight bank its packed macros
/// (codes, scales, `Row8` exponents; the bank's matrices stacked) and the
/// `tls_wfetch` adapter that expands them to the units' word.
fn weight_roms(s: &mut String, cx: &EngineCx) {
    let EngineCx {
        e,
        lanes,
        rows,
        wide_bits,
        waw,
        ..
    } = *cx;
    if e.mats.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n  // ---- weight ROMs (packed macros + tls_wfetch per bank of stacked matrices) ----"
    );
    let mut ens = Vec::new();
    let mut addrs = Vec::new();
    let mut grps = Vec::new();
    let mut chunks = Vec::new();
    for (u, p) in [("matvec", "mv"), ("embed", "em")] {
        if e.uses(u) {
            ens.push(format!("{p}_wr_en"));
            addrs.push(format!("{p}_wr_addr"));
            grps.push(format!("{p}_wr_grp"));
            chunks.push(format!("{p}_wr_chunk"));
            let _ = writeln!(
                s,
                "  wire {p}_wr_en;\n  wire [{}:0] {p}_wr_addr;\n  wire [23:0] {p}_wr_grp;\n  wire [19:0] {p}_wr_chunk;",
                waw - 1
            );
        }
    }
    let _ = writeln!(
        s,
        "  wire w_en = {};\n  wire [{}:0] w_addr = {};\n  wire [23:0] w_grp = {};\n  wire [19:0] w_chunk = {};",
        ens.join(" | "),
        waw - 1,
        addrs.join(" | "),
        grps.join(" | "),
        chunks.join(" | ")
    );
    // The units read `rows` expanded row slices per word.
    let word = rows * wide_bits;
    let _ = writeln!(s, "  reg [{}:0] w_data;", word - 1);
    let mw = addr_bits(e.banks.len());
    let mut unused = Vec::new();
    for (k, bank) in e.banks.iter().enumerate() {
        // Every member has the representative's shape and layout.
        let m = &e.mats[bank.mats[0]];
        assert_eq!(
            m.slices, rows,
            "{}: ROM row slices differ from the plan's rows",
            m.weight
        );
        let sl = &m.scales;
        let (caw, gaw) = (addr_bits(m.depth()), addr_bits(m.groups));
        let chw = addr_bits(m.chunks);
        let saw = addr_bits(m.macros[1].depth);
        let members: Vec<String> = bank
            .mats
            .iter()
            .map(|&i| e.mats[i].weight.clone())
            .collect();
        let _ = writeln!(
            s,
            "  // {} ({}): {}",
            members.join(", "),
            m.format,
            bank.macros
                .iter()
                .map(|r| format!("{} {} x {}", r.kind, r.depth, r.width))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "  wire [{}:0] m{k}_w;\n  wire m{k}_en = w_en && d_mat == {};",
            word - 1,
            lit(mw, k as u64)
        );
        let stacked = bank.mats.len() > 1;
        for (r, (p, aw)) in bank.macros.iter().zip([("c", caw), ("s", saw), ("e", gaw)]) {
            let _ = writeln!(
                s,
                "  wire m{k}_{p}_en;\n  wire [{}:0] m{k}_{p}_addr;\n  wire [{}:0] m{k}_{p}_q;",
                aw - 1,
                r.width - 1
            );
            // A stacked bank: the adapter's address within the matrix plus
            // the matrix's first word in this macro.
            let (rom_aw, rom_addr) = if stacked {
                let raw = addr_bits(r.depth);
                let local = if raw > aw {
                    format!("{{{}'d0, m{k}_{p}_addr}}", raw - aw)
                } else {
                    format!("m{k}_{p}_addr")
                };
                let _ = writeln!(
                    s,
                    "  wire [{}:0] m{k}_{p}_full = {local} + d_{p}base[{}:0];",
                    raw - 1,
                    raw - 1
                );
                (raw, format!("m{k}_{p}_full"))
            } else {
                (aw, format!("m{k}_{p}_addr"))
            };
            let _ = writeln!(
                s,
                "  tls_rom #(.W({}), .D({}), .AW({rom_aw}), .FILE({{ROM_DIR, \"{}\"}})) m{k}{p} (\n    .clk(clk), .en(m{k}_{p}_en), .addr({rom_addr}), .data(m{k}_{p}_q)\n  );",
                r.width, r.depth, r.file
            );
        }
        let kinds = 1 + m.asym as usize;
        let e_data = if sl.row8 {
            format!("m{k}_e_q")
        } else {
            let _ = writeln!(s, "  wire m{k}_e_en;\n  wire [{}:0] m{k}_e_addr;", gaw - 1);
            unused.push(format!("m{k}_e_en, m{k}_e_addr"));
            format!("{}'d0", m.slices * 8 * kinds)
        };
        let _ = writeln!(
            s,
            "  tls_wfetch #(.LANES({lanes}), .ROWS({}), .B({}), .COLS({}), .ASYM({}), .SF({}), .DSIGNED({}), .SMODE({}), .GPR({}), .CPGL({}), .SPW({}), .GLB({}), .CAW({caw}), .GAW({gaw}), .CHW({chw}), .SAW({saw})) m{k}_f (\n    .clk(clk), .rst(rst), .en(m{k}_en), .addr(w_addr[{}:0]), .grp(w_grp[{}:0]), .chunk(w_chunk[{}:0]),\n    .c_en(m{k}_c_en), .c_addr(m{k}_c_addr), .c_data(m{k}_c_q),\n    .s_en(m{k}_s_en), .s_addr(m{k}_s_addr), .s_data(m{k}_s_q),\n    .e_en(m{k}_e_en), .e_addr(m{k}_e_addr), .e_data({e_data}),\n    .data(m{k}_w)\n  );",
            m.slices,
            m.bits,
            m.cols,
            m.asym as u8,
            sl.row8 as u8,
            !m.asym as u8,
            sl.mode,
            sl.words_per_row,
            sl.cpg_log2,
            sl.per_word,
            sl.blocks_log2,
            caw - 1,
            gaw - 1,
            chw - 1
        );
    }
    let srcs: Vec<String> = (0..e.banks.len()).map(|k| format!("m{k}_w")).collect();
    mux(s, "d_mat", "w_data", &srcs, word as u32);
    // Address bits above every matrix's own (the widest matrix uses them
    // all; the others ignore them), and the unused exponent ports of SF16
    // matrices.
    unused.extend(["w_addr", "w_grp", "w_chunk"].map(String::from));
    let _ = writeln!(
        s,
        "  /* verilator lint_off UNUSEDSIGNAL */\n  wire unused_w = &{{1'b0, {}}};\n  /* verilator lint_on UNUSEDSIGNAL */",
        unused.join(", ")
    );
}

/// The linear bias, norm gain/bias and RoPE table ROMs.
fn vector_roms(s: &mut String, cx: &EngineCx) {
    let EngineCx {
        e, gaw, taw, rows, ..
    } = *cx;
    // Linear bias ROMs: one word of `rows` biases per row group.
    if e.uses("matvec") {
        let bw = rows as u32 * W_BITS;
        let _ = writeln!(s, "\n  // ---- linear bias ROMs ----");
        let _ = writeln!(
            s,
            "  wire br_en;\n  wire [23:0] br_addr;\n  reg [{}:0] br_data;",
            bw - 1
        );
        rom_bank(
            s, &e.biases, "b", bw, "br_en", "br_addr", "d_bias", "br_data",
        );
    }
    // Gain ROMs.
    if e.uses("norm") {
        let gw = addr_bits(e.gains.len());
        // A line of `rows` Q15.16 values per word.
        let lw = 32 * rows as u32;
        let _ = writeln!(
            s,
            "\n  // ---- norm gain / bias ROMs (Q15.16, {rows} per word) ----"
        );
        let _ = writeln!(s, "  wire g_en;\n  wire [{}:0] g_addr;\n  reg [{}:0] g_data;\n  wire nb_en;\n  wire [{}:0] nb_addr;\n  reg [{}:0] nb_data;", gaw - 1, lw - 1, gaw - 1, lw - 1);
        for (k, g) in e.gains.iter().enumerate() {
            assert_eq!(g.width, lw, "{}: gain ROM word is not a line", g.name);
            let ab = addr_bits(g.depth);
            let sel_g = format!("(g_en && d_gain == {})", lit(gw, k as u64));
            let sel_b = format!("(nb_en && d_nm_layer && d_nbias == {})", lit(gw, k as u64));
            let _ = writeln!(s, "  wire [{}:0] g{k}_q;  // {}", lw - 1, g.name);
            let _ = writeln!(s, "  tls_rom #(.W({lw}), .D({}), .AW({ab}), .FILE({{ROM_DIR, \"{}\"}})) g{k} (\n    .clk(clk), .en({sel_g} || {sel_b}), .addr({sel_g} ? g_addr[{}:0] : nb_addr[{}:0]), .data(g{k}_q)\n  );", g.depth, g.file, ab - 1, ab - 1);
        }
        let srcs: Vec<String> = (0..e.gains.len()).map(|k| format!("g{k}_q")).collect();
        mux(s, "d_gain", "g_data", &srcs, lw);
        mux(s, "d_nbias", "nb_data", &srcs, lw);
    }
    // RoPE tables.
    if e.uses("rope") {
        // A line of `rows` entries per word.
        let tw = 32 * rows as u32;
        let _ = writeln!(
            s,
            "\n  // ---- RoPE tables {{cos, sin}} per (position, pair), {rows} per word ----"
        );
        let _ = writeln!(
            s,
            "  wire t_en;\n  wire [{}:0] t_addr;\n  reg [{}:0] t_data;",
            taw - 1,
            tw - 1
        );
        for r in &e.ropes {
            assert_eq!(r.width, tw, "{}: RoPE table word is not a line", r.name);
        }
        rom_bank(s, &e.ropes, "r", tw, "t_en", "t_addr", "d_rope", "t_data");
    }
}

/// The unit instances and the engine's activity flags.
fn unit_instances(s: &mut String, cx: &EngineCx) {
    let EngineCx {
        plan,
        e,
        w,
        aw,
        lanes,
        rows,
        waw,
        gaw,
        taw,
        ..
    } = *cx;
    let v = rows;
    // `.ROWS(R)` only when R > 1 (the units' default is 1).
    let rows_p = if rows > 1 {
        format!(".ROWS({rows}), ")
    } else {
        String::new()
    };
    // Unit instances.
    let _ = writeln!(s, "\n  // ---- units ----");
    let mut busy_mv = Vec::new();
    let mut busy_nl = Vec::new();
    let mut busy_attn = Vec::new();
    if e.uses("matvec") {
        // The load reads whole scratchpad lines (V = ROWS words).
        let (ctl, spad) = (ctl_ports("matvec"), spad_ports("matvec", true));
        let spad = spad
            .replace("spad_a", "spad_la")
            .replace("spad_b", "spad_lb");
        let _ = writeln!(s, "  wire mv_busy_load;\n  wire mv_mac_active;");
        let _ = writeln!(
            s,
            "  tls_matvec #(.LANES({lanes}), {rows_p}.AW({aw}), .XB({}), .WAW({waw}), .RW(24)) u_matvec (\n    {ctl},\n    .busy_load(mv_busy_load), .mac_active(mv_mac_active),\n    .cfg_src(d_mv_src), .cfg_dst(d_mv_dst), .cfg_rows(d_mv_rows), .cfg_cols(d_mv_cols),\n    .cfg_load(d_mv_load), .cfg_asym(d_asym), .cfg_code_bias(d_code_bias), .cfg_has_bias(d_mv_has_bias),\n    {spad},\n    .wr_en(mv_wr_en), .wr_addr(mv_wr_addr), .wr_grp(mv_wr_grp), .wr_chunk(mv_wr_chunk), .wr_data(w_data),\n    .br_en(br_en), .br_addr(br_addr), .br_data(br_data)\n  );",
            e.max_blocks.max(1)
        );
        busy_mv.push("(busy_matvec_w & ~mv_busy_load)".to_string());
        busy_nl.push("mv_busy_load".to_string());
    }
    if e.uses("embed") {
        // Line reads (port a) and masked line writes of V = ROWS words.
        let (ctl, spad) = (ctl_ports("embed"), spad_ports("embed", false));
        let spad = spad.replace("spad_a", "spad_la");
        let v_p = if rows > 1 {
            format!(".V({rows}), ")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  tls_embed #(.LANES({lanes}), {rows_p}{v_p}.AW({aw}), .WAW({waw})) u_embed (\n    {ctl},\n    .cfg_dst(d_em_dst), .cfg_cols(d_em_cols), .cfg_row(d_em_pos ? {{{}'d0, pos}} : {{{}'d0, token}}),\n    .cfg_add(d_em_pos), .cfg_asym(d_asym), .cfg_code_bias(d_code_bias),\n    {spad},\n    .w_mask(embed_w_mask),\n    .wr_en(em_wr_en), .wr_addr(em_wr_addr), .wr_grp(em_wr_grp), .wr_chunk(em_wr_chunk), .wr_data(w_data)\n  );",
            24 - POS_BITS,
            24 - w.tw
        );
        busy_nl.push("busy_embed_w".to_string());
    }
    if e.uses("norm") {
        let (ctl, spad) = (ctl_ports("norm"), spad_ports("norm", false));
        let _ = writeln!(
            s,
            "  tls_norm #(.AW({aw}), .GAW({gaw}), .V({rows}), .TABLE_DIR(TABLE_DIR)) u_norm (\n    {ctl},\n    .cfg_src(d_nm_src), .cfg_dst(d_nm_dst), .cfg_n(d_nm_n), .cfg_mn(d_nm_mn), .cfg_eps(d_nm_eps), .cfg_layer(d_nm_layer),\n    {}, .w_mask(norm_w_mask),\n    .g_en(g_en), .g_addr(g_addr), .g_data(g_data),\n    .b_en(nb_en), .b_addr(nb_addr), .b_data(nb_data)\n  );",
            spad.replace("spad_a", "spad_la")
        );
        busy_nl.push("busy_norm_w".to_string());
    }
    if e.uses("elem") {
        let (ctl, spad) = (ctl_ports("elem"), spad_ports("elem", true));
        let _ = writeln!(
            s,
            "  tls_elem #(.AW({aw}), .V({}), .TABLE_DIR(TABLE_DIR)) u_elem (\n    {ctl},\n    .cfg_op(d_el_op), .cfg_a(d_el_a), .cfg_b(d_el_b), .cfg_dst(d_el_dst), .cfg_n(d_el_n),\n    {},\n    .w_mask(elem_w_mask)\n  );",
            cx.rows,
            spad.replace("spad_a", "spad_la").replace("spad_b", "spad_lb")
        );
        busy_nl.push("busy_elem_w".to_string());
    }
    if e.uses("rope") {
        let (ctl, spad) = (ctl_ports("rope"), spad_ports("rope", true));
        let _ = writeln!(
            s,
            "  tls_rope #(.AW({aw}), .TAW({taw}), .V({rows})) u_rope (\n    {ctl},\n    .cfg_src(d_rp_src), .cfg_n_heads(d_rp_heads), .cfg_hd(d_rp_hd), .cfg_rot(d_rp_rot), .cfg_pos(pos),\n    {}, .w_mask(rope_w_mask),\n    .t_en(t_en), .t_addr(t_addr), .t_data(t_data)\n  );",
            spad.replace("spad_a", "spad_la").replace("spad_b", "spad_lb")
        );
        busy_nl.push("busy_rope_w".to_string());
    }
    if e.uses("attn") {
        let aw_sel = addr_bits(e.attns.len());
        if let Some(l) = attn_layer_bits(e) {
            let v = if l < 8 {
                format!("{{{}'d0, d_at_layer}}", 8 - l)
            } else {
                "d_at_layer".into()
            };
            let _ = writeln!(s, "  wire [7:0] at_layer8 = {v};");
        }
        let mut ors = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        // Line reads and masked line writes of `rows` words.
        let lw = rows * W_BITS as usize;
        for (k, a) in e.attns.iter().enumerate() {
            let _ = writeln!(s, "  wire a{k}_done, a{k}_busy, a{k}_ra_en, a{k}_rb_en, a{k}_w_en;\n  wire [{}:0] a{k}_ra_addr, a{k}_rb_addr, a{k}_w_addr;\n  wire [{}:0] a{k}_w_mask;\n  wire [{}:0] a{k}_w_data;", aw - 1, rows - 1, lw - 1);
            let _ = writeln!(
                s,
                "  // {}\n  tls_attn #(.AW({aw}), .HD({}), .NH({}), .NKV({}), .CTX({}), .SLOTS({}), .WINDOW({}), .SCALE_MANT({}), .SCALE_SHIFT({}){}, .V({rows}), .TABLE_DIR(TABLE_DIR)) u_attn{k} (\n    .clk(clk), .rst(rst), .start(go_attn && d_attn == {}), .done(a{k}_done), .busy(a{k}_busy),\n    .cfg_q(d_at_q), .cfg_k(d_at_k), .cfg_v(d_at_v), .cfg_dst(d_at_dst), .cfg_pos(pos), .cfg_slot({}),\n    .ra_en(a{k}_ra_en), .ra_addr(a{k}_ra_addr), .ra_data(spad_la),\n    .rb_en(a{k}_rb_en), .rb_addr(a{k}_rb_addr), .rb_data(spad_lb),\n    .w_en(a{k}_w_en), .w_mask(a{k}_w_mask), .w_addr(a{k}_w_addr), .w_data(a{k}_w_data)\n  );",
                a.node, a.head_dim, a.heads, a.kv_heads, plan.context, plan.users * a.layers, a.window, a.scale_mant, a.scale_shift, attn_par_params(&a.par), lit(aw_sel, k as u64), slot_of(a.layers)
            );
            ors.0.push(format!("a{k}_done"));
            ors.1.push(format!("a{k}_busy"));
            ors.2.push(format!("a{k}_ra_en"));
            ors.3.push(format!("a{k}_ra_addr"));
            ors.4.push(format!("a{k}_w_en"));
            ors.5.push(format!("(a{k}_w_data)"));
            let _ = &ors;
        }
        let w_addrs: Vec<String> = (0..e.attns.len()).map(|k| format!("a{k}_w_addr")).collect();
        let w_masks: Vec<String> = (0..e.attns.len()).map(|k| format!("a{k}_w_mask")).collect();
        let _ = writeln!(s, "  assign attn_w_mask = {};", w_masks.join(" | "));
        let rb: Vec<String> = (0..e.attns.len()).map(|k| format!("a{k}_rb_en")).collect();
        let rba: Vec<String> = (0..e.attns.len())
            .map(|k| format!("a{k}_rb_addr"))
            .collect();
        let _ = writeln!(
            s,
            "  assign attn_rb_en = {};\n  assign attn_rb_addr = {};",
            rb.join(" | "),
            rba.join(" | ")
        );
        let _ = writeln!(s, "  assign done_attn = {};\n  assign busy_attn_w = {};\n  assign attn_ra_en = {};\n  assign attn_ra_addr = {};\n  assign attn_w_en = {};\n  assign attn_w_addr = {};\n  assign attn_w_data = {};",
            ors.0.join(" | "), ors.1.join(" | "), ors.2.join(" | "), ors.3.join(" | "), ors.4.join(" | "), w_addrs.join(" | "), ors.5.join(" | "));
        busy_attn.push("busy_attn_w".to_string());
    }
    if e.uses("out") {
        let _ = writeln!(
            s,
            "  tls_out #(.AW({aw}), .VW({}), .V({v}), .CW({})) u_out (\n    .clk(clk), .rst(rst), .start(go_out), .cfg_src(d_out_src), .cfg_n(d_out_n),\n    .done(done_out), .busy(busy_out_w),\n    .ra_en(out_ra_en), .ra_addr(out_ra_addr), .ra_data({}),\n    .o_valid(o_valid), .o_ready(o_ready), .o_data(o_data), .o_count(o_count), .o_index(o_index), .o_last(o_last)\n  );",
            w.vw,
            count_bits(v),
            if v > 1 { "spad_la" } else { "spad_a" }
        );
    } else {
        let _ = writeln!(s, "  assign o_valid = 1'b0;\n  assign o_data = {}'d0;\n  assign o_count = {}'d0;\n  assign o_index = {}'d0;\n  assign o_last = 1'b0;", v * W_BITS as usize, count_bits(v), w.vw);
        let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire unused_ready = o_ready;\n  /* verilator lint_on UNUSEDSIGNAL */");
    }
    if !e.uses("embed") {
        let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire [{}:0] unused_token = token;\n  /* verilator lint_on UNUSEDSIGNAL */", w.tw - 1);
    }
    if !e.uses("attn") {
        let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire [7:0] unused_slot = slot;\n  /* verilator lint_on UNUSEDSIGNAL */");
    }
    if !e.uses("rope") && !e.uses("attn") && !e.uses("embed") {
        let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire [{}:0] unused_pos = pos;\n  /* verilator lint_on UNUSEDSIGNAL */", POS_BITS - 1);
    }
    let _ = writeln!(
        s,
        "  assign busy_mv = {};\n  assign busy_attn = {};\n  assign busy_nl = {};",
        or_all(&busy_mv, 1),
        or_all(&busy_attn, 1),
        or_all(&busy_nl, 1)
    );
    // Signals some configurations leave unread (no linear biases, no
    // second read port user, activity flags kept for debugging).
    let mut sink = vec!["spad_b".to_string()];
    if e.uses("matvec") {
        sink.extend(["mv_mac_active", "br_en", "br_addr"].map(String::from));
    }
    if e.uses("out") {
        sink.push("busy_out_w".into());
    }
    let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire unused_ok = &{{1'b0, {}}};\n  /* verilator lint_on UNUSEDSIGNAL */", sink.join(", "));
}

/// The `tls_attn` parallelism parameters (none for the serial unit, whose
/// defaults they are).
fn attn_par_params(p: &crate::plan::AttnParallel) -> String {
    if p.is_serial() {
        String::new()
    } else {
        format!(
            ", .HP({}), .KP({}), .BPC({})",
            p.heads, p.positions, p.blocks
        )
    }
}
