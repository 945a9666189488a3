//! OData system query options, server paging and the JSON shape of answers.
//!
//! Contract facts followed (saas-contracts.md §3.3):
//! - Collections answer `{"d": {"results": [...], "__next": "<full URL with $skiptoken>"}}`;
//!   a single entity fetched by key answers `{"d": {...}}`. Every entity carries
//!   `__metadata` with `uri` and `type`.
//! - Standard endpoints page by 60, sync endpoints by 1000; follow `__next` until absent.
//! - Options in use: `$filter`, `$select`, `$top`, `$orderby`, `$skiptoken`.
//!
//! Strict choices: an unknown `$` option is a 400 with WCF's wording ("… begins with a
//! system-reserved '$' character but is not recognized"), and `$skip`, `$expand`,
//! `$inlinecount` and `$format` are refused rather than half-emulated. A full page always
//! carries `__next`, even when the next page turns out empty (server-driven paging does not
//! look ahead), so a client must stop on a missing `__next`, not on a short page.
//! `$skiptoken` holds the sort values of the last row, then its key, as OData literals
//! (`guid'…'` by default, `<n>L` on sync endpoints), the way WCF builds it.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::entities::EntityDef;
use super::filter::{self, Expr};
use super::values::{Kind, Val, compare};

/// One entity's properties by name.
pub(crate) type Row = BTreeMap<&'static str, Val>;

/// Parsed system query options of one request.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub filter: Option<Expr>,
    /// `None` selects every property.
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    /// Property and descending flag.
    pub orderby: Vec<(&'static str, bool)>,
    pub skiptoken: Option<Vec<Val>>,
    /// Every parameter except `$skiptoken` and `$top`, kept for the `__next` link.
    carry: Vec<(String, String)>,
}

const KNOWN_BUT_REFUSED: &[&str] = &["$skip", "$expand", "$inlinecount", "$format", "$count"];

/// Parses the query of a request against `def`. `allowed` lists the options this endpoint
/// takes. `Err` is the message for a 400.
pub(crate) fn parse_options(
    params: &[(String, String)],
    def: &EntityDef,
    allowed: &[&str],
) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        if !name.starts_with('$') {
            opts.carry.push((name.clone(), value.clone()));
            continue;
        }
        let known = ["$filter", "$select", "$top", "$orderby", "$skiptoken"];
        let Some(option) = known.iter().find(|k| **k == name) else {
            if KNOWN_BUT_REFUSED.contains(&name.as_str()) {
                return Err(format!(
                    "The query option '{name}' is not supported by this endpoint."
                ));
            }
            return Err(format!(
                "The query parameter '{name}' begins with a system-reserved '$' character but is not recognized."
            ));
        };
        if !allowed.contains(option) {
            return Err(format!(
                "The query option '{name}' is not supported by this endpoint."
            ));
        }
        if seen.contains(option) {
            return Err(format!(
                "Query option '{name}' was specified more than once, but it must be specified at most once."
            ));
        }
        seen.push(option);
        if !matches!(*option, "$skiptoken" | "$top") {
            opts.carry.push((name.clone(), value.clone()));
        }
        match *option {
            "$filter" => opts.filter = Some(filter::parse(value, def)?),
            "$select" => opts.select = parse_select(value, def)?,
            "$top" => {
                opts.top = Some(value.trim().parse().map_err(|_| {
                    format!("Invalid value '{value}' for $top query option found. The $top query option requires a non-negative integer value.")
                })?);
            }
            "$orderby" => opts.orderby = parse_orderby(value, def)?,
            _ => {
                opts.skiptoken = Some(
                    super::lexer::parse_literals(value)
                        .ok_or_else(|| format!("Skip token '{value}' is invalid."))?,
                );
            }
        }
    }
    Ok(opts)
}

fn parse_select(text: &str, def: &EntityDef) -> Result<Option<Vec<String>>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part == "*" {
            return Ok(None);
        }
        if def.kind_of(part).is_none() && !def.has_deferred(part) {
            return Err(format!(
                "No property '{part}' exists in type '{}'.",
                def.type_name
            ));
        }
        out.push(part.to_owned());
    }
    Ok(Some(out))
}

