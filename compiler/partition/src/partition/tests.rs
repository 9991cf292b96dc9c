//! Tests of the partition pass: hand-computed chains, the error cases, the
//! e-graph's size, and two independent oracles (a brute force over every
//! cut set and a plain DP over cut positions) on seeded random chains.

use super::*;

/// A budget with round densities: ROM 4 Mbit/mm², SRAM 2 Mbit/mm², logic
/// 0.5 mm² per Mcell, so areas are exact in binary.
fn budget(die_mm2: f64, io_pins: u32, link_bits_per_cycle: u32) -> Budget {
    Budget {
        name: "test".into(),
        die_mm2,
        rom_mbit_per_mm2: 4.0,
        sram_mbit_per_mm2: 2.0,
        logic_mm2_per_mcell: 0.5,
        io_pins,
        link_bits_per_cycle,
        ..Budget::preset("hc1").unwrap()
    }
}

/// A stage of `rom` + `sram` + `logic` mm² under [`budget`]'s densities.
fn stage(name: &str, rom: f64, sram: f64, logic: f64, cycles: u64, out_bits: u64) -> StageCost {
    StageCost {
        name: name.into(),
        rom_bits: (rom * 4e6) as u64,
        sram_bits: (sram * 2e6) as u64,
        kv_bits_per_position: 0,
        fixed_sram_bits: 0,
        logic_cells: (logic * 2e6) as u64,
        cycles,
        macs: 0,
        rom_read_bits: 0,
        sram_access_bits: 0,
        out_bits,
    }
}

/// SmolLM2's residual: 576 words of 32 bits.
const RESIDUAL: u64 = 576 * 32;

/// embed 10 mm², four layers of 20 mm², head 10 mm²: 100 mm² in all.
fn small_model() -> Vec<StageCost> {
    let mut s = vec![stage("embed", 8.0, 1.0, 1.0, 600, RESIDUAL)];
    for l in 0..4 {
        s.push(stage(&format!("layer {l}"), 12.0, 5.0, 3.0, 1000, RESIDUAL));
    }
    s.push(stage("head", 8.0, 1.0, 1.0, 900, 49152 * 16));
    s
}

fn ranges(p: &Partition) -> Vec<(usize, usize)> {
    p.chips.iter().map(|c| (c.first, c.end)).collect()
}

fn areas(p: &Partition) -> Vec<f64> {
    p.chips.iter().map(|c| c.area_mm2).collect()
}

#[test]
fn the_die_area_forces_two_three_and_four_chips() {
    let stages = small_model();
    // 100 mm² > 70: two chips; cuts after 2, 3 or 4 stages fit (30/70,
    // 50/50, 70/30), the even one wins.
    let p = partition(&stages, &budget(70.0, 1024, 256), 1).unwrap();
    assert_eq!(ranges(&p), [(0, 3), (3, 6)]);
    assert_eq!(areas(&p), [50.0, 50.0]);
    // Chip 0: embed + two layers.
    let c = &p.chips[0];
    assert_eq!(
        (c.rom_bits, c.sram_bits, c.logic_cells),
        (128_000_000, 22_000_000, 14_000_000)
    );
    assert_eq!((c.rom_mm2, c.sram_mm2, c.logic_mm2), (32.0, 11.0, 7.0));
    assert_eq!(c.utilization, 50.0 / 70.0);
    assert_eq!(c.slowest_stage_cycles, 1000);
    assert_eq!(c.link_pins, 258);
    assert_eq!(p.chips[1].slowest_stage_cycles, 1000);
    assert_eq!(p.chips[1].link_pins, 258);
    let bits = RESIDUAL + LINK_HEADER_BITS; // 18496 bits: 578 words of 32
    assert_eq!(
        p.links,
        [LinkCost {
            after_stage: 2,
            bits_per_token: bits,
            busy_cycles: 578,
            latency_cycles: 20,
        }]
    );
    assert_eq!(p.slowest_stage_cycles, 1000);
    assert_eq!(p.link_bits_per_token, bits);

    // At most 45 mm²: two chips hold at most 90; the only three-chip split
    // is 30 + 40 + 30.
    let p = partition(&stages, &budget(45.0, 1024, 256), 1).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 4), (4, 6)]);
    assert_eq!(areas(&p), [30.0, 40.0, 30.0]);
    assert_eq!(
        p.chips.iter().map(|c| c.link_pins).collect::<Vec<_>>(),
        [258, 516, 258]
    );
    assert_eq!(
        p.links.iter().map(|l| l.after_stage).collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(p.link_bits_per_token, 2 * bits);

    // At most 35 mm²: two layers never share a chip, so chips hold at most
    // 30 and four are needed.
    let p = partition(&stages, &budget(35.0, 1024, 256), 1).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 3), (3, 4), (4, 6)]);
    assert_eq!(areas(&p), [30.0, 20.0, 20.0, 30.0]);
    assert_eq!(
        p.chips
            .iter()
            .map(|c| c.slowest_stage_cycles)
            .collect::<Vec<_>>(),
        [1000, 1000, 1000, 1000]
    );
    assert_eq!(p.links.len(), 3);
}

