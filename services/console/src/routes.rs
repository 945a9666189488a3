//! The console's HTTP routes: pages and `/api/v1`, each behind its role check.
//!
//! Reads need the read role (when a read token is configured); redrive, discard and replay
//! need the admin role, checked before anything is read or written. A 401 carries
//! `WWW-Authenticate: Basic`, so a browser asks for the token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use switchboard_core::dlq::{Action, Dlq, DlqEntry, Filter};
use switchboard_core::replay::{self, ResetTo};

use crate::auth::{require_admin, require_read};
use crate::{AppState, html, trace};

type Shared = State<Arc<AppState>>;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/connections/{name}", get(connection_page))
        .route("/dlq/{name}", get(dlq_page))
        .route("/dlq/{name}/confirm", get(confirm_page))
        .route("/dlq/{name}/{action}", post(dlq_form))
        .route("/trace", get(trace_page))
        .route("/api/v1/connections", get(api_connections))
        .route("/api/v1/lag", get(api_lag))
        .route("/api/v1/partial-failures", get(api_partial))
        .route("/api/v1/dlq/{name}", get(api_dlq))
        .route("/api/v1/dlq/{name}/{action}", post(api_dlq_action))
        .route("/api/v1/trace/{id}", get(api_trace))
        .route("/api/v1/replay", post(api_replay))
        .with_state(state)
}

/// A refusal or failure as an HTTP answer.
fn refuse(status: StatusCode) -> Response {
    let mut r = (status, status.canonical_reason().unwrap_or("refused")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"switchboard\""),
        );
    }
    r
}

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console request failed");
    (StatusCode::BAD_GATEWAY, e.to_string()).into_response()
}

macro_rules! guard {
    ($check:expr) => {
        if let Err(status) = $check {
            return refuse(status);
        }
    };
}

async fn dashboard(State(s): Shared, headers: HeaderMap) -> Response {
    guard!(require_read(&headers, &s.config.console));
    let Ok(o) = s.overview.read().map(|o| o.clone()) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let charts = |name: &str| {
        s.charts
            .lock()
            .map(|c| html::charts(&c.series(name)))
            .unwrap_or_default()
    };
    let partial = s.partial.read().ok().and_then(|p| p.clone());
    Html(html::dashboard(&o, &charts, partial.as_deref())).into_response()
}

async fn load_dlq(s: &AppState, name: &str) -> Result<Dlq, Response> {
    if !s.config.connections.contains_key(name) {
        return Err(refuse(StatusCode::NOT_FOUND));
    }
    Dlq::load(&s.config.kafka, name).await.map_err(failed)
}

fn newest_first(dlq: &Dlq, n: usize) -> Vec<DlqEntry> {
    let mut entries: Vec<DlqEntry> = dlq.entries().into_iter().cloned().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    entries.truncate(n);
    entries
}

async fn connection_page(
    State(s): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    guard!(require_read(&headers, &s.config.console));
    let Ok(o) = s.overview.read().map(|o| o.clone()) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let Some(row) = o.connections.iter().find(|c| c.name == name).cloned() else {
        return refuse(StatusCode::NOT_FOUND);
    };
    let errors = match row.dlq_depth {
        Some(_) => match load_dlq(&s, &name).await {
            Ok(dlq) => newest_first(&dlq, 50),
            Err(r) => return r,
        },
        None => Vec::new(),
    };
    let charts = s
        .charts
        .lock()
        .map(|c| html::charts(&c.series(&name)))
        .unwrap_or_default();
    Html(html::connection(&o, &row, &charts, &errors)).into_response()
}

async fn dlq_page(State(s): Shared, headers: HeaderMap, Path(name): Path<String>) -> Response {
    guard!(require_read(&headers, &s.config.console));
    let dlq = match load_dlq(&s, &name).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let entries: Vec<DlqEntry> = dlq.entries().into_iter().cloned().collect();
    let body = html::dlq_table(&entries, Some(&name));
    Html(html::page(&format!("DLQ of {name}"), false, &body)).into_response()
}

#[derive(Deserialize)]
struct ActionQuery {
    id: String,
    #[serde(default)]
    action: Option<String>,
}

fn action(name: &str) -> Option<Action> {
    match name {
        "redrive" => Some(Action::Redrive),
        "discard" => Some(Action::Discard),
        _ => None,
    }
}

async fn confirm_page(
    State(s): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ActionQuery>,
) -> Response {
    guard!(require_admin(&headers, &s.config.console));
    let Some(act) = q.action.as_deref().and_then(action) else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let dlq = match load_dlq(&s, &name).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let filter = Filter {
        id: Some(q.id.clone()),
        ..Filter::default()
    };
    let plan: Vec<DlqEntry> = dlq.plan(&filter, act).into_iter().map(|(e, _)| e).collect();
    Html(html::confirm(&name, act.as_str(), &q.id, &plan)).into_response()
}

async fn dlq_form(
    State(s): Shared,
    headers: HeaderMap,
    Path((name, act)): Path<(String, String)>,
    body: String,
) -> Response {
    // The role is checked before the body is even parsed.
    guard!(require_admin(&headers, &s.config.console));
    let Some(id) = form_value(&body, "id") else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let filter = Filter {
        id: Some(id),
        ..Filter::default()
    };
    match execute(&s, &name, &act, &filter, false).await {
        Ok(_) => Redirect::to(&format!("/dlq/{name}")).into_response(),
        Err(r) => r,
    }
}

