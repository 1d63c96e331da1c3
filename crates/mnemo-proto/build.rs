//! Generates the gRPC code from `protos/` with the protoc binary that the
//! `protoc-bin-vendored` crate ships, so no system protoc is ever needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let protos = manifest.join("../../protos");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Timestamps come with protoc's own include directory.
    let includes = [protos.clone(), protoc_bin_vendored::include_path()?];

    let files = [
        protos.join("mnemo/v1/documents.proto"),
        protos.join("mnemo/v1/progress.proto"),
        protos.join("mnemo/v1/stats.proto"),
        protos.join("mnemo/v1/search.proto"),
        protos.join("mnemo/v1/qa.proto"),
        protos.join("mnemo/v1/learning.proto"),
        protos.join("mnemo/v1/audit.proto"),
        protos.join("mnemo/v1/account.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("mnemo_descriptor.bin"))
        .compile_with_config(config, &files, &includes)?;
    Ok(())
}
