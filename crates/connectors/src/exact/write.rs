//! Exact Online as a target: OData calls on `crm/Accounts` and `salesinvoice/SalesInvoices`
//! (§3.3), with the same pacing, token handling and classification as the poller's reads.
//!
//! Every call waits for the client's pace (local bucket at `calls_per_minute`, and no call
//! before the reset once the minutely or daily budget reads zero). A 429 is held until the
//! reset and returned as `rate_limit` with that wait; a 401 drops the access token (the
//! next call refreshes and rotates) and returns `auth`, so the sink refreshes once and
//! pauses the connection if the refresh does not help. POSTs send
//! `Prefer: return=representation`, without which Exact returns null properties.

use reqwest::Method;
use serde_json::Value;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::api::ExactClient;
use crate::http::{failure, network_error, send};

impl ExactClient {
    /// One call on `{base}/api/v1/{division}/{path}`; the `d` of the answer (or null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClassifiedError> {
        self.pace().await;
        let token = self.tokens().access_token().await?;
        let what = format!("exact {method} {}", path.split('(').next().unwrap_or(path));
        let url = format!("{}/api/v1/{}/{path}", self.base(), self.division());
        let mut request = self
            .http()
            .request(method.clone(), url)
            .query(query)
            .bearer_auth(token.expose())
            .header("accept", "application/json");
        if method == Method::POST {
            request = request.header("prefer", "return=representation");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = send(request).await.map_err(|e| network_error(&what, &e))?;
        let status = answer.status;
        let headers = &answer.headers;
        self.note_limits(headers, status.as_u16() == 429).await;
        let text = answer.text();
        if !status.is_success() {
            if status.as_u16() == 401 {
                self.tokens().invalidate(&token).await;
            }
            let mut error = failure(&super::Answers, &what, status, headers, &text);
            if status.as_u16() == 429 {
                // The reset through the learned server clock, not the local one.
                let reset = ["X-RateLimit-Minutely-Reset", "X-RateLimit-Reset"]
                    .iter()
                    .find_map(|h| headers.get(*h)?.to_str().ok()?.trim().parse::<i64>().ok());
                if let Some(reset) = reset {
                    error.retry_after = Some(
                        self.windows
                            .until(reset, crate::http::now_millis())
                            .min(crate::http::MAX_RATE_WAIT),
                    );
                }
            }
            return Err(error);
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        let answer: Value = serde_json::from_str(&text).map_err(|_| {
            ClassifiedError::new(ErrorClass::Transient, format!("{what}: answer is not JSON"))
        })?;
        Ok(answer.get("d").cloned().unwrap_or(Value::Null))
    }

    /// The first row of `set` (e.g. `crm/Accounts`) matching the OData `filter`.
    pub async fn find_one(
        &self,
        set: &str,
        filter: &str,
        select: &str,
    ) -> Result<Option<Value>, ClassifiedError> {
        let d = self
            .call(
                Method::GET,
                set,
                &[("$filter", filter), ("$select", select), ("$top", "1")],
                None,
            )
            .await?;
        Ok(d.get("results")
            .and_then(Value::as_array)
            .and_then(|rows| rows.first().cloned()))
    }

    /// The first page of rows of `set` matching `filter`.
    pub async fn find_all(
        &self,
        set: &str,
        filter: &str,
        select: &str,
    ) -> Result<Vec<Value>, ClassifiedError> {
        let d = self
            .call(
                Method::GET,
                set,
                &[("$filter", filter), ("$select", select)],
                None,
            )
            .await?;
        Ok(d.get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Creates a row of `set` and returns the value of its `key` property (a GUID).
    pub async fn create(
        &self,
        set: &str,
        key: &str,
        body: &Value,
    ) -> Result<String, ClassifiedError> {
        let d = self.call(Method::POST, set, &[], Some(body)).await?;
        d.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ClassifiedError::new(
                    ErrorClass::Transient,
                    format!("exact create {set}: no {key} in the answer"),
                )
            })
    }

    /// Deletes row `guid` of `set`; one that is already gone answers a `not_found` error.
    pub async fn delete(&self, set: &str, guid: &str) -> Result<(), ClassifiedError> {
        self.call(Method::DELETE, &format!("{set}(guid'{guid}')"), &[], None)
            .await
            .map(|_| ())
    }

    /// Updates row `guid` of `set`.
    pub async fn update(&self, set: &str, guid: &str, body: &Value) -> Result<(), ClassifiedError> {
        self.call(
            Method::PUT,
            &format!("{set}(guid'{guid}')"),
            &[],
            Some(body),
        )
        .await
        .map(|_| ())
    }

    /// Makes sure a valid access token is at hand, refreshing it if it was invalidated or
    /// is about to expire; an `auth` error means the refresh token was refused.
    pub async fn refresh_token(&self) -> Result<(), ClassifiedError> {
        self.tokens().access_token().await.map(|_| ())
    }
}

/// `'text'` as an OData string literal (quotes doubled).
pub fn odata_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_literals_escape_quotes() {
        assert_eq!(odata_string("O'Brien BV"), "'O''Brien BV'");
    }
}