fn parse_orderby(text: &str, def: &EntityDef) -> Result<Vec<(&'static str, bool)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let mut words = part.split_whitespace();
        let name = words.next().unwrap_or_default();
        let desc = match words.next() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(format!(
                    "Syntax error: '{other}' is not 'asc' or 'desc' in $orderby."
                ));
            }
        };
        let Some((field, _)) = def.fields.iter().find(|(f, _)| *f == name) else {
            return Err(format!(
                "No property '{name}' exists in type '{}'.",
                def.type_name
            ));
        };
        if words.next().is_some() {
            return Err(format!("Syntax error in $orderby at '{part}'."));
        }
        out.push((*field, desc));
    }
    Ok(out)
}

/// One page of a collection.
pub(crate) struct Page {
    pub rows: Vec<Row>,
    /// The `$skiptoken` of the next page, when the page is full.
    pub next_token: Option<String>,
    /// `$top` left for the next page.
    pub next_top: Option<usize>,
}

/// Filters, sorts and cuts one page out of `rows`. `Err` is the message for a 400.
pub(crate) fn page(
    mut rows: Vec<Row>,
    opts: &Options,
    def: &EntityDef,
    size: usize,
) -> Result<Page, String> {
    let get = |row: &Row, name: &str| row.get(name).cloned().unwrap_or(Val::Null);
    if let Some(filter) = &opts.filter {
        rows.retain(|row| filter.matches(&|name| get(row, name)));
    }
    let mut keys = opts.orderby.clone();
    if !keys.iter().any(|(f, _)| *f == def.key) {
        keys.push((def.key, false));
    }
    let order = |a: &Row, b: &Row| -> Ordering {
        keys.iter()
            .map(|(f, desc)| {
                let o = compare(&get(a, f), &get(b, f));
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    rows.sort_by(order);
    if let Some(token) = &opts.skiptoken {
        if token.len() != keys.len() {
            return Err("The skip token does not match the sort order of this request.".to_owned());
        }
        let mut after = Row::new();
        for ((f, _), v) in keys.iter().zip(token) {
            after.insert(f, v.clone());
        }
        rows.retain(|row| order(row, &after).is_gt());
    }
    let take = opts.top.map_or(size, |t| t.min(size));
    rows.truncate(take);
    let more = rows.len() == size && opts.top.is_none_or(|t| t > size);
    let next_token = rows.last().filter(|_| more).map(|last| {
        keys.iter()
            .map(|(f, _)| literal_of(def, f, &get(last, f)))
            .collect::<Vec<_>>()
            .join(",")
    });
    Ok(Page {
        rows,
        next_token,
        next_top: opts.top.map(|t| t.saturating_sub(size)),
    })
}

/// OData literal of a property value; Int32 values go without the Int64 `L`.
fn literal_of(def: &EntityDef, field: &str, value: &Val) -> String {
    match (def.kind_of(field), value) {
        (Some(Kind::Int32), Val::Int(n)) => n.to_string(),
        _ => value.literal(),
    }
}

/// The `__next` URL: the request URL with the original options and the new skiptoken.
pub(crate) fn next_link(url_without_query: &str, opts: &Options, page: &Page) -> Option<String> {
    let token = page.next_token.as_ref()?;
    let mut parts: Vec<String> = opts
        .carry
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if let Some(top) = page.next_top {
        parts.push(format!("$top={top}"));
    }
    parts.push(format!("$skiptoken={}", encode(token)));
    Some(format!("{url_without_query}?{}", parts.join("&")))
}

/// Percent-encodes a query component, leaving the characters OData URLs show literally.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$'(),:*!/@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The JSON of one entity: `__metadata`, then the selected properties.
pub(crate) fn render(
    row: &Row,
    def: &EntityDef,
    select: Option<&[String]>,
    set_url: &str,
) -> Value {
    let key = row.get(def.key).cloned().unwrap_or(Val::Null);
    let uri = format!("{set_url}({})", literal_of(def, def.key, &key));
    let wanted = |name: &str| select.is_none_or(|s| s.iter().any(|n| n == name));
    let mut obj = Map::new();
    obj.insert(
        "__metadata".to_owned(),
        json!({"uri": uri, "type": def.type_name}),
    );
    for (name, _) in def.fields.iter().filter(|(n, _)| wanted(n)) {
        obj.insert(
            (*name).to_owned(),
            row.get(name).map_or(Value::Null, Val::to_json),
        );
    }
    for name in def.deferred.iter().filter(|n| wanted(n)) {
        obj.insert(
            (*name).to_owned(),
            json!({"__deferred": {"uri": format!("{uri}/{name}")}}),
        );
    }
    Value::Object(obj)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::entities::ACCOUNTS;
    use super::*;
    use uuid::Uuid;

    fn rows(n: u128) -> Vec<Row> {
        (1..=n)
            .map(|i| {
                let mut r = Row::new();
                r.insert("ID", Val::Guid(Uuid::from_u128(i)));
                r.insert("Name", Val::Str(format!("N{}", i % 3)));
                r
            })
            .collect()
    }

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn pages_by_key_and_carries_the_options() {
        let opts = parse_options(
            &params(&[("$select", "ID,Name")]),
            &ACCOUNTS,
            &["$select", "$skiptoken"],
        )
        .unwrap();
        let p = page(rows(7), &opts, &ACCOUNTS, 3).unwrap();
        assert_eq!(p.rows.len(), 3);
        let token = p.next_token.clone().unwrap();
        assert_eq!(token, format!("guid'{}'", Uuid::from_u128(3)));
        let link = next_link("http://h/api/v1/1/crm/Accounts", &opts, &p).unwrap();
        assert_eq!(
            link,
            format!("http://h/api/v1/1/crm/Accounts?$select=ID,Name&$skiptoken={token}")
        );
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut ps = params(&[("$select", "ID,Name")]);
            if let Some(t) = &token {
                ps.push(("$skiptoken".into(), t.clone()));
            }
            let opts = parse_options(&ps, &ACCOUNTS, &["$select", "$skiptoken"]).unwrap();
            let p = page(rows(6), &opts, &ACCOUNTS, 3).unwrap();
            all.extend(p.rows.iter().map(|r| r["ID"].clone()));
            match p.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(
            all.len(),
            6,
            "a full last page gets a __next to an empty page"
        );
    }

    #[test]
    fn orderby_and_top_shape_the_pages() {
        let all = &["$orderby", "$top", "$skiptoken"];
        let opts = parse_options(
            &params(&[("$orderby", "Name desc"), ("$top", "4")]),
            &ACCOUNTS,
            all,
        )
        .unwrap();
        let p = page(rows(7), &opts, &ACCOUNTS, 3).unwrap();
        let names: Vec<_> = p.rows.iter().map(|r| r["Name"].clone()).collect();
        assert_eq!(
            names,
            vec![
                Val::Str("N2".into()),
                Val::Str("N2".into()),
                Val::Str("N1".into())
            ]
        );
        assert_eq!(p.next_top, Some(1));
        assert!(p.next_token.as_ref().unwrap().starts_with("'N1',guid'"));
        let opts = parse_options(&params(&[("$top", "3")]), &ACCOUNTS, all).unwrap();
        assert!(
            page(rows(7), &opts, &ACCOUNTS, 3)
                .unwrap()
                .next_token
                .is_none()
        );
    }

    #[test]
    fn bad_options_are_refused_with_wcf_wording() {
        let all = &["$filter", "$select", "$top", "$orderby", "$skiptoken"];
        let e = parse_options(&params(&[("$foo", "1")]), &ACCOUNTS, all).unwrap_err();
        assert!(e.contains("system-reserved '$' character"));
        assert!(parse_options(&params(&[("$skip", "1")]), &ACCOUNTS, all).is_err());
        assert!(parse_options(&params(&[("$top", "-1")]), &ACCOUNTS, all).is_err());
        assert!(parse_options(&params(&[("$select", "Nope")]), &ACCOUNTS, all).is_err());
        assert!(parse_options(&params(&[("$orderby", "Name sideways")]), &ACCOUNTS, all).is_err());
        assert!(parse_options(&params(&[("$top", "1"), ("$top", "2")]), &ACCOUNTS, all).is_err());
        assert!(parse_options(&params(&[("$orderby", "Name")]), &ACCOUNTS, &["$filter"]).is_err());
        assert!(parse_options(&params(&[("$skiptoken", "guid'x'")]), &ACCOUNTS, all).is_err());
    }

    #[test]
    fn render_has_metadata_and_selected_fields() {
        let r = &rows(1)[0];
        let v = render(
            r,
            &ACCOUNTS,
            Some(&["Name".to_owned()]),
            "http://h/api/v1/1/crm/Accounts",
        );
        assert_eq!(v["__metadata"]["type"], "Exact.Web.Api.Models.Account");
        assert_eq!(
            v["__metadata"]["uri"],
            format!(
                "http://h/api/v1/1/crm/Accounts(guid'{}')",
                Uuid::from_u128(1)
            )
        );
        assert_eq!(v["Name"], "N1");
        assert!(v.get("ID").is_none());
        assert_eq!(encode("a b&c+d"), "a%20b%26c%2Bd");
    }
}
