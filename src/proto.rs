//! Code generated from `proto/govledger/v1` by build.rs.

/// Package `govledger.v1`: the `Ledger` service and the event schema.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("govledger.v1");
}

/// The encoded `FileDescriptorSet` of every proto file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/govledger_descriptor.bin"));
