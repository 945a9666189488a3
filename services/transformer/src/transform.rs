//! One raw change event (or one review decision) in, the records it causes out: the
//! canonical record when something changed, and the xref, state and review records that
//! explain it. The caller writes them all in one Kafka transaction.
//!
//! Steps for a change event: check the payload's shape against its API version (drift →
//! `data`/`schema_drift`), map it, check the output against the target schema, resolve
//! identity, merge under the conflict rules, and only then touch the in-memory tables, so a
//! record that fails leaves no trace behind.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rdkafka::Message;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::ErrorClass;
use switchboard_core::avro::AvroCodec;
use switchboard_core::envelope::{ChangeEvent, Operation, SWITCHBOARD_NAMESPACE};
use switchboard_core::error::ClassifiedError;
use switchboard_core::policy::{IdentityConfig, PoliciesConfig};

use crate::Flow;
use crate::drift::{Shapes, Verdict};
use crate::identity::{self, XrefEntry};
use crate::merge::{self, Change, RecordState, SourceRef};
use crate::tables::Tables;
use crate::target::{Envelope, Target};

/// A record to write in the transaction; `value: None` is a tombstone.
pub(crate) struct Output {
    pub topic: String,
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub headers: OwnedHeaders,
}

/// Topic names of the state the transformer keeps.
pub(crate) struct StateTopics {
    pub xref: String,
    pub state: String,
    pub review: String,
    pub decisions: String,
}

/// A person's decision on a held field, from `sb.review.decisions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    field: String,
    value: Value,
    #[serde(default)]
    decided_by: Option<String>,
}

pub(crate) struct Transformer {
    pub flows: HashMap<String, Flow>,
    /// Newest target per canonical entity and its topic, for records written by decisions.
    pub targets: HashMap<String, (Arc<Target>, String)>,
    pub shapes: Shapes,
    pub identity: IdentityConfig,
    pub policies: PoliciesConfig,
    /// Connections some flow delivers to: a no-op change from one of them is an echo.
    pub sink_connections: HashSet<String>,
    pub tables: Tables,
    pub topics: StateTopics,
    pub codec: AvroCodec,
    warned_fields: HashSet<String>,
}

