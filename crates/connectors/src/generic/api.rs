//! Reading a configured REST API for the generic poller: one GET per page, the records, IDs,
//! change times and next cursor found by the configured JSON pointers, further pages by the
//! cursor or the `Link` header. Errors are classified here (a 429 waits for `Retry-After`
//! and retries); credentials go only into request headers, never into a message.

use std::time::Duration;

use serde_json::Value;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::poll::{GenericPoll, PollAuth, PollEntity, TimeFormat};
use crate::http::{check, network_error, retry_hint, send};
use crate::webhook::{id_string, rfc3339_millis};

/// A client for one generic connection's poll.
pub struct GenericClient {
    http: reqwest::Client,
    base: String,
    auth: Option<PollAuth>,
}

/// One page of an entity.
#[derive(Debug)]
pub struct Page {
    /// The records, verbatim.
    pub records: Vec<Value>,
    /// The next cursor from `next_cursor_pointer` (page_cursor mode).
    pub next_cursor: Option<String>,
    /// The `rel="next"` URL of the `Link` header, when `link_pagination` is on.
    pub next_link: Option<String>,
}

impl GenericClient {
    /// A client for `poll`'s base URL and credentials.
    pub fn new(poll: &GenericPoll) -> Result<Self, ClassifiedError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(poll.timeout_ms))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self {
            http,
            base: poll.base_url.trim_end_matches('/').to_owned(),
            auth: poll.auth.clone(),
        })
    }

    /// The first page of a walk: the entity's path and static query plus `extra`.
    pub async fn first_page(
        &self,
        entity: &PollEntity,
        extra: &[(String, String)],
    ) -> Result<Page, ClassifiedError> {
        let url = format!("{}{}", self.base, entity.path);
        let mut query: Vec<(String, String)> = entity
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.extend(extra.iter().cloned());
        self.get(entity, &url, &query).await
    }

    /// The page at a `Link` URL, which must stay under this connection's base URL (the
    /// credentials are sent with it).
    pub async fn linked_page(
        &self,
        entity: &PollEntity,
        url: &str,
    ) -> Result<Page, ClassifiedError> {
        if !url.starts_with(&format!("{}/", self.base)) {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                "Link points outside the connection's base_url",
            ));
        }
        self.get(entity, url, &[]).await
    }

    async fn get(
        &self,
        entity: &PollEntity,
        url: &str,
        query: &[(String, String)],
    ) -> Result<Page, ClassifiedError> {
        for _ in 0..5 {
            let mut request = self.http.get(url).query(query);
            request = match &self.auth {
                Some(PollAuth::Bearer(token)) => request.bearer_auth(token.expose()),
                Some(PollAuth::Header { name, value }) => {
                    request.header(name.as_str(), value.expose())
                }
                None => request,
            };
            let answer = send(request)
                .await
                .map_err(|e| network_error("poll GET", &e))?;
            if answer.status.as_u16() == 429 {
                let wait = retry_hint(&answer).unwrap_or(Duration::from_secs(2));
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                continue;
            }
            let next_link = answer
                .headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .filter(|_| entity.link_pagination)
                .and_then(next_link);
            let body: Value = check("poll GET", answer)?.json("poll GET")?;
            return parse_page(entity, &body, next_link);
        }
        Err(ClassifiedError::new(
            ErrorClass::RateLimit,
            "the API kept answering 429",
        ))
    }
}

/// Reads an answer with the entity's pointers.
pub fn parse_page(
    entity: &PollEntity,
    body: &Value,
    next_link: Option<String>,
) -> Result<Page, ClassifiedError> {
    let records = match body.pointer(&entity.records_pointer) {
        Some(Value::Array(records)) => records.clone(),
        Some(Value::Null) => Vec::new(),
        _ => {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                format!(
                    "records_pointer `{}` does not point at an array in the answer",
                    entity.records_pointer
                ),
            ));
        }
    };
    let next_cursor = entity
        .next_cursor_pointer
        .as_deref()
        .and_then(|p| body.pointer(p))
        .and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Ok(Page {
        records,
        next_cursor,
        next_link,
    })
}

/// A record's ID by `id_pointer`.
pub fn record_id(entity: &PollEntity, record: &Value) -> Result<String, ClassifiedError> {
    id_string(record.pointer(&entity.id_pointer)).ok_or_else(|| {
        ClassifiedError::new(
            ErrorClass::Data,
            format!("record without an ID at id_pointer `{}`", entity.id_pointer),
        )
    })
}

/// A record's change time (epoch ms) by `updated_pointer`: an RFC 3339 string, or a number
/// in the entity's `time_format` (seconds unless `unix_ms`).
pub fn record_changed_at(entity: &PollEntity, record: &Value) -> Option<i64> {
    match record.pointer(entity.updated_pointer.as_deref()?)? {
        Value::String(s) => rfc3339_millis(s).or_else(|| {
            s.parse::<i64>()
                .ok()
                .map(|n| number_millis(entity.time_format, n))
        }),
        Value::Number(n) => n.as_i64().map(|n| number_millis(entity.time_format, n)),
        _ => None,
    }
}

