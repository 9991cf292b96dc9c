//! The verifier of a chip image for the integer datapath (RFC 0002), and
//! the datapath type of every value.
//!
//! [`verify()`] holds every legality rule of an image, read from its
//! metadata alone ([`ImageInfo`]: no weight value is needed):
//!
//! - every weight has the kind its op reads ([`ParamInfo::Matrix`] for
//!   linear weights and embedding or position tables, [`ParamInfo::Fixed16`]
//!   for norm gains and LayerNorm biases, [`ParamInfo::Wide`] for linear
//!   biases) and the shape the graph gives it;
//! - a linear layer's input and an attention head are whole `A8` blocks
//!   ([`nx::A8_BLOCK`] elements), and query heads divide into KV heads;
//! - every operand has the datapath type its unit reads: the residual
//!   stream is `R32` and only embeddings, position tables and residual adds
//!   write it; everything else computes in `W48` (linear layers and
//!   attention convert their `W48` operands to `A8` on read).
//!
//! The datapath types it infers on the way are its result ([`Types`]), so
//! no backend infers them again.

use crate::error::ImageError;
use crate::image::{ChipImage, ImageInfo, MatrixInfo, ParamInfo};
use std::fmt;
use taalasc_ir::{Model, NodeIndex, Op, WeightId};
use taalasc_numerics as nx;

/// The datapath type of a value (RFC 0002 §Formats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// The token ids of the graph input (no datapath value).
    Tokens,
    /// The residual stream: i32 with [`nx::R32_FRAC`] fraction bits.
    R32,
    /// Wide values: [`nx::W_BITS`]-bit signed with [`nx::W_FRAC`] fraction
    /// bits, held in an i64.
    W48,
    /// Activation blocks: [`nx::A8_BLOCK`] 8-bit mantissas sharing one
    /// exponent. No node's output is `A8`: linear layers and attention
    /// convert their `W48` operands to it when they read them (see
    /// [`Types::read_as`]).
    A8,
}

impl Dtype {
    /// Bits of one stored element: 32 for `R32` (and token ids), 48 for
    /// `W48`, 8 (the mantissa) for `A8`.
    pub const fn bits(self) -> u32 {
        match self {
            Dtype::Tokens | Dtype::R32 => 32,
            Dtype::W48 => nx::W_BITS,
            Dtype::A8 => 8,
        }
    }

    /// Fraction bits of a fixed-point value (`None`: token ids, and `A8`,
    /// whose scale is its block exponent).
    pub const fn frac(self) -> Option<i32> {
        match self {
            Dtype::R32 => Some(nx::R32_FRAC),
            Dtype::W48 => Some(nx::W_FRAC),
            Dtype::Tokens | Dtype::A8 => None,
        }
    }

    /// `R32`, `W48`, `A8` or `tokens`.
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Tokens => "tokens",
            Dtype::R32 => "R32",
            Dtype::W48 => "W48",
            Dtype::A8 => "A8",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The datapath type of every node's output, indexed by [`NodeIndex`]: the
/// result of [`verify()`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Types {
    of: Vec<Dtype>,
}

impl Types {
    /// The type of node `nd`'s output.
    pub fn of(&self, nd: NodeIndex) -> Dtype {
        self.of[nd.index()]
    }

    /// Every node's output type, in node-index order.
    pub fn all(&self) -> &[Dtype] {
        &self.of
    }

    /// Whether node `nd`'s output is the residual stream (`R32`).
    pub fn is_residual(&self, nd: NodeIndex) -> bool {
        self.of(nd) == Dtype::R32
    }

    /// The type in which node `nd`'s unit reads its operand `port`: `A8`
    /// for a linear layer's input and attention's q, k and v (converted
    /// from `W48`), otherwise the operand's own type.
    pub fn read_as(&self, model: &Model, nd: NodeIndex, port: usize) -> Dtype {
        match model.graph[nd].op {
            Op::Linear { .. } | Op::Attention { .. } => Dtype::A8,
            _ => self.of(model.inputs(nd)[port]),
        }
    }
}

