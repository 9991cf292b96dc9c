//! `tls_attn` (rtl/tls_attn.v) against the numerics, bit for bit.
//!
//! Random q/k/v (`W48`, mixed magnitudes: zero blocks, saturated blocks,
//! rounding ties, sparse blocks, peaked and flat softmax) for positions
//! `0..T` of several configurations, one `start` per position; the
//! expected outputs are built the way `attention` in
//! `backends/reference/src/exec.rs` builds them (`to_a8_vec` of k/v per KV
//! head appended to the cache, `to_a8_vec` of q per head, `dot_a8` +
//! `scale_score` over the window, `attend`). Every configuration runs at a
//! scratchpad line width `V` of 4 or 8 (line reads, masked line writes;
//! vectors start on a line for `V > 1`, anywhere for `V = 1`), two at
//! `V = 1`, two at `V` = 64 (lines holding part of a head, or two
//! heads) and two with head_dim 128 converting several 32-blocks per step
//! (`V` = 256 and 64); all run as instances of `tests/tb/tb_attn.v` in one
//! Verilator binary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use taalasc_numerics::{
    attend, dot_a8, scale_score, softmax_weights, to_a8_vec, ScoreScale, A8_BLOCK, W_FRAC, W_MAX,
    W_MIN,
};
use taalasc_verilog::perf::attn_cycles;
use taalasc_verilog::plan::AttnParallel;
use taalasc_verilog::tools::{rtl_lib, run, verilator_binary};

use taalasc_testrng::xorshift;

