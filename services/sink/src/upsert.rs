//! One upsert for every target. The sink owns a delivery's steps; a system's
//! [`Writer`] says only how its API does each one.
//!
//! - A record the xref links is updated: one call.
//! - A record without a link has its natural key claimed first (`claims.rs`), so two
//!   records with one key never both create; then, by the entity's [`Check`]: the target is
//!   searched by that key and what it finds is updated, else the record is created; or the
//!   record is created at once, and found and updated only when the target refuses the key
//!   as taken; or, where the target cannot be searched, it is created.
//! - The native ID goes back to the sink to link, and a redelivery after a crash between
//!   create and link is closed by the search.
//! - A record the source deleted deletes (or archives, or leaves, by the flow's `on_delete`)
//!   the one linked to it ([`remove`]).

pub(crate) use switchboard_connectors::target::Record;
use switchboard_connectors::target::{Check, Created, Writer, Written};
use switchboard_core::config::OnDelete;
use switchboard_core::error::ClassifiedError;

/// What a delivery did at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new record was created.
    Created,
    /// An existing record (known by the xref or found by search) was updated.
    Updated,
    /// The linked record was deleted (or was already gone).
    Deleted,
    /// The linked record was kept, marked inactive (`on_delete: archive`).
    Archived,
    /// Nothing to do; [`Delivered::note`] says why.
    Skipped,
}

impl Outcome {
    /// The outcome as `sb.deliveries` names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Archived => "archived",
            Self::Skipped => "skipped",
        }
    }
}

/// The result of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// What happened.
    pub outcome: Outcome,
    /// The target's ID of the record, to link in the xref.
    pub native_id: Option<String>,
    /// Why nothing was done, for the outcome on `sb.deliveries` and the log.
    pub note: Option<&'static str>,
}

impl Delivered {
    /// `outcome` for the target's record `native_id`.
    pub(crate) fn new(outcome: Outcome, native_id: impl Into<String>) -> Self {
        Self {
            outcome,
            native_id: Some(native_id.into()),
            note: None,
        }
    }

    /// Nothing done, because of `note`; the known native ID stays linked.
    pub(crate) fn skipped(known: Option<&str>, note: &'static str) -> Self {
        Self {
            outcome: Outcome::Skipped,
            native_id: known.map(str::to_owned),
            note: Some(note),
        }
    }
}

/// A target connection's writer, shared by its lanes.
pub(crate) type Target = std::sync::Arc<dyn Writer>;

/// The writer of target connection `name`, or an error saying it cannot be a target.
pub(crate) fn target(
    name: &str,
    connection: &switchboard_connectors::Connection,
) -> anyhow::Result<Target> {
    Ok(connection.writer(name)?.into())
}

/// Writes `record` as an `entity` with `writer`; `known` is the native ID the xref links
/// to the record, if any.
pub(crate) async fn upsert(
    writer: &dyn Writer,
    entity: &str,
    record: &Record,
    known: Option<&str>,
    on_delete: OnDelete,
) -> Result<Delivered, ClassifiedError> {
    if record.deleted() {
        return match on_delete {
            OnDelete::Delete => remove(writer, entity, record, known, false).await,
            OnDelete::Archive => remove(writer, entity, record, known, true).await,
            OnDelete::Ignore => Ok(Delivered::skipped(
                known,
                "deleted at the source; this target keeps deleted records (on_delete: ignore)",
            )),
        };
    }
    if let Some(id) = known {
        return update(writer, entity, id, record).await;
    }
    let key = natural_key(writer, entity, record);
    let check = writer.check(entity);
    if check == Check::Search
        && let Some(id) = writer.find(entity, key, record).await?
    {
        return update(writer, entity, &id, record).await;
    }
    match writer.create(entity, record).await? {
        Created::New(id) => Ok(Delivered::new(Outcome::Created, id)),
        Created::Taken(refusal) => match writer.find(entity, key, record).await? {
            Some(id) => update(writer, entity, &id, record).await,
            None => Err(refusal),
        },
    }
}

/// The record's value of `entity`'s natural key, as searched.
fn natural_key<'a>(writer: &dyn Writer, entity: &str, record: &'a Record) -> Option<&'a str> {
    record.str(writer.natural_key(entity)?)
}

