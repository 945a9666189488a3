//! List endpoints: filters, `limit`, and cursor pagination through the `Link` header.
//!
//! Contract facts followed (Shopify's "Make paginated requests to the REST Admin API"
//! guide and changelog, found with the docs search; saas-contracts.md does not cover it):
//! - `limit` defaults to 50, maximum 250; results ascend by ID; `since_id` returns records
//!   with a larger ID; `created_at_min/max` and `updated_at_min/max` filter by time.
//! - Further pages are links in the `Link` header: `<…/customers.json?limit=50&page_info=…>;
//!   rel="next"`, plus `rel="previous"` on later pages; no header when everything fit.
//!   `page_info` is opaque and may only be combined with `limit` and `fields`; clients
//!   report a 400 for anything else with it (observed, body not documented).
//!
//! Stricter choices: `limit` outside 1..=250, a non-numeric `since_id` or an unparseable
//! time is a 400 rather than being ignored; the `_min` bounds are inclusive (a poller that
//! re-asks from the last `updated_at` it saw gets that record again and must deduplicate;
//! timestamps have whole-second precision, so ties are real). Times without an offset are
//! read in the shop's offset, as Shopify reads them in the shop's time zone.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::errors::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 250;

/// The filters a page was asked with; carried inside `page_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_max: Option<i64>,
    /// Orders only: `open` (the default), `closed`, `cancelled` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Filters {
    /// True when a record with these properties passes.
    pub fn matches(&self, id: u64, created: OffsetDateTime, updated: OffsetDateTime) -> bool {
        let (c, u) = (created.unix_timestamp(), updated.unix_timestamp());
        self.ids.as_ref().is_none_or(|ids| ids.contains(&id))
            && self.since_id.is_none_or(|s| id > s)
            && self.created_at_min.is_none_or(|t| c >= t)
            && self.created_at_max.is_none_or(|t| c <= t)
            && self.updated_at_min.is_none_or(|t| u >= t)
            && self.updated_at_max.is_none_or(|t| u <= t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Cursor {
    #[serde(rename = "after")]
    After(u64),
    #[serde(rename = "before")]
    Before(u64),
}

#[derive(Debug, Serialize, Deserialize)]
struct PageInfo {
    #[serde(default)]
    filters: Filters,
    cursor: Cursor,
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListRequest {
    pub filters: Filters,
    pub limit: usize,
    pub fields: Option<Vec<String>>,
    cursor: Option<Cursor>,
}

fn parse_time(name: &str, raw: &str, offset: UtcOffset) -> Result<i64, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(raw, naive)
        .map(|t| t.assume_offset(offset).unix_timestamp())
        .map_err(|_| ApiError::bad_param(name, "is not a valid ISO 8601 time"))
}

/// `limit`: default 50, 1..=250.
pub(crate) fn parse_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_param("limit", "must be between 1 and 250")),
        },
    }
}

fn parse_u64(name: &str, raw: &str) -> Result<u64, ApiError> {
    raw.trim()
        .parse()
        .map_err(|_| ApiError::bad_param(name, "must be an integer"))
}

