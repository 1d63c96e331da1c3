//! Generated gRPC contract of mnemo (`protos/mnemo/v1/*.proto`).
//!
//! Owns: the wire types and tonic client/server stubs, and the encoded file
//! descriptor set that the API serves through gRPC reflection.
//! Must not: contain logic. Conversions between wire and domain types live in
//! `mnemo-api`, next to the code that needs them.

/// `mnemo.v1`: documents and progress.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mnemo.v1");
}

/// Encoded `FileDescriptorSet` of every mnemo proto, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mnemo_descriptor");
