//! Reading one JSON object of the document field by field, refusing the
//! fields nobody asked for, with messages that say where and what.

use serde_json::{Map, Value};

use super::{PolicyError, invalid};

/// Reads the fields of one JSON object, refusing fields it was not asked for.
pub(super) struct Fields {
    pub(super) at: String,
    map: Map<String, Value>,
}

impl Fields {
    pub(super) fn new(at: String, value: Value, what: &str) -> Result<Fields, PolicyError> {
        match value {
            Value::Object(map) => Ok(Fields { at, map }),
            other => Err(invalid(
                at,
                format!("{what} must be a JSON object, got {}", kind(&other)),
            )),
        }
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>, PolicyError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                &self.at,
                format!("`{key}` must be a string, got {}", kind(&other)),
            )),
        }
    }

    /// A positive integer that fits in `u64`.
    pub(super) fn positive(&mut self, key: &str) -> Result<Option<u64>, PolicyError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v >= 1 => Ok(Some(v)),
                _ => Err(invalid(
                    &self.at,
                    format!("`{key}` must be an integer of at least 1, got {n}"),
                )),
            },
            Some(other) => Err(invalid(
                &self.at,
                format!(
                    "`{key}` must be an integer of at least 1, got {}",
                    kind(&other)
                ),
            )),
        }
    }

    pub(super) fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>, PolicyError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(invalid(
                &self.at,
                format!("`{key}` must be an array of strings"),
            ));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) if !s.is_empty() => out.push(s),
                Value::String(_) => {
                    return Err(invalid(
                        &self.at,
                        format!("`{key}` must not contain an empty string"),
                    ));
                }
                other => {
                    return Err(invalid(
                        &self.at,
                        format!("`{key}` must contain only strings, got {}", kind(&other)),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(invalid(&self.at, format!("`{key}` must not be empty")));
        }
        Ok(Some(out))
    }

    /// Fails on any field that was not taken.
    pub(super) fn finish(self, known: &str) -> Result<(), PolicyError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(invalid(
                self.at,
                format!("unknown field `{key}`; known fields: {known}"),
            )),
        }
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