impl ListRequest {
    /// Parses `pairs` (the query string); `with_status` for endpoints with a `status`
    /// filter (orders).
    pub fn parse(
        pairs: &[(String, String)],
        with_status: bool,
        offset: UtcOffset,
    ) -> Result<Self, ApiError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let limit = parse_limit(get("limit"))?;
        let fields = get("fields").map(|raw| {
            raw.split(',')
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .collect()
        });
        if let Some(token) = get("page_info") {
            let stray = pairs
                .iter()
                .any(|(k, _)| !matches!(k.as_str(), "limit" | "fields" | "page_info"));
            let info = decode(token);
            return match (stray, info) {
                (false, Some(info)) => Ok(Self {
                    filters: info.filters,
                    limit,
                    fields,
                    cursor: Some(info.cursor),
                }),
                _ => Err(ApiError::bad_param(
                    "page_info",
                    "Invalid value. Only limit and fields are allowed with page_info.",
                )),
            };
        }
        let mut filters = Filters::default();
        if let Some(raw) = get("ids") {
            let ids = raw
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_u64("ids", s))
                .collect::<Result<Vec<_>, _>>()?;
            filters.ids = Some(ids);
        }
        if let Some(raw) = get("since_id") {
            filters.since_id = Some(parse_u64("since_id", raw)?);
        }
        for (name, slot) in [
            ("created_at_min", &mut filters.created_at_min),
            ("created_at_max", &mut filters.created_at_max),
            ("updated_at_min", &mut filters.updated_at_min),
            ("updated_at_max", &mut filters.updated_at_max),
        ] {
            if let Some(raw) = get(name) {
                *slot = Some(parse_time(name, raw, offset)?);
            }
        }
        if with_status && let Some(raw) = get("status") {
            if !matches!(raw, "open" | "closed" | "cancelled" | "any") {
                return Err(ApiError::bad_param("status", "is not included in the list"));
            }
            filters.status = Some(raw.to_owned());
        }
        Ok(Self {
            filters,
            limit,
            fields,
            cursor: None,
        })
    }

    /// Picks this request's page from `ids` (the IDs passing the filters, ascending).
    pub fn page(&self, ids: &[u64]) -> Page {
        let (start, end) = match self.cursor {
            None | Some(Cursor::After(_)) => {
                let after = match self.cursor {
                    Some(Cursor::After(x)) => Some(x),
                    _ => None,
                };
                let start = after.map_or(0, |x| ids.partition_point(|id| *id <= x));
                (start, (start + self.limit).min(ids.len()))
            }
            Some(Cursor::Before(x)) => {
                let end = ids.partition_point(|id| *id < x);
                (end.saturating_sub(self.limit), end)
            }
        };
        let slice = ids.get(start..end).unwrap_or_default().to_vec();
        let next = (end < ids.len())
            .then(|| slice.last().copied())
            .flatten()
            .map(|last| self.token(Cursor::After(last)));
        let previous = (self.cursor.is_some() && start > 0)
            .then(|| slice.first().copied())
            .flatten()
            .map(|first| self.token(Cursor::Before(first)));
        Page {
            ids: slice,
            next,
            previous,
        }
    }

    fn token(&self, cursor: Cursor) -> String {
        let info = PageInfo {
            filters: self.filters.clone(),
            cursor,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&info).unwrap_or_default())
    }

    /// The `Link` header for `page`, with `base` like `http://127.0.0.1:1/admin/api/2026-01/customers.json`.
    pub fn link_header(&self, base: &str, page: &Page) -> Option<String> {
        let fields = self
            .fields
            .as_ref()
            .map(|f| format!("&fields={}", f.join(",")))
            .unwrap_or_default();
        let link = |token: &str, rel: &str| {
            format!(
                "<{base}?limit={}{fields}&page_info={token}>; rel=\"{rel}\"",
                self.limit
            )
        };
        let mut parts = Vec::new();
        if let Some(token) = &page.previous {
            parts.push(link(token, "previous"));
        }
        if let Some(token) = &page.next {
            parts.push(link(token, "next"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

fn decode(token: &str) -> Option<PageInfo> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One page of IDs and the tokens around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub ids: Vec<u64>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<ListRequest, ApiError> {
        ListRequest::parse(&q(pairs), false, UtcOffset::UTC)
    }

    #[test]
    fn pages_walk_forward_and_back() {
        let ids: Vec<u64> = (1..=5).collect();
        let first = parse(&[("limit", "2")]).unwrap();
        let p1 = first.page(&ids);
        assert_eq!((p1.ids.clone(), p1.previous.is_some()), (vec![1, 2], false));
        let second = parse(&[("limit", "2"), ("page_info", p1.next.as_deref().unwrap())]).unwrap();
        let p2 = second.page(&ids);
        assert_eq!(p2.ids, vec![3, 4]);
        let back = parse(&[
            ("page_info", p2.previous.as_deref().unwrap()),
            ("limit", "2"),
        ])
        .unwrap()
        .page(&ids);
        assert_eq!(back.ids, vec![1, 2]);
        let last = parse(&[("limit", "2"), ("page_info", p2.next.as_deref().unwrap())])
            .unwrap()
            .page(&ids);
        assert_eq!((last.ids, last.next), (vec![5], None));
    }

    #[test]
    fn limits_and_page_info_rules() {
        assert_eq!(parse(&[]).unwrap().limit, 50);
        assert_eq!(parse(&[("limit", "250")]).unwrap().limit, 250);
        assert!(parse(&[("limit", "251")]).is_err());
        assert!(parse(&[("limit", "0")]).is_err());
        assert!(parse(&[("page_info", "garbage")]).is_err());
        let token = parse(&[("limit", "1")])
            .unwrap()
            .page(&[1, 2])
            .next
            .unwrap();
        assert!(parse(&[("page_info", &token), ("since_id", "1")]).is_err());
        assert!(parse(&[("page_info", &token), ("fields", "id")]).is_ok());
    }

    #[test]
    fn times_with_and_without_offsets() {
        let r = ListRequest::parse(
            &q(&[("updated_at_min", "2026-01-01T00:00:00-05:00")]),
            false,
            UtcOffset::UTC,
        )
        .unwrap();
        let naive = ListRequest::parse(
            &q(&[("updated_at_min", "2026-01-01T00:00:00")]),
            false,
            UtcOffset::from_hms(-5, 0, 0).unwrap(),
        )
        .unwrap();
        assert_eq!(r.filters, naive.filters);
        assert!(parse(&[("updated_at_min", "yesterday")]).is_err());
    }
}
