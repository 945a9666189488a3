//! Switchboard's shared machinery: configuration, Kafka clients, Avro over the schema
//! registry, the raw change-event envelope, canonical records, error classes, telemetry and
//! shutdown. Nothing here knows a specific SaaS system; connectors and services build on it.

pub mod audit;
pub mod avro;
pub mod canonical;
pub mod config;
pub mod dlq;
pub mod envelope;
pub mod error;
pub mod healing;
pub mod kafka;
pub mod lag;
pub mod mapping;
pub mod membership;
pub mod policy;
pub mod progress;
pub mod raw;
pub mod registry;
pub mod replay;
pub mod republish;
pub mod secret;
pub mod security;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tokens;
pub mod topics;

pub use config::Config;
pub use error::ErrorClass;
pub use secret::Secret;
