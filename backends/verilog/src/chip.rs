//! The chip top (RFC 0003 §Token pipeline) and, for a model cut across
//! chips, each chip's top plus the board that links them (RFC 0004).
//!
//! A chip runs a contiguous range of the plan's pipeline stages. The first
//! chip takes tokens; the last streams logits. Between chips, the last
//! stage's output words leave through a link port (`lo_*`) and enter the
//! next chip's first stage through its link port (`li_*`), behind a
//! two-word header: `{seq[15:0], pos[15:0]}`, then `{err, slot[7:0],
//! token[22:0]}`. An error header (a bad token found by the first chip)
//! carries no payload and becomes the last chip's error beat.

use crate::plan::{addr_bits, Plan, Stage, Widths, PC_BITS, POS_BITS};
use crate::vlog::{
    clock_ports, conflict_port, debug_ports, items, link_in_ports, link_out_ports, lit,
    logits_out_ports, mux, perf_ports, port_lines, token_in_ports, Dir, Item, W_MSB,
};
use std::fmt::Write as _;
use std::ops::Range;
use taalasc_numerics::W_BITS;

/// Bits of the token field in a link header.
pub const LINK_TOKEN_BITS: u32 = 23;

/// One chip of a board: the pipeline stages it runs (indices into
/// [`Plan::stages`]), the engines they run on and its module name.
#[derive(Clone, Debug)]
pub struct ChipPart {
    /// The chip's top module name.
    pub name: String,
    /// The pipeline stages it runs (indices into [`Plan::stages`]).
    pub stages: Range<usize>,
    /// Engines of the stages, in increasing order.
    pub engines: Vec<usize>,
}

impl ChipPart {
    /// The chip `name` running `stages` of `plan`.
    pub fn new(plan: &Plan, name: String, stages: Range<usize>) -> ChipPart {
        let st = plan.stages();
        let mut engines: Vec<usize> = stages
            .clone()
            .filter(|&k| k < st.len())
            .map(|k| st[k].engine)
            .collect();
        engines.sort_unstable();
        engines.dedup();
        ChipPart {
            name,
            stages,
            engines,
        }
    }
}

/// The chip top of a whole plan on one chip.
pub fn chip_module(plan: &Plan) -> String {
    let ns = plan.stages().len();
    chip_part_module(plan, &ChipPart::new(plan, "taalasc_chip".into(), 0..ns))
}

/// Checks that a chip part can be printed: its first stage's engine takes
/// link input only when no other stage of the chip uses it, and likewise
/// for the last stage's engine and link output.
pub fn check_part(plan: &Plan, part: &ChipPart) -> Result<(), String> {
    let st = plan.stages();
    let r = &part.stages;
    if r.is_empty() || r.end > st.len() {
        return Err(format!("chip stages {r:?} outside 0..{}", st.len()));
    }
    let owners = |e: usize| r.clone().filter(|&k| st[k].engine == e).count();
    if r.start > 0 && owners(st[r.start].engine) != 1 {
        return Err(format!(
            "stage {} takes link input but its engine runs another stage of the chip",
            r.start
        ));
    }
    if r.end < st.len() && owners(st[r.end - 1].engine) != 1 {
        return Err(format!(
            "stage {} feeds a link but its engine runs another stage of the chip",
            r.end - 1
        ));
    }
    if r.start > 0 && st[r.start].wide_inputs {
        return Err(format!(
            "stage {} takes 48-bit values, which a 32-bit link cannot carry",
            r.start
        ));
    }
    if r.start > 0 && plan.widths().tw > LINK_TOKEN_BITS {
        return Err(format!(
            "a vocabulary of {} does not fit the link header's {LINK_TOKEN_BITS}-bit token field",
            plan.vocab
        ));
    }
    Ok(())
}

/// What every section of a chip top derives from the plan and the part.
struct ChipCx<'a> {
    plan: &'a Plan,
    w: Widths,
    aw: u32,
    /// Engines of the whole plan, and the bits that number them.
    ne: usize,
    ew: u32,
    st: &'a [Stage],
    ns: usize,
    /// First and last stage of the part.
    first: usize,
    last: usize,
    link_in: bool,
    link_out: bool,
    /// Stages of the part.
    ks: &'a [usize],
    engs: &'a [usize],
    /// `(stage, src, dst, n)`: copies between the part's stages.
    copies: &'a [(usize, u32, u32, usize)],
    cw: u32,
    users: usize,
    ub: u32,
    pb: u32,
    tw: u32,
    vw: u32,
    name: &'a str,
    /// Stages that take their predecessor's token inside the part.
    cond: &'a [usize],
    sbw: u32,
    /// Engines of the first and last stage.
    in_e: usize,
    out_e: usize,
}

impl ChipCx<'_> {
    /// The part's stages that run on engine `e`.
    fn on_engine(&self, e: usize) -> Vec<usize> {
        self.ks
            .iter()
            .copied()
            .filter(|&k| self.st[k].engine == e)
            .collect()
    }
}