#[test]
fn forced_chips_are_balanced() {
    let stages = small_model();
    let b = budget(1000.0, 1024, 256);
    for min in [0, 1] {
        let p = partition(&stages, &b, min).unwrap();
        assert_eq!(ranges(&p), [(0, 6)], "--chips {min}");
        assert_eq!(p.chips[0].link_pins, 0);
        assert_eq!(p.chips[0].area_mm2, 100.0);
        assert_eq!(p.chips[0].utilization, 0.1);
        assert!(p.links.is_empty());
        assert_eq!((p.slowest_stage_cycles, p.link_bits_per_token), (1000, 0));
    }
    let p = partition(&stages, &b, 2).unwrap();
    assert_eq!(ranges(&p), [(0, 3), (3, 6)]);
    let p = partition(&stages, &b, 3).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 4), (4, 6)]);
    let p = partition(&stages, &b, 4).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 3), (3, 4), (4, 6)]);
    let p = partition(&stages, &b, 6).unwrap();
    assert_eq!(ranges(&p), (0..6).map(|i| (i, i + 1)).collect::<Vec<_>>());
    assert_eq!(
        p.links.iter().map(|l| l.bits_per_token).collect::<Vec<_>>(),
        [18496, 18496, 18496, 18496, 18496]
    );
}

#[test]
fn equal_choices_take_the_earliest_cuts() {
    // Five 10 mm² stages on two chips: 20/30 and 30/20 tie on everything
    // but the cut.
    let stages: Vec<_> = (0..5)
        .map(|i| stage(&format!("s{i}"), 10.0, 0.0, 0.0, 100, RESIDUAL))
        .collect();
    let p = partition(&stages, &budget(1000.0, 1024, 256), 2).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 5)]);
    // On four chips one holds two stages; the earliest cuts put it last.
    let p = partition(&stages, &budget(1000.0, 1024, 256), 4).unwrap();
    assert_eq!(ranges(&p), [(0, 1), (1, 2), (2, 3), (3, 5)]);
}

#[test]
fn link_bits_come_before_balance() {
    // The cut after `layer 1` (the even one) carries twice the residual:
    // 36928 bits, 145 cycles, still below the stages' 1000 cycles. Fewer
    // link bits win over balance; of 30/70 and 70/30 the earlier cut.
    let mut stages = small_model();
    stages[2].out_bits = 2 * RESIDUAL;
    let p = partition(&stages, &budget(1000.0, 1024, 256), 2).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 6)]);
    assert_eq!(
        (p.slowest_stage_cycles, p.link_bits_per_token),
        (1000, 18496)
    );
}

/// Five 10 mm² stages, chips of at most 25 mm², so three chips of sizes
/// (1,2,2), (2,1,2) or (2,2,1): cut sets {1,3}, {2,3}, {2,4}. With link bits
/// 100, 2000, 3000, 2000 at those cuts, {1,3} has the fewest bits (3100) but
/// a 94-cycle link (3000 bits, 94 words), {2,4} more bits (4000) and
/// 63-cycle links.
fn bottleneck_chain(cycles: u64) -> Vec<StageCost> {
    [100, 2000, 3000, 2000, 0]
        .iter()
        .enumerate()
        .map(|(i, &bits)| {
            let out = (bits as u64).saturating_sub(LINK_HEADER_BITS);
            stage(&format!("s{i}"), 10.0, 0.0, 0.0, cycles, out)
        })
        .collect()
}