impl std::ops::Index<NodeIndex> for Types {
    type Output = Dtype;
    fn index(&self, nd: NodeIndex) -> &Dtype {
        &self.of[nd.index()]
    }
}

/// Checks `info` against every legality rule of the datapath (see the
/// module documentation) and returns each node's datapath type.
///
/// Errors name the node (`node `X`: ...`, [`ImageError::Unsupported`]) or
/// the weight (`weight `W`: ...`, [`ImageError::Param`]).
pub fn verify(info: &ImageInfo) -> Result<Types, ImageError> {
    verify_parts(&info.model, &|id| info.params.get(id.0 as usize).cloned())
}

impl ChipImage {
    /// [`verify()`] on this image's metadata.
    pub fn verify(&self) -> Result<Types, ImageError> {
        verify_parts(&self.model, &|id| {
            self.params.get(id.0 as usize).map(|p| p.info())
        })
    }
}

impl ImageInfo {
    /// [`verify()`].
    pub fn verify(&self) -> Result<Types, ImageError> {
        verify(self)
    }
}

/// [`verify()`] over a model and each weight's form (`None`: no value
/// stored for it).
fn verify_parts(
    model: &Model,
    param: &dyn Fn(WeightId) -> Option<ParamInfo>,
) -> Result<Types, ImageError> {
    let n = model.graph.node_count();
    let mut of = vec![Dtype::Tokens; n];
    for nd in model.topo_order() {
        let node = &model.graph[nd];
        let ins = model.inputs(nd);
        let unsupported = |message: String| ImageError::Unsupported {
            node: node.name.clone(),
            message,
        };
        let bad = |id: WeightId, message: String| ImageError::Param {
            weight: model.weight(id).name.clone(),
            message,
        };
        let get = |id: WeightId| param(id).ok_or_else(|| bad(id, "no value stored".into()));
        // A quantized matrix of `rows × cols`.
        let matrix = |id: WeightId, rows: usize, cols: usize| -> Result<(), ImageError> {
            match get(id)? {
                ParamInfo::Matrix(MatrixInfo {
                    rows: r, cols: c, ..
                }) if (r, c) == (rows, cols) => Ok(()),
                ParamInfo::Matrix(MatrixInfo {
                    rows: r, cols: c, ..
                }) => Err(bad(
                    id,
                    format!(
                        "a {r} × {c} matrix, but `{}` reads {rows} × {cols}",
                        node.name
                    ),
                )),
                _ => Err(bad(id, "expected a quantized matrix".into())),
            }
        };
        // A vector of `len` values, Q15.16 (`fixed`) or `W48`.
        let vector = |id: WeightId, fixed: bool, len: usize| -> Result<(), ImageError> {
            let (k, what) = match (get(id)?, fixed) {
                (ParamInfo::Fixed16(k), true) => (k, "Q15.16"),
                (ParamInfo::Wide(k), false) => (k, "W48"),
                (_, true) => return Err(bad(id, "expected Q15.16 values".into())),
                (_, false) => return Err(bad(id, "expected W48 values".into())),
            };
            if k != len {
                return Err(bad(
                    id,
                    format!("{k} {what} values, but `{}` reads {len}", node.name),
                ));
            }
            Ok(())
        };
        let table_rows = |id: WeightId| model.weight(id).shape.first().copied().unwrap_or(0);
        let in_type = |port: usize| of[ins[port].index()];
        // Operand `port` must be of type `want`.
        let operand = |port: usize, want: Dtype| -> Result<(), ImageError> {
            let got = in_type(port);
            if got != want {
                return Err(unsupported(format!(
                    "operand {port} is {got}, `{}` reads {want}",
                    node.op.mnemonic()
                )));
            }
            Ok(())
        };
        let width = node.width;
        of[nd.index()] = match &node.op {
            Op::Tokens => Dtype::Tokens,
            Op::Embed { table } => {
                matrix(*table, table_rows(*table), width)?;
                operand(0, Dtype::Tokens)?;
                Dtype::R32
            }
            Op::AddPositions { table } => {
                matrix(*table, table_rows(*table), width)?;
                operand(0, Dtype::R32)?;
                Dtype::R32
            }
            Op::RmsNorm { gain, .. } => {
                vector(*gain, true, width)?;
                operand(0, Dtype::R32)?;
                Dtype::W48
            }
            Op::LayerNorm { gain, bias, .. } => {
                vector(*gain, true, width)?;
                vector(*bias, true, width)?;
                operand(0, Dtype::R32)?;
                Dtype::W48
            }
            Op::Linear { weight, bias } => {
                let in_w = model.graph[ins[0]].width;
                if !in_w.is_multiple_of(nx::A8_BLOCK) {
                    return Err(unsupported(format!(
                        "input width {in_w} is not a multiple of the {}-element activation block",
                        nx::A8_BLOCK
                    )));
                }
                matrix(*weight, width, in_w)?;
                if let Some(b) = bias {
                    vector(*b, false, width)?;
                }
                operand(0, Dtype::W48)?;
                Dtype::W48
            }
            Op::Attention {
                n_heads,
                n_kv_heads,
                head_dim,
                ..
            } => {
                if !head_dim.is_multiple_of(nx::A8_BLOCK) {
                    return Err(unsupported(format!(
                        "head_dim {head_dim} is not a multiple of the {}-element activation block",
                        nx::A8_BLOCK
                    )));
                }
                if *n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
                    return Err(unsupported(format!(
                        "{n_heads} query heads do not divide into {n_kv_heads} kv heads"
                    )));
                }
                for port in 0..3 {
                    operand(port, Dtype::W48)?;
                }
                Dtype::W48
            }
            Op::Add => match (in_type(0), in_type(1)) {
                (Dtype::R32, Dtype::W48) => Dtype::R32,
                (Dtype::W48, Dtype::W48) => Dtype::W48,
                _ => {
                    return Err(unsupported(
                        "add needs (residual, wide) or (wide, wide) operands".into(),
                    ))
                }
            },
            Op::Mul => match (in_type(0), in_type(1)) {
                (Dtype::W48, Dtype::W48) => Dtype::W48,
                _ => return Err(unsupported("mul needs (wide, wide) operands".into())),
            },
            Op::Rope { .. } | Op::Silu | Op::GeluTanh | Op::Logits => {
                operand(0, Dtype::W48)?;
                Dtype::W48
            }
        };
    }
    Ok(Types { of })
}

