//! The emulators' integration tests over real HTTP, one module per file beside this one,
//! built as one test binary (one link instead of one per file; nextest still runs each
//! test in its own process).

mod common;

mod demo_and_binary;
mod exact_oauth;
mod exact_rate_limits;
mod exact_rest;
mod exact_switches;
mod exact_sync;
mod pipedrive_limits;
mod pipedrive_oauth;
mod pipedrive_orgs_deals;
mod pipedrive_persons;
mod pipedrive_switches;
mod pipedrive_webhook_retries;
mod pipedrive_webhooks;
mod shopify_api;
mod shopify_deliveries;
mod shopify_listing;
mod shopify_rate_limit;
mod shopify_switches;
mod shopify_webhooks;
mod telegram_deliveries;
mod telegram_envelope;
mod telegram_limits;
mod telegram_send_message;
mod telegram_webhooks;
