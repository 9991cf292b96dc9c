//! The plan's text form (`Plan::to_text`) on a small fixture: the plan is
//! built from the image's metadata only (no weight is quantized).

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use taalasc_image::{ImageError, ImageInfo, ImageSource, MatrixInfo, ParamInfo};
use taalasc_ir::{Op, WeightId};
use taalasc_quant::{Group, QTensor, WeightFormat};

/// The metadata of a chip image: every matrix in one 4-bit format.
struct Meta(ImageInfo);

impl ImageSource for Meta {
    fn info(&self) -> Cow<'_, ImageInfo> {
        Cow::Borrowed(&self.0)
    }
    fn matrix_rows(&self, _: WeightId, _: Range<usize>) -> Result<Cow<'_, QTensor>, ImageError> {
        unreachable!("planning reads no weight")
    }
    fn fixed16_values(&self, _: WeightId) -> Result<Cow<'_, [i32]>, ImageError> {
        unreachable!("planning reads no weight")
    }
    fn wide_values(&self, _: WeightId) -> Result<Cow<'_, [i64]>, ImageError> {
        unreachable!("planning reads no weight")
    }
}

fn fixture(name: &str, context: usize) -> Meta {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rtl");
    let model = taalasc_frontends::load(&dir.join(name)).unwrap().model;
    let format = WeightFormat::new(4, Group::Size(32), false).unwrap();
    let mut params: Vec<Option<ParamInfo>> = vec![None; model.weights.len()];
    for nd in model.graph.node_indices() {
        let mut set = |id: WeightId, p: ParamInfo| params[id.0 as usize] = Some(p);
        let matrix = |id: WeightId| {
            let s = &model.weights[id.0 as usize].shape;
            ParamInfo::Matrix(MatrixInfo::new(format, s[0], s[1], Default::default()))
        };
        let n = |id: WeightId| model.weights[id.0 as usize].numel() as usize;
        match &model.graph[nd].op {
            Op::Embed { table } | Op::AddPositions { table } => set(*table, matrix(*table)),
            Op::Linear { weight, bias } => {
                set(*weight, matrix(*weight));
                if let Some(b) = bias {
                    set(*b, ParamInfo::Wide(n(*b)));
                }
            }
            Op::RmsNorm { gain, .. } => set(*gain, ParamInfo::Fixed16(n(*gain))),
            Op::LayerNorm { gain, bias, .. } => {
                set(*gain, ParamInfo::Fixed16(n(*gain)));
                set(*bias, ParamInfo::Fixed16(n(*bias)));
            }
            _ => {}
        }
    }
    let params = params
        .into_iter()
        .map(|p| p.expect("every weight is read by a node"))
        .collect();
    Meta(ImageInfo {
        model,
        params,
        context,
    })
}

#[test]
fn plan_text_lists_every_engine_program() {
    let image = fixture("llama_tied_mqa", 8);
    let plan = taalasc_verilog::plan(&image, 4, 1).unwrap();
    let text = plan.to_text();
    assert_eq!(text, format!("{plan}"));
    assert_eq!(text, plan.to_text(), "deterministic");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("plan: 4 lanes, 1 users, context 8,"));
    // One header per engine, each followed by its program.
    for e in &plan.engines {
        let head = format!(
            "engine {} ({}): {} instructions",
            e.index,
            e.role,
            e.program.len()
        );
        let at = lines
            .iter()
            .position(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("no header `{head}` in\n{text}"));
        let prog = at + lines[at..].iter().position(|l| *l == "  program:").unwrap();
        for (pc, node) in e.nodes.iter().enumerate() {
            let l = lines[prog + 1 + pc];
            assert!(l.starts_with(&format!("    {pc}: ")), "{l}");
            assert!(l.ends_with(&format!("; {node}")), "{l}");
        }
    }
    // The first engine's program starts with the embedding.
    let first = lines.iter().position(|l| *l == "  program:").unwrap();
    assert!(
        lines[first + 1].starts_with("    0: embed mat 0 ["),
        "{}",
        lines[first + 1]
    );
    // Every linear names its matrix and shape.
    let linears: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(": linear mat "))
        .collect();
    assert!(!linears.is_empty());
    for l in linears {
        let shape = l
            .split('[')
            .nth(1)
            .and_then(|r| r.split(']').next())
            .unwrap();
        let (r, c) = shape.split_once('x').unwrap();
        assert!(
            r.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
            "{l}"
        );
        assert!(l.contains(", a4g32)  ; "), "{l}");
    }
    // The schedule and the stages close the text.
    assert!(lines.contains(&"schedule:"));
    let stages = lines.iter().position(|l| *l == "stages:").unwrap();
    assert_eq!(lines.len() - stages - 1, plan.stages().len());
    assert!(lines[stages + 1].starts_with("  0: engine 0 (io) instructions 0.."));
}
