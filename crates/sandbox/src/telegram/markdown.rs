//! The two Markdown flavours of `parse_mode` (see `markup.rs` for the contract facts).
//!
//! - `MarkdownV2`: `*bold*`, `_italic_`, `__underline__`, `~strike~`, `||spoiler||`,
//!   `` `code` ``, ```` ```lang\npre``` ````, `[text](url)`, `>quote` at a line start. Every
//!   other reserved character (`_*[]()~`>#+-=|{}.!`) must be escaped with `\`, otherwise
//!   `Character 'X' is reserved and must be escaped with the preceding '\'` — the error
//!   connectors most often hit in production. An unclosed marker is
//!   `Can't find end of <Kind> entity at byte offset N`.
//! - Legacy `Markdown`: `*bold*`, `_italic_`, `` `code` ``, ```` ```pre``` ````,
//!   `[text](url)`, no nesting; an unclosed marker is
//!   `Can't find end of the entity starting at byte offset N`.

use super::markup::Builder;

const RESERVED_V2: &str = "_*[]()~`>#+-=|{}.!";

struct Open {
    marker: &'static str,
    kind: &'static str,
    name: &'static str,
    start: usize,
    byte: usize,
}

fn reserved(c: char) -> String {
    format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
}

fn unclosed(name: &str, byte: usize) -> String {
    format!("Can't find end of {name} entity at byte offset {byte}")
}

/// Parses MarkdownV2.
pub(crate) fn parse_markdown_v2(src: &str) -> Result<Builder, String> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let mut b = Builder::default();
    let mut open: Vec<Open> = Vec::new();
    let mut k = 0;
    while let Some(&(pos, c)) = chars.get(k) {
        let line_start = pos == 0 || src[..pos].ends_with('\n');
        match c {
            '\\' => match at(k + 1) {
                Some(n) if (1..=126).contains(&u32::from(n)) => {
                    b.push(n);
                    k += 2;
                    continue;
                }
                _ => return Err(reserved('\\')),
            },
            '`' => {
                k = code_or_pre(&chars, k, &mut b)?;
                continue;
            }
            '*' => toggle(&mut open, &mut b, "*", "bold", "Bold", pos)?,
            '_' if at(k + 1) == Some('_') => {
                toggle(&mut open, &mut b, "__", "underline", "Underline", pos)?;
                k += 1;
            }
            '_' => toggle(&mut open, &mut b, "_", "italic", "Italic", pos)?,
            '~' => toggle(
                &mut open,
                &mut b,
                "~",
                "strikethrough",
                "Strikethrough",
                pos,
            )?,
            '|' if at(k + 1) == Some('|') => {
                toggle(&mut open, &mut b, "||", "spoiler", "Spoiler", pos)?;
                k += 1;
            }
            '[' => open.push(Open {
                marker: "[",
                kind: "text_link",
                name: "TextUrl",
                start: b.utf16,
                byte: pos,
            }),
            ']' if open.last().is_some_and(|o| o.marker == "[") => {
                let link = open.pop().ok_or_else(|| reserved(']'))?;
                let (url, next) = link_url(&chars, k + 1)?;
                b.entity(link.kind, link.start, url, None);
                k = next;
                continue;
            }
            '>' if line_start => open.push(Open {
                marker: "\n",
                kind: "blockquote",
                name: "BlockQuote",
                start: b.utf16,
                byte: pos,
            }),
            '\n' => {
                close_quote(&mut open, &mut b);
                b.push('\n');
            }
            c if RESERVED_V2.contains(c) => return Err(reserved(c)),
            c => b.push(c),
        }
        k += 1;
    }
    close_quote(&mut open, &mut b);
    match open.last() {
        Some(o) => Err(unclosed(o.name, o.byte)),
        None => Ok(b),
    }
}