#[cfg(test)]
mod tests {
    use super::*;
    use petgraph::visit::EdgeRef;
    use taalasc_ir::{Builder, DType, HParams, RopeScaling, RopeSpec, WeightInfo};
    use taalasc_quant::{CodeWidths, WeightFormat};

    const D: usize = 64;
    const VOCAB: usize = 40;

    /// The nodes of [`tiny`] whose types the tests check.
    struct Nodes {
        tokens: NodeIndex,
        embed: NodeIndex,
        norm: NodeIndex,
        q: NodeIndex,
        rope: NodeIndex,
        attn: NodeIndex,
        resid: NodeIndex,
        act: NodeIndex,
        gated: NodeIndex,
        head: NodeIndex,
        logits: NodeIndex,
    }

    /// A graph under construction and its weights' forms.
    struct Mk {
        b: Builder,
        params: Vec<ParamInfo>,
    }

    impl Mk {
        /// A weight: a `s8g32` matrix (2-D) or Q15.16 values (1-D).
        fn weight(&mut self, name: &str, shape: Vec<usize>) -> WeightId {
            let fmt: WeightFormat = "s8g32".parse().unwrap();
            self.params.push(match shape[..] {
                [r, c] => ParamInfo::Matrix(MatrixInfo::new(fmt, r, c, CodeWidths::default())),
                [k] => ParamInfo::Fixed16(k),
                _ => unreachable!(),
            });
            self.b.weight(WeightInfo {
                name: name.into(),
                source_tensor: name.into(),
                shape,
                dtype: DType::F32,
            })
        }