/// One 32-block of `W48` values; `mode` picks the kind of block.
fn block(s: &mut u64, mode: u64) -> Vec<i64> {
    let mut r = || xorshift(s);
    match mode % 7 {
        // All zero.
        0 => vec![0; A8_BLOCK],
        // Near saturation, including the extremes.
        1 => (0..A8_BLOCK)
            .map(|_| {
                let x = r();
                match x % 6 {
                    0 => W_MAX,
                    1 => W_MIN,
                    2 => W_MAX - (x >> 40) as i64,
                    3 => W_MIN + (x >> 40) as i64,
                    4 => (x as i64) >> 16,
                    _ => 0,
                }
            })
            .collect(),
        // One random magnitude per block, 1..=47 bits.
        2 => {
            let m = 1 + (r() % 47) as u32;
            (0..A8_BLOCK).map(|_| (r() as i64) >> (64 - m)).collect()
        }
        // Activations of a usual size (|x| up to 2^6 .. 2^2 real).
        3 => {
            let m = 26 + (r() % 6) as u32;
            (0..A8_BLOCK).map(|_| (r() as i64) >> (64 - m)).collect()
        }
        // Sparse: a few nonzero elements.
        4 => {
            let mut v = vec![0i64; A8_BLOCK];
            for _ in 0..1 + r() % 3 {
                let i = (r() % A8_BLOCK as u64) as usize;
                let m = 1 + (r() % 47) as u32;
                v[i] = (r() as i64) >> (64 - m);
            }
            v
        }
        // Rounding ties and the a8_shift carry (max like 255 << k).
        5 => {
            let k = (r() % 40) as u32;
            (0..A8_BLOCK)
                .map(|i| {
                    let x = r();
                    let base = if i == 0 {
                        255 - (x % 2) as i64
                    } else {
                        (x % 511) as i64 - 255
                    };
                    let v = base << k;
                    if x & 1 << 20 != 0 {
                        -v
                    } else {
                        v
                    }
                })
                .collect()
        }
        // Large (|x| ~ 2^3 .. 2^10 real): very peaked softmax.
        _ => {
            let m = 28 + (r() % 8) as u32;
            (0..A8_BLOCK).map(|_| (r() as i64) >> (64 - m)).collect()
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Cfg {
    hd: usize,
    nh: usize,
    nkv: usize,
    ctx: usize,
    window: usize,
    t: usize,
    /// The score scale; `None`: `1/sqrt(hd)`, as the reference executor.
    scale: Option<f64>,
    /// Query heads per pass (`HP`).
    hp: usize,
    /// KV positions per cycle (`KP`).
    kp: usize,
    /// 32-blocks of head_dim per cycle (`BPC`).
    bpc: usize,
    /// User slots (`SLOTS`): positions `0..t` of each, interleaved.
    users: usize,
    /// Scratchpad line width (`V`).
    v: usize,
}

/// How often the rare paths occur in the expected computation.
#[derive(Debug, Default)]
struct Coverage {
    /// `dot_a8` saturated to W48.
    dot_sat: usize,
    /// Scaled scores at the W48 limits.
    score_sat: usize,
    /// Weights `e_j = 0` (far below the max).
    e_zero: usize,
    /// Heads whose softmax put all weight on one position.
    one_hot: usize,
    /// `recip(S)`: the rounded mantissa carried to 8192.
    recip_carry: usize,
}

struct Case {
    cfg: Cfg,
    cov: Coverage,
    scale: ScoreScale,
    aw: u32,
    qb: usize,
    kb: usize,
    vb: usize,
    ob: usize,
    mem_in: Vec<i64>,
    /// `mem_in` with every output written.
    mem_want: Vec<i64>,
}

fn vector(s: &mut u64, n: usize, regime: u64) -> Vec<i64> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n / A8_BLOCK {
        let mode = match regime {
            // Mostly usual activations.
            0 => {
                if xorshift(s).is_multiple_of(4) {
                    xorshift(s)
                } else {
                    3
                }
            }
            // Peaked.
            1 => {
                if xorshift(s).is_multiple_of(3) {
                    xorshift(s)
                } else {
                    6
                }
            }
            // Anything.
            _ => xorshift(s),
        };
        v.extend(block(s, mode));
    }
    v
}

/// Positions 0..=3, query head 0 / KV head 0: three equal top scores and
/// one `exp_neg` step below (`e = 32762`), so `S = 3·32768 + 32762 =
/// 131066` and `recip` rounds its mantissa up to 8192 (the carry).
fn craft_recip_carry(cfg: &Cfg, t: usize, q: &mut [i64], k: &mut [i64]) {
    if t > 3 {
        return;
    }
    k[..cfg.hd].fill(0);
    k[0] = if t == 2 { 100 } else { 127 };
    if t == 3 {
        q[..cfg.hd].fill(0);
        q[0] = 127 << 27;
    }
}

fn make_case(cfg: Cfg, seed: u64, craft: bool) -> Case {
    let Cfg {
        hd,
        nh,
        nkv,
        t: tn,
        window,
        users,
        ..
    } = cfg;
    let bph = hd / A8_BLOCK;
    let mut s = seed;
    let (qw, kvw) = (nh * hd, nkv * hd);
    // Steps st = t*users + u; unaligned regions with gaps of garbage in
    // between.
    let steps = tn * users;
    // With lines of V > 1 words every vector starts on a line (the plan's
    // rule); the gaps then round up to it.
    let al = |a: usize| a.next_multiple_of(cfg.v);
    let qb = al(3);
    let kb = al(qb + steps * qw + 7);
    let vb = al(kb + steps * kvw + 5);
    let ob = al(vb + steps * kvw + 9);
    let end = ob + steps * qw + 11;
    let aw = usize::BITS - (end - 1).leading_zeros();
    let mut mem: Vec<i64> = (0..1usize << aw)
        .map(|_| (xorshift(&mut s) as i64) >> 16)
        .collect();
    let scale = cfg.scale.map_or(ScoreScale::inv_sqrt(hd), ScoreScale::new);
    // The caches of each user: [user][kv head].
    let empty = || vec![vec![Vec::<i8>::new(); nkv]; users];
    let (mut kmu, mut keu, mut vmu, mut veu) = (empty(), empty(), empty(), empty());
    let mut want = mem.clone();
    let mut cov = Coverage::default();
    for st in 0..steps {
        let (t, u) = (st / users, st % users);
        let (km, ke, vm, ve) = (&mut kmu[u], &mut keu[u], &mut vmu[u], &mut veu[u]);
        let regime = xorshift(&mut s) % 3;
        let mut q = vector(&mut s, qw, regime);
        let mut k = vector(&mut s, kvw, regime);
        if craft && u == 0 {
            craft_recip_carry(&cfg, t, &mut q, &mut k);
        }
        let v_regime = xorshift(&mut s) % 3;
        let v = vector(&mut s, kvw, v_regime);
        mem[qb + st * qw..qb + (st + 1) * qw].copy_from_slice(&q);
        mem[kb + st * kvw..kb + (st + 1) * kvw].copy_from_slice(&k);
        mem[vb + st * kvw..vb + (st + 1) * kvw].copy_from_slice(&v);
        for h in 0..nkv {
            let ka = to_a8_vec(&k[h * hd..(h + 1) * hd], W_FRAC).unwrap();
            let va = to_a8_vec(&v[h * hd..(h + 1) * hd], W_FRAC).unwrap();
            km[h].extend_from_slice(&ka.mant);
            ke[h].extend_from_slice(&ka.exp);
            vm[h].extend_from_slice(&va.mant);
            ve[h].extend_from_slice(&va.exp);
        }
        let lo = if window > 0 {
            (t + 1).saturating_sub(window)
        } else {
            0
        };
        for h in 0..nh {
            let kvh = h / (nh / nkv);
            let qa = to_a8_vec(&q[h * hd..(h + 1) * hd], W_FRAC).unwrap();
            let scores: Vec<i64> = (lo..=t)
                .map(|j| {
                    let d = dot_a8(
                        &qa.mant,
                        &qa.exp,
                        &km[kvh][j * hd..(j + 1) * hd],
                        &ke[kvh][j * bph..(j + 1) * bph],
                    );
                    cov.dot_sat += usize::from(d == W_MAX || d == W_MIN);
                    let sc = scale_score(d, scale);
                    cov.score_sat += usize::from(sc == W_MAX || sc == W_MIN);
                    sc
                })
                .collect();
            let mut e = vec![0u32; scores.len()];
            let sum = softmax_weights(&scores, &mut e);
            cov.e_zero += e.iter().filter(|&&x| x == 0).count();
            cov.one_hot += usize::from(sum == 32768 && scores.len() > 1);
            let kk = 64 - sum.leading_zeros() as i32 - 13;
            cov.recip_carry += usize::from(kk > 0 && (sum >> kk) + ((sum >> (kk - 1)) & 1) == 8192);
            let mut out = vec![0i64; hd];
            attend(
                &scores,
                &vm[kvh][lo * hd..(t + 1) * hd],
                &ve[kvh][lo * bph..(t + 1) * bph],
                hd,
                &mut out,
            );
            let o = ob + st * qw + h * hd;
            want[o..o + hd].copy_from_slice(&out);
        }
    }
    for (w, m) in want.iter_mut().zip(&mem).take(ob) {
        *w = *m;
    }
    Case {
        cfg,
        cov,
        scale,
        aw,
        qb,
        kb,
        vb,
        ob,
        mem_in: mem,
        mem_want: want,
    }
}

fn hex48(v: &[i64]) -> String {
    let mut s = String::with_capacity(v.len() * 13);
    for &x in v {
        writeln!(s, "{:012x}", (x as u64) & ((1 << 48) - 1)).unwrap();
    }
    s
}

fn parse_hex48(text: &str) -> Vec<i64> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|l| {
            let u = u64::from_str_radix(l, 16).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            ((u << 16) as i64) >> 16
        })
        .collect()
}

