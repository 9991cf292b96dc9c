//! `taalasc synth --liberty` on one small unit per library: the link at
//! 8 bits (seconds of Yosys), checked against the committed unit table.
//! Needs Yosys and the OSU library (`scripts/tools.sh need_tools yosys
//! osu018`); a missing one fails the test.

use std::path::{Path, PathBuf};
use taalasc_verilog::cost::cells;
use taalasc_verilog::synth::{liberty, synth_unit};

fn sky130() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("synth/liberty/sky130hd_tt.lib.gz")
}

const OSU018: &str = "/usr/share/qflow/tech/osu018/osu018_stdcells.lib";

/// Synthesizes `tls_link` W=8 onto `lib` and compares it with the table.
fn link8(lib_file: &Path, nand2: &str, nand2_area: f64, fo4_ps: (f64, f64)) {
    assert!(
        lib_file.exists(),
        "{} is missing (install qflow-tech-osu018: scripts/tools.sh need_tools osu018)",
        lib_file.display()
    );
    let work = tempfile::tempdir().unwrap();
    let lib = liberty::load(lib_file, work.path()).unwrap();
    assert_eq!(lib.nand2_cell, nand2);
    assert_eq!(lib.nand2_area_um2, nand2_area);
    let fo4 = lib.fo4_ns * 1000.0;
    assert!(fo4 > fo4_ps.0 && fo4 < fo4_ps.1, "FO4 {fo4} ps");
    // The copy Yosys reads is in the work folder, not next to the input.
    assert!(lib.path.starts_with(work.path()));
    let r = synth_unit(work.path(), "tls_link", &[("W".into(), 8)], &[], &lib).unwrap();
    assert!(r.check_passed);
    let area = r.area_um2.expect("area");
    let n2 = r.nand2_eq.expect("NAND2-eq");
    let d = r.delay_ns.expect("critical path");
    assert!((n2 - area / nand2_area).abs() < 1e-6);
    assert!((r.delay_fo4.unwrap() - d / lib.fo4_ns).abs() < 1e-9);
    // Against the committed table (same flow, same library): within 10 %.
    let rows = cells::parse(cells::UNITS_TSV).unwrap();
    let row = rows
        .iter()
        .find(|w| {
            w.unit == "tls_link" && w.library == lib.name && w.params == [("W".to_string(), 8)]
        })
        .unwrap_or_else(|| panic!("units.tsv has no tls_link W=8 row for {}", lib.name));
    assert!(
        (area / row.area_um2 - 1.0).abs() < 0.10,
        "area {area} against the table's {}",
        row.area_um2
    );
    assert!(
        (d / row.crit_ns - 1.0).abs() < 0.25,
        "critical path {d} ns against the table's {}",
        row.crit_ns
    );
}

#[test]
fn link_on_sky130() {
    link8(&sky130(), "sky130_fd_sc_hd__nand2_1", 3.7536, (20.0, 200.0));
}

#[test]
fn link_on_osu018() {
    link8(Path::new(OSU018), "NAND2X1", 24.0, (20.0, 300.0));
}

#[test]
fn a_bad_liberty_file_is_an_error_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("nope.lib");
    let e = liberty::load(&missing, work.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.lib"), "{e}");
    let bad = work.path().join("bad.lib");
    std::fs::write(&bad, "library (x) { cell (A) { area : 1; }").unwrap();
    let e = liberty::load(&bad, work.path()).unwrap_err().to_string();
    assert!(e.contains("bad.lib") && e.contains("not closed"), "{e}");
    let gz = work.path().join("bad.lib.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 1, 2, 3]).unwrap();
    let e = liberty::load(&gz, work.path()).unwrap_err().to_string();
    assert!(e.contains("bad.lib.gz") && e.contains("gzip"), "{e}");
}
