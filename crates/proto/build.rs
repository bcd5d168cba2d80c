//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no machine needs
//! `protoc`) and generates prost messages plus tonic clients and servers from it.
//! The encoded descriptor set is written to OUT_DIR for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO_ROOT: &str = "../../proto";

const PROTO_FILES: &[&str] = &[
    "shop/order/v1/order.proto",
    "shop/inventory/v1/inventory.proto",
    "shop/billing/v1/billing.proto",
    "shop/admin/v1/faults.proto",
    "shop/messaging/v1/envelope.proto",
    "shop/messaging/v1/inventory.proto",
    "shop/messaging/v1/billing.proto",
    "shop/messaging/v1/order.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<PathBuf> = PROTO_FILES
        .iter()
        .map(|file| PathBuf::from(PROTO_ROOT).join(file))
        .collect();
    // `compile_fds` neither prints rerun-if-changed nor writes the descriptor set.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("microcosm_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
