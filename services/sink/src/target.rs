//! Targets: where a canonical record is written, with check-before-create.

use switchboard_connectors::pipedrive::PipedriveConnection;
use switchboard_connectors::pipedrive::api::PipedriveClient;
use switchboard_connectors::pipedrive::model::PersonInput;
use switchboard_core::ErrorClass;
use switchboard_core::canonical::Contact;
use switchboard_core::error::ClassifiedError;

/// What a delivery did at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new record was created.
    Created,
    /// An existing record (found by its natural key) was updated.
    Updated,
    /// Nothing to do (e.g. a deletion, which this target does not propagate).
    Skipped,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Skipped => "skipped",
        }
    }
}

/// A target connection's writer.
pub(crate) enum Target {
    Pipedrive(PipedriveClient),
}

impl Target {
    pub(crate) fn pipedrive(connection: PipedriveConnection) -> Result<Self, ClassifiedError> {
        Ok(Self::Pipedrive(PipedriveClient::new(connection)?))
    }

    /// Writes a contact: look it up by e-mail first, then update or create. A redelivered
    /// record therefore updates the person it created the first time.
    pub(crate) async fn upsert_contact(
        &self,
        contact: &Contact,
    ) -> Result<Outcome, ClassifiedError> {
        match self {
            Self::Pipedrive(client) => {
                if contact.deleted {
                    return Ok(Outcome::Skipped);
                }
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
                let person = PersonInput::from_contact(contact);
                match client.find_person_by_email(email).await? {
                    Some(id) => client
                        .update_person(id, &person)
                        .await
                        .map(|()| Outcome::Updated),
                    None => client
                        .create_person(&person)
                        .await
                        .map(|_| Outcome::Created),
                }
            }
        }
    }
}
