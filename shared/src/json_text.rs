//! Serde adapter storing arbitrary JSON as one string attribute: DynamoDB maps would drop
//! empty-key objects, reorder keys and lose the difference between `1` and `1.0`.

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let text = String::deserialize(d)?;
    serde_json::from_str(&text).map_err(serde::de::Error::custom)
}
