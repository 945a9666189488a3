//! Writing to Shopify's Admin REST API (customers, orders) as a target, paced by the leaky
//! bucket the `X-Shopify-Shop-Api-Call-Limit` header reports (§1.5).
//!
//! Pacing: every call takes a marble from a local model of the bucket, corrected from the
//! header after each answer; calls wait while the bucket would be within two marbles of
//! full, so at the Standard plan's 40/2 per s the writer runs at the leak rate with almost
//! no 429. A 429 still happens (other apps share the bucket): its `Retry-After` holds every
//! call of this writer, and the error goes back as `rate_limit`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::ShopifyConnection;
use crate::http::{check_paced, network_error, send, shopify_call_limit};
use crate::pace::{Gate, LeakyBucket};

/// Marbles kept free in the bucket, for other callers of the same shop.
const MARGIN: u32 = 2;

/// A writer for one shop.
pub struct ShopifyWriter {
    http: reqwest::Client,
    base: String,
    version: String,
    token: switchboard_core::Secret,
    bucket: LeakyBucket,
    gate: Gate,
}

impl ShopifyWriter {
    /// A writer for `connection`, which must have an `access_token`.
    pub fn new(connection: &ShopifyConnection) -> Result<Self, ClassifiedError> {
        let token = connection.access_token.clone().ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Auth, "shopify access_token is not configured")
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        let base = connection
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", connection.shop_domain));
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            version: connection.api_version.clone(),
            token,
            bucket: LeakyBucket::new(40, 2.0, MARGIN),
            gate: Gate::default(),
        })
    }

    /// One paced call; the parsed JSON answer, or a classified error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClassifiedError> {
        let url = format!("{}/admin/api/{}/{path}", self.base, self.version);
        self.call_url(method, &url, query, body)
            .await
            .map(|(value, _)| value)
    }

    /// One paced call on a full URL; the answer and its `Link: rel="next"` URL.
    async fn call_url(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(Value, Option<String>), ClassifiedError> {
        self.gate.ready().await;
        self.bucket.take().await;
        let path = url.split('?').next().unwrap_or(url);
        let what = format!(
            "shopify {method} {}",
            path.rsplit("/admin/api/").next().unwrap_or(path)
        );
        let mut request = self
            .http
            .request(method, url)
            .query(query)
            .header("X-Shopify-Access-Token", self.token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = send(request).await.map_err(|e| network_error(&what, &e))?;
        if let Some((used, size)) = shopify_call_limit(&answer.headers) {
            self.bucket.observe(used, size);
        }
        let answer = check_paced(&super::Answers, &what, answer, &self.gate)?;
        let text = answer.text();
        let next = answer
            .headers
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(super::api::next_link);
        if text.trim().is_empty() {
            return Ok((Value::Null, next));
        }
        let value = serde_json::from_str(&text).map_err(|_| {
            ClassifiedError::new(ErrorClass::Transient, format!("{what}: answer is not JSON"))
        })?;
        Ok((value, next))
    }

    /// Creates a customer (`{"customer": ...}` fields) and returns its ID.
    pub async fn create_customer(&self, customer: &Value) -> Result<u64, ClassifiedError> {
        let answer = self
            .call(
                Method::POST,
                "customers.json",
                &[],
                Some(&json!({ "customer": customer })),
            )
            .await?;
        id_in(&answer, "customer")
    }

    /// Deletes `resource` (`customers`, `orders`) `id`; one that is already gone answers a
    /// `not_found` error.
    pub async fn delete(&self, resource: &str, id: u64) -> Result<(), ClassifiedError> {
        self.call(Method::DELETE, &format!("{resource}/{id}.json"), &[], None)
            .await
            .map(|_| ())
    }

    /// Updates customer `id`.
    pub async fn update_customer(&self, id: u64, customer: &Value) -> Result<(), ClassifiedError> {
        self.call(
            Method::PUT,
            &format!("customers/{id}.json"),
            &[],
            Some(&json!({ "customer": customer })),
        )
        .await
        .map(|_| ())
    }

    /// The customer whose e-mail is `email` (case-insensitive), by `customers/search.json`;
    /// where search is not served (404), by walking the customer list.
    pub async fn find_customer_by_email(
        &self,
        email: &str,
    ) -> Result<Option<u64>, ClassifiedError> {
        let query = format!("email:\"{email}\"");
        match self
            .call(
                Method::GET,
                "customers/search.json",
                &[("query", &query)],
                None,
            )
            .await
        {
            Ok(answer) => return Ok(customer_with_email(&answer, email)),
            Err(e) if e.message.contains("404") => {}
            Err(e) => return Err(e),
        }
        let mut since = 0u64;
        loop {
            let since_text = since.to_string();
            let page = self
                .call(
                    Method::GET,
                    "customers.json",
                    &[("limit", "250"), ("since_id", &since_text)],
                    None,
                )
                .await?;
            if let Some(id) = customer_with_email(&page, email) {
                return Ok(Some(id));
            }
            let ids: Vec<u64> = list(&page, "customers")
                .filter_map(|c| c.get("id").and_then(Value::as_u64))
                .collect();
            match ids.iter().max() {
                Some(max) if ids.len() == 250 => since = *max,
                _ => return Ok(None),
            }
        }
    }

    /// Creates an order and returns its ID.
    pub async fn create_order(&self, order: &Value) -> Result<u64, ClassifiedError> {
        let answer = self
            .call(
                Method::POST,
                "orders.json",
                &[],
                Some(&json!({ "order": order })),
            )
            .await?;
        id_in(&answer, "order")
    }

    /// Updates order `id` (Shopify lets an order's note, tags, e-mail and addresses change,
    /// not its lines).
    pub async fn update_order(&self, id: u64, order: &Value) -> Result<(), ClassifiedError> {
        self.call(
            Method::PUT,
            &format!("orders/{id}.json"),
            &[],
            Some(&json!({ "order": order })),
        )
        .await
        .map(|_| ())
    }

    /// The order whose `source_identifier` is `id` (Switchboard writes the canonical ID
    /// there), among orders of any status created since `since` (RFC 3339).
    pub async fn find_order_by_switchboard_id(
        &self,
        id: &str,
        since: &str,
    ) -> Result<Option<u64>, ClassifiedError> {
        let first = format!("{}/admin/api/{}/orders.json", self.base, self.version);
        let query = [
            ("status", "any"),
            ("limit", "250"),
            ("created_at_min", since),
            ("fields", "id,source_identifier"),
        ];
        let (mut page, mut next) = self.call_url(Method::GET, &first, &query, None).await?;
        loop {
            if let Some(found) = list(&page, "orders")
                .find(|o| o.get("source_identifier").and_then(Value::as_str) == Some(id))
                .and_then(|o| o.get("id").and_then(Value::as_u64))
            {
                return Ok(Some(found));
            }
            // Only links into this shop's API are followed.
            match next.take() {
                Some(url) if url.starts_with(&format!("{}/admin/api/", self.base)) => {
                    (page, next) = self.call_url(Method::GET, &url, &[], None).await?;
                }
                _ => return Ok(None),
            }
        }
    }
}

fn list<'a>(answer: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    answer
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn customer_with_email(answer: &Value, email: &str) -> Option<u64> {
    list(answer, "customers")
        .find(|c| {
            c.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .and_then(|c| c.get("id").and_then(Value::as_u64))
}

fn id_in(answer: &Value, root: &str) -> Result<u64, ClassifiedError> {
    answer
        .pointer(&format!("/{root}/id"))
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ClassifiedError::new(
                ErrorClass::Transient,
                format!("shopify answered without /{root}/id"),
            )
        })
}
