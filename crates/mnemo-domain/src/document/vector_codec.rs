//! How an embedding travels inside `ChunksEmbedded` (schema v2): the
//! little-endian bytes of its `f32`s in base64 — about half the size of a
//! JSON number list and far cheaper to read, and bit-exact either way.
//! Reading also accepts v1's JSON number list, so events already on the
//! stream need no rewriting (the codec is the upcaster for this field).

use std::fmt;

use data_encoding::BASE64;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub fn serialize<S: Serializer>(vector: &[f32], s: S) -> Result<S::Ok, S::Error> {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for v in vector {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    s.serialize_str(&BASE64.encode(&bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    d.deserialize_any(VectorVisitor)
}

struct VectorVisitor;

impl<'de> Visitor<'de> for VectorVisitor {
    type Value = Vec<f32>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("base64 little-endian f32s, or a list of numbers")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<f32>, E> {
        let bytes = BASE64
            .decode(s.as_bytes())
            .map_err(|e| E::custom(format!("vector is not base64: {e}")))?;
        if bytes.len() % 4 != 0 {
            return Err(E::custom("vector bytes are not a whole number of f32s"));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<f32>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(384));
        while let Some(v) = seq.next_element::<f32>()? {
            out.push(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::document::ChunkVector;

    #[test]
    fn vectors_round_trip_bit_for_bit_and_v1_lists_still_read() {
        let v = ChunkVector {
            chunk_id: "c".into(),
            vector: vec![0.1, -2.5e-8, f32::MIN_POSITIVE, 1.0 / 3.0],
        };
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.contains("\"vector\":\""), "{json}");
        let back: ChunkVector = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.vector.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            v.vector.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
        let v1: ChunkVector =
            serde_json::from_str(r#"{"chunk_id":"c","vector":[0.5,0.25]}"#).unwrap();
        assert_eq!(v1.vector, vec![0.5, 0.25]);
        assert!(serde_json::from_str::<ChunkVector>(r#"{"chunk_id":"c","vector":"AAA"}"#).is_err());
    }
}
