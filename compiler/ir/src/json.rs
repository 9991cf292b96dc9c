//! The JSON form of a [`Model`] (`graph.json` of a chip image), written
//! deterministically and verified when read back.

use crate::model::{Edge, HParams, Model, Node};
use crate::verify::verify;
use crate::weights::WeightInfo;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

/// The serialized form of a [`Model`] (`graph.json` in a chip image): nodes in
/// index order, edges as `(source, target, port)`.
#[derive(Serialize, Deserialize)]
struct ModelDoc {
    hparams: HParams,
    weights: Vec<WeightInfo>,
    nodes: Vec<Node>,
    edges: Vec<(usize, usize, usize)>,
    input: usize,
    output: usize,
}

impl Model {
    /// Deterministic JSON form of the model (graph, weights, hyperparameters).
    pub fn to_json(&self) -> String {
        let doc = ModelDoc {
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
    pub fn from_json(text: &str) -> Result<Model, String> {
        let doc: ModelDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut graph = DiGraph::new();
        for n in doc.nodes {
            graph.add_node(n);
        }
        let count = graph.node_count();
        for (a, b, port) in doc.edges {
            if a >= count || b >= count {
                return Err(format!("edge ({a}, {b}) names a node past {count}"));
            }
            graph.add_edge(NodeIndex::new(a), NodeIndex::new(b), Edge { port });
        }
        if doc.input >= count || doc.output >= count {
            return Err("input or output node out of range".into());
        }
        for n in graph.node_weights() {
            for w in n.op.weights() {
                if w.0 as usize >= doc.weights.len() {
                    return Err(format!("node `{}` reads missing weight {w}", n.name));
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
        verify(&model).map_err(|e| e.to_string())?;
        Ok(model)
    }
}