/// The serial unit's cycles of one position, from `start` to `done`
/// (today's formula, for `HP = KP = BPC = 1`), written out independently
/// of `perf::attn_cycles`.
fn cycles_serial(c: &Cfg, pos: usize) -> usize {
    let bph = c.hd / A8_BLOCK;
    let lo = if c.window > 0 {
        (pos + 1).saturating_sub(c.window)
    } else {
        0
    };
    let n = pos + 1 - lo;
    let conv = 33 * bph + 3;
    (2 * c.nkv + 1) * conv + c.nh * (2 * n * bph + c.hd + 15)
}

/// The cycle formula of `tls_attn.v` as the cost model implements it.
fn cycles_formula(c: &Cfg, pos: usize) -> usize {
    let par = AttnParallel {
        heads: c.hp,
        positions: c.kp,
        blocks: c.bpc,
    };
    attn_cycles(
        c.nh as u64,
        c.nkv as u64,
        c.hd as u64,
        c.window as u64,
        pos as u64,
        &par,
        c.v as u64,
    ) as usize
}

fn tb_instance(i: usize, c: &Case) -> String {
    let g = c.cfg;
    format!(
        "  wire f{i};\n  tb_attn #(.AW({aw}), .HD({hd}), .NH({nh}), .NKV({nkv}), .CTX({ctx}), \
         .WINDOW({win}), .SCALE_MANT({sm}), .SCALE_SHIFT({ss}), .HP({hp}), .KP({kp}), \
         .BPC({bpc}), .V({v}), .SLOTS({users}), .T({t}), .QB({qb}), .KB({kb}), \
         .VB({vb}), .OB({ob}), .TABLE_DIR(\"tables/\"), .IN_FILE(\"in{i}.hex\"), \
         .OUT_FILE(\"out{i}.hex\"), .STAT_FILE(\"stat{i}.txt\")) u{i} (.clk(clk), .fin(f{i}));\n",
        aw = c.aw,
        hd = g.hd,
        nh = g.nh,
        nkv = g.nkv,
        ctx = g.ctx,
        win = g.window,
        sm = c.scale.mant,
        ss = c.scale.shift,
        hp = g.hp,
        kp = g.kp,
        bpc = g.bpc,
        v = g.v,
        users = g.users,
        t = g.t,
        qb = c.qb,
        kb = c.kb,
        vb = c.vb,
        ob = c.ob,
    )
}