/// The top of one chip: its token pipeline over its stages, the copy unit
/// that hands a token's values from stage to stage, token input or link
/// input, logits output or link output, clock gates, performance counters
/// and the per-engine debug ports (named by global engine index).
pub fn chip_part_module(plan: &Plan, part: &ChipPart) -> String {
    check_part(plan, part).expect("the caller checks the part");
    let w = plan.widths();
    let st = plan.stages();
    let ns = st.len();
    let (first, last) = (part.stages.start, part.stages.end - 1);
    let ks: Vec<usize> = part.stages.clone().collect();
    let copies: Vec<(usize, u32, u32, usize)> = st
        .iter()
        .enumerate()
        .filter(|(k, _)| *k > first && *k <= last)
        .flat_map(|(k, s)| s.copies.iter().map(move |&(a, b, n)| (k, a, b, n)))
        .collect();
    let cond: Vec<usize> = (first + 1..=last).collect();
    let cx = ChipCx {
        plan,
        w,
        aw: w.aw,
        ne: plan.engines.len(),
        ew: addr_bits(plan.engines.len()),
        st,
        ns,
        first,
        last,
        link_in: first > 0,
        link_out: last + 1 < ns,
        ks: &ks,
        engs: &part.engines,
        copies: &copies,
        cw: addr_bits(copies.len().max(1) + 1),
        users: plan.users,
        ub: addr_bits(plan.users),
        pb: POS_BITS,
        tw: w.tw,
        vw: w.vw,
        name: &part.name,
        cond: &cond,
        sbw: addr_bits(ns + 1),
        in_e: st[first].engine,
        out_e: st[last].engine,
    };
    let mut s = String::new();
    header(&mut s, &cx);
    stage_registers(&mut s, &cx);
    copy_unit(&mut s, &cx);
    link_ports(&mut s, &cx);
    engines(&mut s, &cx);
    token_io(&mut s, &cx);
    sequential(&mut s, &cx);
    s
}

/// The module header and its ports.
fn header(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        plan,
        w,
        ne,
        ns,
        first,
        last,
        link_in,
        link_out,
        engs,
        users,
        name,
        ..
    } = *cx;
    if link_in || link_out {
        let _ = writeln!(s, "// One chip of a taalasc board: stages {first}..{} of {ns} ({} engines), {} MAC lanes per matrix-vector unit,\n// {} positions of context for each of {users} user slots. Generated by taalasc; do not edit.", last + 1, engs.len(), plan.lanes, plan.context);
    } else {
        let _ = writeln!(s, "// The taalasc chip: {ne} engines in a {ns}-stage token pipeline, {} MAC lanes per matrix-vector unit,\n// {} positions of context for each of {users} user slots. Generated by taalasc; do not edit.", plan.lanes, plan.context);
    }
    let _ = writeln!(
        s,
        "module {name} #(\n    parameter TABLE_DIR = \"rom/tables/\",\n    parameter ROM_DIR = \"rom/\"\n) ("
    );
    let mut ports = items(None, clock_ports());
    if link_in {
        ports.extend(items(
            Some("link in: a two-word header, then the first stage's input words"),
            link_in_ports(),
        ));
    } else {
        ports.extend(items(Some("token in"), token_in_ports(w)));
    }
    if link_out {
        ports.extend(items(
            Some("link out: a two-word header, then the last stage's output words (lo_last on the final word)"),
            link_out_ports(),
        ));
    } else {
        ports.push(Item::Comment(
            "logits out, in the order tokens came in (one beat per vocabulary entry; one error",
        ));
        ports.extend(items(
            Some(
                "beat for a token out of range, a full context or a slot beyond the chip's users)",
            ),
            logits_out_ports(w),
        ));
    }
    ports.push(Item::Comment(
        "cycles in which some engine does matvec / else attention / else nonlinear work,",
    ));
    ports.extend(items(
        Some("or the chip holds tokens but only the controller works"),
        perf_ports(Dir::OutReg),
    ));
    ports.extend(items(
        Some("debug: high if two stages ever claim one engine, or a copy touches a running engine"),
        vec![conflict_port()],
    ));
    ports.push(Item::Comment(
        "debug: every scratchpad write of every engine, tagged with its token's sequence number",
    ));
    for &e in engs {
        ports.extend(items(None, debug_ports(e, w)));
    }
    port_lines(s, &ports);
    let _ = writeln!(s, ");");
}

/// The token pipeline's registers, and which stage runs on each engine.
fn stage_registers(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        plan,
        st,
        ks,
        engs,
        pb,
        tw,
        ..
    } = *cx;
    // Stage registers.
    let _ = writeln!(
        s,
        "\n  // ---- token pipeline: one register set per stage ----"
    );
    for &k in ks {
        let stg = &st[k];
        let _ = writeln!(
            s,
            "  // stage {k}: engine {} ({}), instructions {}..{}",
            stg.engine, plan.engines[stg.engine].role, stg.pc0, stg.pc1
        );
        let _ = writeln!(s, "  reg v{k}, run{k}, go{k};\n  reg [{}:0] tok{k};\n  reg [7:0] slot{k};\n  reg [{}:0] pos{k};\n  reg [15:0] seq{k};\n  wire fin{k} = v{k} && !run{k} && !go{k};", tw - 1, pb - 1);
    }
    // Engines: which stage is active on each.
    for &e in engs {
        let on = cx.on_engine(e);
        let act = on
            .iter()
            .map(|k| format!("go{k} || run{k}"))
            .collect::<Vec<_>>()
            .join(" || ");
        let _ = writeln!(s, "  wire act{e} = {act};");
        let pick = |f: &dyn Fn(usize) -> String, wdt: u32| -> String {
            on.iter()
                .map(|&k| format!("((go{k} || run{k}) ? {} : {wdt}'d0)", f(k)))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let _ = writeln!(
            s,
            "  wire [{}:0] e{e}_pc0 = {};\n  wire [{}:0] e{e}_pc1 = {};",
            PC_BITS - 1,
            pick(&|k| lit(PC_BITS, st[k].pc0 as u64), PC_BITS),
            PC_BITS - 1,
            pick(&|k| lit(PC_BITS, st[k].pc1 as u64), PC_BITS)
        );
        let _ = writeln!(s, "  wire [{}:0] e{e}_tok = {};\n  wire [7:0] e{e}_slot = {};\n  wire [{}:0] e{e}_pos = {};\n  wire [15:0] e{e}_seq = {};", tw - 1, pick(&|k| format!("tok{k}"), tw), pick(&|k| format!("slot{k}"), 8), pb - 1, pick(&|k| format!("pos{k}"), pb), pick(&|k| format!("seq{k}"), 16));
        let go = on
            .iter()
            .map(|k| format!("go{k}"))
            .collect::<Vec<_>>()
            .join(" || ");
        let _ = writeln!(s, "  wire e{e}_go = {go};");
    }
}