/// Ends a `>` quote at the end of its line.
fn close_quote(open: &mut Vec<Open>, b: &mut Builder) {
    if open.last().is_some_and(|o| o.marker == "\n")
        && let Some(quote) = open.pop()
    {
        b.entity(quote.kind, quote.start, None, None);
    }
}

/// Opens `marker`, or closes it when it is the innermost open entity; closing across
/// another open entity is an overlap, which Telegram rejects.
fn toggle(
    open: &mut Vec<Open>,
    b: &mut Builder,
    marker: &'static str,
    kind: &'static str,
    name: &'static str,
    byte: usize,
) -> Result<(), String> {
    match open.iter().rposition(|o| o.marker == marker) {
        Some(i) if i + 1 == open.len() => {
            if let Some(o) = open.pop() {
                b.entity(o.kind, o.start, None, None);
            }
            Ok(())
        }
        Some(_) => {
            let top = open.last().map_or(("entity", 0), |o| (o.name, o.byte));
            Err(unclosed(top.0, top.1))
        }
        None => {
            open.push(Open {
                marker,
                kind,
                name,
                start: b.utf16,
                byte,
            });
            Ok(())
        }
    }
}

/// `` `code` `` or ```` ```lang\npre``` ```` starting at `k`; inside, only `` ` `` and `\`
/// are special. Returns the index after the closing marker.
fn code_or_pre(chars: &[(usize, char)], k: usize, b: &mut Builder) -> Result<usize, String> {
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let pos = chars[k].0;
    let pre = at(k + 1) == Some('`') && at(k + 2) == Some('`');
    let mut i = if pre { k + 3 } else { k + 1 };
    let mut language = None;
    if pre {
        // The rest of the opening line, if any, names the language.
        let line_end = (i..chars.len()).find(|&j| chars[j].1 == '\n');
        if let Some(end) = line_end {
            let lang: String = chars[i..end].iter().map(|&(_, c)| c).collect();
            if !lang.is_empty() && !lang.contains(|c: char| c.is_whitespace() || c == '`') {
                language = Some(lang);
                i = end + 1;
            }
        }
    }
    let start = b.utf16;
    while let Some(c) = at(i) {
        if c == '\\'
            && let Some(n) = at(i + 1).filter(|n| matches!(n, '`' | '\\'))
        {
            b.push(n);
            i += 2;
            continue;
        }
        if c == '`' && (!pre || (at(i + 1) == Some('`') && at(i + 2) == Some('`'))) {
            let kind = if pre { "pre" } else { "code" };
            b.entity(kind, start, None, language);
            return Ok(if pre { i + 3 } else { i + 1 });
        }
        b.push(c);
        i += 1;
    }
    Err(unclosed(if pre { "Pre" } else { "Code" }, pos))
}

/// Reads `(url)` right after a link's `]`; a `]` without `(` keeps the text, no link.
fn link_url(chars: &[(usize, char)], k: usize) -> Result<(Option<String>, usize), String> {
    if chars.get(k).map(|&(_, c)| c) != Some('(') {
        return Ok((None, k));
    }
    let mut url = String::new();
    let mut i = k + 1;
    while let Some(&(_, c)) = chars.get(i) {
        match c {
            '\\' if chars
                .get(i + 1)
                .is_some_and(|&(_, n)| matches!(n, ')' | '\\')) =>
            {
                url.push(chars[i + 1].1);
                i += 2;
            }
            ')' => return Ok(((!url.is_empty()).then_some(url), i + 1)),
            c => {
                url.push(c);
                i += 1;
            }
        }
    }
    Err(format!(
        "Can't find end of a URL at byte offset {}",
        chars[k].0
    ))
}