fn tb_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("tb")
}

#[test]
fn attn_matches_numerics_bit_exact() {
    // The serial unit (HP = KP = BPC = 1): today's configurations.
    let serial = |hd, nh, nkv, ctx, window, t, scale| Cfg {
        hd,
        nh,
        nkv,
        ctx,
        window,
        t,
        scale,
        hp: 1,
        kp: 1,
        bpc: 1,
        users: 1,
        v: 1,
    };
    let base = [
        serial(64, 3, 1, 48, 8, 40, None),
        serial(64, 2, 2, 40, 0, 40, None),
        // Three blocks per head, and a scale above 1 (the reference always
        // uses `1/sqrt(hd)`, but the unit takes any `ScoreScale`): scaled
        // scores saturate. Positions up to the end of the context.
        serial(96, 2, 1, 12, 3, 12, Some(5.3)),
        // GQA, a whole group per pass, 2 positions per cycle, two user
        // slots, to the end of the context.
        Cfg {
            hp: 2,
            kp: 2,
            users: 2,
            ..serial(32, 4, 2, 16, 0, 16, None)
        },
        // 2 positions and whole heads (two blocks) per cycle, a window
        // that straddles rows, two slots, a saturating scale.
        Cfg {
            kp: 2,
            bpc: 2,
            users: 2,
            ..serial(64, 2, 1, 24, 5, 24, Some(5.3))
        },
        // Two whole heads per pass and a window of 1: the next pass waits
        // for its q (the formula's last term).
        Cfg {
            hp: 2,
            bpc: 4,
            ..serial(128, 4, 2, 8, 1, 8, None)
        },
        // More positions per cycle than the window, two slots.
        Cfg {
            kp: 4,
            users: 2,
            ..serial(32, 2, 1, 16, 3, 16, None)
        },
    ];
    // Every configuration at a line width above 1 (V = 4 or 8), two also at
    // V = 1 (one checked against the serial formula too; every chip test at
    // one row per cycle runs V = 1 as well), then lines of 64 words: three
    // blocks per head (a block is half a line, the outputs go out 32 words
    // at a time), and two heads per line with GQA and two slots. Thirteen
    // Verilator builds: the suite has a time budget.
    let mut cfgs: Vec<(Cfg, bool)> = vec![
        (Cfg { v: 1, ..base[1] }, true),
        (Cfg { v: 1, ..base[3] }, false),
    ];
    for (i, c) in base.iter().enumerate() {
        let v = if i % 2 == 0 { 4 } else { 8 };
        cfgs.push((Cfg { v, ..*c }, false));
    }
    cfgs.push((Cfg { v: 64, ..base[2] }, false));
    cfgs.push((
        Cfg {
            v: 64,
            t: 8,
            ..base[3]
        },
        false,
    ));
    // The A8 conversion at several 32-blocks per step (`CE`, head_dim 128
    // as Llama-3.1-8B): lines of 256 words and whole heads per cycle, CE =
    // 4 (a vector in one step; a line holds two heads, so k of KV head 1
    // is the line's second half), GQA; lines of 64 words with whole heads
    // per cycle, CE = 2 < BPC (two steps per vector, the second appends
    // blocks 2 and 3 into banks 2 and 3). One position per cycle: the
    // Verilator build grows with KP.
    cfgs.push((
        Cfg {
            v: 256,
            t: 6,
            ..base[5]
        },
        false,
    ));
    cfgs.push((
        Cfg {
            bpc: 4,
            v: 64,
            ..serial(128, 2, 1, 10, 5, 10, None)
        },
        false,
    ));
    let cases: Vec<Case> = cfgs
        .iter()
        .enumerate()
        .map(|(i, &(c, serial_check))| {
            make_case(
                c,
                0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x1234_5678),
                serial_check,
            )
        })
        .collect();
    let mut total = Coverage::default();
    for c in &cases {
        println!("{:?}: {:?}", c.cfg, c.cov);
        total.dot_sat += c.cov.dot_sat;
        total.score_sat += c.cov.score_sat;
        total.e_zero += c.cov.e_zero;
        total.one_hot += c.cov.one_hot;
        total.recip_carry += c.cov.recip_carry;
    }
    assert!(
        total.dot_sat > 0
            && total.score_sat > 0
            && total.e_zero > 0
            && total.one_hot > 0
            && total.recip_carry > 0,
        "the data no longer reaches every rare path: {total:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    taalasc_verilog::tables::write_tables(&d.join("tables")).unwrap();
    let mut top = String::from("module top;\n  reg clk = 1'b0;\n  always #5 clk = ~clk;\n");
    let mut all = String::new();
    for (i, c) in cases.iter().enumerate() {
        std::fs::write(d.join(format!("in{i}.hex")), hex48(&c.mem_in)).unwrap();
        top.push_str(&tb_instance(i, c));
        if i > 0 {
            all.push_str(" && ");
        }
        write!(all, "f{i}").unwrap();
    }
    writeln!(
        top,
        "  always @(posedge clk) if ({all}) $finish;\nendmodule"
    )
    .unwrap();
    std::fs::write(d.join("top.v"), top).unwrap();

    let t0 = std::time::Instant::now();
    let bin = verilator_binary(
        d,
        "top",
        &[
            d.join("top.v"),
            tb_dir().join("tb_attn.v"),
            rtl_lib("tls_attn.v"),
            rtl_lib("tls_macros.v"),
        ],
    )
    .unwrap();
    let t_build = t0.elapsed();
    let t1 = std::time::Instant::now();
    run(d, bin.to_str().unwrap(), &[]).unwrap();
    println!(
        "verilator build {:.1} s, simulation {:.1} s",
        t_build.as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );

    for (i, c) in cases.iter().enumerate() {
        let g = c.cfg;
        let got = parse_hex48(&std::fs::read_to_string(d.join(format!("out{i}.hex"))).unwrap());
        assert_eq!(got.len(), c.mem_want.len(), "{g:?}: scratchpad size");
        let mut bad = 0;
        for (a, (&x, &w)) in got.iter().zip(&c.mem_want).enumerate() {
            if x != w {
                if bad < 10 {
                    let qw = g.nh * g.hd;
                    let where_ = if (c.ob..c.ob + g.t * g.users * qw).contains(&a) {
                        let r = a - c.ob;
                        format!("step {} head {} i {}", r / qw, (r % qw) / g.hd, r % g.hd)
                    } else {
                        "outside the outputs".into()
                    };
                    eprintln!("{g:?}: addr {a} ({where_}): got {x} want {w}");
                }
                bad += 1;
            }
        }
        let outputs = g.t * g.users * g.nh * g.hd;
        let saturated = c.mem_want[c.ob..c.ob + outputs]
            .iter()
            .filter(|&&x| x == W_MAX || x == W_MIN)
            .count();
        let zeros = c.mem_want[c.ob..c.ob + outputs]
            .iter()
            .filter(|&&x| x == 0)
            .count();
        println!(
            "{g:?}: {outputs} outputs ({saturated} saturated, {zeros} zero), {bad} mismatching words"
        );
        assert_eq!(bad, 0, "{g:?}: mismatches");

        let stat = std::fs::read_to_string(d.join(format!("stat{i}.txt"))).unwrap();
        let mut per_pos = Vec::new();
        for line in stat.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f[0] {
                "pos" => {
                    let (p, cyc, busy): (usize, usize, usize) = (
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                        f[3].parse().unwrap(),
                    );
                    assert_eq!(cyc, busy, "{g:?} pos {p}: busy cycles vs start->done");
                    let pos = p / g.users;
                    assert_eq!(
                        cyc,
                        cycles_formula(&g, pos),
                        "{g:?} step {p}: cycle formula"
                    );
                    if (g.hp, g.kp, g.bpc, g.v) == (1, 1, 1, 1) {
                        assert_eq!(
                            cyc,
                            cycles_serial(&g, pos),
                            "{g:?} step {p}: serial formula"
                        );
                    }
                    per_pos.push(cyc);
                }
                "viol" => {
                    assert_eq!(
                        &f[1..],
                        &["0", "0", "0", "0", "0"],
                        "{g:?}: protocol violations (idle outputs, writes outside dst, \
                         done without busy, start without busy, timeouts)"
                    );
                }
                _ => panic!("stat line {line:?}"),
            }
        }
        assert_eq!(per_pos.len(), g.t * g.users, "{g:?}: positions run");
        println!(
            "{g:?}: cycles per position: pos 0 {}, pos {} {}, all {:?}",
            per_pos[0],
            per_pos.len() - 1,
            per_pos[per_pos.len() - 1],
            per_pos
        );
    }
}