        /// A linear layer without bias.
        fn linear(&mut self, name: &str, out: usize, x: NodeIndex) -> NodeIndex {
            let in_w = self.b.width(x);
            let weight = self.weight(&format!("{name}.weight"), vec![out, in_w]);
            let op = Op::Linear { weight, bias: None };
            self.b.add(name, op, out, &[x])
        }
    }

    /// A one-layer Llama-like image (metadata only), every weight of the
    /// kind and shape its op reads.
    fn tiny(head_dim: usize) -> (ImageInfo, Nodes) {
        let mut m = Mk {
            b: Builder::new(),
            params: Vec::new(),
        };
        let n_heads = D / head_dim;
        let rope = RopeSpec {
            theta: 10000.0,
            rotary_dim: head_dim,
            scaling: RopeScaling::None,
        };
        let table = m.weight("embed.weight", vec![VOCAB, D]);
        let tokens = m.b.add("tokens", Op::Tokens, 1, &[]);
        let embed = m.b.add("embed", Op::Embed { table }, D, &[tokens]);
        m.b.set_layer(Some(0));
        let gain = m.weight("layers.0.norm.weight", vec![D]);
        let norm = m.b.add(
            "layers.0.norm",
            Op::RmsNorm { gain, eps: 1e-5 },
            D,
            &[embed],
        );
        let q = m.linear("layers.0.attn.q", D, norm);
        let k = m.linear("layers.0.attn.k", D, norm);
        let v = m.linear("layers.0.attn.v", D, norm);
        let rope_op = |_| Op::Rope {
            n_heads,
            head_dim,
            spec: rope.clone(),
        };
        let qr = m.b.add("layers.0.attn.q_rope", rope_op(()), D, &[q]);
        let kr = m.b.add("layers.0.attn.k_rope", rope_op(()), D, &[k]);
        let attn_op = Op::Attention {
            n_heads,
            n_kv_heads: n_heads,
            head_dim,
            window: None,
        };
        let attn = m.b.add("layers.0.attn", attn_op, D, &[qr, kr, v]);
        let o = m.linear("layers.0.attn.o", D, attn);
        let resid = m.b.add("layers.0.attn_add", Op::Add, D, &[embed, o]);
        let gain2 = m.weight("layers.0.mlp_norm.weight", vec![D]);
        let norm2 = m.b.add(
            "layers.0.mlp_norm",
            Op::RmsNorm {
                gain: gain2,
                eps: 1e-5,
            },
            D,
            &[resid],
        );
        let gate = m.linear("layers.0.mlp.gate", D, norm2);
        let up = m.linear("layers.0.mlp.up", D, norm2);
        let act = m.b.add("layers.0.mlp.act", Op::Silu, D, &[gate]);
        let gated = m.b.add("layers.0.mlp.mul", Op::Mul, D, &[act, up]);
        let down = m.linear("layers.0.mlp.down", D, gated);
        let resid2 = m.b.add("layers.0.mlp_add", Op::Add, D, &[resid, down]);
        m.b.set_layer(None);
        let gain3 = m.weight("norm.weight", vec![D]);
        let fin = m.b.add(
            "norm",
            Op::RmsNorm {
                gain: gain3,
                eps: 1e-5,
            },
            D,
            &[resid2],
        );
        let head = m.linear("head", VOCAB, fin);
        let logits = m.b.add("logits", Op::Logits, VOCAB, &[head]);
        let hparams = HParams {
            architecture: "test".into(),
            vocab_size: VOCAB,
            d_model: D,
            n_layers: 1,
            n_heads,
            n_kv_heads: n_heads,
            head_dim,
            d_ff: D,
            max_positions: 16,
            tied_embeddings: false,
            bos_token_id: None,
            eos_token_id: None,
        };
        let model = m.b.finish(hparams, tokens, logits).unwrap();
        let info = ImageInfo {
            model,
            params: m.params,
            context: 16,
        };
        let nodes = Nodes {
            tokens,
            embed,
            norm,
            q,
            rope: qr,
            attn,
            resid,
            act,
            gated,
            head,
            logits,
        };
        (info, nodes)
    }

