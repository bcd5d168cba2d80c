//! Microcosm's wire contracts, generated at build time from `proto/` at the
//! workspace root.
//!
//! - [`order`], [`inventory`], [`billing`]: the public gRPC APIs (`shop.<svc>.v1`).
//! - [`admin`]: the fault flags every service serves (`shop.admin.v1`).
//! - [`messaging`]: everything that travels on NATS (`shop.messaging.v1`): one
//!   [`messaging::Envelope`] around each saga command, reply and domain event.
//!
//! Services convert these types to domain types at their edge (`TryFrom`); nothing
//! past a service's `api/` or `messaging/` module sees a prost type.

/// The order service's public API (`shop.order.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod order {
    tonic::include_proto!("shop.order.v1");
}

/// The inventory service's public API (`shop.inventory.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod inventory {
    tonic::include_proto!("shop.inventory.v1");
}

/// The billing service's public API (`shop.billing.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod billing {
    tonic::include_proto!("shop.billing.v1");
}

/// Runtime fault flags every service serves (`shop.admin.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod admin {
    tonic::include_proto!("shop.admin.v1");
}

/// Saga commands, replies and domain events carried on NATS (`shop.messaging.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod messaging {
    tonic::include_proto!("shop.messaging.v1");
}

/// The encoded `FileDescriptorSet` of every Microcosm proto, for gRPC server
/// reflection: it lets grpcurl and grpcui call the services with no `.proto` at hand.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/microcosm_descriptor.bin"));