#[test]
fn attn_lint_clean() {
    let dir = tempfile::tempdir().unwrap();
    let params: [&[&str]; 6] = [
        &[],
        &[
            "-GHD=64",
            "-GNH=8",
            "-GNKV=2",
            "-GCTX=24",
            "-GHP=4",
            "-GKP=4",
            "-GBPC=2",
            "-GSLOTS=2",
            "-GV=4",
        ],
        &[
            "-GHD=96",
            "-GNH=12",
            "-GNKV=2",
            "-GCTX=32",
            "-GWINDOW=11",
            "-GHP=3",
            "-GKP=8",
            "-GBPC=3",
            "-GV=64",
        ],
        &["-GHD=32", "-GNH=4", "-GNKV=2", "-GCTX=48", "-GV=32"],
        &[
            "-GHD=96",
            "-GNH=3",
            "-GNKV=1",
            "-GCTX=40",
            "-GWINDOW=8",
            "-GV=8",
        ],
        &[
            "-GHD=128",
            "-GNH=1",
            "-GNKV=1",
            "-GCTX=2",
            "-GWINDOW=1",
            "-GSCALE_MANT=46341",
            "-GSCALE_SHIFT=19",
        ],
    ];
    for p in params {
        let mut args: Vec<String> = vec![
            "--lint-only".into(),
            "-Wall".into(),
            "-Wno-DECLFILENAME".into(),
            "--top-module".into(),
            "tls_attn".into(),
        ];
        args.extend(p.iter().map(|s| s.to_string()));
        args.push(rtl_lib("tls_attn.v").display().to_string());
        args.push(rtl_lib("tls_macros.v").display().to_string());
        // Any warning makes verilator exit non-zero, i.e. an error here.
        run(dir.path(), "verilator", &args).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
}