#[test]
fn the_slowest_link_comes_before_link_bits() {
    let b = budget(25.0, 1024, 256);
    // Stages of 1 cycle: the links bound the throughput, {2,4} is faster.
    let p = partition(&bottleneck_chain(1), &b, 1).unwrap();
    assert_eq!(ranges(&p), [(0, 2), (2, 4), (4, 5)]);
    assert_eq!((p.slowest_stage_cycles, p.link_bits_per_token), (63, 4000));
    assert_eq!(
        p.links.iter().map(|l| l.busy_cycles).collect::<Vec<_>>(),
        [63, 63]
    );
    // Stages of 100 cycles hide either link: the fewer bits win.
    let p = partition(&bottleneck_chain(100), &b, 1).unwrap();
    assert_eq!(ranges(&p), [(0, 1), (1, 3), (3, 5)]);
    assert_eq!((p.slowest_stage_cycles, p.link_bits_per_token), (100, 3100));
}

#[test]
fn a_stage_larger_than_the_die_is_named() {
    let mut stages = small_model();
    stages[3] = stage("layer 2", 60.0, 30.0, 12.0, 1000, RESIDUAL);
    let e = partition(&stages, &budget(100.0, 1024, 256), 1).unwrap_err();
    assert_eq!(
        e,
        PartitionError::StageTooBig {
            stage: "layer 2".into(),
            budget: "test".into(),
            need_mm2: 102.0,
            rom_mm2: 60.0,
            sram_mm2: 30.0,
            logic_mm2: 12.0,
            die_mm2: 100.0,
        }
    );
    assert_eq!(
        e.to_string(),
        "stage `layer 2` alone needs 102.0000 mm2 (ROM 60.0000, SRAM 30.0000, logic 12.0000) but budget \
         `test` gives a die of 100.0000 mm2: use a larger die, fewer bits, fewer users or a shorter context"
    );
}

#[test]
fn link_pins_limit_the_chain() {
    // Three 60 mm² stages on 100 mm² dies: three chips, so the middle one
    // needs two links of 256 + 2 pins.
    let stages: Vec<_> = (0..3)
        .map(|i| stage(&format!("s{i}"), 60.0, 0.0, 0.0, 10, RESIDUAL))
        .collect();
    let p = partition(&stages, &budget(100.0, 516, 256), 1).unwrap();
    assert_eq!(ranges(&p), [(0, 1), (1, 2), (2, 3)]);
    assert_eq!(
        p.chips.iter().map(|c| c.link_pins).collect::<Vec<_>>(),
        [258, 516, 258]
    );
    let e = partition(&stages, &budget(100.0, 515, 256), 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no partition fits budget `test`: the stages need more than 2 chip(s), but 515 link pins \
         allow at most 2 chip(s) in a chain (a chip with one link needs 258 pins, one between two chips 516)"
    );
    // Two chips need one link each.
    let p = partition(&stages[..2], &budget(100.0, 258, 256), 1).unwrap();
    assert_eq!(ranges(&p), [(0, 1), (1, 2)]);
    let e = partition(&stages[..2], &budget(100.0, 257, 256), 1).unwrap_err();
    assert!(
        matches!(&e, PartitionError::Infeasible { reason, .. } if reason.contains("at most 1 chip(s)")),
        "{e}"
    );
    // --chips beyond what the pins allow.
    let small: Vec<_> = (0..3)
        .map(|i| stage(&format!("s{i}"), 1.0, 0.0, 0.0, 10, RESIDUAL))
        .collect();
    assert_eq!(
        ranges(&partition(&small, &budget(100.0, 300, 256), 2).unwrap()),
        [(0, 1), (1, 3)]
    );
    let e = partition(&small, &budget(100.0, 300, 256), 3).unwrap_err();
    assert!(
        e.to_string()
            .contains("--chips 3 asks for 3 chips, but 300 link pins allow at most 2 chip(s)"),
        "{e}"
    );
}

