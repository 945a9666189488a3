//! A generic REST API as a target (`type: http` with `target:`): upsert by configuration.
//!
//! Body: the canonical record's fields as JSON plus `switchboard_id`. Check-before-create:
//! the xref's ID, else the configured search by `match_field`, else create.

use crate::generic::target::{GenericTarget, GenericWriter};
use serde_json::Value;
use switchboard_core::error::ClassifiedError;

use crate::target::{Delivered, Outcome, Record};

/// The writer of a generic HTTP connection.
pub struct HttpTarget {
    writer: GenericWriter,
}

impl HttpTarget {
    /// The writer for `settings`.
    pub fn new(settings: GenericTarget) -> Result<Self, ClassifiedError> {
        Ok(Self {
            writer: GenericWriter::new(settings)?,
        })
    }

    /// The field records are matched on before a create.
    pub fn match_field(&self) -> &str {
        &self.writer.settings().match_field
    }

    /// Writes `record`, updating `known` if linked.
    pub async fn deliver(
        &self,
        record: &Record,
        known: Option<&str>,
    ) -> Result<Delivered, ClassifiedError> {
        let mut body = record.fields.clone();
        body.insert("switchboard_id".to_owned(), Value::from(record.id.clone()));
        let body = Value::Object(body);
        let existing = match known {
            Some(id) => Some(id.to_owned()),
            None => {
                let field = &self.writer.settings().match_field;
                match record.fields.get(field).and_then(Value::as_str) {
                    Some(key) if !key.is_empty() => self.writer.find(key).await?,
                    _ => None,
                }
            }
        };
        let (outcome, id) = match existing {
            Some(id) => {
                self.writer.update(&id, &body).await?;
                (Outcome::Updated, id)
            }
            None => (Outcome::Created, self.writer.create(&body).await?),
        };
        Ok(Delivered::new(outcome, id))
    }

    /// Deletes record `id`.
    pub async fn delete(&self, id: &str) -> Result<(), ClassifiedError> {
        self.writer.delete(id).await
    }
}
