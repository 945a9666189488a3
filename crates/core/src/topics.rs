//! Topic and consumer-group names, in one place so every service agrees (DESIGN.md,
//! "Kafka contract"). Every name starts with the configured prefix, which is how tests
//! isolate themselves on a shared broker.

/// Names derived from the topic prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Names under `prefix` (normally `sb`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `<prefix>.raw.<connection>.<entity>`: raw change events keyed by source record ID.
    pub fn raw(&self, connection: &str, entity: &str) -> String {
        format!("{}.raw.{connection}.{entity}", self.prefix)
    }

    /// `<prefix>.canonical.<entity>`: canonical records keyed by canonical ID.
    pub fn canonical(&self, entity: &str) -> String {
        format!("{}.canonical.{entity}", self.prefix)
    }

    /// `<prefix>.dlq.<stage-or-sink>`: records that cannot be processed, with error headers.
    pub fn dlq(&self, stage: &str) -> String {
        format!("{}.dlq.{stage}", self.prefix)
    }

    /// `<prefix>.dlq.<sink>.handled`: DLQ records an operator already redrove or
    /// discarded, keyed `<partition>/<offset>` (compacted).
    pub fn dlq_handled(&self, sink: &str) -> String {
        format!("{}.dlq.{sink}.handled", self.prefix)
    }

    /// `<prefix>.ingest.dedupe`: delivery IDs and record versions already published.
    pub fn ingest_dedupe(&self) -> String {
        format!("{}.ingest.dedupe", self.prefix)
    }

    /// `<prefix>.xref`: native and natural keys → canonical ID (compacted).
    pub fn xref(&self) -> String {
        format!("{}.xref", self.prefix)
    }

    /// `<prefix>.transformer.state`: per canonical record, each field's value and where it
    /// came from, for the conflict rules (compacted).
    pub fn transformer_state(&self) -> String {
        format!("{}.transformer.state", self.prefix)
    }

    /// `<prefix>.review`: conflicts awaiting a human decision, keyed by canonical ID
    /// (compacted; a tombstone when decided).
    pub fn review(&self) -> String {
        format!("{}.review", self.prefix)
    }

    /// `<prefix>.review.decisions`: decisions on held fields, read by the transformer.
    pub fn review_decisions(&self) -> String {
        format!("{}.review.decisions", self.prefix)
    }

    /// `<prefix>.retry.<sink>.<tier>`: records of a sink waiting for their next attempt.
    pub fn retry(&self, sink: &str, tier: usize) -> String {
        format!("{}.retry.{sink}.{tier}", self.prefix)
    }

    /// `<prefix>.sink.<sink>.blocked`: keys whose records wait behind a failed one
    /// (compacted).
    pub fn sink_blocked(&self, sink: &str) -> String {
        format!("{}.sink.{sink}.blocked", self.prefix)
    }

    /// `<prefix>.status`: per connection, its state, last success and last error
    /// (compacted).
    pub fn status(&self) -> String {
        format!("{}.status", self.prefix)
    }

    /// `<prefix>.alerts`: alert events (firing and resolved), keyed by connection.
    pub fn alerts(&self) -> String {
        format!("{}.alerts", self.prefix)
    }

    /// `<prefix>.audit`: every API call, keyed by source record ID (`audit::ApiCall`).
    pub fn audit(&self) -> String {
        format!("{}.audit", self.prefix)
    }

    /// `<prefix>.deliveries`: the latest outcome of each canonical record at each target,
    /// keyed `<canonical id>/<connection>` (compacted; `audit::DeliveryOutcome`).
    pub fn deliveries(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// Consumer group of the transformer.
    pub fn transformer_group(&self) -> String {
        format!("{}.transformer", self.prefix)
    }

    /// Consumer group of the sink for one target connection.
    pub fn sink_group(&self, connection: &str) -> String {
        format!("{}.sink.{connection}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let t = Topics::new("sb");
        assert_eq!(t.raw("shop", "customers"), "sb.raw.shop.customers");
        assert_eq!(t.canonical("contact"), "sb.canonical.contact");
        assert_eq!(t.dlq("crm"), "sb.dlq.crm");
        assert_eq!(t.sink_group("crm"), "sb.sink.crm");
    }
}
