//! Avro values in the Confluent wire format (magic byte 0, 4-byte schema ID, Avro body)
//! through a Confluent-compatible schema registry, with subjects by TopicNameStrategy
//! (`<topic>-value`), so any Confluent client can read what Switchboard writes.
//!
//! Encoding registers the schema on first use and caches its ID; decoding fetches a
//! writer schema by ID once and caches it. Registry failures are `transient`; bytes that do
//! not decode are `data`, so a poison record is dead-lettered instead of retried forever.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroResult, Schema, from_value};
use schema_registry_converter::async_impl::easy_avro::{EasyAvroDecoder, EasyAvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{SrSettings, get_all_subjects};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::RegistryConfig;
use crate::error::{ClassifiedError, ErrorClass};

/// A schema compiled into the binary from `schemas/`.
#[derive(Debug, Clone, Copy)]
pub struct SchemaDef {
    /// Full record name.
    pub name: &'static str,
    /// The `.avsc` text.
    pub text: &'static str,
}

/// Encoder and decoder sharing one registry; cheap to clone.
#[derive(Clone, Debug)]
pub struct AvroCodec {
    settings: SrSettings,
    encoder: EasyAvroEncoder,
    decoder: EasyAvroDecoder,
    /// Schemas already registered, by topic and schema: their ID and parsed form, so every
    /// later record is encoded here without building a subject strategy (a copy of the
    /// schema's text) and looking it up per record, which was the transformer's largest
    /// cost after the allocator under a replay.
    known: Arc<Mutex<HashMap<String, Vec<Arc<Known>>>>>,
}

struct Known {
    /// The `&'static` schema text's address: which schema this is.
    text: usize,
    id: u32,
    /// Built once: building it resolves the schema's names, work no record needs again.
    writer: GenericDatumWriter<'static>,
}

impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Known").field("id", &self.id).finish()
    }
}

impl Known {
    /// `schema` with its registry `id`. The parsed schema lives as long as the process,
    /// as the registry library keeps its own: one per topic and schema a service writes.
    fn new(text: &'static str, id: u32) -> Option<Self> {
        let schema: &'static Schema = Box::leak(Box::new(Schema::parse_str(text).ok()?));
        Some(Self {
            text: text.as_ptr() as usize,
            id,
            writer: GenericDatumWriter::builder(schema).build().ok()?,
        })
    }

    /// The Confluent frame (magic byte, ID) and the body `write` writes after it.
    fn frame(
        &self,
        write: impl FnOnce(&GenericDatumWriter<'_>, &mut Vec<u8>) -> AvroResult<usize>,
    ) -> Result<Vec<u8>, ClassifiedError> {
        let mut bytes = Vec::with_capacity(128);
        bytes.push(0);
        bytes.extend_from_slice(&self.id.to_be_bytes());
        write(&self.writer, &mut bytes)
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("avro encoding: {e}")))?;
        Ok(bytes)
    }
}

impl AvroCodec {
    /// A codec for the registry in `config`.
    pub fn new(config: &RegistryConfig) -> Result<Self, ClassifiedError> {
        let mut builder = SrSettings::new_builder(config.url.trim_end_matches('/').to_owned());
        builder.set_timeout(Duration::from_secs(5));
        if let Some(auth) = &config.basic_auth {
            builder.set_basic_authorization(&auth.username, Some(auth.password.expose()));
        }
        let settings = builder
            .build()
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, registry_message(&e)))?;
        Ok(Self {
            encoder: EasyAvroEncoder::new(settings.clone()),
            decoder: EasyAvroDecoder::new(settings.clone()),
            settings,
            known: Arc::default(),
        })
    }

    /// Whether the registry answers (used before a service reports ready).
    pub async fn check(&self) -> Result<(), ClassifiedError> {
        get_all_subjects(&self.settings)
            .await
            .map(|_| ())
            .map_err(|e| {
                ClassifiedError::new(
                    ErrorClass::Transient,
                    format!("schema registry: {}", registry_message(&e)),
                )
            })
    }

    /// Encodes `value` for `topic` with `schema`, registering it under `<topic>-value`.
    pub async fn encode<T: Serialize>(
        &self,
        topic: &str,
        schema: SchemaDef,
        value: &T,
    ) -> Result<Vec<u8>, ClassifiedError> {
        if let Some(known) = self.known(topic, schema) {
            return known.frame(|writer, bytes| writer.write_ser(bytes, value));
        }
        let bytes = self
            .encoder
            .encode_struct(value, &strategy(topic, schema))
            .await
            .map_err(classify)?;
        self.remember(topic, schema, &bytes);
        Ok(bytes)
    }

    /// Encodes an Avro value already resolved against `schema` (see
    /// `apache_avro::types::Value::resolve`) for `topic`, registering the schema under
    /// `<topic>-value`. For records whose shape is only known at run time.
    pub async fn encode_value(
        &self,
        topic: &str,
        schema: SchemaDef,
        value: apache_avro::types::Value,
    ) -> Result<Vec<u8>, ClassifiedError> {
        if let Some(known) = self.known(topic, schema) {
            return known.frame(|writer, bytes| writer.write_value(bytes, value));
        }
        let bytes = self
            .encoder
            .encode_value(value, &strategy(topic, schema))
            .await
            .map_err(classify)?;
        self.remember(topic, schema, &bytes);
        Ok(bytes)
    }

    fn known(&self, topic: &str, schema: SchemaDef) -> Option<Arc<Known>> {
        let text = schema.text.as_ptr() as usize;
        let known = self.known.lock().ok()?;
        known.get(topic)?.iter().find(|k| k.text == text).cloned()
    }

    /// After the registry gave `schema` its ID for `topic` (in `bytes`' frame). Two first
    /// records encoded at once both get here; the second finds the first's.
    fn remember(&self, topic: &str, schema: SchemaDef, bytes: &[u8]) {
        let text = schema.text.as_ptr() as usize;
        let Ok(mut all) = self.known.lock() else {
            return;
        };
        let known = all.entry(topic.to_owned()).or_default();
        if known.iter().any(|k| k.text == text) {
            return;
        }
        if let Some(new) = schema_id(bytes).and_then(|id| Known::new(schema.text, id)) {
            known.push(Arc::new(new));
        }
    }

    /// Decodes Confluent-framed bytes into `T`.
    pub async fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, ClassifiedError> {
        let decoded = self.decoder.decode(Some(bytes)).await.map_err(classify)?;
        from_value::<T>(&decoded.value)
            .map_err(|e| ClassifiedError::new(ErrorClass::Data, format!("avro value: {e}")))
    }
}

/// Subject `<topic>-value` (TopicNameStrategy) with `schema` supplied for registration.
fn strategy(topic: &str, schema: SchemaDef) -> SubjectNameStrategy {
    SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.to_owned(),
        false,
        SuppliedSchema::new(
            Some(schema.name.to_owned()),
            SchemaType::Avro,
            schema.text.to_owned(),
        ),
    )
}

fn classify(e: SRCError) -> ClassifiedError {
    let class = if e.retriable {
        ErrorClass::Transient
    } else {
        ErrorClass::Data
    };
    ClassifiedError::new(class, registry_message(&e))
}

fn registry_message(e: &SRCError) -> String {
    match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    }
}

/// The schema ID in Confluent-framed bytes, if they are framed.
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
