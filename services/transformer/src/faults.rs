//! Fault hooks for tests, compiled into debug builds only (never into a release binary).

use std::collections::HashSet;
use std::sync::Mutex;

static HELD: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Holds (`true`) or releases the transformer of topic prefix `prefix`: while held, the
/// next batch it reads waits uncommitted, as in a stalled transformer, while its process
/// stays up.
pub fn hold(prefix: &str, held: bool) {
    if let Ok(mut set) = HELD.lock() {
        let set = set.get_or_insert_with(HashSet::new);
        if held {
            set.insert(prefix.to_owned());
        } else {
            set.remove(prefix);
        }
    }
}

/// Whether the transformer of `prefix` is held.
pub(crate) fn held(prefix: &str) -> bool {
    HELD.lock()
        .ok()
        .and_then(|set| set.as_ref().map(|s| s.contains(prefix)))
        .unwrap_or(false)
}