/// The copy unit that hands a token's values to the next stage's engine, and the handoff conditions.
fn copy_unit(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        aw,
        ew,
        st,
        copies,
        cw,
        cond,
        sbw,
        ..
    } = *cx;
    // Copy unit.
    let _ = writeln!(
        s,
        "\n  // ---- copy unit: hands a token's values to the next stage's engine ----"
    );
    let _ = writeln!(s, "  reg cp_busy;\n  reg [{}:0] cp_idx;\n  reg [{}:0] cp_i;\n  reg cp_wv;\n  reg [{}:0] cp_waddr;", cw - 1, aw, aw - 1);
    let _ = writeln!(
        s,
        "  reg [{}:0] c_from, c_to;\n  reg [{}:0] c_src, c_dst;\n  reg [{}:0] c_n;\n  reg c_last;",
        ew - 1,
        aw - 1,
        aw
    );
    let _ = writeln!(s, "  always @* begin\n    c_from = {ew}'d0; c_to = {ew}'d0; c_src = {aw}'d0; c_dst = {aw}'d0; c_n = {}'d0; c_last = 1'b1;\n    case (cp_idx)", aw + 1);
    for (i, &(k, src, dst, n)) in copies.iter().enumerate() {
        let lst = i + 1 == copies.len() || copies[i + 1].0 != k;
        let _ = writeln!(s, "      {}: begin  // into stage {k}\n        c_from = {}; c_to = {}; c_src = {}; c_dst = {}; c_n = {}; c_last = 1'b{};\n      end", lit(cw, i as u64), lit(ew, st[k - 1].engine as u64), lit(ew, st[k].engine as u64), lit(aw, src as u64), lit(aw, dst as u64), lit(aw + 1, n as u64), lst as u8);
    }
    let _ = writeln!(s, "      default: ;\n    endcase\n  end");
    // One scratchpad line of `v` words per cycle (vectors start on a
    // line); the last line of a vector is written under a mask.
    let v = cx.plan.rows;
    let _ = writeln!(s, "  wire cp_re = cp_busy && (cp_i < c_n);\n  wire [{}:0] cp_raddr = c_src + cp_i[{}:0];\n  wire cp_step_done = cp_busy && (cp_i >= c_n) && !cp_wv;", aw - 1, aw - 1);
    let lanes: Vec<String> = (0..v)
        .rev()
        .map(|j| {
            format!(
                "({{1'b0, cp_i}} + {} < {{1'b0, c_n}})",
                lit(aw + 2, j as u64)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "  reg [{}:0] cp_wmask;\n  wire [{}:0] cp_mask = {{{}}};",
        v - 1,
        v - 1,
        lanes.join(", ")
    );
    // Handoff choice: the latest stage whose predecessor is finished.
    let _ = writeln!(
        s,
        "  // A stage can take its predecessor's token when it is empty and both engines are idle."
    );
    for &k in cond {
        let (a, b) = (st[k - 1].engine, st[k].engine);
        let _ = writeln!(
            s,
            "  wire can{k} = fin{} && !v{k} && !act{a} && !act{b};",
            k - 1
        );
    }
    let _ = writeln!(s, "  reg [{}:0] cp_stage;", sbw - 1);
}

/// The link ports' engine-side signals, used by the engine instances.
fn link_ports(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        aw,
        st,
        first,
        last,
        link_in,
        link_out,
        cw,
        pb,
        tw,
        in_e,
        ..
    } = *cx;
    // Link ports' engine-side signals, used by the engine instances below.
    if link_in {
        let _ = writeln!(s, "\n  // ---- errors ----\n  reg err;  // passing on an error\n  reg [7:0] err_slot;\n  reg [{}:0] err_pos;", pb - 1);
        let _ = writeln!(s, "\n  // ---- link in ----\n  reg [1:0] li_st;  // 0, 1: header words; 2: payload\n  reg [15:0] h_seq;\n  reg [{}:0] h_pos;\n  reg [7:0] h_slot;\n  reg [{}:0] h_tok;\n  reg err_pend;  // an error header waits for the chip to empty\n  reg [{}:0] li_c;\n  reg [{}:0] li_i;", pb - 1, tw - 1, cw - 1, aw);
        let ins = &st[first].copies;
        let _ = writeln!(s, "  reg [{}:0] l_dst;\n  reg [{}:0] l_n;\n  reg l_last;\n  always @* begin\n    l_dst = {aw}'d0; l_n = {}'d0; l_last = 1'b1;\n    case (li_c)", aw - 1, aw, aw + 1);
        for (i, &(_, dst, n)) in ins.iter().enumerate() {
            let _ = writeln!(
                s,
                "      {}: begin l_dst = {}; l_n = {}; l_last = 1'b{}; end",
                lit(cw, i as u64),
                lit(aw, dst as u64),
                lit(aw + 1, n as u64),
                (i + 1 == ins.len()) as u8
            );
        }
        let _ = writeln!(s, "      default: ;\n    endcase\n  end");
        let _ = writeln!(s, "  wire li_hdr_ok = !v{first} && !act{in_e} && !err && !err_pend;\n  assign li_ready = (li_st == 2'd2) || li_hdr_ok;\n  wire li_take = li_valid && li_ready;\n  wire li_we = li_take && (li_st == 2'd2);\n  wire [{}:0] li_waddr = l_dst + li_i[{}:0];\n  wire [{W_MSB}:0] li_wdata = {{{{16{{li_data[31]}}}}, li_data}};\n  wire li_word_last = (li_i + {}'d1 == l_n);", aw - 1, aw - 1, aw + 1);
    }
    if link_out {
        let outs = &st[last + 1].copies;
        let lane_reg = if cx.plan.rows > 1 {
            format!(
                "\n  reg [{}:0] p_lane;  // its lane in the line read",
                cx.plan.rows.trailing_zeros() - 1
            )
        } else {
            String::new()
        };
        let _ = writeln!(s, "\n  // ---- link out: header words and the last stage's words, through a 4-word queue ----\n  reg lo_busy;    // a message is being sent\n  reg lo_err;     // ... and it is an error header\n  reg [1:0] lo_ph;  // next word to issue: 0, 1 header; 2 payload; 3 none\n  reg [{}:0] lo_c;\n  reg [{}:0] lo_i;", cw - 1, aw);
        let _ = writeln!(s, "  reg [{}:0] o_src;\n  reg [{}:0] o_n;\n  reg o_lastc;\n  always @* begin\n    o_src = {aw}'d0; o_n = {}'d0; o_lastc = 1'b1;\n    case (lo_c)", aw - 1, aw, aw + 1);
        for (i, &(src, _, n)) in outs.iter().enumerate() {
            let _ = writeln!(
                s,
                "      {}: begin o_src = {}; o_n = {}; o_lastc = 1'b{}; end",
                lit(cw, i as u64),
                lit(aw, src as u64),
                lit(aw + 1, n as u64),
                (i + 1 == outs.len()) as u8
            );
        }
        let _ = writeln!(s, "      default: ;\n    endcase\n  end");
        let _ = writeln!(s, "  reg [32:0] lq [0:3];  // {{last, word}}\n  reg [1:0] lq_rp, lq_wp;\n  reg [2:0] lq_n;\n  reg p_v, p_hdr, p_last;  // the word issued last cycle\n  reg [31:0] p_word;{}\n  wire lo_pop = lo_valid && lo_ready;\n  assign lo_valid = lq_n != 3'd0;\n  assign lo_data = lq[lq_rp][31:0];\n  assign lo_last = lq[lq_rp][32];\n  wire lo_room = ({{1'b0, lq_n}} + {{3'd0, p_v}}) <= 4'd2;\n  wire lo_issue = lo_busy && (lo_ph != 2'd3) && lo_room;\n  wire lo_re = lo_issue && (lo_ph == 2'd2);\n  wire [{}:0] lo_raddr = o_src + lo_i[{}:0];\n  wire lo_word_last = (lo_i + {}'d1 == o_n) && o_lastc;", lane_reg, aw - 1, aw - 1, aw + 1);
    }
}

