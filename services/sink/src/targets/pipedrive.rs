//! Pipedrive as a target: persons from contacts.

use switchboard_connectors::pipedrive::PipedriveConnection;
use switchboard_connectors::pipedrive::api::PipedriveClient;
use switchboard_connectors::pipedrive::model::PersonInput;
use switchboard_core::ErrorClass;
use switchboard_core::canonical::Contact;
use switchboard_core::error::ClassifiedError;

use super::{Delivered, Outcome, Record};

pub(crate) struct PipedriveTarget {
    client: PipedriveClient,
}

impl PipedriveTarget {
    pub(crate) fn new(connection: PipedriveConnection) -> Result<Self, ClassifiedError> {
        Ok(Self {
            client: PipedriveClient::new(connection)?,
        })
    }

    pub(crate) async fn deliver(
        &self,
        entity: &str,
        record: &Record,
        known: Option<&str>,
    ) -> Result<Delivered, ClassifiedError> {
        match entity {
            "persons" => self.person(record, known).await,
            other => Err(ClassifiedError::new(
                ErrorClass::Data,
                format!("Pipedrive target entity `{other}` is not supported"),
            )),
        }
    }

    /// A contact becomes a person: the one the xref knows, else the one with the same
    /// e-mail, else a new one. A redelivered record updates the person it created.
    async fn person(
        &self,
        record: &Record,
        known: Option<&str>,
    ) -> Result<Delivered, ClassifiedError> {
        if record.deleted() {
            return Ok(Delivered {
                outcome: Outcome::Skipped,
                native_id: known.map(str::to_owned),
            });
        }
        let contact: Contact = record.to()?;
        let person = PersonInput::from_contact(&contact);
        let known = known.and_then(|id| id.parse::<u64>().ok());
        let existing = match known {
            Some(id) => Some(id),
            None => {
                let email = contact
                    .email
                    .as_deref()
                    .filter(|e| !e.is_empty())
                    .ok_or_else(|| {
                        ClassifiedError::new(
                            ErrorClass::Data,
                            "contact has no e-mail, the natural key persons are matched on",
                        )
                    })?;
                self.client.find_person_by_email(email).await?
            }
        };
        let (outcome, id) = match existing {
            Some(id) => {
                self.client.update_person(id, &person).await?;
                (Outcome::Updated, id)
            }
            None => (Outcome::Created, self.client.create_person(&person).await?),
        };
        Ok(Delivered {
            outcome,
            native_id: Some(id.to_string()),
        })
    }
}