    fn id(info: &ImageInfo, name: &str) -> WeightId {
        let i = info.model.weights.iter().position(|w| w.name == name);
        WeightId(i.expect("weight") as u32)
    }

    fn err(info: &ImageInfo) -> String {
        verify(info).unwrap_err().to_string()
    }

    #[test]
    fn types_of_a_legal_image() {
        let (info, n) = tiny(32);
        let t = verify(&info).unwrap();
        assert_eq!(t.of(n.tokens), Dtype::Tokens);
        assert_eq!(t.of(n.embed), Dtype::R32);
        assert_eq!(t.of(n.norm), Dtype::W48);
        assert_eq!(t.of(n.q), Dtype::W48);
        assert_eq!(t.read_as(&info.model, n.q, 0), Dtype::A8);
        assert_eq!(t.of(n.rope), Dtype::W48);
        assert_eq!(t.of(n.attn), Dtype::W48);
        assert_eq!(t[n.resid], Dtype::R32);
        assert!(t.is_residual(n.resid));
        assert_eq!(t.of(n.act), Dtype::W48);
        assert_eq!(t.of(n.gated), Dtype::W48);
        assert_eq!(t.read_as(&info.model, n.gated, 0), Dtype::W48);
        assert_eq!(t.of(n.head), Dtype::W48);
        assert_eq!(t.of(n.logits), Dtype::W48);
        assert_eq!(t.all().len(), info.model.graph.node_count());
        assert_eq!((Dtype::R32.bits(), Dtype::W48.bits()), (32, 48));
        assert_eq!(Dtype::W48.frac(), Some(nx::W_FRAC));
    }

    #[test]
    fn rejects_a_head_dim_of_part_of_an_activation_block() {
        let (info, _) = tiny(16);
        assert_eq!(
            err(&info),
            "node `layers.0.attn`: head_dim 16 is not a multiple of the 32-element activation block"
        );
    }

    #[test]
    fn rejects_a_norm_gain_of_the_wrong_kind_or_length() {
        let (mut info, _) = tiny(32);
        let g = id(&info, "layers.0.norm.weight");
        info.params[g.0 as usize] = ParamInfo::Wide(D);
        assert_eq!(
            err(&info),
            "weight `layers.0.norm.weight`: expected Q15.16 values"
        );
        info.params[g.0 as usize] = ParamInfo::Fixed16(D - 1);
        assert_eq!(
            err(&info),
            "weight `layers.0.norm.weight`: 63 Q15.16 values, but `layers.0.norm` reads 64"
        );
    }

    #[test]
    fn rejects_a_matrix_shape_that_disagrees_with_the_graph() {
        let (mut info, _) = tiny(32);
        let w = id(&info, "layers.0.attn.q.weight");
        let fmt: WeightFormat = "s8g32".parse().unwrap();
        info.params[w.0 as usize] =
            ParamInfo::Matrix(MatrixInfo::new(fmt, D, 2 * D, CodeWidths::default()));
        assert_eq!(
            err(&info),
            "weight `layers.0.attn.q.weight`: a 64 × 128 matrix, but `layers.0.attn.q` reads 64 × 64"
        );
        info.params[w.0 as usize] = ParamInfo::Fixed16(D);
        assert_eq!(
            err(&info),
            "weight `layers.0.attn.q.weight`: expected a quantized matrix"
        );
    }

    #[test]
    fn rejects_operands_of_the_wrong_datapath_type() {
        // The residual add with its operands swapped: (W48, R32).
        let (mut info, n) = tiny(32);
        let edges: Vec<_> = info
            .model
            .graph
            .edges_directed(n.resid, petgraph::Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in edges {
            let p = &mut info.model.graph[e].port;
            *p = 1 - *p;
        }
        assert_eq!(
            err(&info),
            "node `layers.0.attn_add`: add needs (residual, wide) or (wide, wide) operands"
        );
    }
}
