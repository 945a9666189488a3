//! The v2 list endpoints' shared query: time filters, sorting and cursor pagination, for
//! `GET /api/v2/{persons,organizations,deals}`.
//!
//! Contract facts followed (saas-contracts.md §2.5, the v2 persons list as in the official
//! SDK `pipedrive/client-nodejs`): `updated_since` and `updated_until` in RFC 3339,
//! `sort_by` ∈ `id|update_time|add_time`, `sort_direction`, `limit` ≤ 500 (default 100)
//! and an opaque `cursor`, answered in `additional_data.next_cursor` (null at the end).
//! Soft-deleted records are not listed (the reference names no filter that lists them).
//!
//! Emulator choices where the reference is silent (the v2 OpenAPI parameter descriptions
//! read the same way): `updated_since` is inclusive (`update_time` ≥ it), `updated_until`
//! exclusive (`update_time` < it); `sort_by` defaults to `id`, `sort_direction` to `asc`;
//! ties are broken by `id` in the same direction. The cursor is keyset-based (the sort key
//! and ID of the last record served, bound to the sort it was made for), so a record that
//! changes during a walk sorted by `update_time` moves behind the cursor and is listed again
//! later in the same walk instead of shifting a page. A cursor made for another sort is a
//! 400, as is an unknown `sort_by`/`sort_direction` or an unparsable time.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::common::{Rejection, parse_limit};

/// What a list can sort and filter on.
pub(crate) trait Listed {
    fn id(&self) -> u64;
    fn add_time(&self) -> &str;
    fn update_time(&self) -> &str;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SortBy {
    Id,
    UpdateTime,
    AddTime,
}

/// A parsed list query.
#[derive(Debug)]
pub(crate) struct ListQuery {
    limit: usize,
    by: SortBy,
    descending: bool,
    since: Option<i64>,
    until: Option<i64>,
    after: Option<(i64, u64)>,
}

/// The keyset cursor: sort, direction, and the last record's key and ID.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    by: SortBy,
    desc: bool,
    key: i64,
    id: u64,
}

fn unix(raw: &str) -> Option<i64> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

fn time_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Rejection> {
    params
        .get(name)
        .map(|raw| {
            unix(raw).ok_or_else(|| {
                Rejection::bad_request(format!(
                    "Validation failed: {name}: must be an RFC 3339 date-time, e.g. 2025-01-01T10:20:00Z"
                ))
            })
        })
        .transpose()
}

impl ListQuery {
    /// Parses `limit`, `cursor`, `sort_by`, `sort_direction`, `updated_since`,
    /// `updated_until`.
    pub(crate) fn parse(params: &HashMap<String, String>) -> Result<Self, Rejection> {
        let limit = parse_limit(params)?;
        let by = match params.get("sort_by").map(String::as_str) {
            None | Some("id") => SortBy::Id,
            Some("update_time") => SortBy::UpdateTime,
            Some("add_time") => SortBy::AddTime,
            Some(_) => {
                return Err(Rejection::bad_request(
                    "Validation failed: sort_by: must be one of id, update_time, add_time",
                ));
            }
        };
        let descending = match params.get("sort_direction").map(String::as_str) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                return Err(Rejection::bad_request(
                    "Validation failed: sort_direction: must be asc or desc",
                ));
            }
        };
        let after = match params.get("cursor") {
            None => None,
            Some(raw) => {
                let cursor = URL_SAFE_NO_PAD
                    .decode(raw)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok())
                    .filter(|c| c.by == by && c.desc == descending)
                    .ok_or_else(|| {
                        Rejection::bad_request("Validation failed: cursor: Invalid cursor")
                    })?;
                Some((cursor.key, cursor.id))
            }
        };
        Ok(Self {
            limit,
            by,
            descending,
            since: time_param(params, "updated_since")?,
            until: time_param(params, "updated_until")?,
            after,
        })
    }

    fn key<T: Listed>(&self, item: &T) -> (i64, u64) {
        let key = match self.by {
            SortBy::Id => i64::try_from(item.id()).unwrap_or(i64::MAX),
            SortBy::UpdateTime => unix(item.update_time()).unwrap_or(0),
            SortBy::AddTime => unix(item.add_time()).unwrap_or(0),
        };
        (key, item.id())
    }

    /// One page of `items` (already narrowed by entity filters), rendered with `render`,
    /// and the cursor of the next page if there is one.
    pub(crate) fn page<'a, T: Listed + 'a>(
        &self,
        items: impl Iterator<Item = &'a T>,
        render: impl Fn(&T) -> Value,
    ) -> (Vec<Value>, Option<String>) {
        let mut matching: Vec<((i64, u64), &T)> = items
            .filter(|item| {
                let updated = unix(item.update_time()).unwrap_or(0);
                self.since.is_none_or(|s| updated >= s) && self.until.is_none_or(|u| updated < u)
            })
            .map(|item| (self.key(item), item))
            .filter(|(key, _)| match self.after {
                None => true,
                Some(after) if self.descending => *key < after,
                Some(after) => *key > after,
            })
            .collect();
        matching.sort_by_key(|(key, _)| *key);
        if self.descending {
            matching.reverse();
        }
        let more = matching.len() > self.limit;
        matching.truncate(self.limit);
        let next = matching.last().filter(|_| more).map(|((key, id), _)| {
            let cursor = Cursor {
                by: self.by,
                desc: self.descending,
                key: *key,
                id: *id,
            };
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
        });
        (
            matching.into_iter().map(|(_, item)| render(item)).collect(),
            next,
        )
    }
}