impl Transformer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        flows: HashMap<String, Flow>,
        shapes: Shapes,
        identity: IdentityConfig,
        policies: PoliciesConfig,
        sink_connections: HashSet<String>,
        tables: Tables,
        topics: StateTopics,
        codec: AvroCodec,
    ) -> Self {
        let mut targets: HashMap<String, (Arc<Target>, String)> = HashMap::new();
        for flow in flows.values() {
            let newer = targets
                .get(&flow.target.entity)
                .is_none_or(|(t, _)| t.version < flow.target.version);
            if newer {
                targets.insert(
                    flow.target.entity.clone(),
                    (flow.target.clone(), flow.output_topic.clone()),
                );
            }
        }
        Self {
            flows,
            targets,
            shapes,
            identity,
            policies,
            sink_connections,
            tables,
            topics,
            codec,
            warned_fields: HashSet::new(),
        }
    }

    /// The records `message` causes; a `data` error means it belongs in the DLQ.
    pub(crate) async fn transform(
        &mut self,
        message: &OwnedMessage,
    ) -> Result<Vec<Output>, ClassifiedError> {
        let bytes = message
            .payload()
            .ok_or_else(|| ClassifiedError::new(ErrorClass::Data, "record has no value"))?;
        if message.topic() == self.topics.decisions {
            let key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            let event = uuid::Uuid::new_v5(
                &SWITCHBOARD_NAMESPACE,
                format!("review/{}/{}", message.partition(), message.offset()).as_bytes(),
            )
            .to_string();
            return self.decide(&key, bytes, &event).await;
        }
        let event: ChangeEvent = self.codec.decode(bytes).await?;
        self.change(message.topic(), event).await
    }

    async fn change(
        &mut self,
        topic: &str,
        event: ChangeEvent,
    ) -> Result<Vec<Output>, ClassifiedError> {
        let flow = self.flows.get(topic).ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Data, format!("no flow reads {topic}"))
        })?;
        let payload: Value = serde_json::from_str(&event.payload).map_err(|e| {
            ClassifiedError::new(ErrorClass::Data, format!("payload is not JSON: {e}"))
                .reason("malformed")
        })?;
        match self.shapes.check(
            &event.system,
            &event.entity,
            event.api_version.as_deref(),
            &payload,
        ) {
            Verdict::Drift(why) => {
                metrics::counter!("switchboard_schema_drift_total", "connection" => event.connection.clone(), "flow" => flow.name.clone()).increment(1);
                return Err(ClassifiedError::new(
                    ErrorClass::Data,
                    format!(
                        "schema_drift: {}/{} api {}: {why}",
                        event.system,
                        event.entity,
                        event.api_version.as_deref().unwrap_or("unversioned")
                    ),
                )
                .reason("schema_drift"));
            }
            Verdict::Fits { unknown } => {
                for field in unknown {
                    let seen = format!("{}/{}/{field}", event.connection, event.entity);
                    metrics::counter!("switchboard_source_unknown_fields_total", "connection" => event.connection.clone(), "flow" => flow.name.clone()).increment(1);
                    if self.warned_fields.insert(seen) {
                        tracing::warn!(connection = %event.connection, entity = %event.entity, field = %field, api_version = ?event.api_version, "source sends a field its shape does not know");
                    }
                }
            }
            Verdict::Unchecked => {}
        }
        let mapped = flow.mapping.apply(&event.payload)?;
        let fields = flow
            .target
            .check_output(mapped)
            .map_err(|e| flow.target.data_error(flow.mapping.name(), e))?;

        let entity = flow.target.entity.clone();
        let resolution = identity::resolve(
            &self.tables.xref,
            &event.connection,
            &event.entity,
            &event.record_id,
            &entity,
            &self.identity.keys(&entity),
            &fields,
        );
        let id = resolution.canonical_id.clone();
        let mut state = self
            .tables
            .records
            .get(&id)
            .cloned()
            .unwrap_or_else(|| RecordState {
                entity: entity.clone(),
                ..RecordState::default()
            });
        let policies = &self.policies;
        // A deletion carries no new values (a delete payload is mostly empty): the record
        // keeps its last ones, and a target's report of the deletion is an echo like any.
        let deleted = event.operation == Operation::Delete;
        let no_values = serde_json::Map::new();
        let outcome = merge::merge(
            &mut state,
            &Change {
                source: &event.connection,
                ts: event.source_timestamp.unwrap_or(event.received_at),
                event: &event.event_id,
                mapping: flow.mapping.name(),
                deleted,
                fields: if deleted { &no_values } else { &fields },
            },
            |field| policies.policy(&entity, field),
        );
        state.last = Some(SourceRef {
            connection: event.connection.clone(),
            entity: event.entity.clone(),
            record_id: event.record_id.clone(),
            ts: event.source_timestamp,
        });

        // Everything fallible happens before the tables change.
        let mut outputs = Vec::new();
        if outcome.changed {
            let envelope = Envelope {
                id: &id,
                deleted: state.deleted,
                connection: &event.connection,
                entity: &event.entity,
                record_id: &event.record_id,
                updated_at: event.source_timestamp,
                event_id: &event.event_id,
                mapping: flow.mapping.name(),
            };
            let value = flow
                .target
                .record(&envelope, &state.fields)
                .map_err(|e| flow.target.data_error(flow.mapping.name(), e))?;
            let bytes = self
                .codec
                .encode_value(&flow.output_topic, flow.target.def, value)
                .await?;
            metrics::counter!("switchboard_records_transformed_total", "flow" => flow.name.clone())
                .increment(1);
            outputs.push(Output {
                topic: flow.output_topic.clone(),
                key: id.clone(),
                value: Some(bytes),
                headers: headers(&event.event_id, &flow.name),
            });
        } else if self.sink_connections.contains(&event.connection) {
            metrics::counter!("switchboard_echoes_suppressed_total", "connection" => event.connection.clone(), "flow" => flow.name.clone()).increment(1);
            tracing::debug!(flow = %flow.name, record_id = %event.record_id, event_id = %event.event_id, "echo of a write Switchboard made; dropped");
        } else {
            metrics::counter!("switchboard_records_unchanged_total", "flow" => flow.name.clone())
                .increment(1);
        }
        if !outcome.held.is_empty() {
            metrics::counter!("switchboard_review_holds_total", "flow" => flow.name.clone())
                .increment(1);
            tracing::info!(flow = %flow.name, canonical_id = %id, fields = ?outcome.held, "conflicting edits held for review");
            outputs.push(self.review_record(&id, &state)?);
        }
        tracing::debug!(flow = %flow.name, record_id = %event.record_id, event_id = %event.event_id, canonical_id = %id, identity = resolution.how, changed = outcome.changed, "mapped");
        for (key, entry) in resolution.writes {
            outputs.push(self.xref_record(&key, &entry)?);
            self.tables.set_xref(key, entry);
        }
        if outcome.state_changed || resolution.how == "new" {
            outputs.push(self.state_record(&id, &state)?);
            self.tables.set_record(id, state);
        }
        Ok(outputs)
    }

    /// Applies a decision on a held field and writes the record it settles.
    async fn decide(
        &mut self,
        id: &str,
        bytes: &[u8],
        event: &str,
    ) -> Result<Vec<Output>, ClassifiedError> {
        let decision: Decision = serde_json::from_slice(bytes)
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("review decision: {e}")))?;
        let mut state = self.tables.records.get(id).cloned().ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Data, format!("no canonical record {id}"))
        })?;
        if !merge::decide_review(&mut state, &decision.field, decision.value, event) {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                format!("field `{}` of {id} is not held for review", decision.field),
            ));
        }
        let (target, topic) = self.targets.get(&state.entity).ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Data, format!("no flow writes {}", state.entity))
        })?;
        let last = state.last.clone().unwrap_or(SourceRef {
            connection: "review".into(),
            entity: state.entity.clone(),
            record_id: id.to_owned(),
            ts: None,
        });
        let envelope = Envelope {
            id,
            deleted: state.deleted,
            connection: &last.connection,
            entity: &last.entity,
            record_id: &last.record_id,
            updated_at: last.ts,
            event_id: event,
            mapping: "review",
        };
        let value = target
            .record(&envelope, &state.fields)
            .map_err(|e| target.data_error("review", e))?;
        let bytes = self.codec.encode_value(topic, target.def, value).await?;
        tracing::info!(canonical_id = %id, field = %decision.field, decided_by = ?decision.decided_by, "review decided");
        let outputs = vec![
            Output {
                topic: topic.clone(),
                key: id.to_owned(),
                value: Some(bytes),
                headers: headers(event, "review"),
            },
            self.review_record(id, &state)?,
            self.state_record(id, &state)?,
        ];
        self.tables.set_record(id.to_owned(), state);
        Ok(outputs)
    }

    fn xref_record(&self, key: &str, entry: &XrefEntry) -> Result<Output, ClassifiedError> {
        json_output(&self.topics.xref, key, Some(entry))
    }

    fn state_record(&self, id: &str, state: &RecordState) -> Result<Output, ClassifiedError> {
        json_output(&self.topics.state, id, Some(state))
    }

    /// The record's open conflicts, or a tombstone once none is left.
    fn review_record(&self, id: &str, state: &RecordState) -> Result<Output, ClassifiedError> {
        let value = (!state.held.is_empty()).then(|| {
            json!({
                "canonical_id": id,
                "entity": state.entity,
                "held": state.held,
                "current": state.held.keys().map(|f| (f.clone(), state.fields.get(f))).collect::<HashMap<_, _>>(),
            })
        });
        json_output(&self.topics.review, id, value)
    }
}

/// Serialised straight to bytes: through a `Value` first, the state record (every field
/// with its version) cost a tree of allocations per event.
fn json_output(
    topic: &str,
    key: &str,
    value: Option<impl serde::Serialize>,
) -> Result<Output, ClassifiedError> {
    let value = value
        .map(|v| serde_json::to_vec(&v))
        .transpose()
        .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("state record: {e}")))?;
    Ok(Output {
        topic: topic.to_owned(),
        key: key.to_owned(),
        value,
        headers: OwnedHeaders::new(),
    })
}

fn headers(event: &str, flow: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "sb.event.id",
            value: Some(event),
        })
        .insert(Header {
            key: "sb.flow",
            value: Some(flow),
        })
}
