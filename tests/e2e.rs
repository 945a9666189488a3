//! The end-to-end tests, one module per file beside this one, built as one test binary:
//! each file as its own binary linked the whole hub once more, which cost CI minutes.
//! nextest still runs every test in its own process. The private-broker outage tests
//! (`broker_outage.rs`) stay a binary of their own (see scripts/test.sh).
//!
//! Run one file's tests with `cargo test --workspace --test e2e -- <file>::`.

mod targets_support;

mod avro_wire;
mod consumer_rejoins;
mod custom_fields;
mod dedupe;
mod deletes;
mod echo;
mod exact_poller;
mod exact_target;
mod first_flow;
mod flows;
mod four_sources;
mod generic_poller;
mod kafka_security;
mod mapping_rollback;
mod new_entity;
mod ops_browser;
mod ops_console;
mod ops_console_rules;
mod ops_dlq;
mod ops_lag_replay;
mod partial_failure;
mod pipedrive_pace;
mod pipedrive_poller;
mod pipedrive_reconcile;
mod poison;
mod poller_leases;
mod producer_heals;
mod python_reader;
mod reconcile;
mod rolling_restart;
mod schema_evolution;
mod shopify_target;
mod sink_audit;
mod sink_concurrency;
mod sink_exactly_once;
mod sink_outage;
mod sink_parking;
mod sink_replicas;
mod targets_exactly_once;
mod transformer_exactly_once;
mod transformer_rules;
