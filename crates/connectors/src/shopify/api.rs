//! Reading Shopify's Admin REST API for reconciliation (saas-contracts.md §1.5, §1.7):
//! `X-Shopify-Access-Token` auth, versioned paths, `updated_at_min` listings paged by the
//! `Link` header, and the leaky bucket (40 requests, leaking 2/s): calls are paced at 2/s
//! and a 429 waits for its `Retry-After`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use switchboard_core::error::{ClassifiedError, ErrorClass};

use super::ShopifyConnection;
use crate::http::{check, network_error, retry_hint, send};

/// A read client for one shop.
pub struct ShopifyClient {
    http: reqwest::Client,
    base: String,
    connection: ShopifyConnection,
    limiter: DefaultDirectRateLimiter,
}

/// One page of a listing.
pub struct ListPage {
    /// The resources, verbatim.
    pub items: Vec<Value>,
    /// URL of the next page, from the `Link` header.
    pub next: Option<String>,
}

impl ShopifyClient {
    /// A client paced at the Standard plan's leak rate.
    pub fn new(connection: &ShopifyConnection) -> Result<Self, ClassifiedError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        let base = connection
            .base_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", connection.shop_domain));
        let two = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            connection: connection.clone(),
            limiter: RateLimiter::direct(Quota::per_second(two)),
        })
    }

    /// Resources of `entity` (e.g. `customers`) updated at or after `since` (RFC 3339).
    pub async fn list_updated_since(
        &self,
        entity: &str,
        since: &str,
    ) -> Result<ListPage, ClassifiedError> {
        let url = format!(
            "{}/admin/api/{}/{entity}.json",
            self.base, self.connection.api_version
        );
        self.get(&url, &[("limit", "250"), ("updated_at_min", since)])
            .await
    }

    /// The page at a `Link: rel="next"` URL, which must be this shop's.
    pub async fn next_page(&self, url: &str) -> Result<ListPage, ClassifiedError> {
        if !url.starts_with(&format!("{}/admin/api/", self.base)) {
            return Err(ClassifiedError::new(
                ErrorClass::Data,
                "Link points outside the shop's API",
            ));
        }
        self.get(url, &[]).await
    }

    async fn get(&self, url: &str, query: &[(&str, &str)]) -> Result<ListPage, ClassifiedError> {
        let token = self.connection.access_token.as_ref().ok_or_else(|| {
            ClassifiedError::new(ErrorClass::Auth, "shopify access_token is not configured")
        })?;
        for _ in 0..5 {
            self.limiter.until_ready().await;
            let answer = send(
                self.http
                    .get(url)
                    .query(query)
                    .header("X-Shopify-Access-Token", token.expose()),
            )
            .await
            .map_err(|e| network_error("shopify GET", &e))?;
            if answer.status.as_u16() == 429 {
                tokio::time::sleep(retry_hint(&answer).unwrap_or(Duration::from_secs(2))).await;
                continue;
            }
            let next = answer
                .headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body: Value = check("shopify GET", answer)?.json("shopify GET")?;
            let items = body
                .as_object()
                .and_then(|o| o.values().find_map(Value::as_array))
                .cloned()
                .unwrap_or_default();
            return Ok(ListPage { items, next });
        }
        Err(ClassifiedError::new(
            ErrorClass::RateLimit,
            "shopify kept answering 429",
        ))
    }
}

/// The `rel="next"` URL of a `Link` header.
pub(super) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link_among_several() {
        let header = r#"<https://a.myshopify.com/admin/api/2025-01/customers.json?limit=2&page_info=p1>; rel="previous", <https://a.myshopify.com/admin/api/2025-01/customers.json?limit=2&page_info=n2>; rel="next""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://a.myshopify.com/admin/api/2025-01/customers.json?limit=2&page_info=n2")
        );
        assert_eq!(next_link(r#"<https://x>; rel="previous""#), None);
    }
}
