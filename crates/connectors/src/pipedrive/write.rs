//! Pipedrive as a target (API v2, §2.5): search, create, update and delete, each paced by
//! the connection's windows and classified the Pipedrive way (a 403 is a refused field,
//! `data`; 429 waits `x-ratelimit-reset`).

use reqwest::Method;
use serde_json::Value;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::api::PipedriveClient;

impl PipedriveClient {
    /// One paced call with a JSON answer.
    async fn call_json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClassifiedError> {
        let what = format!("pipedrive {method} {path}");
        let search = path.ends_with("/search");
        let mut request = self.request(method, path).query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = self.paced(&what, search, request).await?;
        serde_json::from_slice(&answer.body).map_err(|_| {
            ClassifiedError::new(ErrorClass::Transient, format!("{what}: answer is not JSON"))
        })
    }

    /// Search hits (`data.items[].item`) of `entity` for `term` in `field`, exact match.
    pub async fn search(
        &self,
        entity: &str,
        field: &str,
        term: &str,
    ) -> Result<Vec<Value>, ClassifiedError> {
        let answer = self
            .call_json(
                Method::GET,
                &format!("/api/v2/{entity}/search"),
                &[("term", term), ("fields", field), ("exact_match", "true")],
                None,
            )
            .await?;
        Ok(answer
            .pointer("/data/items")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("item").cloned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Creates a record of `entity` and returns its ID.
    pub async fn create(&self, entity: &str, body: &Value) -> Result<u64, ClassifiedError> {
        let answer = self
            .call_json(Method::POST, &format!("/api/v2/{entity}"), &[], Some(body))
            .await?;
        answer
            .pointer("/data/id")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                ClassifiedError::new(
                    ErrorClass::Transient,
                    format!("create {entity}: no data.id in the answer"),
                )
            })
    }

    /// Deletes record `id` of `entity` (a soft delete, purged after 30 days, §2.5); one
    /// that is already gone answers a `not_found` error.
    pub async fn delete(&self, entity: &str, id: u64) -> Result<(), ClassifiedError> {
        self.call_json(Method::DELETE, &format!("/api/v2/{entity}/{id}"), &[], None)
            .await
            .map(|_| ())
    }

    /// Updates record `id` of `entity`.
    pub async fn update(&self, entity: &str, id: u64, body: &Value) -> Result<(), ClassifiedError> {
        self.call_json(
            Method::PATCH,
            &format!("/api/v2/{entity}/{id}"),
            &[],
            Some(body),
        )
        .await
        .map(|_| ())
    }
}