#[test]
fn empty_chains_and_too_many_chips_are_errors() {
    let b = budget(1000.0, 1024, 256);
    assert_eq!(partition(&[], &b, 1), Err(PartitionError::NoStages));
    assert_eq!(partition(&[], &b, 0), Err(PartitionError::NoStages));
    let e = partition(&small_model(), &b, 7).unwrap_err();
    assert_eq!(
        e,
        PartitionError::TooManyChips {
            min_chips: 7,
            stages: 6
        }
    );
    assert_eq!(
        e.to_string(),
        "--chips 7 asks for more chips than the model has stages (6)"
    );
}

#[test]
fn the_egraph_of_a_chain_that_fits_one_chip_has_every_choice() {
    // Three stages that fit anywhere: numbers 0..=3, parts 0..3, 1..3,
    // 2..3, six chips, three links: (n+1)² = 16 nodes. Classes: four
    // numbers, the three parts (each with its chip and links) and the
    // chips 0..1, 0..2, 1..2. Iterations: the root, then parts 1..3 and
    // 2..3, then one that finds nothing new.
    let stages: Vec<_> = (0..3)
        .map(|i| stage(&format!("s{i}"), 1.0, 0.0, 0.0, 10, RESIDUAL))
        .collect();
    let p = partition(&stages, &budget(1000.0, 1024, 256), 1).unwrap();
    assert_eq!(
        p.egraph,
        EgraphStats {
            classes: 10,
            nodes: 16,
            iterations: 3
        }
    );
    // 20 stages: still (n+1)² nodes.
    let stages: Vec<_> = (0..20)
        .map(|i| stage(&format!("s{i}"), 1.0, 0.0, 0.0, 10, RESIDUAL))
        .collect();
    let p = partition(&stages, &budget(1000.0, 1024, 256), 5).unwrap();
    assert_eq!(p.egraph.nodes, 21 * 21);
    assert_eq!(ranges(&p), [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20)]);
    // A die that holds one stage: a chain of single chips, n + 1 numbers,
    // n parts, n chips and n - 1 links; one iteration per cut, plus the
    // root's and the last.
    let p = partition(&stages, &budget(1.5, 1024, 256), 1).unwrap();
    assert_eq!(p.chips.len(), 20);
    assert_eq!(p.egraph.nodes, 21 + 20 + 20 + 19);
    assert_eq!(p.egraph.iterations, 21);
}

#[test]
fn two_hundred_stages() {
    // 200 stages of 10 mm² on an 815 mm² die: 81 per chip, so 3 chips;
    // the most even split is 67/67/66 stages, the earliest cuts 66, 133.
    let stages: Vec<_> = (0..200)
        .map(|i| stage(&format!("layer {i}"), 6.0, 3.0, 1.0, 1000, RESIDUAL))
        .collect();
    let b = budget(815.0, 1024, 256);
    let p = partition(&stages, &b, 1).unwrap();
    assert_eq!(ranges(&p), [(0, 66), (66, 133), (133, 200)]);
    assert_eq!(areas(&p), [660.0, 670.0, 670.0]);
    assert_eq!(p.link_bits_per_token, 2 * 18496);
    // Parts reach stage 81, 162, 199 in three iterations; the fourth
    // expands the last ones, the fifth finds nothing new.
    assert_eq!(p.egraph.iterations, 5);
    // Forced onto 200 chips: one stage each.
    let p = partition(&stages, &b, 200).unwrap();
    assert_eq!(p.chips.len(), 200);
    assert!(p
        .chips
        .iter()
        .enumerate()
        .all(|(i, c)| (c.first, c.end) == (i, i + 1)));
    // The e-graph does not depend on --chips: 201 numbers, 200 parts, a
    // chip for each of the C = Σ_{len=1..81} (201 - len) = 12960 spans of
    // at most 81 stages, a link for each such span that ends before 200.
    assert_eq!(p.egraph.nodes, 201 + 200 + 12960 + (12960 - 81));
    // Random sizes: the same answer as the reference DP.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let stages: Vec<_> = (0..200)
        .map(|i| {
            let rom = 1.0 + (rng.next_u64() % 24) as f64;
            let out = [RESIDUAL, RESIDUAL, 2 * RESIDUAL][rng.next_u64() as usize % 3];
            stage(&format!("layer {i}"), rom, 2.0, 1.0, 1000, out)
        })
        .collect();
    let p = partition(&stages, &b, 1).unwrap();
    let expected = reference_dp(&stages, &b, 1).unwrap();
    assert_eq!(cuts_of(&p), expected);
    assert!(p.chips.len() >= 4, "{}", p.chips.len());
}

