//! The `HTML` flavour of `parse_mode` (see `markup.rs` for the contract facts).
//!
//! Supported, as documented: `<b>`/`<strong>`, `<i>`/`<em>`, `<u>`/`<ins>`,
//! `<s>`/`<strike>`/`<del>`, `<span class="tg-spoiler">`/`<tg-spoiler>`, `<a href>`,
//! `<code>`, `<pre>` (with `<code class="language-…">` inside), `<blockquote>`
//! (`expandable`), `<tg-emoji>`; the entities `&lt; &gt; &amp; &quot;` and numeric
//! references. Any other tag is `Unsupported start tag "x" at byte offset N`; an unclosed
//! tag is `Can't find end tag corresponding to start tag "x"`; an `&…` that is not a
//! known reference stays a literal `&`.

use super::markup::Builder;

struct OpenTag {
    tag: String,
    kind: &'static str,
    start: usize,
    url: Option<String>,
    language: Option<String>,
}

/// HTML mode: the documented tags, `&lt; &gt; &amp; &quot;` and numeric character
/// references; any other `&…` is kept literally.
pub(crate) fn parse_html(src: &str) -> Result<Builder, String> {
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
                    let top = open
                        .pop()
                        .ok_or_else(|| format!("Unexpected end tag at byte offset {start}"))?;
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
    let attr = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let mut url = None;
    let kind = match tag.as_str() {
        "b" | "strong" => "bold",
        "i" | "em" => "italic",
        "u" | "ins" => "underline",
        "s" | "strike" | "del" => "strikethrough",
        "tg-spoiler" => "spoiler",
        "span" if attr("class").as_deref() == Some("tg-spoiler") => "spoiler",
        "span" => {
            return Err(format!(
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {at}"
            ));
        }
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
    use super::super::markup::{ParseMode, format};
    use serde_json::json;

    #[test]
    fn html_becomes_text_and_entities_in_utf16_units() {
        let f = format(
            "😀 <b>Order</b> &lt;#1&gt; <a href=\"https://x.y\">link</a>",
            ParseMode::Html,
        )
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
}