/// Parses legacy Markdown.
pub(crate) fn parse_markdown(src: &str) -> Result<Builder, String> {
    let mut b = Builder::default();
    let mut i = 0;
    let unclosed = |at: usize| format!("Can't find end of the entity starting at byte offset {at}");
    while let Some(c) = src[i..].chars().next() {
        let rest = &src[i..];
        match c {
            '\\' if rest[1..].starts_with(['_', '*', '`', '[']) => {
                b.push_str(&rest[1..2]);
                i += 2;
            }
            '*' | '_' => {
                let end = rest[1..].find(c).ok_or_else(|| unclosed(i))?;
                let start = b.utf16;
                b.push_str(&rest[1..1 + end]);
                b.entity(if c == '*' { "bold" } else { "italic" }, start, None, None);
                i += end + 2;
            }
            '`' if rest.starts_with("```") => {
                let end = rest[3..].find("```").ok_or_else(|| unclosed(i))?;
                let start = b.utf16;
                b.push_str(&rest[3..3 + end]);
                b.entity("pre", start, None, None);
                i += end + 6;
            }
            '`' => {
                let end = rest[1..].find('`').ok_or_else(|| unclosed(i))?;
                let start = b.utf16;
                b.push_str(&rest[1..1 + end]);
                b.entity("code", start, None, None);
                i += end + 2;
            }
            '[' => {
                let end = rest[1..].find(']').ok_or_else(|| unclosed(i))?;
                let start = b.utf16;
                b.push_str(&rest[1..1 + end]);
                i += end + 2;
                if src[i..].starts_with('(') {
                    let close = src[i..].find(')').ok_or_else(|| unclosed(i))?;
                    let url = src[i + 1..i + close].to_owned();
                    b.entity("text_link", start, Some(url), None);
                    i += close + 1;
                }
            }
            c => {
                b.push(c);
                i += c.len_utf8();
            }
        }
    }
    Ok(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::markup::{ParseMode, format};
    use serde_json::json;

    #[test]
    fn v2_unescaped_reserved_characters_are_rejected() {
        assert_eq!(
            format("Order #1001 received.", ParseMode::MarkdownV2).unwrap_err(),
            "Character '#' is reserved and must be escaped with the preceding '\\'"
        );
        let f = format("Order \\#1001 *received*\\.", ParseMode::MarkdownV2).unwrap();
        assert_eq!(f.text, "Order #1001 received.");
        assert_eq!(
            f.entities,
            vec![json!({"offset": 12, "length": 8, "type": "bold"})]
        );
    }

    #[test]
    fn v2_entities_nest_and_unclosed_ones_are_named() {
        let f = format(
            "*bold _both_* __u__ ||s|| `a.b` [go](https://x.y/\\))",
            ParseMode::MarkdownV2,
        )
        .unwrap();
        assert_eq!(f.text, "bold both u s a.b go");
        let kinds: Vec<&str> = f
            .entities
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "bold",
                "italic",
                "underline",
                "spoiler",
                "code",
                "text_link"
            ]
        );
        assert_eq!(f.entities[5]["url"], "https://x.y/)");
        assert_eq!(
            format("a *b", ParseMode::MarkdownV2).unwrap_err(),
            "Can't find end of Bold entity at byte offset 2"
        );
        assert!(
            format("*a _b* c_", ParseMode::MarkdownV2).is_err(),
            "overlap"
        );
    }

    #[test]
    fn v2_pre_with_language_and_quotes() {
        let f = format("```rust\nlet x = 1;```\n>quoted", ParseMode::MarkdownV2).unwrap();
        assert_eq!(f.text, "let x = 1;\nquoted");
        assert_eq!(f.entities[0]["language"], "rust");
        assert_eq!(f.entities[1]["type"], "blockquote");
    }

    #[test]
    fn legacy_markdown_is_lenient_but_needs_closing_markers() {
        let f = format(
            "*Order* #1001 - [track](https://t.example/1).",
            ParseMode::Markdown,
        )
        .unwrap();
        assert_eq!(f.text, "Order #1001 - track.");
        assert_eq!(f.entities.len(), 2);
        assert_eq!(
            format("snake_case", ParseMode::Markdown).unwrap_err(),
            "Can't find end of the entity starting at byte offset 5"
        );
    }
}