macro_rules! listed {
    ($($t:ty),*) => {$(
        impl Listed for $t {
            fn id(&self) -> u64 {
                self.id
            }
            fn add_time(&self) -> &str {
                &self.add_time
            }
            fn update_time(&self) -> &str {
                &self.update_time
            }
        }
    )*};
}

listed!(
    super::model::Person,
    super::org_model::Organization,
    super::deal_model::Deal
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    struct Row(u64, &'static str, &'static str);

    impl Listed for Row {
        fn id(&self) -> u64 {
            self.0
        }
        fn add_time(&self) -> &str {
            self.1
        }
        fn update_time(&self) -> &str {
            self.2
        }
    }

    fn query(pairs: &[(&str, &str)]) -> Result<ListQuery, Rejection> {
        ListQuery::parse(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn ids(rows: &[Row], pairs: &[(&str, &str)]) -> (Vec<u64>, Option<String>) {
        let (page, next) = query(pairs)
            .unwrap()
            .page(rows.iter(), |r| serde_json::json!(r.0));
        (page.iter().map(|v| v.as_u64().unwrap()).collect(), next)
    }

    const ROWS: [Row; 4] = [
        Row(1, "2025-01-01T00:00:00Z", "2025-01-03T00:00:00Z"),
        Row(2, "2025-01-01T00:00:01Z", "2025-01-02T00:00:00Z"),
        Row(3, "2025-01-01T00:00:02Z", "2025-01-02T00:00:00Z"),
        Row(4, "2025-01-01T00:00:03Z", "2025-01-04T00:00:00Z"),
    ];

    #[test]
    fn sorts_by_update_time_with_id_ties_and_pages_by_keyset() {
        let (first, next) = ids(&ROWS, &[("sort_by", "update_time"), ("limit", "2")]);
        assert_eq!(first, vec![2, 3]);
        let cursor = next.unwrap();
        let (second, next) = ids(
            &ROWS,
            &[
                ("sort_by", "update_time"),
                ("limit", "2"),
                ("cursor", &cursor),
            ],
        );
        assert_eq!(second, vec![1, 4]);
        assert_eq!(next, None);
        let (desc, _) = ids(
            &ROWS,
            &[("sort_by", "update_time"), ("sort_direction", "desc")],
        );
        assert_eq!(desc, vec![4, 1, 3, 2]);
        assert_eq!(ids(&ROWS, &[]).0, vec![1, 2, 3, 4]);
        assert_eq!(
            ids(
                &ROWS,
                &[("sort_by", "add_time"), ("sort_direction", "desc")]
            )
            .0,
            vec![4, 3, 2, 1]
        );
    }

    #[test]
    fn since_is_inclusive_and_until_exclusive() {
        let (got, _) = ids(
            &ROWS,
            &[
                ("updated_since", "2025-01-02T00:00:00Z"),
                ("updated_until", "2025-01-04T00:00:00Z"),
                ("sort_by", "update_time"),
            ],
        );
        assert_eq!(got, vec![2, 3, 1]);
    }

    #[test]
    fn bad_parameters_and_foreign_cursors_are_400() {
        assert!(query(&[("sort_by", "name")]).is_err());
        assert!(query(&[("sort_direction", "up")]).is_err());
        assert!(query(&[("updated_since", "yesterday")]).is_err());
        assert!(query(&[("limit", "501")]).is_err());
        let (_, next) = ids(&ROWS, &[("limit", "1")]);
        let by_id = next.unwrap();
        assert!(query(&[("sort_by", "update_time"), ("cursor", &by_id)]).is_err());
        assert!(query(&[("cursor", "bm9wZQ")]).is_err());
    }
}
