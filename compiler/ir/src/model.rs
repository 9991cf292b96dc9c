//! The model graph: a petgraph DAG of [`Node`]s joined by port-numbered [`Edge`]s.

use crate::op::Op;
use crate::weights::{WeightId, WeightInfo};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

/// One op instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// What the node computes (and which weights it reads).
    pub op: Op,
    /// Per-position output width.
    pub width: usize,
    /// Decoder layer this node belongs to; `None` for the embedding and head.
    pub layer: Option<usize>,
    /// Human-readable name, e.g. `layers.0.attn.q`.
    pub name: String,
}

/// A data edge; `port` is the operand position at the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Operand position at the consumer, `0..arity` of the consumer's op.
    pub port: usize,
}

/// Hyperparameters of the source model, kept for reports and later stages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HParams {
    /// Architecture as named by the source (`LlamaForCausalLM`, `llama`, ...).
    pub architecture: String,
    /// Rows of the token embedding and of the output head (logit count).
    pub vocab_size: usize,
    /// Hidden (residual stream) width.
    pub d_model: usize,
    /// Decoder layers (after any truncation by the frontend).
    pub n_layers: usize,
    /// Query heads per attention layer.
    pub n_heads: usize,
    /// Key/value heads per attention layer (divides `n_heads`; fewer than
    /// `n_heads` means grouped-query attention).
    pub n_kv_heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// Inner width of the MLP.
    pub d_ff: usize,
    /// Longest context the source model supports (`max_position_embeddings`,
    /// `n_positions` or the GGUF `context_length`).
    pub max_positions: usize,
    /// Whether the output head reuses the token embedding table.
    pub tied_embeddings: bool,
    /// Beginning-of-sequence token id, if the source names one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id, if the source names one.
    pub eos_token_id: Option<u32>,
}

/// A whole model: graph, weight table and hyperparameters.
#[derive(Clone, Debug)]
pub struct Model {
    /// The op DAG; every node's operands arrive on ports `0..arity`.
    pub graph: DiGraph<Node, Edge>,
    /// Every weight's metadata, indexed by [`WeightId`].
    pub weights: Vec<WeightInfo>,
    /// The source model's hyperparameters.
    pub hparams: HParams,
    /// The single [`Op::Tokens`] node.
    pub input: NodeIndex,
    /// The single [`Op::Logits`] node.
    pub output: NodeIndex,
}

/// Per-layer summary used by `taalasc inspect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// `"embed"`, `"layer 0"`, ..., `"head"`.
    pub name: String,
    /// The decoder layer index; `None` for the embedding and head groups.
    pub layer: Option<usize>,
    /// Mnemonics of the group's ops, in topological order.
    pub ops: Vec<String>,
    /// Weight elements the group reads first (a weight shared with an earlier
    /// group, such as a tied head, is charged to that group only).
    pub params: u64,
    /// Source-file bytes of the same weights, at their stored dtype.
    pub bytes: u64,
}

impl Model {
    /// The node at `n`.
    pub fn node(&self, n: NodeIndex) -> &Node {
        &self.graph[n]
    }

    /// The metadata of weight `id` (panics on an id not from this model).
    pub fn weight(&self, id: WeightId) -> &WeightInfo {
        &self.weights[id.0 as usize]
    }

    /// Operands of `n`, ordered by port.
    pub fn inputs(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut v: Vec<(usize, NodeIndex)> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.weight().port, e.source()))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, s)| s).collect()
    }

    /// Linears that read one input (a layer's query, key and value
    /// projections; its gate and up projections), for executors that run
    /// them together: indexed by node, at the first of each group in
    /// `order` every member in `order`; empty elsewhere and for groups of
    /// one. `except` (the logits' linear) is never grouped.
    pub fn sibling_linears(&self, order: &[NodeIndex], except: NodeIndex) -> Vec<Vec<NodeIndex>> {
        let mut groups = vec![Vec::new(); self.graph.node_count()];
        let mut first_reader: std::collections::HashMap<NodeIndex, NodeIndex> =
            std::collections::HashMap::new();
        for &m in order {
            if m != except && matches!(self.graph[m].op, Op::Linear { .. }) {
                let input = self.inputs(m)[0];
                let first = *first_reader.entry(input).or_insert(m);
                groups[first.index()].push(m);
            }
        }
        for g in &mut groups {
            if g.len() < 2 {
                g.clear();
            }
        }
        groups
    }

    /// Nodes in a deterministic topological order (ties broken by node index).
    pub fn topo_order(&self) -> Vec<NodeIndex> {
        let n = self.graph.node_count();
        let mut indeg: Vec<usize> = (0..n)
            .map(|i| {
                self.graph
                    .edges_directed(NodeIndex::new(i), Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(NodeIndex::new(i));
            for e in self
                .graph
                .edges_directed(NodeIndex::new(i), Direction::Outgoing)
            {
                let t = e.target().index();
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    ready.insert(t);
                }
            }
        }
        order
    }

    /// Total parameter count; a weight shared by two ops (tied embeddings) counts once.
    pub fn param_count(&self) -> u64 {
        self.weights.iter().map(WeightInfo::numel).sum()
    }

    /// Total bytes at source dtypes.
    pub fn source_bytes(&self) -> u64 {
        self.weights.iter().map(WeightInfo::source_bytes).sum()
    }

    /// The phase a node runs in: 0 for the embedding (tokens, table,
    /// positions), `l + 1` for decoder layer `l`, `n_layers + 1` for the
    /// head. Values flow from lower phases to higher ones.
    pub fn phase_of(&self, n: &Node) -> usize {
        match n.layer {
            Some(l) => l + 1,
            None if matches!(
                n.op,
                Op::Tokens | Op::Embed { .. } | Op::AddPositions { .. }
            ) =>
            {
                0
            }
            None => self.hparams.n_layers + 1,
        }
    }

    /// Ops, parameters and bytes grouped by layer: embedding first, then each
    /// decoder layer, then the head. A weight is charged to the first group
    /// (in that order) that reads it.
    pub fn layer_summaries(&self) -> Vec<LayerSummary> {
        let order = self.topo_order();
        let group_of = |n: &Node| self.phase_of(n);
        let groups = self.hparams.n_layers + 2;
        let mut out: Vec<LayerSummary> = (0..groups)
            .map(|g| LayerSummary {
                name: match g {
                    0 => "embed".to_string(),
                    g if g == groups - 1 => "head".to_string(),
                    g => format!("layer {}", g - 1),
                },
                layer: (g > 0 && g < groups - 1).then(|| g - 1),
                ops: Vec::new(),
                params: 0,
                bytes: 0,
            })
            .collect();
        let mut charged = vec![false; self.weights.len()];
        for &n in &order {
            let node = &self.graph[n];
            let g = group_of(node);
            out[g].ops.push(node.op.mnemonic().to_string());
            for w in node.op.weights() {
                if !std::mem::replace(&mut charged[w.0 as usize], true) {
                    out[g].params += self.weight(w).numel();
                    out[g].bytes += self.weight(w).source_bytes();
                }
            }
        }
        out
    }
}
