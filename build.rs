//! Generates the gRPC code from `proto/` with protox (pure Rust), so a fresh
//! machine needs no `protoc`.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "govledger/v1/event.proto",
    "govledger/v1/ledger.proto",
    "govledger/v1/governance.proto",
    "govledger/v1/access.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;

    // `compile_fds` does not write the descriptor set; server reflection needs it.
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("govledger_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // Maps become BTreeMaps so that encoding an event is deterministic: the
        // stored payload bytes, and so idempotency comparisons, must not depend
        // on hash-map iteration order.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
