//! A generic REST API as a target (`type: http` with `target:`): upsert by configuration.
//!
//! Body: the canonical record's fields as JSON plus `switchboard_id`. Check-before-create:
//! the xref's ID, else the configured search by `match_field`, else create.

use crate::generic::target::{GenericTarget, GenericWriter};
use serde_json::Value;
use switchboard_core::error::ClassifiedError;

use crate::target::{Call, Created, Record, Writer, Written};

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

    /// The flow's mapping's payload, else the canonical fields; plus `switchboard_id`.
    fn body(record: &Record) -> Value {
        let mut body = match &record.body {
            Some(Value::Object(body)) => body.clone(),
            _ => record.fields.clone(),
        };
        body.insert("switchboard_id".to_owned(), Value::from(record.id.clone()));
        Value::Object(body)
    }
}

impl Writer for HttpTarget {
    /// The configured `match_field`, for every entity.
    fn natural_key(&self, _entity: &str) -> Option<&str> {
        Some(&self.writer.settings().match_field)
    }

    fn find<'a>(
        &'a self,
        _entity: &'a str,
        key: Option<&'a str>,
        _record: &'a Record,
    ) -> Call<'a, Option<String>> {
        Box::pin(async move {
            match key {
                Some(key) => self.writer.find(key).await,
                None => Ok(None),
            }
        })
    }

    fn create<'a>(&'a self, _entity: &'a str, record: &'a Record) -> Call<'a, Created> {
        Box::pin(async move { Ok(Created::New(self.writer.create(&Self::body(record)).await?)) })
    }

    fn update<'a>(
        &'a self,
        _entity: &'a str,
        id: &'a str,
        record: &'a Record,
    ) -> Call<'a, Written> {
        Box::pin(async move {
            self.writer.update(id, &Self::body(record)).await?;
            Ok(Written::Done)
        })
    }

    fn delete<'a>(&'a self, _entity: &'a str, id: &'a str) -> Call<'a, Written> {
        Box::pin(async move {
            self.writer.delete(id).await?;
            Ok(Written::Done)
        })
    }
}
