//! Telegram as a target: one notification per order, to the connection's `notify_chat_id`.
//!
//! Telegram cannot be searched, so idempotency rests on the xref alone: the sent message's
//! ID is the order's native ID, and an order with one is not sent again (later changes of
//! the order are skipped: a notification is about the order arriving). A crash between the
//! send and the xref write sends the notification once more on redelivery, at most once
//! per crash; every message carries `[sb:<canonical id prefix>]` so a reader can tell the
//! two apart as one order.

use crate::telegram::TelegramConnection;
use crate::telegram::api::TelegramClient;
use switchboard_core::error::ClassifiedError;

use switchboard_core::config::OnDelete;

use crate::target::{Call, Check, Created, Entity, Record, Writer, Written, data, unsupported};

/// Telegram's target entities.
pub const ENTITIES: &[Entity] = &[Entity {
    name: "messages",
    canonical: "order",
    key: None,
    check: Check::XrefOnly,
    on_delete: OnDelete::Ignore,
    archive: false,
}];

/// The Telegram writer of one connection.
pub struct TelegramTarget {
    client: TelegramClient,
    chat_id: String,
}

impl TelegramTarget {
    /// The writer for `connection`, which must name `notify_chat_id`.
    pub fn new(connection: &TelegramConnection) -> Result<Self, ClassifiedError> {
        let chat_id = connection
            .notify_chat_id
            .clone()
            .ok_or_else(|| data("telegram notify_chat_id is not configured"))?;
        Ok(Self {
            client: TelegramClient::new(connection)?,
            chat_id,
        })
    }
}

impl Writer for TelegramTarget {
    fn entities(&self) -> &'static [Entity] {
        ENTITIES
    }

    fn find<'a>(
        &'a self,
        entity: &'a str,
        _key: Option<&'a str>,
        _record: &'a Record,
    ) -> Call<'a, Option<String>> {
        Box::pin(std::future::ready(Err(unsupported(
            "Telegram search",
            entity,
        ))))
    }

    fn create<'a>(&'a self, entity: &'a str, record: &'a Record) -> Call<'a, Created> {
        Box::pin(async move {
            if entity != "messages" {
                return Err(unsupported("Telegram", entity));
            }
            let id = self
                .client
                .send_message(&self.chat_id, &order_message(record))
                .await?;
            Ok(Created::New(id.to_string()))
        })
    }

    fn update<'a>(
        &'a self,
        _entity: &'a str,
        _id: &'a str,
        _record: &'a Record,
    ) -> Call<'a, Written> {
        Box::pin(std::future::ready(Ok(Written::Skipped(
            "the notification was sent; an update sends no second one",
        ))))
    }

    fn delete<'a>(&'a self, _entity: &'a str, _id: &'a str) -> Call<'a, Written> {
        Box::pin(std::future::ready(Ok(Written::Skipped(
            "deleted at the source; a sent message is not taken back",
        ))))
    }
}

/// Mapping order → notification text: number, total with currency, line count, marker.
pub fn order_message(record: &Record) -> String {
    let lines = record
        .fields
        .get("lines")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len);
    let total = record.str("total").unwrap_or("?");
    let currency = record.str("currency").unwrap_or_default();
    let marker: String = record.id.chars().take(8).collect();
    format!(
        "New order {}: {total} {currency}, {lines} line(s) [sb:{marker}]",
        record.str("number").unwrap_or("(no number)")
    )
}
