//! The tools' JSON Schemas, made from the same utoipa derives that document the REST API, so
//! that the record an agent gets and the record `GET /execution/{id}` answers cannot drift
//! apart. utoipa writes OpenAPI 3.1 schemas, which are JSON Schema 2020-12; only the home of
//! shared definitions differs: `#/components/schemas/X` in a document, `#/$defs/X` in a
//! schema that stands alone.

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde_json::Value;

const COMPONENTS: &str = "#/components/schemas/";
const DEFS: &str = "#/$defs/";

/// `T`'s schema with every schema it refers to under `$defs`.
pub fn of<T: utoipa::ToSchema>() -> Arc<JsonObject> {
    let mut referred = Vec::new();
    T::schemas(&mut referred);
    let mut root = json(T::schema());
    if !referred.is_empty() {
        let defs = referred
            .into_iter()
            .map(|(name, schema)| (name, json(schema)))
            .collect();
        root["$defs"] = Value::Object(defs);
    }
    relink(&mut root);
    match root {
        Value::Object(schema) => Arc::new(schema),
        other => unreachable!("a type's schema is an object, not {other}"),
    }
}

fn json(schema: impl serde::Serialize) -> Value {
    serde_json::to_value(schema).expect("a schema serialises")
}

/// Points every `$ref` at `$defs`.
fn relink(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match (key.as_str(), &*inner) {
                    ("$ref", Value::String(target)) if target.starts_with(COMPONENTS) => {
                        *inner = Value::String(target.replacen(COMPONENTS, DEFS, 1));
                    }
                    _ => relink(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(relink),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ExecutionRecord;

    /// Every `$ref` in `value`.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => refs(inner, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
            _ => {}
        }
    }

    #[test]
    fn the_record_schema_stands_alone_with_every_reference_defined() {
        let schema = Value::Object((*of::<ExecutionRecord>()).clone());
        assert_eq!(schema["type"], "object");
        let mut found = Vec::new();
        refs(&schema, &mut found);
        assert!(!found.is_empty(), "the record refers to its status");
        for target in found {
            let name = target
                .strip_prefix(DEFS)
                .unwrap_or_else(|| panic!("{target} points outside $defs"));
            assert!(schema["$defs"][name].is_object(), "{name} is not defined");
        }
        for field in ["status", "exit_code", "stdout", "stderr", "duration_ms"] {
            assert!(schema["properties"][field].is_object(), "{field}");
        }
    }
}
