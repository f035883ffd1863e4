//! SeaORM entities, one module per table. Only this crate sees them.

pub mod application_connections;
pub mod applications;
pub mod attribute_definitions;
pub mod audit_events;
pub mod collections;
pub mod connections;
pub mod expiring_records;
pub mod federated_identities;
pub mod jit_meta;
pub mod memberships;
pub mod signing_keys;
pub mod user_attributes;
pub mod user_totp;
pub mod users;