// ---------------------------------------------------------------------------
// Oracles.

use taalasc_testrng::XorShift64 as XorShift;

/// The chain, costed directly from the stages (not through [`Chain`]).
struct Naive<'a> {
    stages: &'a [StageCost],
    budget: &'a Budget,
}

impl Naive<'_> {
    fn area(&self, first: usize, end: usize) -> f64 {
        let s = &self.stages[first..end];
        self.budget.rom_mm2(s.iter().map(|s| s.rom_bits).sum())
            + self.budget.sram_mm2(s.iter().map(|s| s.sram_bits).sum())
            + self.budget.logic_mm2(s.iter().map(|s| s.logic_cells).sum())
    }
    fn fits(&self, first: usize, end: usize) -> bool {
        let link = self.budget.link_bits_per_cycle as u64 + 2;
        let mut pins = 0;
        if first > 0 {
            pins += link;
        }
        if end < self.stages.len() {
            pins += link;
        }
        self.area(first, end) <= self.budget.die_mm2 && pins <= self.budget.io_pins as u64
    }
    /// Link bits of cut `c` (between stages `c - 1` and `c`).
    fn bits(&self, c: usize) -> u64 {
        self.stages[c - 1].out_bits + LINK_HEADER_BITS
    }
    fn busy(&self, c: usize) -> u64 {
        link_busy_cycles(self.bits(c), self.budget.link_bits_per_cycle as u64)
    }
    /// The objective of a cut list, in comparison order, or `None` if a
    /// chip does not fit.
    fn key(&self, cuts: &[usize]) -> Option<Key> {
        let n = self.stages.len();
        let bounds: Vec<usize> = [0]
            .into_iter()
            .chain(cuts.iter().copied())
            .chain([n])
            .collect();
        let mut max_area = 0.0f64;
        for w in bounds.windows(2) {
            if !self.fits(w[0], w[1]) {
                return None;
            }
            max_area = max_area.max(self.area(w[0], w[1]));
        }
        let slowest = self.stages.iter().map(|s| s.cycles).max().unwrap();
        Some(Key {
            chips: cuts.len() + 1,
            slowest: cuts.iter().map(|&c| self.busy(c)).fold(slowest, u64::max),
            bits: cuts.iter().map(|&c| self.bits(c)).sum(),
            max_area,
            cuts: cuts.to_vec(),
        })
    }
}

/// The objective, compared field by field in this order.
#[derive(Clone, Debug, PartialEq)]
struct Key {
    chips: usize,
    slowest: u64,
    bits: u64,
    max_area: f64,
    cuts: Vec<usize>,
}

impl Key {
    fn cmp(&self, o: &Key) -> std::cmp::Ordering {
        (self.chips, self.slowest, self.bits)
            .cmp(&(o.chips, o.slowest, o.bits))
            .then(self.max_area.total_cmp(&o.max_area))
            .then(self.cuts.cmp(&o.cuts))
    }
}

/// Every cut set, the best by [`Key`].
fn brute_force(stages: &[StageCost], budget: &Budget, min_chips: usize) -> Option<Key> {
    let naive = Naive { stages, budget };
    let n = stages.len();
    let mut best: Option<Key> = None;
    for mask in 0u32..1 << (n - 1) {
        let cuts: Vec<usize> = (1..n).filter(|c| mask >> (c - 1) & 1 == 1).collect();
        if cuts.len() + 1 < min_chips.max(1) {
            continue;
        }
        let Some(key) = naive.key(&cuts) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| key.cmp(b).is_lt()) {
            best = Some(key);
        }
    }
    best
}

