//! Tokens of OData URI expressions (`$filter`, `$skiptoken`, key predicates): names,
//! parentheses, commas and the literals Exact's documentation uses: `'text'` (with `''`
//! for a quote), `guid'…'`, `datetime'…'`, integers (`L` marks Int64), decimals (with an
//! optional `M`/`D`/`F` suffix), `true`, `false`, `null`. Positions are 0-based character
//! offsets, as WCF reports them in its error messages.

use super::values::{Kind, Val, parse_local};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Lit(Val, Kind),
    Open,
    Close,
    Comma,
}

/// Splits OData URI text into tokens with their 0-based positions.
pub(crate) fn lex(text: &str) -> Result<Vec<(usize, Tok)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::Open
            }
            ')' => {
                i += 1;
                Tok::Close
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '\'' => {
                let (s, next) = quoted(&chars, i)?;
                i = next;
                Tok::Lit(Val::Str(s), Kind::Str)
            }
            c if c.is_ascii_digit() || c == '-' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "-.".contains(chars[i]))
                {
                    i += 1;
                }
                number(&chars[start..i].iter().collect::<String>())
                    .ok_or_else(|| format!("Syntax error at position {start}."))?
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if i < chars.len() && chars[i] == '\'' {
                    let (body, next) = quoted(&chars, i)?;
                    i = next;
                    typed_literal(&word, &body).ok_or_else(|| {
                        format!("Unrecognized '{word}' literal '{word}'{body}'' at '{start}'.")
                    })?
                } else {
                    match word.as_str() {
                        "null" => Tok::Lit(Val::Null, Kind::Str),
                        "true" => Tok::Lit(Val::Bool(true), Kind::Bool),
                        "false" => Tok::Lit(Val::Bool(false), Kind::Bool),
                        _ => Tok::Ident(word),
                    }
                }
            }
            _ => {
                return Err(format!(
                    "Syntax error: character '{c}' is not valid at position {start}."
                ));
            }
        };
        out.push((start, tok));
    }
    Ok(out)
}

/// Reads `'…'` starting at the opening quote; returns the text and the index after it.
fn quoted(chars: &[char], open: usize) -> Result<(String, usize), String> {
    let mut s = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(format!(
                    "There is an unterminated string literal at position {open}."
                ));
            }
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((s, i + 1)),
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

fn number(text: &str) -> Option<Tok> {
    if let Some(digits) = text.strip_suffix(['L', 'l']) {
        return digits
            .parse()
            .ok()
            .map(|n| Tok::Lit(Val::Int(n), Kind::Int64));
    }
    if let Ok(n) = text.parse::<i64>() {
        let kind = if i32::try_from(n).is_ok() {
            Kind::Int32
        } else {
            Kind::Int64
        };
        return Some(Tok::Lit(Val::Int(n), kind));
    }
    let digits = text
        .strip_suffix(['M', 'm', 'D', 'd', 'F', 'f'])
        .unwrap_or(text);
    let x: f64 = digits.parse().ok()?;
    x.is_finite()
        .then_some(Tok::Lit(Val::Double(x), Kind::Double))
}

fn typed_literal(prefix: &str, body: &str) -> Option<Tok> {
    match prefix {
        "guid" => uuid::Uuid::parse_str(body)
            .ok()
            .filter(|_| body.len() == 36)
            .map(|g| Tok::Lit(Val::Guid(g), Kind::Guid)),
        "datetime" => parse_local(body).map(|ms| Tok::Lit(Val::Date(ms), Kind::DateTime)),
        _ => None,
    }
}

/// Parses a comma-separated list of literals (a `$skiptoken`).
pub(crate) fn parse_literals(text: &str) -> Option<Vec<Val>> {
    let toks = lex(text).ok()?;
    let mut out = Vec::new();
    for (i, (_, tok)) in toks.into_iter().enumerate() {
        match (i % 2, tok) {
            (0, Tok::Lit(v, _)) => out.push(v),
            (1, Tok::Comma) => {}
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_are_literal_lists() {
        let g = "5d0c6d0f-0000-0000-0000-000000000001";
        assert_eq!(
            parse_literals(&format!("'Acme',guid'{g}'")).unwrap(),
            vec![Val::Str("Acme".into()), Val::Guid(g.parse().unwrap())]
        );
        assert_eq!(parse_literals("42L").unwrap(), vec![Val::Int(42)]);
        assert_eq!(parse_literals("42L,,"), None);
        assert_eq!(parse_literals(""), None);
    }
}
