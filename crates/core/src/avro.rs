//! Avro values in the Confluent wire format (magic byte 0, 4-byte schema ID, Avro body)
//! through a Confluent-compatible schema registry, with subjects by TopicNameStrategy
//! (`<topic>-value`), so any Confluent client can read what Switchboard writes.
//!
//! Encoding registers the schema on first use and caches its ID; decoding fetches a
//! writer schema by ID once and caches it. Registry failures are `transient`; bytes that do
//! not decode are `data`, so a poison record is dead-lettered instead of retried forever.

use std::time::Duration;

use apache_avro::from_value;
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
        self.encoder
            .encode_struct(value, &strategy(topic, schema))
            .await
            .map_err(classify)
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
        self.encoder
            .encode_value(value, &strategy(topic, schema))
            .await
            .map_err(classify)
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
