//! Pipedrive API v2 deal object, request-body validation and the status rules.
//!
//! Contract facts followed (saas-contracts.md §2.5; v2 OpenAPI `addDeal`/`updateDeal`/
//! `getDeal` as in `juhokoskela/pipedrive-go` `openapi/upstream/v2.yaml` and the official
//! SDK model `pipedrive/client-nodejs` `src/versions/v2/models/deal-item.ts`):
//! - A deal is `{id, title, creator_user_id, owner_id, person_id, org_id, pipeline_id,
//!   stage_id, value, currency, add_time, update_time, stage_change_time, is_deleted,
//!   is_archived, archive_time, status, probability, lost_reason, visible_to, close_time,
//!   won_time, lost_time, expected_close_date, label_ids, origin, origin_id, channel,
//!   channel_id, arr, mrr, acv, custom_fields}`; `value` is a number, times are v2 times,
//!   `expected_close_date` is `YYYY-MM-DD`.
//! - `addDeal` requires `title`. "`lost_reason` can only be set if deal status is lost",
//!   "`close_time` … only if deal status is won or lost", "`won_time` … only if won",
//!   "`lost_time` … only if lost"; `archive_time` is "Format: YYYY-MM-DD HH:MM:SS"; `origin`
//!   "is set by Pipedrive when Deal is created and cannot be changed".
//!
//! Emulator choices: one pipeline (ID 1) with Pipedrive's default stages 1–5; `status` is
//! `open|won|lost`; winning or losing stamps `close_time` and `won_time`/`lost_time` with
//! now unless given, reopening clears them. Stricter-than-known: unknown fields are a 400,
//! `currency` must be a 3-letter upper-case code, `probability` must be 0–100,
//! `is_deleted: true` in a body is refused (use DELETE), and `arr`/`mrr`/`acv` stay null
//! (no products are emulated).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use time::PrimitiveDateTime;
use time::macros::format_description;

use super::common::{
    Mode, Rejection, custom_fields, format_time, label_ids, non_empty_string, only_known_fields,
    parse_time, positive_int, visibility,
};

/// The emulated pipeline's ID.
pub const PIPELINE_ID: u64 = 1;

/// Stages of the emulated pipeline (Pipedrive's default pipeline), by ID.
pub const STAGES: [(u64, &str); 5] = [
    (1, "Qualified"),
    (2, "Contact Made"),
    (3, "Demo Scheduled"),
    (4, "Proposal Made"),
    (5, "Negotiations Started"),
];

const FIELDS: [&str; 24] = [
    "title",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "value",
    "currency",
    "is_deleted",
    "is_archived",
    "archive_time",
    "status",
    "probability",
    "lost_reason",
    "visible_to",
    "close_time",
    "won_time",
    "lost_time",
    "expected_close_date",
    "label_ids",
    "origin_id",
    "channel",
    "channel_id",
    "custom_fields",
];

/// A deal as the emulator stores it and the v2 API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Field names and meanings are the v2 OpenAPI's, listed in the module doc.
pub struct Deal {
    pub id: u64,
    pub title: String,
    pub creator_user_id: u64,
    pub owner_id: u64,
    pub person_id: Option<u64>,
    pub org_id: Option<u64>,
    pub pipeline_id: u64,
    pub stage_id: u64,
    pub value: Number,
    pub currency: String,
    pub add_time: String,
    pub update_time: String,
    pub stage_change_time: Option<String>,
    pub is_deleted: bool,
    pub is_archived: bool,
    pub archive_time: Option<String>,
    pub status: String,
    pub probability: Option<Number>,
    pub lost_reason: Option<String>,
    pub visible_to: u64,
    pub close_time: Option<String>,
    pub won_time: Option<String>,
    pub lost_time: Option<String>,
    pub expected_close_date: Option<String>,
    pub label_ids: Vec<u64>,
    pub origin: String,
    pub origin_id: Option<String>,
    pub channel: Option<u64>,
    pub channel_id: Option<String>,
    pub arr: Option<Number>,
    pub mrr: Option<Number>,
    pub acv: Option<Number>,
    pub custom_fields: Map<String, Value>,
}

/// The name of a stage of the emulated pipeline.
pub fn stage_name(stage_id: u64) -> Option<&'static str> {
    STAGES
        .iter()
        .find(|(id, _)| *id == stage_id)
        .map(|(_, name)| *name)
}

/// A validated create or update body. `None` means "not sent"; `Some(None)` clears.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DealInput {
    pub title: Option<String>,
    pub owner_id: Option<u64>,
    pub person_id: Option<Option<u64>>,
    pub org_id: Option<Option<u64>>,
    pub stage_id: Option<u64>,
    pub value: Option<Number>,
    pub currency: Option<String>,
    pub is_archived: Option<bool>,
    pub archive_time: Option<Option<String>>,
    pub status: Option<String>,
    pub probability: Option<Option<Number>>,
    pub lost_reason: Option<Option<String>>,
    pub visible_to: Option<u64>,
    pub close_time: Option<Option<String>>,
    pub won_time: Option<String>,
    pub lost_time: Option<String>,
    pub expected_close_date: Option<Option<String>>,
    pub label_ids: Option<Vec<u64>>,
    pub origin_id: Option<Option<String>>,
    pub channel: Option<Option<u64>>,
    pub channel_id: Option<Option<String>>,
    pub custom_fields: Option<Map<String, Value>>,
}