async fn execute(
    s: &AppState,
    name: &str,
    act: &str,
    filter: &Filter,
    dry_run: bool,
) -> Result<serde_json::Value, Response> {
    let Some(act) = action(act) else {
        return Err(refuse(StatusCode::NOT_FOUND));
    };
    let dlq = load_dlq(s, name).await?;
    let plan = dlq.plan(filter, act);
    let sent = if dry_run {
        0
    } else {
        dlq.execute(&plan, |_| {}).await.map_err(failed)?
    };
    tracing::info!(
        connection = name,
        action = act.as_str(),
        sent,
        "dlq action by an admin"
    );
    let records: Vec<serde_json::Value> = plan
        .iter()
        .map(|(e, a)| serde_json::json!({"id": e.id(), "key": e.key, "action": a}))
        .collect();
    Ok(serde_json::json!({"sent": sent, "records": records}))
}

#[derive(Deserialize)]
struct TraceQuery {
    #[serde(default)]
    id: Option<String>,
}

async fn trace_page(State(s): Shared, headers: HeaderMap, Query(q): Query<TraceQuery>) -> Response {
    guard!(require_read(&headers, &s.config.console));
    let id = q.id.filter(|i| !i.trim().is_empty());
    let t = match &id {
        Some(id) => match trace::trace(&s.config, &s.codec, id.trim()).await {
            Ok(t) => Some(t),
            Err(e) => return failed(e),
        },
        None => None,
    };
    Html(html::trace(id.as_deref(), t.as_ref())).into_response()
}

async fn api_connections(State(s): Shared, headers: HeaderMap) -> Response {
    guard!(require_read(&headers, &s.config.console));
    match s.overview.read() {
        Ok(o) => {
            Json(serde_json::json!({"at": o.at, "connections": o.connections})).into_response()
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn api_lag(State(s): Shared, headers: HeaderMap) -> Response {
    guard!(require_read(&headers, &s.config.console));
    match s.overview.read() {
        Ok(o) => Json(serde_json::json!({"at": o.at, "partitions": o.lag})).into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn api_partial(State(s): Shared, headers: HeaderMap) -> Response {
    guard!(require_read(&headers, &s.config.console));
    match s.partial.read() {
        // `null` until `sb.deliveries` could be read: unknown is not "none".
        Ok(p) => Json(serde_json::json!({"flows": *p})).into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn api_dlq(State(s): Shared, headers: HeaderMap, Path(name): Path<String>) -> Response {
    guard!(require_read(&headers, &s.config.console));
    match load_dlq(&s, &name).await {
        Ok(dlq) => Json(serde_json::json!({"topic": dlq.topic(), "records": dlq.entries()}))
            .into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize, Default)]
struct ActionBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    since: Option<i64>,
    #[serde(default)]
    dry_run: bool,
}

async fn api_dlq_action(
    State(s): Shared,
    headers: HeaderMap,
    Path((name, act)): Path<(String, String)>,
    body: Option<Json<ActionBody>>,
) -> Response {
    guard!(require_admin(&headers, &s.config.console));
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let filter = Filter {
        class: b.class,
        key: b.key,
        since: b.since,
        id: b.id,
    };
    match execute(&s, &name, &act, &filter, b.dry_run).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn api_trace(State(s): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    guard!(require_read(&headers, &s.config.console));
    match trace::trace(&s.config, &s.codec, &id).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
struct ReplayBody {
    group: String,
    topics: Vec<String>,
    #[serde(default)]
    to_time_ms: Option<i64>,
    #[serde(default)]
    to_offset: Option<i64>,
    #[serde(default)]
    dry_run: bool,
}

async fn api_replay(
    State(s): Shared,
    headers: HeaderMap,
    body: Option<Json<ReplayBody>>,
) -> Response {
    guard!(require_admin(&headers, &s.config.console));
    let Some(Json(b)) = body else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let to = match (b.to_time_ms, b.to_offset) {
        (Some(t), _) => ResetTo::Time(t),
        (_, Some(o)) => ResetTo::Offset(o),
        _ => ResetTo::Earliest,
    };
    let kafka = s.config.kafka.clone();
    let done = tokio::task::spawn_blocking(move || {
        let plan = replay::plan(&kafka, &b.group, &b.topics, to)?;
        if !b.dry_run {
            replay::apply(&kafka, &b.group, &plan)?;
        }
        let rows: Vec<serde_json::Value> = plan
            .iter()
            .map(|p| serde_json::json!({"topic": p.topic, "partition": p.partition, "current": p.current, "new": p.new, "records": p.replayed()}))
            .collect();
        Ok::<_, switchboard_core::error::ClassifiedError>(serde_json::json!({"applied": !b.dry_run, "partitions": rows}))
    })
    .await;
    match done {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) if e.class == switchboard_core::ErrorClass::Conflict => {
            (StatusCode::CONFLICT, e.message).into_response()
        }
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_values_are_decoded() {
        assert_eq!(
            super::form_value("a=1&id=0%2F5", "id").as_deref(),
            Some("0/5")
        );
        assert_eq!(super::form_value("id=x+y%", "id").as_deref(), Some("x y%"));
        assert_eq!(super::form_value("a=1", "id"), None);
    }
}
