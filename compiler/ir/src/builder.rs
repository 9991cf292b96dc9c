//! Incremental construction of a [`Model`], verified when finished.

use crate::model::{Edge, HParams, Model, Node};
use crate::op::Op;
use crate::verify::{verify, VerifyError};
use crate::weights::{WeightId, WeightInfo};
use petgraph::graph::{DiGraph, NodeIndex};

/// Incremental graph construction used by frontends.
#[derive(Debug, Default)]
pub struct Builder {
    graph: DiGraph<Node, Edge>,
    weights: Vec<WeightInfo>,
    layer: Option<usize>,
}

impl Builder {
    /// An empty graph with no weights, not in any layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a weight and returns its id.
    pub fn weight(&mut self, info: WeightInfo) -> WeightId {
        self.weights.push(info);
        WeightId(self.weights.len() as u32 - 1)
    }

    /// The metadata of an already registered weight.
    pub fn weight_info(&self, id: WeightId) -> &WeightInfo {
        &self.weights[id.0 as usize]
    }

    /// Subsequent nodes belong to decoder layer `layer` (or to none).
    pub fn set_layer(&mut self, layer: Option<usize>) {
        self.layer = layer;
    }

    /// Adds a node fed by `inputs` (in port order).
    pub fn add(
        &mut self,
        name: impl Into<String>,
        op: Op,
        width: usize,
        inputs: &[NodeIndex],
    ) -> NodeIndex {
        let n = self.graph.add_node(Node {
            op,
            width,
            layer: self.layer,
            name: name.into(),
        });
        for (port, &src) in inputs.iter().enumerate() {
            self.graph.add_edge(src, n, Edge { port });
        }
        n
    }

    /// The per-position output width of node `n`.
    pub fn width(&self, n: NodeIndex) -> usize {
        self.graph[n].width
    }

    /// Completes the model with its hyperparameters, input and output nodes,
    /// and runs the verifier.
    pub fn finish(
        self,
        hparams: HParams,
        input: NodeIndex,
        output: NodeIndex,
    ) -> Result<Model, VerifyError> {
        let model = Model {
            graph: self.graph,
            weights: self.weights,
            hparams,
            input,
            output,
        };
        verify(&model)?;
        Ok(model)
    }
}