/// `Some(None)` for JSON null, else the parsed value.
fn nullable<T>(
    v: Option<&Value>,
    parse: impl FnOnce(&Value) -> Result<T, Rejection>,
) -> Result<Option<Option<T>>, Rejection> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => parse(v).map(|t| Some(Some(t))),
    }
}

fn string(field: &str, v: &Value) -> Result<String, Rejection> {
    v.as_str().map(str::to_owned).ok_or_else(|| {
        Rejection::bad_request(format!("Validation failed: {field}: Expected string"))
    })
}

/// Validates a JSON body for `addDeal` or `updateDeal`.
pub(crate) fn parse_deal_input(body: &Value, mode: Mode) -> Result<DealInput, Rejection> {
    let Some(obj) = body.as_object() else {
        return Err(Rejection::bad_request("Request body must be a JSON object"));
    };
    only_known_fields(obj, &FIELDS)?;
    let mut input = DealInput::default();
    match obj.get("title") {
        None | Some(Value::Null) if mode == Mode::Create => {
            return Err(Rejection::bad_request(
                "Validation failed: title: is required",
            ));
        }
        None => {}
        Some(v) => input.title = Some(non_empty_string("title", v)?),
    }
    if let Some(v) = obj.get("owner_id") {
        input.owner_id = Some(positive_int("owner_id", v)?);
    }
    input.person_id = nullable(obj.get("person_id"), |v| positive_int("person_id", v))?;
    input.org_id = nullable(obj.get("org_id"), |v| positive_int("org_id", v))?;
    if let Some(v) = obj.get("pipeline_id")
        && positive_int("pipeline_id", v)? != PIPELINE_ID
    {
        return Err(Rejection::bad_request(
            "Validation failed: pipeline_id: Pipeline not found",
        ));
    }
    if let Some(v) = obj.get("stage_id") {
        let stage = positive_int("stage_id", v)?;
        if stage_name(stage).is_none() {
            return Err(Rejection::bad_request(
                "Validation failed: stage_id: Stage not found",
            ));
        }
        input.stage_id = Some(stage);
    }
    if let Some(v) = obj.get("value") {
        match v {
            Value::Number(n) => input.value = Some(n.clone()),
            _ => {
                return Err(Rejection::bad_request(
                    "Validation failed: value: Expected number",
                ));
            }
        }
    }
    if let Some(v) = obj.get("currency") {
        let code = string("currency", v)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Rejection::bad_request(
                "Validation failed: currency: Expected a 3-letter currency code",
            ));
        }
        input.currency = Some(code);
    }
    if let Some(v) = obj.get("is_deleted")
        && v.as_bool() != Some(false)
    {
        return Err(Rejection::bad_request(
            "Validation failed: is_deleted: use DELETE /api/v2/deals/{id} to delete a deal",
        ));
    }
    if let Some(v) = obj.get("is_archived") {
        input.is_archived = Some(v.as_bool().ok_or_else(|| {
            Rejection::bad_request("Validation failed: is_archived: Expected boolean")
        })?);
    }
    input.archive_time = nullable(obj.get("archive_time"), parse_archive_time)?;
    if let Some(v) = obj.get("status") {
        match v.as_str() {
            Some(s @ ("open" | "won" | "lost")) => input.status = Some(s.to_owned()),
            _ => {
                return Err(Rejection::bad_request(
                    "Validation failed: status: must be one of open, won, lost",
                ));
            }
        }
    }
    input.probability = nullable(obj.get("probability"), |v| match v {
        Value::Number(n) if n.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)) => Ok(n.clone()),
        _ => Err(Rejection::bad_request(
            "Validation failed: probability: Expected a number from 0 to 100",
        )),
    })?;
    input.lost_reason = nullable(obj.get("lost_reason"), |v| string("lost_reason", v))?;
    if let Some(v) = obj.get("visible_to") {
        input.visible_to = Some(visibility(v)?);
    }
    input.close_time = nullable(obj.get("close_time"), |v| parse_time("close_time", v))?;
    if let Some(v) = obj.get("won_time") {
        input.won_time = Some(parse_time("won_time", v)?);
    }
    if let Some(v) = obj.get("lost_time") {
        input.lost_time = Some(parse_time("lost_time", v)?);
    }
    input.expected_close_date = nullable(obj.get("expected_close_date"), parse_date)?;
    if let Some(v) = obj.get("label_ids") {
        input.label_ids = Some(label_ids(v)?);
    }
    input.origin_id = nullable(obj.get("origin_id"), |v| string("origin_id", v))?;
    input.channel = nullable(obj.get("channel"), |v| positive_int("channel", v))?;
    input.channel_id = nullable(obj.get("channel_id"), |v| string("channel_id", v))?;
    if let Some(v) = obj.get("custom_fields") {
        input.custom_fields = Some(custom_fields(v)?);
    }
    Ok(input)
}

