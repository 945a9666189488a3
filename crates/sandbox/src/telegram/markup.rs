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

struct OpenTag {
    tag: String,
    kind: &'static str,
    start: usize,
    url: Option<String>,
    language: Option<String>,
}

/// HTML mode: the documented tags, `&lt; &gt; &amp; &quot;` and numeric character
/// references; any other `&…` is kept literally.
fn parse_html(src: &str) -> Result<Builder, String> {
    let mut b = Builder::default();
    let mut open: Vec<OpenTag> = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        match c {
            '<' => {
                let start = i;
                let close = src[i..]
                    .find('>')
                    .ok_or_else(|| format!("Unclosed start tag at byte offset {start}"))?;
                let inner = &src[i + 1..i + close];
                i += close + 1;
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    let top = open.pop().ok_or_else(|| {
                        format!("Unexpected end tag at byte offset {start}")
                    })?;
                    if top.tag != name {
                        return Err(format!(
                            "Unmatched end tag at byte offset {start}, expected \"</{}>\", found \"</{name}>\"",
                            top.tag
                        ));
                    }
                    b.entity(top.kind, top.start, top.url, top.language);
                } else {
                    let tag = start_tag(inner, start, &mut open)?;
                    open.push(OpenTag {
                        start: b.utf16,
                        ..tag
                    });
                }
            }
            '&' => {
                let (decoded, used) = html_entity(&src[i..]);
                b.push(decoded);
                i += used;
            }
            _ => {
                b.push(c);
                i += c.len_utf8();
            }
        }
    }
    match open.last() {
        Some(top) => Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            top.tag
        )),
        None => Ok(b),
    }
}

fn start_tag(inner: &str, at: usize, open: &mut [OpenTag]) -> Result<OpenTag, String> {
    let name_end = inner
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(inner.len());
    let tag = inner[..name_end].to_ascii_lowercase();
    let attrs = attributes(&inner[name_end..]);
    let attr = |key: &str| {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mut url = None;
    let kind = match tag.as_str() {
        "b" | "strong" => "bold",
        "i" | "em" => "italic",
        "u" | "ins" => "underline",
        "s" | "strike" | "del" => "strikethrough",
        "tg-spoiler" => "spoiler",
        "span" if attr("class").as_deref() == Some("tg-spoiler") => "spoiler",
        "span" => return Err(format!("Tag \"span\" must have class \"tg-spoiler\" at byte offset {at}")),
        // An `<a>` without `href` formats nothing (the text stays, no entity).
        "a" => {
            url = attr("href");
            if url.is_some() { "text_link" } else { "" }
        }
        "code" => {
            // `<pre><code class="language-x">` sets the language of the enclosing pre.
            if let (Some(top), Some(class)) = (open.last_mut(), attr("class"))
                && top.tag == "pre"
                && let Some(language) = class.strip_prefix("language-")
            {
                top.language = Some(language.to_owned());
                ""
            } else {
                "code"
            }
        }
        "pre" => "pre",
        "blockquote" if attr("expandable").is_some() => "expandable_blockquote",
        "blockquote" => "blockquote",
        "tg-emoji" => "custom_emoji",
        "" => return Err(format!("Empty tag name at byte offset {at}")),
        other => {
            return Err(format!(
                "Unsupported start tag \"{other}\" at byte offset {at}"
            ));
        }
    };
    Ok(OpenTag {
        tag,
        kind,
        start: 0,
        url,
        language: None,
    })
}

/// `key="v"`, `key='v'`, `key=v` and bare `key` attributes; names lower-cased.
fn attributes(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if s.is_empty() {
            return out;
        }
        let key_end = s
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(s.len());
        let key = s[..key_end].to_ascii_lowercase();
        s = s[key_end..].trim_start();
        let Some(rest) = s.strip_prefix('=') else {
            out.push((key, String::new()));
            continue;
        };
        let rest = rest.trim_start();
        let (value, tail) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &rest[1..];
                let end = body.find(q).unwrap_or(body.len());
                (&body[..end], body.get(end + 1..).unwrap_or(""))
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        out.push((key, value.to_owned()));
        s = tail;
    }
}

/// Decodes one `&…;` reference at the start of `s`; unknown ones stay a literal `&`.
fn html_entity(s: &str) -> (char, usize) {
    let Some(semi) = s[..s.len().min(12)].find(';') else {
        return ('&', 1);
    };
    let name = &s[1..semi];
    let decoded = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => name
            .strip_prefix("#x")
            .or_else(|| name.strip_prefix("#X"))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
            .and_then(char::from_u32),
    };
    match decoded {
        Some(c) => (c, semi + 1),
        None => ('&', 1),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes_are_case_insensitive_and_unknown_ones_rejected() {
        assert_eq!(ParseMode::parse(Some("html")), Ok(ParseMode::Html));
        assert_eq!(ParseMode::parse(Some("MarkdownV2")), Ok(ParseMode::MarkdownV2));
        assert_eq!(ParseMode::parse(Some("")), Ok(ParseMode::Plain));
        assert_eq!(
            ParseMode::parse(Some("markdown3")),
            Err("unsupported parse_mode".to_owned())
        );
    }

    #[test]
    fn html_becomes_text_and_entities_in_utf16_units() {
        let f = format("😀 <b>Order</b> &lt;#1&gt; <a href=\"https://x.y\">link</a>", ParseMode::Html)
            .unwrap();
        assert_eq!(f.text, "😀 Order <#1> link");
        assert_eq!(
            f.entities,
            vec![
                json!({"offset": 3, "length": 5, "type": "bold"}),
                json!({"offset": 14, "length": 4, "type": "text_link", "url": "https://x.y"}),
            ]
        );
    }

    #[test]
    fn html_errors_name_the_problem() {
        assert_eq!(
            format("<b>x", ParseMode::Html).unwrap_err(),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert!(
            format("<blink>x</blink>", ParseMode::Html)
                .unwrap_err()
                .starts_with("Unsupported start tag \"blink\"")
        );
        assert!(format("<b>x</i>", ParseMode::Html).is_err());
    }

    #[test]
    fn pre_takes_the_language_of_its_code_child() {
        let f = format(
            "<pre><code class=\"language-rust\">fn x()</code></pre>",
            ParseMode::Html,
        )
        .unwrap();
        assert_eq!(
            f.entities,
            vec![json!({"offset": 0, "length": 6, "type": "pre", "language": "rust"})]
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
