//! GGUF metadata: typed key/value pairs, and typed accessors whose errors
//! name the file and the key.

use crate::error::LoadError;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The type tag of a metadata value, as stored in the file (a `u32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Type id 0: unsigned 8-bit integer.
    U8,
    /// Type id 1: signed 8-bit integer.
    I8,
    /// Type id 2: unsigned 16-bit integer.
    U16,
    /// Type id 3: signed 16-bit integer.
    I16,
    /// Type id 4: unsigned 32-bit integer.
    U32,
    /// Type id 5: signed 32-bit integer.
    I32,
    /// Type id 6: IEEE single.
    F32,
    /// Type id 7: one byte, 0 or 1.
    Bool,
    /// Type id 8: `u64` byte length, then UTF-8 bytes.
    String,
    /// Type id 9: element type (`u32`), count (`u64`), elements.
    Array,
    /// Type id 10: unsigned 64-bit integer.
    U64,
    /// Type id 11: signed 64-bit integer.
    I64,
    /// Type id 12: IEEE double.
    F64,
}

impl ValueType {
    /// The type with file id `id` (0 to 12), or `None` for an unknown id.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// The type's id in the file (inverse of [`ValueType::from_id`]).
    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// The fewest bytes one value of this type occupies in the file (a string
    /// is at least its 8-byte length, an array its 4-byte type and 8-byte count).
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 12,
        }
    }

    /// GGUF's name for the type (`uint32`, `float32`, ...), for messages.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "uint8",
            ValueType::I8 => "int8",
            ValueType::U16 => "uint16",
            ValueType::I16 => "int16",
            ValueType::U32 => "uint32",
            ValueType::I32 => "int32",
            ValueType::F32 => "float32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "uint64",
            ValueType::I64 => "int64",
            ValueType::F64 => "float64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A `uint8`.
    U8(u8),
    /// An `int8`.
    I8(i8),
    /// A `uint16`.
    U16(u16),
    /// An `int16`.
    I16(i16),
    /// A `uint32`.
    U32(u32),
    /// An `int32`.
    I32(i32),
    /// A `float32`.
    F32(f32),
    /// A `bool`.
    Bool(bool),
    /// A UTF-8 `string`.
    String(String),
    /// Element type and elements (all of that type).
    Array(ValueType, Vec<Value>),
    /// A `uint64`.
    U64(u64),
    /// An `int64`.
    I64(i64),
    /// A `float64`.
    F64(f64),
}

impl Value {
    /// The value's type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer type, as `i128` (wide enough for every stored integer).
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// Floats, and integers widened to f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_int().map(|i| i as f64),
        }
    }

    /// The text of a string value; `None` for any other type.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The flag of a bool value; `None` for any other type.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array value; `None` for any other type.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// A short description for error messages (`uint32 7`, `array[string; 3]`).
    pub fn describe(&self) -> String {
        match self {
            Value::String(s) if s.len() > 40 => format!("string of {} bytes", s.len()),
            Value::String(s) => format!("string {s:?}"),
            Value::Array(t, items) => format!("array[{t}; {}]", items.len()),
            Value::Bool(b) => format!("bool {b}"),
            Value::F32(v) => format!("float32 {v}"),
            Value::F64(v) => format!("float64 {v}"),
            other => format!(
                "{} {}",
                other.value_type(),
                other.as_int().unwrap_or_default()
            ),
        }
    }
}

/// All key/value pairs of one file, in file order, with lookup by key.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    path: PathBuf,
    entries: Vec<(String, Value)>,
    by_key: HashMap<String, usize>,
}

impl Metadata {
    /// An empty set of pairs read from `path` (named in errors).
    pub fn new(path: &Path) -> Self {
        Metadata {
            path: path.to_path_buf(),
            ..Default::default()
        }
    }

    /// Adds a pair; `false` (and no change) if the key is already present.
    pub fn insert(&mut self, key: String, value: Value) -> bool {
        if self.by_key.contains_key(&key) {
            return false;
        }
        self.by_key.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.by_key.get(key).map(|&i| &self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The file the metadata was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error about `key` in this file.
    pub fn err(&self, key: &str, message: impl Into<String>) -> LoadError {
        LoadError::config(&self.path, key, message)
    }

    fn mistyped(&self, key: &str, want: &str, found: &Value) -> LoadError {
        self.err(key, format!("expected {want}, found {}", found.describe()))
    }

    /// A non-negative integer of any integer type that fits in `usize`.
    pub fn usize(&self, key: &str) -> Result<Option<usize>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_int() {
                Some(i) if i >= 0 && i <= usize::MAX as i128 => Ok(Some(i as usize)),
                _ => Err(self.mistyped(key, "a non-negative integer", v)),
            },
        }
    }

    /// A required positive integer.
    pub fn positive(&self, key: &str) -> Result<usize, LoadError> {
        match self.usize(key)? {
            Some(n) if n > 0 => Ok(n),
            Some(_) => Err(self.err(key, "must be positive, found 0")),
            None => Err(self.err(key, "missing (a positive integer is required)")),
        }
    }

    /// A token id (fits in `u32`).
    pub fn token_id(&self, key: &str) -> Result<Option<u32>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_int() {
                Some(i) if (0..=u32::MAX as i128).contains(&i) => Ok(Some(i as u32)),
                _ => Err(self.mistyped(key, "a token id (uint32)", v)),
            },
        }
    }

    /// A finite number (float or integer type).
    pub fn f64(&self, key: &str) -> Result<Option<f64>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.mistyped(key, "a finite number", v)),
            },
        }
    }

    /// The string under `key`: `Ok(None)` when absent, an error naming the
    /// key when it holds another type.
    pub fn str(&self, key: &str) -> Result<Option<&str>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.mistyped(key, "a string", v)),
        }
    }

    /// The bool under `key`: `Ok(None)` when absent, an error naming the
    /// key when it holds another type.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.mistyped(key, "a bool", v)),
        }
    }

    /// An array of strings.
    pub fn str_array(&self, key: &str) -> Result<Option<Vec<&str>>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(ValueType::String, items)) => {
                Ok(Some(items.iter().filter_map(Value::as_str).collect()))
            }
            Some(v) => Err(self.mistyped(key, "an array of strings", v)),
        }
    }

    /// An array of integers (any integer element type).
    pub fn int_array(&self, key: &str) -> Result<Option<Vec<i128>>, LoadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Array(_, items)) => items
                .iter()
                .map(Value::as_int)
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.mistyped(key, "an array of integers", v)),
            Some(v) => Err(self.mistyped(key, "an array of integers", v)),
        }
    }
}