fn parse_date(v: &Value) -> Result<String, Rejection> {
    let fmt = format_description!("[year]-[month]-[day]");
    v.as_str()
        .filter(|s| time::Date::parse(s, &fmt).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            Rejection::bad_request("Validation failed: expected_close_date: Expected YYYY-MM-DD")
        })
}

fn parse_archive_time(v: &Value) -> Result<String, Rejection> {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    v.as_str()
        .and_then(|s| PrimitiveDateTime::parse(s, &fmt).ok())
        .map(|t| format_time(t.assume_utc()))
        .ok_or_else(|| {
            Rejection::bad_request(
                "Validation failed: archive_time: Expected YYYY-MM-DD HH:MM:SS (UTC)",
            )
        })
}

impl Deal {
    /// Applies a validated body at time `now` (v2 format), enforcing the status rules.
    /// On error the deal is unchanged.
    pub(crate) fn apply(&mut self, input: DealInput, now: &str) -> Result<(), Rejection> {
        let mut next = self.clone();
        let status = input.status.clone().unwrap_or_else(|| self.status.clone());
        let only_if = |given: bool, allowed: &[&str], field: &str| {
            if given && !allowed.contains(&status.as_str()) {
                Err(Rejection::bad_request(format!(
                    "Validation failed: {field}: can only be set if deal status is {}",
                    allowed.join(" or ")
                )))
            } else {
                Ok(())
            }
        };
        only_if(
            matches!(input.lost_reason, Some(Some(_))),
            &["lost"],
            "lost_reason",
        )?;
        only_if(
            matches!(input.close_time, Some(Some(_))),
            &["won", "lost"],
            "close_time",
        )?;
        only_if(input.won_time.is_some(), &["won"], "won_time")?;
        only_if(input.lost_time.is_some(), &["lost"], "lost_time")?;

        if status != self.status {
            match status.as_str() {
                "won" => {
                    next.won_time = Some(input.won_time.clone().unwrap_or_else(|| now.to_owned()));
                    next.lost_time = None;
                    next.lost_reason = None;
                }
                "lost" => {
                    next.lost_time =
                        Some(input.lost_time.clone().unwrap_or_else(|| now.to_owned()));
                    next.won_time = None;
                }
                _ => {
                    next.won_time = None;
                    next.lost_time = None;
                    next.lost_reason = None;
                    next.close_time = None;
                }
            }
            if status != "open" {
                next.close_time = Some(now.to_owned());
            }
            next.status = status;
        }
        if let Some(t) = input.won_time {
            next.won_time = Some(t);
        }
        if let Some(t) = input.lost_time {
            next.lost_time = Some(t);
        }
        if let Some(t) = input.close_time {
            next.close_time = t;
        }
        if let Some(r) = input.lost_reason {
            next.lost_reason = r;
        }
        if let Some(title) = input.title {
            next.title = title;
        }
        if let Some(owner) = input.owner_id {
            next.owner_id = owner;
        }
        if let Some(p) = input.person_id {
            next.person_id = p;
        }
        if let Some(o) = input.org_id {
            next.org_id = o;
        }
        if let Some(stage) = input.stage_id
            && stage != self.stage_id
        {
            next.stage_id = stage;
            next.stage_change_time = Some(now.to_owned());
        }
        if let Some(v) = input.value {
            next.value = v;
        }
        if let Some(c) = input.currency {
            next.currency = c;
        }
        if let Some(archived) = input.is_archived {
            next.is_archived = archived;
            if !archived {
                next.archive_time = None;
            } else if next.archive_time.is_none() {
                next.archive_time = Some(now.to_owned());
            }
        }
        if let Some(t) = input.archive_time {
            next.archive_time = t;
        }
        if let Some(p) = input.probability {
            next.probability = p;
        }
        if let Some(v) = input.visible_to {
            next.visible_to = v;
        }
        if let Some(d) = input.expected_close_date {
            next.expected_close_date = d;
        }
        if let Some(l) = input.label_ids {
            next.label_ids = l;
        }
        if let Some(o) = input.origin_id {
            next.origin_id = o;
        }
        if let Some(c) = input.channel {
            next.channel = c;
        }
        if let Some(c) = input.channel_id {
            next.channel_id = c;
        }
        if let Some(fields) = input.custom_fields {
            super::common::merge_custom_fields(&mut next.custom_fields, fields);
        }
        next.update_time = now.to_owned();
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
#[path = "deal_model_tests.rs"]
mod tests;