/// Σ link bits and the cut list of a split.
type BitsAndCuts = (u64, Vec<usize>);

/// A plain DP over cut positions, without the e-graph: the fewest chips by
/// feasibility; then the smallest link bound, the least bits and the
/// smallest largest chip each found by searching a threshold; then the
/// least bits with the earliest cuts within the thresholds.
fn reference_dp(stages: &[StageCost], budget: &Budget, min_chips: usize) -> Option<Vec<usize>> {
    let naive = Naive { stages, budget };
    let n = stages.len();
    // Least (bits, cuts) over `k`-chip splits whose links take at most
    // `max_busy` cycles and chips at most `max_area`: forward over prefixes,
    // best[j][c] for stages 0..j on c chips.
    let solve = |k: usize, max_busy: u64, max_area: f64| -> Option<BitsAndCuts> {
        let mut best: Vec<Vec<Option<BitsAndCuts>>> = vec![vec![None; k + 1]; n + 1];
        best[0][0] = Some((0, vec![]));
        for j in 1..=n {
            for i in 0..j {
                if !naive.fits(i, j) || naive.area(i, j) > max_area {
                    continue;
                }
                if i > 0 && naive.busy(i) > max_busy {
                    continue;
                }
                for c in 1..=k {
                    let Some((bits, cuts)) = &best[i][c - 1] else {
                        continue;
                    };
                    let mut cand = (*bits, cuts.clone());
                    if i > 0 {
                        cand.0 += naive.bits(i);
                        cand.1.push(i);
                    }
                    if best[j][c].as_ref().is_none_or(|b| cand < *b) {
                        best[j][c] = Some(cand);
                    }
                }
            }
        }
        best[n][k].take()
    };
    let k = (min_chips.max(1)..=n).find(|&k| solve(k, u64::MAX, f64::INFINITY).is_some())?;
    let mut busy: Vec<u64> = (1..n).map(|c| naive.busy(c)).chain([0]).collect();
    busy.sort_unstable();
    busy.dedup();
    let t = busy[busy.partition_point(|&t| solve(k, t, f64::INFINITY).is_none())];
    let t = t.max(stages.iter().map(|s| s.cycles).max().unwrap());
    let bits = solve(k, t, f64::INFINITY)?.0;
    let mut chip_areas: Vec<f64> = (0..n)
        .flat_map(|i| (i + 1..=n).map(move |j| (i, j)))
        .filter(|&(i, j)| naive.fits(i, j))
        .map(|(i, j)| naive.area(i, j))
        .collect();
    chip_areas.sort_by(f64::total_cmp);
    chip_areas.dedup();
    let a = chip_areas[chip_areas.partition_point(|&a| solve(k, t, a).is_none_or(|s| s.0 > bits))];
    solve(k, t, a).map(|s| s.1)
}

fn cuts_of(p: &Partition) -> Vec<usize> {
    p.chips[1..].iter().map(|c| c.first).collect()
}

