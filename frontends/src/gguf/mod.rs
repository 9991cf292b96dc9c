//! GGUF v3 checkpoints (placeholder until the GGUF reader lands).

use crate::error::LoadError;
use crate::LoadedModel;
use std::path::Path;

pub fn load(path: &Path) -> Result<LoadedModel, LoadError> {
    Err(LoadError::format(path, "GGUF reading is not wired in yet"))
}