/// The key claimed before `record` may be created as an `entity` (see `claims.rs`): the
/// natural key's value, trimmed and lower-cased; `None` without one.
pub(crate) fn claim(writer: &dyn Writer, entity: &str, record: &Record) -> Option<String> {
    let value = natural_key(writer, entity, record)?.trim().to_lowercase();
    Some(format!("{entity}/{value}"))
}

async fn update(
    writer: &dyn Writer,
    entity: &str,
    id: &str,
    record: &Record,
) -> Result<Delivered, ClassifiedError> {
    Ok(match writer.update(entity, id, record).await? {
        Written::Done => Delivered::new(Outcome::Updated, id),
        Written::Skipped(note) => Delivered::skipped(Some(id), note),
    })
}

/// A record the source deleted: the target's record linked to it is deleted, or archived
/// (kept, marked inactive), and one already gone (deleted there too, or by an earlier
/// delivery of this deletion) counts as deleted. The link stays, so a redelivery touches
/// nothing else. Without a link nothing is done: a record found only by its natural key was
/// not written for this one, and may be someone else's.
async fn remove(
    writer: &dyn Writer,
    entity: &str,
    record: &Record,
    known: Option<&str>,
    archive: bool,
) -> Result<Delivered, ClassifiedError> {
    let Some(id) = known else {
        return Ok(Delivered::skipped(
            None,
            "deleted at the source; no record here is linked to it",
        ));
    };
    let (done, outcome) = if archive {
        (writer.archive(entity, id, record).await, Outcome::Archived)
    } else {
        (writer.delete(entity, id).await, Outcome::Deleted)
    };
    match done {
        Ok(Written::Done) => Ok(Delivered::new(outcome, id)),
        Ok(Written::Skipped(note)) => Ok(Delivered::skipped(known, note)),
        Err(e) if e.is_not_found() => Ok(Delivered::new(Outcome::Deleted, id)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;
    use switchboard_connectors::target::Call;
    use switchboard_core::ErrorClass;
    use switchboard_core::error::NOT_FOUND;

    use super::*;

    /// A target of one entity keyed on `email`, holding `existing` (native ID 7) and
    /// logging every call it gets.
    struct Fake {
        check: Check,
        existing: Option<&'static str>,
        gone: bool,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(check: Check, existing: Option<&'static str>) -> Self {
            Self {
                check,
                existing,
                gone: false,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn log(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Writer for Fake {
        fn natural_key(&self, _entity: &str) -> Option<&str> {
            Some("email")
        }

        fn check(&self, _entity: &str) -> Check {
            self.check
        }

        fn find<'a>(
            &'a self,
            _entity: &'a str,
            key: Option<&'a str>,
            _record: &'a Record,
        ) -> Call<'a, Option<String>> {
            self.log(format!("find {}", key.unwrap_or("-")));
            let found = self
                .existing
                .filter(|e| Some(*e) == key)
                .map(|_| "7".into());
            Box::pin(std::future::ready(Ok(found)))
        }

        fn create<'a>(&'a self, _entity: &'a str, record: &'a Record) -> Call<'a, Created> {
            self.log("create".into());
            let created = match self.existing {
                Some(e) if self.check == Check::OnConflict && record.str("email") == Some(e) => {
                    Created::Taken(ClassifiedError::new(ErrorClass::Data, "taken"))
                }
                _ => Created::New("8".into()),
            };
            Box::pin(std::future::ready(Ok(created)))
        }

        fn update<'a>(&'a self, _: &'a str, id: &'a str, _: &'a Record) -> Call<'a, Written> {
            self.log(format!("update {id}"));
            Box::pin(std::future::ready(Ok(Written::Done)))
        }

        fn archive<'a>(&'a self, _: &'a str, id: &'a str, _: &'a Record) -> Call<'a, Written> {
            self.log(format!("archive {id}"));
            Box::pin(std::future::ready(Ok(Written::Done)))
        }

        fn delete<'a>(&'a self, _entity: &'a str, id: &'a str) -> Call<'a, Written> {
            self.log(format!("delete {id}"));
            let done = match self.gone {
                true => Err(ClassifiedError::new(ErrorClass::Data, "404").reason(NOT_FOUND)),
                false => Ok(Written::Done),
            };
            Box::pin(std::future::ready(done))
        }
    }

    #[tokio::test]
    async fn archive_keeps_the_linked_record_and_ignore_touches_nothing() {
        let fake = Fake::new(Check::Search, Some("a@x"));
        let gone = record("a@x", true);
        assert_eq!(
            upsert(&fake, "people", &gone, Some("5"), OnDelete::Archive)
                .await
                .unwrap(),
            Delivered::new(Outcome::Archived, "5")
        );
        let unlinked = upsert(&fake, "people", &gone, None, OnDelete::Archive)
            .await
            .unwrap();
        assert_eq!(unlinked.outcome, Outcome::Skipped);
        let kept = upsert(&fake, "people", &gone, Some("5"), OnDelete::Ignore)
            .await
            .unwrap();
        assert_eq!(kept.outcome, Outcome::Skipped);
        assert_eq!(kept.native_id.as_deref(), Some("5"), "the link stays");
        assert_eq!(fake.calls(), ["archive 5"]);
    }

    fn record(email: &str, deleted: bool) -> Record {
        Record::from_json(json!({"id": "c1", "email": email, "deleted": deleted})).unwrap()
    }

    async fn run(fake: &Fake, email: &str, known: Option<&str>) -> Delivered {
        upsert(
            fake,
            "people",
            &record(email, false),
            known,
            OnDelete::Delete,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_linked_record_costs_one_update() {
        let fake = Fake::new(Check::Search, Some("a@x"));
        let done = run(&fake, "a@x", Some("5")).await;
        assert_eq!(done, Delivered::new(Outcome::Updated, "5"));
        assert_eq!(fake.calls(), ["update 5"]);
    }

    #[tokio::test]
    async fn search_updates_what_it_finds_and_creates_only_what_it_does_not() {
        let fake = Fake::new(Check::Search, Some("a@x"));
        assert_eq!(
            run(&fake, "a@x", None).await,
            Delivered::new(Outcome::Updated, "7")
        );
        assert_eq!(
            run(&fake, "b@x", None).await,
            Delivered::new(Outcome::Created, "8")
        );
        assert_eq!(fake.calls(), ["find a@x", "update 7", "find b@x", "create"]);
    }

    #[tokio::test]
    async fn on_conflict_creates_first_and_finds_only_a_taken_key() {
        let fake = Fake::new(Check::OnConflict, Some("a@x"));
        assert_eq!(
            run(&fake, "b@x", None).await,
            Delivered::new(Outcome::Created, "8")
        );
        assert_eq!(
            run(&fake, "a@x", None).await,
            Delivered::new(Outcome::Updated, "7")
        );
        assert_eq!(fake.calls(), ["create", "create", "find a@x", "update 7"]);
    }

    #[tokio::test]
    async fn a_target_that_cannot_be_searched_is_never_searched() {
        let fake = Fake::new(Check::XrefOnly, Some("a@x"));
        assert_eq!(
            run(&fake, "a@x", None).await,
            Delivered::new(Outcome::Created, "8")
        );
        assert_eq!(fake.calls(), ["create"]);
    }

    #[tokio::test]
    async fn a_deletion_deletes_only_the_linked_record_and_a_gone_one_counts() {
        let mut fake = Fake::new(Check::Search, Some("a@x"));
        let gone = record("a@x", true);
        let unlinked = upsert(&fake, "people", &gone, None, OnDelete::Delete)
            .await
            .unwrap();
        assert_eq!(unlinked.outcome, Outcome::Skipped);
        assert_eq!(
            upsert(&fake, "people", &gone, Some("5"), OnDelete::Delete)
                .await
                .unwrap(),
            Delivered::new(Outcome::Deleted, "5")
        );
        fake.gone = true;
        assert_eq!(
            upsert(&fake, "people", &gone, Some("5"), OnDelete::Delete)
                .await
                .unwrap(),
            Delivered::new(Outcome::Deleted, "5")
        );
        assert_eq!(fake.calls(), ["delete 5", "delete 5"]);
    }

    #[test]
    fn the_claimed_key_is_the_searched_key_trimmed_and_lower_cased() {
        let fake = Fake::new(Check::Search, None);
        let key = claim(&fake, "people", &record(" A@X ", false));
        assert_eq!(key.as_deref(), Some("people/a@x"));
    }
}