/// The engine instances (clock-gated), the scheduling invariant and the activity flags.
fn engines(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        plan,
        aw,
        ne,
        ew,
        last,
        link_in,
        link_out,
        engs,
        copies,
        vw,
        in_e,
        out_e,
        ..
    } = *cx;
    // Engines.
    let _ = writeln!(s, "\n  // ---- engines (clock-gated when idle) ----");
    // Scratchpad write line (words): the debug ports carry whole lines.
    let line = plan.rows;
    for &e in engs {
        if line == 1 {
            let _ = writeln!(s, "  wire e{e}_done, e{e}_o_valid, e{e}_o_last, e{e}_dbg_we, e{e}_bmv, e{e}_bat, e{e}_bnl;\n  wire [{W_MSB}:0] e{e}_xr, e{e}_o_data, e{e}_dbg_data;\n  wire [0:0] e{e}_o_count;\n  wire [{}:0] e{e}_o_index;\n  wire [{}:0] e{e}_dbg_addr;\n  wire [{}:0] e{e}_dbg_pc;", vw - 1, aw - 1, PC_BITS - 1);
        } else {
            // The copy path and the logits port carry whole lines.
            let _ = writeln!(s, "  wire e{e}_done, e{e}_o_valid, e{e}_o_last, e{e}_bmv, e{e}_bat, e{e}_bnl;\n  wire [{}:0] e{e}_dbg_we;\n  wire [{lmsb}:0] e{e}_xr, e{e}_o_data;\n  wire [{}:0] e{e}_o_count;\n  wire [{lmsb}:0] e{e}_dbg_data;\n  wire [{}:0] e{e}_o_index;\n  wire [{}:0] e{e}_dbg_addr;\n  wire [{}:0] e{e}_dbg_pc;", line - 1, crate::plan::count_bits(line) - 1, vw - 1, aw - 1, PC_BITS - 1, lmsb = line * W_BITS as usize - 1);
        }
    }
    // The copy path carries whole lines of `line` words.
    let lw = line as u32 * W_BITS;
    let _ = writeln!(s, "  reg [{}:0] cp_data;", lw - 1);
    let srcs: Vec<String> = (0..ne)
        .map(|k| {
            if engs.contains(&k) {
                format!("e{k}_xr")
            } else {
                format!("{lw}'d0")
            }
        })
        .collect();
    mux(s, "c_from", "cp_data", &srcs, lw);
    for &k in engs {
        let e = &plan.engines[k];
        let kl = lit(ew, k as u64);
        let mut en = format!("rst || act{k} || (cp_busy && (c_from == {kl} || c_to == {kl}))");
        if link_in && k == in_e {
            en.push_str(" || (li_st == 2'd2)");
        }
        if link_out && k == out_e {
            en.push_str(" || lo_busy");
        }
        let (x_re, x_raddr) = if link_out && k == out_e {
            ("lo_re".to_string(), "lo_raddr")
        } else {
            (format!("cp_re && c_from == {kl}"), "cp_raddr")
        };
        let (x_we, x_waddr, x_wdata) = if link_in && k == in_e {
            // One link word per beat: a one-hot lane of its line.
            if line == 1 {
                (
                    "li_we".to_string(),
                    "li_waddr".to_string(),
                    "li_wdata".to_string(),
                )
            } else {
                (
                    format!(
                        "({{{line}{{li_we}}}} & ({line}'d1 << li_waddr[{}:0]))",
                        line.trailing_zeros() - 1
                    ),
                    "li_waddr".to_string(),
                    format!("{{{line}{{li_wdata}}}}"),
                )
            }
        } else {
            (
                format!("{{{line}{{cp_wv && c_to == {kl}}}}} & cp_wmask"),
                "cp_waddr".to_string(),
                "cp_data".to_string(),
            )
        };
        let o_ready = if !link_out && k == out_e {
            format!("out_ready && run{last}")
        } else {
            "1'b0".into()
        };
        let _ = writeln!(
            s,
            "  wire e{k}_en = {en};\n  wire e{k}_clk;\n  tls_icg e{k}_icg (.clk(clk), .en(e{k}_en), .gclk(e{k}_clk));\n  taalasc_engine_{} #(.TABLE_DIR(TABLE_DIR), .ROM_DIR(ROM_DIR)) e{k} (\n    .clk(e{k}_clk), .rst(rst), .start(e{k}_go), .pc0(e{k}_pc0), .pc1(e{k}_pc1),\n    .token(e{k}_tok), .pos(e{k}_pos), .slot(e{k}_slot), .done(e{k}_done),\n    .x_re({x_re}), .x_raddr({x_raddr}), .x_rdata(e{k}_xr),\n    .x_we({x_we}), .x_waddr({x_waddr}), .x_wdata({x_wdata}),\n    .o_valid(e{k}_o_valid), .o_ready({o_ready}), .o_data(e{k}_o_data), .o_count(e{k}_o_count), .o_index(e{k}_o_index), .o_last(e{k}_o_last),\n    .dbg_we(e{k}_dbg_we), .dbg_addr(e{k}_dbg_addr), .dbg_data(e{k}_dbg_data), .dbg_pc(e{k}_dbg_pc),\n    .busy_mv(e{k}_bmv), .busy_attn(e{k}_bat), .busy_nl(e{k}_bnl)\n  );",
            e.index,
        );
        let gate = if line == 1 {
            format!("e{k}_dbg_we && act{k}")
        } else {
            format!("e{k}_dbg_we & {{{line}{{act{k}}}}}")
        };
        let _ = writeln!(s, "  assign dbg{k}_we = {gate};\n  assign dbg{k}_tag = e{k}_seq;\n  assign dbg{k}_pc = e{k}_dbg_pc;\n  assign dbg{k}_addr = e{k}_dbg_addr;\n  assign dbg{k}_data = e{k}_dbg_data;");
    }
    let join =
        |f: &dyn Fn(usize) -> String| engs.iter().map(|&k| f(k)).collect::<Vec<_>>().join(" | ");
    // The scheduling invariant, checked by the harness every cycle.
    let mut clash = Vec::new();
    for &e in engs {
        let on = cx.on_engine(e);
        for (i, &a) in on.iter().enumerate() {
            for &b in &on[i + 1..] {
                clash.push(format!("((go{a} || run{a}) && (go{b} || run{b}))"));
            }
        }
        let el = lit(ew, e as u64);
        clash.push(format!(
            "(cp_busy && (c_from == {el} || c_to == {el}) && act{e})"
        ));
    }
    if link_in {
        clash.push(format!("(li_we && act{in_e})"));
    }
    if link_out {
        clash.push(format!("(lo_re && act{out_e})"));
    }
    let _ = writeln!(s, "  assign dbg_conflict = {};", clash.join(" ||\n      "));
    let _ = writeln!(
        s,
        "  wire bmv = {};\n  wire bat = {};\n  wire bnl = {};",
        join(&|k| format!("(e{k}_bmv && act{k})")),
        join(&|k| format!("(e{k}_bat && act{k})")),
        join(&|k| format!("(e{k}_bnl && act{k})"))
    );
    // Unused outputs of engines other than the head's.
    let mut unused: Vec<String> = Vec::new();
    for &k in engs {
        if link_out || k != out_e {
            unused.extend([
                format!("e{k}_o_valid"),
                format!("e{k}_o_last"),
                format!("e{k}_o_data"),
                format!("e{k}_o_count"),
                format!("e{k}_o_index"),
            ]);
        }
    }
    if !link_out {
        unused.push(format!("fin{last}"));
    }
    if link_out {
        if line == 1 {
            unused.push(format!("e{out_e}_xr[{W_MSB}:32]"));
        } else {
            // One word of the line read is sent per beat.
            unused.push(format!("e{out_e}_xr"));
        }
    }
    if copies.is_empty() {
        // A one-stage chip part has no copies between its engines.
        unused.extend(["cp_raddr", "cp_data", "cp_waddr", "cp_wv", "cp_wmask"].map(String::from));
    }
    if !unused.is_empty() {
        let _ = writeln!(s, "  /* verilator lint_off UNUSEDSIGNAL */\n  wire unused_outs = &{{1'b0, {}}};\n  /* verilator lint_on UNUSEDSIGNAL */", unused.join(", "));
    }
}

