//! `parse_mode` handling for `sendMessage`: turns marked-up text into plain text plus
//! `MessageEntity` objects, and rejects markup the Bot API would reject.
//!
//! Contract facts followed (saas-contracts.md §4.2; error texts as seen in client issue
//! threads and the open-source Bot API server, tdlib/telegram-bot-api `Client.cpp`):
//! - `parse_mode` is `HTML`, `MarkdownV2` or `Markdown`, compared case-insensitively; any
//!   other value is `400 Bad Request: unsupported parse_mode`.
//! - Markup errors are `400 Bad Request: can't parse entities: <reason>`, e.g.
//!   `Character '-' is reserved and must be escaped with the preceding '\'` (MarkdownV2).
//! - The 1–4096 character limit applies to the text *after* entity parsing, with
//!   leading and trailing whitespace stripped (an all-blank text is "message text is
//!   empty").
//!
//! Minimal by design: the supported tags and markers are the documented ones, nesting is
//! checked, and offsets/lengths are in UTF-16 code units as the Bot API counts them. It is
//! not a complete re-implementation of Telegram's parser; the reason texts for rarer
//! errors are the emulator's own wording.

use serde_json::{Value, json};

use super::html::parse_html;
use super::markdown::{parse_markdown, parse_markdown_v2};

/// A `parse_mode` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    /// No `parse_mode` (or an empty one): the text is taken literally.
    Plain,
    /// `HTML`.
    Html,
    /// `MarkdownV2`.
    MarkdownV2,
    /// Legacy `Markdown`.
    Markdown,
}

impl ParseMode {
    /// Parses a `parse_mode` argument; `Err` carries the 400 reason.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(Self::Plain),
            Some("html") => Ok(Self::Html),
            Some("markdownv2") => Ok(Self::MarkdownV2),
            Some("markdown") => Ok(Self::Markdown),
            Some(_) => Err("unsupported parse_mode".to_owned()),
        }
    }
}

/// One `MessageEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entity {
    pub kind: &'static str,
    pub offset: usize,
    pub length: usize,
    pub url: Option<String>,
    pub language: Option<String>,
}

impl Entity {
    fn to_json(&self) -> Value {
        let mut v = json!({"offset": self.offset, "length": self.length, "type": self.kind});
        if let Some(url) = &self.url {
            v["url"] = json!(url);
        }
        if let Some(language) = &self.language {
            v["language"] = json!(language);
        }
        v
    }
}

/// Plain text being built, counting UTF-16 units as it grows.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub text: String,
    pub utf16: usize,
    pub entities: Vec<Entity>,
}

impl Builder {
    pub(crate) fn push(&mut self, c: char) {
        self.text.push(c);
        self.utf16 += c.len_utf16();
    }

    pub(crate) fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    /// Records an entity from `start` (UTF-16) to the current end; empty ones are dropped.
    pub(crate) fn entity(
        &mut self,
        kind: &'static str,
        start: usize,
        url: Option<String>,
        language: Option<String>,
    ) {
        if self.utf16 > start && !kind.is_empty() {
            self.entities.push(Entity {
                kind,
                offset: start,
                length: self.utf16 - start,
                url,
                language,
            });
        }
    }
}

/// The result of formatting: what the user sees, and its entities as JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Formatted {
    pub text: String,
    pub entities: Vec<Value>,
}

impl Formatted {
    /// Length in UTF-16 code units, the unit of the 4096 limit and of entity offsets.
    pub(crate) fn len_utf16(&self) -> usize {
        self.text.encode_utf16().count()
    }
}

/// Parses `text` in `mode`, then strips surrounding whitespace (shifting entities).
/// `Err` carries the reason that follows `can't parse entities: `.
pub(crate) fn format(text: &str, mode: ParseMode) -> Result<Formatted, String> {
    let built = match mode {
        ParseMode::Plain => {
            let mut b = Builder::default();
            b.push_str(text);
            b
        }
        ParseMode::Html => parse_html(text)?,
        ParseMode::MarkdownV2 => parse_markdown_v2(text)?,
        ParseMode::Markdown => parse_markdown(text)?,
    };
    Ok(strip(built))
}

fn strip(mut b: Builder) -> Formatted {
    let lead_bytes = b.text.len() - b.text.trim_start().len();
    let lead = b.text[..lead_bytes].encode_utf16().count();
    let kept_end_bytes = b.text.trim_end().len().max(lead_bytes);
    let end = b.text[..kept_end_bytes].encode_utf16().count();
    let text = b.text[lead_bytes..kept_end_bytes].to_owned();
    b.entities.sort_by_key(|e| e.offset);
    let entities = b
        .entities
        .iter()
        .filter_map(|e| {
            let start = e.offset.max(lead);
            let stop = (e.offset + e.length).min(end);
            (stop > start).then(|| {
                Entity {
                    offset: start - lead,
                    length: stop - start,
                    ..e.clone()
                }
                .to_json()
            })
        })
        .collect();
    Formatted { text, entities }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes_are_case_insensitive_and_unknown_ones_rejected() {
        assert_eq!(ParseMode::parse(Some("html")), Ok(ParseMode::Html));
        assert_eq!(
            ParseMode::parse(Some("MarkdownV2")),
            Ok(ParseMode::MarkdownV2)
        );
        assert_eq!(ParseMode::parse(Some("")), Ok(ParseMode::Plain));
        assert_eq!(
            ParseMode::parse(Some("markdown3")),
            Err("unsupported parse_mode".to_owned())
        );
    }

    #[test]
    fn surrounding_whitespace_is_stripped_and_entities_shift() {
        let f = format("  <b> hi</b>  ", ParseMode::Html).unwrap();
        assert_eq!(f.text, "hi");
        assert_eq!(
            f.entities,
            vec![json!({"offset": 0, "length": 2, "type": "bold"})]
        );
        assert_eq!(format(" \n ", ParseMode::Plain).unwrap().text, "");
    }
}