fn number_millis(format: TimeFormat, n: i64) -> i64 {
    match format {
        TimeFormat::UnixMs => n,
        TimeFormat::Rfc3339 | TimeFormat::Unix => n.saturating_mul(1000),
    }
}

/// Writes epoch milliseconds as the entity's `since_param` expects.
pub fn format_since(format: TimeFormat, millis: i64) -> String {
    match format {
        TimeFormat::UnixMs => millis.to_string(),
        TimeFormat::Unix => millis.div_euclid(1000).to_string(),
        TimeFormat::Rfc3339 => {
            let nanos = i128::from(millis) * 1_000_000;
            time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
        }
    }
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::HeaderMap;
    use axum::routing::get;

    fn entity(extra: serde_json::Value) -> PollEntity {
        let mut base = serde_json::json!({"path": "/orders", "mode": "updated_since",
            "since_param": "since", "records_pointer": "/data", "updated_pointer": "/meta/updated",
            "link_pagination": true});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn times_are_read_and_written_in_each_format() {
        let e = entity(serde_json::json!({}));
        let r = serde_json::json!({"meta": {"updated": "2025-01-01T00:00:01.500Z"}});
        assert_eq!(record_changed_at(&e, &r), Some(1_735_689_601_500));
        let e = entity(serde_json::json!({"time_format": "unix"}));
        let r = serde_json::json!({"meta": {"updated": 1_735_689_601}});
        assert_eq!(record_changed_at(&e, &r), Some(1_735_689_601_000));
        assert_eq!(
            format_since(TimeFormat::Unix, 1_735_689_601_999),
            "1735689601"
        );
        assert_eq!(format_since(TimeFormat::UnixMs, 5), "5");
        assert_eq!(
            format_since(TimeFormat::Rfc3339, 1_735_689_601_500),
            "2025-01-01T00:00:01.5Z"
        );
    }

    #[test]
    fn a_pointer_that_finds_no_array_is_a_data_error() {
        let e = entity(serde_json::json!({"records_pointer": "/items"}));
        let err = parse_page(&e, &serde_json::json!({"data": []}), None).unwrap_err();
        assert_eq!(err.class, ErrorClass::Data);
        assert!(err.to_string().contains("/items"));
    }

    #[test]
    fn link_headers_with_several_relations() {
        assert_eq!(
            next_link(r#"<http://a/x?p=1>; rel="prev", <http://a/x?p=3>; rel="next""#).as_deref(),
            Some("http://a/x?p=3")
        );
        assert_eq!(next_link(r#"<http://a/x?p=1>; rel="prev""#), None);
    }

    /// An API that pages by Link header and wants a bearer token.
    async fn serve() -> String {
        let app = Router::new().route(
            "/v1/orders",
            get(
                |headers: HeaderMap,
                 axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >| async move {
                    let authorized = headers
                        .get("authorization")
                        .is_some_and(|v| v == "Bearer t0ken");
                    if !authorized {
                        return (axum::http::StatusCode::UNAUTHORIZED, HeaderMap::new(), String::new());
                    }
                    let page = q.get("page").cloned().unwrap_or_default();
                    let mut out = HeaderMap::new();
                    let body = if page == "2" {
                        serde_json::json!({"data": [{"id": 2, "meta": {"updated": "2025-01-02T00:00:00Z"}}]})
                    } else {
                        let port = q.get("port").cloned().unwrap_or_default();
                        out.insert(
                            "link",
                            format!("<http://127.0.0.1:{port}/v1/orders?page=2>; rel=\"next\"")
                                .parse()
                                .unwrap(),
                        );
                        assert_eq!(q.get("since").map(String::as_str), Some("2025-01-01T00:00:00Z"));
                        serde_json::json!({"data": [{"id": "a1", "meta": {"updated": "2025-01-01T00:00:00Z"}}]})
                    };
                    (axum::http::StatusCode::OK, out, body.to_string())
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn follows_link_pages_with_the_bearer_token() {
        let base = serve().await;
        let port = base.rsplit(':').next().unwrap().to_owned();
        let poll: GenericPoll = serde_json::from_value(serde_json::json!({
            "base_url": format!("{base}/v1"), "entities": {}}))
        .unwrap();
        let mut client = GenericClient::new(&poll).unwrap();
        let e = entity(serde_json::json!({}));
        let unauthorized = client.first_page(&e, &[]).await.unwrap_err();
        assert_eq!(unauthorized.class, ErrorClass::Auth);
        client.auth = Some(PollAuth::Bearer(switchboard_core::Secret::from_value(
            "t0ken",
        )));
        let extra = [
            ("since".to_owned(), "2025-01-01T00:00:00Z".to_owned()),
            ("port".to_owned(), port),
        ];
        let first = client.first_page(&e, &extra).await.unwrap();
        assert_eq!(record_id(&e, &first.records[0]).unwrap(), "a1");
        let second = client
            .linked_page(&e, first.next_link.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(record_id(&e, &second.records[0]).unwrap(), "2");
        assert_eq!(
            record_changed_at(&e, &second.records[0]),
            Some(1_735_776_000_000)
        );
        assert!(second.next_link.is_none());
        let outside = client.linked_page(&e, "http://127.0.0.2:1/v1/x").await;
        assert_eq!(outside.unwrap_err().class, ErrorClass::Data);
    }
}