/// Token input, the error beat and logits output.
fn token_io(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        plan,
        ew,
        st,
        first,
        last,
        link_in,
        link_out,
        ks,
        users,
        ub,
        pb,
        tw,
        vw,
        cond,
        in_e,
        out_e,
        ..
    } = *cx;
    // Input, error beat, output.
    let all_empty = ks
        .iter()
        .map(|k| format!("!v{k}"))
        .collect::<Vec<_>>()
        .join(" && ");
    if link_in {
        let _ = writeln!(s, "  wire empty = {all_empty} && !cp_busy;");
    } else {
        let _ = writeln!(s, "\n  // ---- token in, logits out ----");
        let _ = writeln!(s, "  reg [{}:0] pos_next [0:{}];  // next position of each user slot\n  integer r;\n  reg [15:0] seq_next;\n  reg err;  // presenting an error beat\n  reg [7:0] err_slot;\n  reg [{}:0] err_pos;", pb, users - 1, pb - 1);
        let _ = writeln!(s, "  /* verilator lint_off WIDTH */\n  wire [{}:0] in_u = in_slot;\n  /* verilator lint_on WIDTH */", ub - 1);
        let _ = writeln!(
            s,
            "  wire [{}:0] in_pos = in_restart ? {}'d0 : pos_next[in_u];",
            pb,
            pb + 1
        );
        let _ = writeln!(s, "  wire in_bad = (in_pos >= {}) || ({{1'b0, in_token}} >= {}) || ({{1'b0, in_slot}} >= {});", lit(pb + 1, plan.context as u64), lit(tw + 1, plan.vocab as u64), lit(9, users as u64));
        let _ = writeln!(s, "  wire empty = {all_empty} && !cp_busy;");
        let _ = writeln!(s, "  // A good token enters stage 0 when it and engine {} are free; a bad one waits until\n  // the chip is empty, so that its error beat keeps the output order.", in_e);
        // A handoff into another stage of the same engine that could start in
        // this very cycle has priority: otherwise both would claim the engine.
        let hand: Vec<String> = cond
            .iter()
            .filter(|&&k| st[k].engine == in_e)
            .map(|k| format!("can{k}"))
            .collect();
        let hand = if hand.is_empty() {
            "1'b0".to_string()
        } else {
            format!("!cp_busy && ({})", hand.join(" || "))
        };
        let _ = writeln!(s, "  wire hand_e0 = {hand};");
        let _ = writeln!(
            s,
            "  wire take_ok = !v{first} && !act{in_e} && !(cp_busy && c_to == {}) && !hand_e0 && !err;",
            lit(ew, in_e as u64)
        );
        let _ = writeln!(s, "  assign in_ready = in_bad ? (empty && !err) : take_ok;");
    }
    if link_out {
        let tok = if tw < LINK_TOKEN_BITS {
            format!("{}'d0, tok{last}", LINK_TOKEN_BITS - tw)
        } else {
            format!("tok{last}")
        };
        let _ = writeln!(s, "  wire [31:0] lo_h0 = lo_err ? {{16'd0, err_pos}} : {{seq{last}, pos{last}}};\n  wire [31:0] lo_h1 = lo_err ? {{1'b1, err_slot, {LINK_TOKEN_BITS}'d0}} : {{1'b0, slot{last}, {tok}}};");
    }
    if !link_out {
        // One line per beat; an error beat carries one (zero) word.
        let _ = writeln!(s, "  assign out_valid = err || (run{last} && e{out_e}_o_valid);\n  assign out_logit = err ? {lw}'d0 : e{out_e}_o_data;\n  assign out_count = err ? {}'d1 : e{out_e}_o_count;\n  assign out_index = err ? {vw}'d0 : e{out_e}_o_index;\n  assign out_last = err || (run{last} && e{out_e}_o_last);\n  assign out_error = err;\n  assign out_slot = err ? err_slot : slot{last};\n  assign out_pos = err ? err_pos : pos{last};", crate::plan::count_bits(plan.rows), lw = plan.rows as u32 * W_BITS);
    }
}

