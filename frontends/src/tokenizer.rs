//! Text tokenization with the model's own tokenizer: Hugging Face
//! `tokenizer.json` through the `tokenizers` crate, or the vocabulary and merges
//! stored in GGUF metadata (built into the same `tokenizers` pipeline).

use std::path::{Path, PathBuf};

use crate::error::LoadError;

/// A model's text tokenizer: text to token ids and back, with the model's
/// BOS/EOS ids. Built from a Hugging Face `tokenizer.json` or from the
/// vocabulary stored in GGUF metadata.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Where the tokenizer came from, for error messages.
    pub path: PathBuf,
    /// Beginning-of-sequence token id, if the model has one.
    pub bos: Option<u32>,
    /// End-of-sequence token id, if the model has one.
    pub eos: Option<u32>,
    /// Whether `encode(.., true)` prepends BOS itself (GGUF `add_bos_token`).
    /// For `tokenizer.json` the post-processor decides instead.
    pub add_bos: bool,
}

impl TextTokenizer {
    /// Wraps an already built `tokenizers` pipeline. `path` names the source in
    /// errors; `bos`, `eos` and `add_bos` are as the fields.
    pub fn new(
        inner: tokenizers::Tokenizer,
        path: PathBuf,
        bos: Option<u32>,
        eos: Option<u32>,
        add_bos: bool,
    ) -> Self {
        TextTokenizer {
            inner,
            path,
            bos,
            eos,
            add_bos,
        }
    }

    /// Reads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path, bos: Option<u32>, eos: Option<u32>) -> Result<Self, LoadError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| LoadError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self::new(inner, path.to_path_buf(), bos, eos, false))
    }

    fn err(&self, e: impl std::fmt::Display) -> LoadError {
        LoadError::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Token ids for `text`. With `add_special`, adds what the model adds for a
    /// fresh prompt (BOS where the tokenizer asks for it).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, LoadError> {
        let enc = self
            .inner
            .encode_fast(text, add_special)
            .map_err(|e| self.err(e))?;
        let mut ids = enc.get_ids().to_vec();
        if add_special && self.add_bos {
            if let Some(b) = self.bos {
                if ids.first() != Some(&b) {
                    ids.insert(0, b);
                }
            }
        }
        Ok(ids)
    }

    /// The text of `ids`, special tokens included, byte-level pieces merged
    /// back to UTF-8 by the tokenizer's decoder.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LoadError> {
        self.inner.decode(ids, false).map_err(|e| self.err(e))
    }

    /// Vocabulary size including added tokens (may differ from the model's
    /// embedding rows, which can be padded).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
