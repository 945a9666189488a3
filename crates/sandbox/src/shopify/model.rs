//! Shopify customer webhook payloads, shaped like Shopify's own `customers/update` sample.
//!
//! Contract facts followed (saas-contracts.md §1.4):
//! - The sample carries `id, email, created_at, updated_at, first_name, last_name, state,
//!   verified_email, tags, currency, phone, addresses, tax_exemptions,
//!   email_marketing_consent, sms_marketing_consent, admin_graphql_api_id`, in that order.
//! - Timestamps are ISO-8601 with the shop's UTC offset (`2021-12-31T19:00:00-05:00`).
//! - IDs go above 2^53 (`706405506930370084`); `admin_graphql_api_id` repeats the ID as
//!   `gid://shopify/Customer/<id>`. IDs are written as exact JSON integers, so a receiver
//!   that parses them as doubles loses digits — exactly the trap real payloads set.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

/// First ID the demo generator hands out: the customer ID of Shopify's own sample.
pub const SAMPLE_CUSTOMER_ID: u64 = 706_405_506_930_370_084;

/// One Shopify customer, serialised in the field order of Shopify's sample payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    /// Customer ID (above 2^53 in real shops).
    pub id: u64,
    /// Email address; empty means none and is written as `null`, as Shopify does.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub email: String,
    /// Creation time; serialised with its own UTC offset.
    #[serde(serialize_with = "ser_time")]
    pub created_at: OffsetDateTime,
    /// Last change; serialised with its own UTC offset.
    #[serde(serialize_with = "ser_time")]
    pub updated_at: OffsetDateTime,
    /// First name; empty is written as `null`.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub first_name: String,
    /// Last name; empty is written as `null`.
    #[serde(serialize_with = "ser_empty_as_null")]
    pub last_name: String,
    /// Account state: `disabled`, `invited`, `enabled` or `declined`.
    pub state: String,
    /// Whether the email was verified.
    pub verified_email: bool,
    /// Comma-separated tags.
    pub tags: String,
    /// Shop currency.
    pub currency: String,
    /// Phone in E.164, or null.
    pub phone: Option<String>,
    /// Addresses (kept empty by the emulator, as in the sample).
    pub addresses: Vec<Value>,
    /// Tax exemptions (empty in the sample).
    pub tax_exemptions: Vec<Value>,
    /// Email marketing consent object, or null.
    pub email_marketing_consent: Option<Value>,
    /// SMS marketing consent object, or null.
    pub sms_marketing_consent: Option<Value>,
    /// `gid://shopify/Customer/<id>`.
    pub admin_graphql_api_id: String,
}

impl Customer {
    /// A customer with the sample's defaults for everything but the given fields;
    /// `created_at` equals `updated_at`.
    pub fn new(
        id: u64,
        email: &str,
        first_name: &str,
        last_name: &str,
        updated_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            email: email.to_owned(),
            created_at: updated_at,
            updated_at,
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            state: "disabled".to_owned(),
            verified_email: true,
            tags: String::new(),
            currency: "USD".to_owned(),
            phone: None,
            addresses: Vec::new(),
            tax_exemptions: Vec::new(),
            email_marketing_consent: None,
            sms_marketing_consent: None,
            admin_graphql_api_id: format!("gid://shopify/Customer/{id}"),
        }
    }

    /// The payload as a JSON value.
    pub fn payload(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The raw body bytes a delivery carries, keys in Shopify's order.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A `customers/create|update` payload for the given fields (see [`Customer::new`]).
pub fn customer_payload(
    id: u64,
    email: &str,
    first_name: &str,
    last_name: &str,
    updated_at: OffsetDateTime,
) -> Value {
    Customer::new(id, email, first_name, last_name, updated_at).payload()
}

/// Formats a time as Shopify payloads do: seconds precision and the numeric UTC offset.
pub fn format_shop_time(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    t.format(&fmt).unwrap_or_default()
}

pub(crate) fn ser_time<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_shop_time(*t))
}

pub(crate) fn ser_empty_as_null<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(v)
    }
}

/// Hands out IDs above 2^53 in ascending order, starting at one of Shopify's sample IDs
/// (customers here; the emulator uses the same generator for orders, line items and
/// webhook subscriptions, each from its own sample ID).
#[derive(Debug, Clone)]
pub struct CustomerIds {
    next: u64,
}

impl CustomerIds {
    /// A generator whose first ID is `first`.
    pub fn starting_at(first: u64) -> Self {
        Self { next: first }
    }

    /// The next ID. Real IDs are not consecutive; a prime stride keeps them distinct
    /// and irregular-looking while staying deterministic.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next;
        self.next = self.next.wrapping_add(65_537);
        id
    }
}

impl Default for CustomerIds {
    fn default() -> Self {
        Self::starting_at(SAMPLE_CUSTOMER_ID)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn payload_matches_the_shopify_sample() {
        let sample: Value = serde_json::from_str(
            r#"{
              "id": 706405506930370084, "email": "bob@biller.com",
              "created_at": "2021-12-31T19:00:00-05:00", "updated_at": "2021-12-31T19:00:00-05:00",
              "first_name": "Bob", "last_name": "Biller", "state": "disabled",
              "verified_email": true, "tags": "", "currency": "USD", "phone": null,
              "addresses": [], "tax_exemptions": [],
              "email_marketing_consent": null, "sms_marketing_consent": null,
              "admin_graphql_api_id": "gid://shopify/Customer/706405506930370084"
            }"#,
        )
        .unwrap();
        let got = customer_payload(
            SAMPLE_CUSTOMER_ID,
            "bob@biller.com",
            "Bob",
            "Biller",
            datetime!(2021-12-31 19:00:00 -05:00),
        );
        assert_eq!(got, sample);
    }

    #[test]
    fn ids_above_2_pow_53_survive_exactly_in_the_raw_body() {
        let mut ids = CustomerIds::default();
        let id = ids.next_id();
        assert!(id > (1u64 << 53));
        let body =
            Customer::new(id, "a@b.c", "A", "B", datetime!(2025-01-01 00:00:00 UTC)).to_body();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(
            r#"{"id":706405506930370084,"email":"a@b.c","created_at":"2025-01-01T00:00:00+00:00""#
        ));
        assert!(
            text.ends_with(
                r#""admin_graphql_api_id":"gid://shopify/Customer/706405506930370084"}"#
            )
        );
        assert_ne!(ids.next_id(), id);
    }
}
