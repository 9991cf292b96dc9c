//! The JSON form of a [`Model`] (`graph.json` of a chip image), written
//! deterministically and verified when read back.

use crate::model::{Edge, HParams, Model, Node};
use crate::verify::{verify, VerifyError};
use crate::weights::WeightInfo;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

/// The serialized form of a [`Model`] (`graph.json` in a chip image): nodes in
/// index order, edges as `(source, target, port)`.
#[derive(Serialize, Deserialize)]
struct ModelDoc {
    /// [`GRAPH_FORMAT`] (absent in graphs written before it existed; the
    /// chip-image loader requires it).
    #[serde(default)]
    format: Option<String>,
    hparams: HParams,
    weights: Vec<WeightInfo>,
    nodes: Vec<Node>,
    edges: Vec<(usize, usize, usize)>,
    input: usize,
    output: usize,
}

/// The format tag `graph.json` carries (its `format` field): a reader
/// rejects a graph of any other version.
pub const GRAPH_FORMAT: &str = "taalasc-graph-1";

impl Model {
    /// Deterministic JSON form of the model (graph, weights, hyperparameters).
    pub fn to_json(&self) -> String {
        let doc = ModelDoc {
            format: Some(GRAPH_FORMAT.to_string()),
            hparams: self.hparams.clone(),
            weights: self.weights.clone(),
            nodes: self.graph.node_weights().cloned().collect(),
            edges: self
                .graph
                .edge_indices()
                .map(|e| {
                    let (a, b) = self.graph.edge_endpoints(e).expect("edge");
                    (a.index(), b.index(), self.graph[e].port)
                })
                .collect(),
            input: self.input.index(),
            output: self.output.index(),
        };
        serde_json::to_string_pretty(&doc).expect("model serializes")
    }

    /// Reads [`Model::to_json`] output back and verifies it.
    pub fn from_json(text: &str) -> Result<Model, JsonError> {
        let doc: ModelDoc = serde_json::from_str(text)?;
        let mut graph = DiGraph::new();
        for n in doc.nodes {
            graph.add_node(n);
        }
        let count = graph.node_count();
        for (a, b, port) in doc.edges {
            if a >= count || b >= count {
                return Err(JsonError::Edge { a, b, count });
            }
            graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), Edge { port });
        }
        if doc.input >= count || doc.output >= count {
            return Err(JsonError::Ends);
        }
        for n in graph.node_weights() {
            for w in n.op.weights() {
                if w.0 as usize >= doc.weights.len() {
                    return Err(JsonError::MissingWeight {
                        node: n.name.clone(),
                        weight: w.to_string(),
                    });
                }
            }
        }
        let model = Model {
            graph,
            weights: doc.weights,
            hparams: doc.hparams,
            input: NodeIndex::new(doc.input),
            output: NodeIndex::new(doc.output),
        };
        verify(&model)?;
        Ok(model)
    }
}

/// Why a model's JSON form cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not the JSON of a model.
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    /// An edge names a node that does not exist.
    #[error("edge ({a}, {b}) names a node past {count}")]
    Edge {
        /// Its source node index.
        a: usize,
        /// Its target node index.
        b: usize,
        /// Nodes in the graph.
        count: usize,
    },
    /// The input or output node does not exist.
    #[error("input or output node out of range")]
    Ends,
    /// A node reads a weight the weight table lacks.
    #[error("node `{node}` reads missing weight {weight}")]
    MissingWeight {
        /// The node's name.
        node: String,
        /// The weight id it reads.
        weight: String,
    },
    /// The graph does not verify.
    #[error("{0}")]
    Verify(#[from] VerifyError),
}
