//! Calls to Pipedrive's v2 API (persons as a target; persons, organizations and deals
//! listed by `update_time`), with errors classified at this boundary.
//!
//! Every call is paced before it goes (§2.7): at most the connection's `burst_limit` calls
//! in any rolling 2 s, searches also at most its `search_limit` (default [`SEARCH_LIMIT`]),
//! each window widened by the calls' round trips, and after a 429 no call until its
//! `x-ratelimit-reset`. Listings retry a 429 themselves, never counted as a
//! failure; a target call's 429 is a rate-limit error the sink waits out.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use serde_json::Value;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::PipedriveConnection;
use super::model::{Envelope, Person, SearchData};
use crate::http::{Answer, check, check_paced, network_error, retry_hint, send};
use crate::pace::{Gate, SlidingWindow};

/// The largest page the v2 lists serve.
pub const MAX_LIMIT: u32 = 500;

/// Search calls per rolling 2 s on every plan (§2.7): `search_limit`'s default.
pub const SEARCH_LIMIT: u32 = 10;

/// Pipedrive's burst windows roll over 2 s.
const WINDOW: Duration = Duration::from_secs(2);

/// Kept in hand on each window at least, for the calls' travel time; more while calls
/// take longer (`SlidingWindow::observe`).
const SLACK: Duration = Duration::from_millis(150);

/// A client for one Pipedrive connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct PipedriveClient {
    http: Client,
    connection: PipedriveConnection,
    burst: Arc<SlidingWindow>,
    search: Arc<SlidingWindow>,
    gate: Arc<Gate>,
}

/// One page of a v2 list.
#[derive(Debug)]
pub struct ListPage {
    /// The records, verbatim.
    pub items: Vec<Value>,
    /// `additional_data.next_cursor`: where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

impl PipedriveClient {
    /// A client with the connection's timeout and listing pace.
    pub fn new(connection: PipedriveConnection) -> Result<Self, ClassifiedError> {
        let http = Client::builder()
            .timeout(Duration::from_millis(connection.timeout_ms))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self {
            http,
            burst: Arc::new(SlidingWindow::new(connection.burst_limit, WINDOW, SLACK)),
            search: Arc::new(SlidingWindow::new(connection.search_limit, WINDOW, SLACK)),
            gate: Arc::default(),
            connection,
        })
    }

    /// Waits until a call fits the connection's windows, and for any hold a 429 left. A
    /// search takes its search slot first, so a wait there spends no burst slot.
    async fn wait_turn(&self, search: bool) {
        self.gate.ready().await;
        if search {
            self.search.take().await;
        }
        self.burst.take().await;
    }

    /// Tells the windows how long a call took, so they keep that much more in hand.
    fn travelled(&self, search: bool, took: Duration) {
        self.burst.observe(took);
        if search {
            self.search.observe(took);
        }
    }

    /// One paced call, classified the Pipedrive way; a 429 holds the connection's calls
    /// for its `x-ratelimit-reset`.
    pub(super) async fn paced(
        &self,
        what: &str,
        search: bool,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, ClassifiedError> {
        self.wait_turn(search).await;
        let sent = std::time::Instant::now();
        let answer = send(request).await;
        self.travelled(search, sent.elapsed());
        let answer = answer.map_err(|e| network_error(what, &e))?;
        check_paced(&super::Answers, what, answer, &self.gate)
    }

    /// Records of `entity` (`persons`, `organizations`, `deals`) updated at or after
    /// `since` (RFC 3339), oldest change first; `cursor` continues a walk.
    pub async fn list_updated_since(
        &self,
        entity: &str,
        since: &str,
        cursor: Option<&str>,
    ) -> Result<ListPage, ClassifiedError> {
        let limit = MAX_LIMIT.to_string();
        let mut query = vec![
            ("updated_since", since),
            ("sort_by", "update_time"),
            ("sort_direction", "asc"),
            ("limit", limit.as_str()),
        ];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let what = format!("list {entity}");
        for _ in 0..10 {
            self.wait_turn(false).await;
            let sent = std::time::Instant::now();
            let answer = send(
                self.request(reqwest::Method::GET, &format!("/api/v2/{entity}"))
                    .query(&query),
            )
            .await;
            self.travelled(false, sent.elapsed());
            let answer = answer.map_err(|e| network_error(&what, &e))?;
            if answer.status.as_u16() == 429 {
                let wait = retry_hint(&answer).unwrap_or(Duration::from_secs(2));
                tracing::debug!(
                    entity,
                    wait_ms = wait.as_millis() as u64,
                    "pipedrive rate limit; waiting"
                );
                self.gate.hold(wait.min(Duration::from_secs(60)));
                continue;
            }
            let body: Value = check(&what, answer)?.json(&what)?;
            return parse_page(&body).ok_or_else(|| {
                ClassifiedError::new(
                    ErrorClass::Data,
                    format!("{what}: no `data` array in the answer"),
                )
            });
        }
        Err(ClassifiedError::new(
            ErrorClass::RateLimit,
            format!("{what}: Pipedrive kept answering 429"),
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.connection.base_url.trim_end_matches('/'))
    }

    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-api-token", self.connection.api_token.expose())
    }

    /// The ID of the person whose e-mail is exactly `email`, if any.
    pub async fn find_person_by_email(&self, email: &str) -> Result<Option<u64>, ClassifiedError> {
        let request = self
            .request(reqwest::Method::GET, "/api/v2/persons/search")
            .query(&[
                ("term", email),
                ("fields", "email"),
                ("exact_match", "true"),
            ]);
        let found: Envelope<SearchData> = self
            .paced("search persons", true, request)
            .await?
            .json("search persons")?;
        // exact_match matches whole terms; compare again so a near hit never links.
        Ok(found
            .data
            .items
            .into_iter()
            .map(|hit| hit.item)
            .find(|p| p.emails.iter().any(|e| e.eq_ignore_ascii_case(email)))
            .map(|p| p.id))
    }

    /// Creates a person and returns its ID.
    pub async fn create_person(
        &self,
        person: &impl serde::Serialize,
    ) -> Result<u64, ClassifiedError> {
        let request = self
            .request(reqwest::Method::POST, "/api/v2/persons")
            .json(person);
        let created: Envelope<Person> = self
            .paced("create person", false, request)
            .await?
            .json("create person")?;
        Ok(created.data.id)
    }

    /// Updates person `id`.
    pub async fn update_person(
        &self,
        id: u64,
        person: &impl serde::Serialize,
    ) -> Result<(), ClassifiedError> {
        let request = self
            .request(reqwest::Method::PATCH, &format!("/api/v2/persons/{id}"))
            .json(person);
        self.paced("update person", false, request)
            .await
            .map(|_| ())
    }
}

/// `{"data": [...], "additional_data": {"next_cursor": ...}}`; `data` null means empty.
fn parse_page(body: &Value) -> Option<ListPage> {
    let items = match body.get("data")? {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        _ => return None,
    };
    let next_cursor = body
        .pointer("/additional_data/next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Some(ListPage { items, next_cursor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_and_the_next_cursor() {
        let page = parse_page(&serde_json::json!({"success": true, "data": [{"id": 1}],
            "additional_data": {"next_cursor": "eyJhIjoxfQ"}}))
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next_cursor.as_deref(), Some("eyJhIjoxfQ"));
        let last =
            parse_page(&serde_json::json!({"data": [], "additional_data": {"next_cursor": null}}))
                .unwrap();
        assert_eq!(last.next_cursor, None);
        assert!(parse_page(&serde_json::json!({"success": false, "error": "x"})).is_none());
    }
}
