//! Natural keys being looked up and created, one lane at a time.
//!
//! Lanes are chosen by canonical ID, but a target matches records on a natural key (a
//! person's e-mail, an organization's name). Two canonical records with one natural key sit
//! in different lanes, and without a claim both would search the target, find nothing and
//! create: a duplicate that one record at a time never made. So a lane claims the natural
//! key for its search and create; another lane with the same key waits, then finds what
//! the first one created and updates it. Records the xref already links need no claim.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// The natural keys claimed now.
#[derive(Default)]
pub(crate) struct Claims {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A claimed key, released on drop.
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Claims {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `key` is free, then holds it.
    pub(crate) async fn hold(&self, key: String) -> Claim<'_> {
        let lock = self.held().entry(key.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        Claim {
            claims: self,
            key,
            guard: Some(guard),
        }
    }

    /// Keys claimed or waited for.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held().len()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self.claims.held();
        // Only the map's own handle left: nobody holds or waits for the key.
        if held
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_key_is_held_by_one_at_a_time_and_forgotten_after() {
        let claims = Claims::default();
        let first = claims.hold("persons/kay@example.com".into()).await;
        let other = claims.hold("persons/lee@example.com".into()).await;
        let second = claims.hold("persons/kay@example.com".into());
        tokio::pin!(second);
        let waited = tokio::time::timeout(Duration::from_millis(50), second.as_mut()).await;
        assert!(waited.is_err(), "the same key waits");
        drop(first);
        let second = second.await;
        drop(second);
        drop(other);
        assert_eq!(claims.len(), 0);
    }
}