/// A random chain of 1 to 12 stages and a budget. Areas are multiples of
/// 1/64 mm² (exact, so ties happen), link payloads come from a short list
/// (so bits and busy times tie and differ), stage cycles are below, among
/// or above the links' busy times, pins allow 1, 2 or any number of chips.
/// Half the dies are a few times the largest stage, so that chips hold few
/// stages and the choices interact.
fn random_case(rng: &mut XorShift) -> (Vec<StageCost>, Budget, usize) {
    let n = 1 + rng.next_u64() as usize % 12;
    let width = rng.pick(&[8u32, 64, 256]);
    let w2 = width + 2;
    let io_pins = rng.pick(&[w2 - 1, w2, 2 * w2 - 1, 2 * w2, 2 * w2, 2 * w2]);
    let mut b = budget(1.0, io_pins, width);
    b.rom_mbit_per_mm2 = rng.pick(&[1.0, 4.0]);
    b.logic_mm2_per_mcell = rng.pick(&[0.5, 1.0]);
    let max_cycles = rng.pick(&[2u64, 8, 40, 200]);
    // A third of the chains have stages of one size: then the die decides
    // how many stages a chip holds and only the links differ.
    let uniform = rng.next_u64().is_multiple_of(3);
    let stages: Vec<StageCost> = (0..n)
        .map(|i| StageCost {
            name: format!("s{i}"),
            rom_bits: if uniform {
                1_000_000
            } else {
                rng.next_u64() % 8 * 250_000
            },
            sram_bits: if uniform {
                0
            } else {
                rng.next_u64() % 4 * 250_000
            },
            kv_bits_per_position: 0,
            fixed_sram_bits: 0,
            logic_cells: if uniform {
                0
            } else {
                rng.next_u64() % 4 * 125_000
            },
            cycles: 1 + rng.next_u64() % max_cycles,
            macs: 0,
            rom_read_bits: 0,
            sram_access_bits: 0,
            out_bits: rng.pick(&[0, 100, 448, 1000, 2000, 3000, 5000]),
        })
        .collect();
    b.die_mm2 = if rng.next_u64().is_multiple_of(2) {
        (1 + rng.next_u64() % 24) as f64 * 0.25
    } else {
        let naive = Naive {
            stages: &stages,
            budget: &b,
        };
        let largest = (0..n).map(|i| naive.area(i, i + 1)).fold(0.25, f64::max);
        largest * rng.pick(&[1.0, 1.25, 1.5, 2.0, 2.5, 3.0])
    };
    let min_chips = rng.next_u64() as usize % (n + 2);
    (stages, b, min_chips)
}

#[test]
fn random_chains_match_brute_force_and_the_reference_dp() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let (mut ok, mut multi, mut too_big, mut pins, mut too_many) = (0, 0, 0, 0, 0);
    for case in 0..1500 {
        let (stages, b, min_chips) = random_case(&mut rng);
        let got = partition(&stages, &b, min_chips);
        let naive = Naive {
            stages: &stages,
            budget: &b,
        };
        let ctx = format!(
            "case {case}: n {} min {min_chips} {stages:?} {b:?}",
            stages.len()
        );
        if min_chips > stages.len() {
            assert!(
                matches!(got, Err(PartitionError::TooManyChips { .. })),
                "{ctx}"
            );
            too_many += 1;
            continue;
        }
        if let Some(i) = (0..stages.len()).find(|&i| naive.area(i, i + 1) > b.die_mm2) {
            assert!(
                matches!(&got, Err(PartitionError::StageTooBig { stage, .. }) if *stage == stages[i].name),
                "{ctx}: {got:?}"
            );
            too_big += 1;
            continue;
        }
        let want = brute_force(&stages, &b, min_chips);
        assert_eq!(
            reference_dp(&stages, &b, min_chips),
            want.as_ref().map(|k| k.cuts.clone()),
            "reference DP, {ctx}"
        );
        let Some(want) = want else {
            assert!(
                matches!(got, Err(PartitionError::Infeasible { .. })),
                "{ctx}: {got:?}"
            );
            pins += 1;
            continue;
        };
        let p = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let have = naive.key(&cuts_of(&p)).expect("the partition is feasible");
        assert_eq!(have, want, "{ctx}");
        assert_eq!(p.slowest_stage_cycles, want.slowest, "{ctx}");
        assert_eq!(p.link_bits_per_token, want.bits, "{ctx}");
        assert_eq!(
            p.chips.iter().map(|c| c.area_mm2).fold(0.0, f64::max),
            want.max_area,
            "{ctx}"
        );
        assert_eq!(p.links.len(), p.chips.len() - 1);
        for (l, c) in p.links.iter().zip(&p.chips[1..]) {
            assert_eq!(l.after_stage + 1, c.first);
        }
        ok += 1;
        if p.chips.len() > 1 {
            multi += 1;
        }
    }
    // Every branch is exercised, most cases find a partition.
    assert!(ok > 600 && multi > 400, "ok {ok}, multi {multi}");
    assert!(
        too_big > 50 && pins > 20 && too_many > 50,
        "{too_big} {pins} {too_many}"
    );
}