/// The sequential logic: stages, input, output link, copy unit and handoffs.
fn sequential(s: &mut String, cx: &ChipCx) {
    let ChipCx {
        plan,
        aw,
        st,
        ns,
        first,
        last,
        link_in,
        link_out,
        ks,
        cw,
        users,
        pb,
        tw,
        cond,
        sbw,
        out_e,
        ..
    } = *cx;
    // Sequential logic.
    let _ = writeln!(s, "\n  always @(posedge clk) begin\n    if (rst) begin");
    for &k in ks {
        let _ = writeln!(s, "      v{k} <= 1'b0; run{k} <= 1'b0; go{k} <= 1'b0; tok{k} <= {tw}'d0; slot{k} <= 8'd0; pos{k} <= {pb}'d0; seq{k} <= 16'd0;");
    }
    if !link_in {
        let _ = writeln!(s, "      for (r = 0; r < {users}; r = r + 1) pos_next[r] <= {}'d0;\n      seq_next <= 16'd0;", pb + 1);
    } else {
        let _ = writeln!(s, "      li_st <= 2'd0;\n      h_seq <= 16'd0;\n      h_pos <= {pb}'d0;\n      h_slot <= 8'd0;\n      h_tok <= {tw}'d0;\n      err_pend <= 1'b0;\n      li_c <= {cw}'d0;\n      li_i <= {}'d0;", aw + 1);
    }
    if link_out {
        let _ = writeln!(s, "      lo_busy <= 1'b0;\n      lo_err <= 1'b0;\n      lo_ph <= 2'd0;\n      lo_c <= {cw}'d0;\n      lo_i <= {}'d0;\n      lq_rp <= 2'd0;\n      lq_wp <= 2'd0;\n      lq_n <= 3'd0;\n      p_v <= 1'b0;\n      p_hdr <= 1'b0;\n      p_last <= 1'b0;\n      p_word <= 32'd0;", aw + 1);
    }
    let _ = writeln!(s, "      err <= 1'b0;\n      err_slot <= 8'd0;\n      err_pos <= {pb}'d0;\n      cp_busy <= 1'b0;\n      cp_idx <= {cw}'d0;\n      cp_i <= {}'d0;\n      cp_wv <= 1'b0;\n      cp_wmask <= {}'d0;\n      cp_waddr <= {aw}'d0;\n      cp_stage <= {sbw}'d0;\n      perf_matvec <= 64'd0;\n      perf_attn <= 64'd0;\n      perf_nl <= 64'd0;\n      perf_ctrl <= 64'd0;\n    end else begin", aw + 1, plan.rows, sbw = sbw);
    let _ = writeln!(s, "      if (!empty) begin\n        if (bmv) perf_matvec <= perf_matvec + 64'd1;\n        else if (bat) perf_attn <= perf_attn + 64'd1;\n        else if (bnl) perf_nl <= perf_nl + 64'd1;\n        else perf_ctrl <= perf_ctrl + 64'd1;\n      end");
    // Start pulses last one cycle; a run ends with its engine's done.
    for &k in ks {
        let e = st[k].engine;
        let leave = if k == last && !link_out {
            format!("\n        v{k} <= 1'b0;  // logits streamed: the token leaves")
        } else {
            String::new()
        };
        let _ = writeln!(s, "      if (go{k}) begin\n        go{k} <= 1'b0;\n        run{k} <= 1'b1;\n      end\n      if (run{k} && e{e}_done) begin\n        run{k} <= 1'b0;{leave}\n      end");
    }
    // Input.
    if link_in {
        let _ = writeln!(s, "      if (li_take) begin\n        case (li_st)\n          2'd0: begin\n            h_seq <= li_data[31:16];\n            h_pos <= li_data[{}:0];\n            li_st <= 2'd1;\n          end\n          2'd1: begin\n            h_slot <= li_data[30:23];\n            h_tok <= li_data[{}:0];\n            li_c <= {cw}'d0;\n            li_i <= {}'d0;\n            if (li_data[31]) begin\n              err_pend <= 1'b1;\n              li_st <= 2'd0;\n            end else begin\n              li_st <= 2'd2;\n            end\n          end\n          default: begin\n            if (li_word_last) begin\n              li_i <= {}'d0;\n              if (l_last) begin\n                li_st <= 2'd0;\n                v{first} <= 1'b1; go{first} <= 1'b1;\n                tok{first} <= h_tok; slot{first} <= h_slot; pos{first} <= h_pos; seq{first} <= h_seq;\n              end else begin\n                li_c <= li_c + {cw}'d1;\n              end\n            end else begin\n              li_i <= li_i + {}'d1;\n            end\n          end\n        endcase\n      end", pb - 1, tw - 1, aw + 1, aw + 1, aw + 1);
        let _ = writeln!(s, "      if (err_pend && empty) begin\n        err_pend <= 1'b0;\n        err <= 1'b1;\n        err_slot <= h_slot;\n        err_pos <= h_pos;\n      end");
    } else {
        if !link_out {
            let _ = writeln!(s, "      if (err && out_ready) err <= 1'b0;");
        }
        let _ = writeln!(s, "      if (in_valid && in_ready) begin\n        seq_next <= seq_next + 16'd1;\n        if (in_bad) begin\n          err <= 1'b1;\n          err_slot <= in_slot;\n          err_pos <= in_pos[{}:0];\n        end else begin\n          v{first} <= 1'b1;\n          go{first} <= 1'b1;\n          tok{first} <= in_token;\n          slot{first} <= in_slot;\n          pos{first} <= in_pos[{}:0];\n          seq{first} <= seq_next;\n          pos_next[in_u] <= in_pos + {}'d1;\n        end\n      end", pb - 1, pb - 1, pb + 1);
    }
    if link_in && !link_out {
        let _ = writeln!(s, "      if (err && out_ready) err <= 1'b0;");
    }
    // Output link.
    if link_out {
        // The word read last cycle sits in its lane of the line read.
        let line = cx.plan.rows;
        let (lo_word, lo_lane) = if line == 1 {
            (format!("e{out_e}_xr[31:0]"), String::new())
        } else {
            (
                format!("e{out_e}_xr[48*p_lane +: 32]"),
                format!(
                    "\n      p_lane <= lo_raddr[{}:0];",
                    line.trailing_zeros() - 1
                ),
            )
        };
        let _ = writeln!(s, "      // queue: push the word issued last cycle, pop what the link takes\n      if (p_v) begin\n        lq[lq_wp] <= {{p_last, p_hdr ? p_word : {lo_word}}};\n        lq_wp <= lq_wp + 2'd1;\n      end\n      if (lo_pop) lq_rp <= lq_rp + 2'd1;\n      lq_n <= lq_n + {{2'd0, p_v}} - {{2'd0, lo_pop}};\n      p_v <= lo_issue;\n      p_hdr <= lo_ph != 2'd2;\n      p_word <= (lo_ph == 2'd0) ? lo_h0 : lo_h1;\n      p_last <= (lo_ph == 2'd1) ? lo_err : lo_word_last;{lo_lane}");
        let _ = writeln!(s, "      if (lo_issue) begin\n        case (lo_ph)\n          2'd0: lo_ph <= 2'd1;\n          2'd1: lo_ph <= lo_err ? 2'd3 : 2'd2;\n          default: begin\n            if (lo_i + {}'d1 == o_n) begin\n              lo_i <= {}'d0;\n              if (o_lastc) lo_ph <= 2'd3;\n              else lo_c <= lo_c + {cw}'d1;\n            end else begin\n              lo_i <= lo_i + {}'d1;\n            end\n          end\n        endcase\n      end", aw + 1, aw + 1, aw + 1);
        let _ = writeln!(s, "      // the message's last word leaves: the token (or the error) is gone\n      if (lo_pop && lo_last) begin\n        lo_busy <= 1'b0;\n        if (lo_err) err <= 1'b0;\n        else v{last} <= 1'b0;\n      end\n      if (!lo_busy && (err || fin{last})) begin\n        lo_busy <= 1'b1;\n        lo_err <= err;\n        lo_ph <= 2'd0;\n        lo_c <= {cw}'d0;\n        lo_i <= {}'d0;\n      end", aw + 1);
    }
    // Copy unit.
    let _ = writeln!(s, "      cp_wv <= cp_re;\n      cp_wmask <= cp_mask;\n      cp_waddr <= c_dst + cp_i[{}:0];\n      if (cp_re) cp_i <= cp_i + {};", aw - 1, lit(aw + 1, plan.rows as u64));
    let _ = writeln!(s, "      if (cp_step_done) begin\n        cp_i <= {}'d0;\n        if (c_last) begin\n          cp_busy <= 1'b0;\n          case (cp_stage)", aw + 1);
    for &k in cond {
        if st[k].copies.is_empty() {
            continue;
        }
        let _ = writeln!(s, "            {}: begin\n              v{j} <= 1'b0;\n              v{k} <= 1'b1; go{k} <= 1'b1;\n              tok{k} <= tok{j}; slot{k} <= slot{j}; pos{k} <= pos{j}; seq{k} <= seq{j};\n            end", lit(sbw, k as u64), j = k - 1);
    }
    let _ = writeln!(s, "            default: ;\n          endcase\n        end else begin\n          cp_idx <= cp_idx + {cw}'d1;\n        end\n      end");
    // Handoffs: latest stage first.
    let _ = writeln!(s, "      if (!cp_busy) begin");
    let mut starts = vec![0usize; ns];
    let mut first_copy = 0usize;
    for k in first + 1..=last {
        starts[k] = first_copy;
        first_copy += st[k].copies.len();
    }
    for (i, &k) in cond.iter().rev().enumerate() {
        let kw = if i == 0 { "if" } else { "else if" };
        if st[k].copies.is_empty() {
            let _ = writeln!(s, "        {kw} (can{k}) begin\n          v{} <= 1'b0;\n          v{k} <= 1'b1; go{k} <= 1'b1;\n          tok{k} <= tok{}; slot{k} <= slot{}; pos{k} <= pos{}; seq{k} <= seq{};\n        end", k - 1, k - 1, k - 1, k - 1, k - 1);
        } else {
            let _ = writeln!(s, "        {kw} (can{k}) begin\n          cp_busy <= 1'b1;\n          cp_stage <= {};\n          cp_idx <= {};\n          cp_i <= {}'d0;\n        end", lit(sbw, k as u64), lit(cw, starts[k] as u64), aw + 1);
        }
    }
    let _ = writeln!(s, "      end\n    end\n  end\nendmodule");
}
