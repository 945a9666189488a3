//! The console's pages, rendered on the server as plain HTML with inline SVG sparklines: no
//! JavaScript, no front-end toolchain. Every value written into a page goes through
//! [`esc`], so a record's content can never inject markup.

use crate::charts::Series;
use crate::overview::{ConnectionRow, Overview};
use crate::partial::PartialFailure;
use crate::trace::Trace;

/// HTML-escapes `s`.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page with the console's frame.
pub fn page(title: &str, refresh: bool, body: &str) -> String {
    let meta = if refresh {
        r#"<meta http-equiv="refresh" content="10">"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8">{meta}<title>{t} · Switchboard</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}
.ok{{color:#17803d}}.degraded,.stalled{{color:#b45309}}.paused{{color:#b91c1c}}
nav a{{margin-right:1em}}pre{{background:#f6f6f6;padding:6px;white-space:pre-wrap;word-break:break-all;max-width:60em;margin:0}}</style>
</head><body><nav><a href="/">Dashboard</a><a href="/trace">Record trace</a></nav><h1>{t}</h1>{body}</body></html>"#,
        t = esc(title)
    )
}

/// "N minutes ago".
pub fn ago(now: i64, at: Option<i64>) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let secs = ((now - at) / 1000).max(0);
    match secs {
        0..=59 => format!("{secs} seconds ago"),
        60..=3599 => format!("{} minutes ago", secs / 60),
        _ => format!("{} hours ago", secs / 3600),
    }
}

/// An inline SVG line of `points` (oldest first), scaled to its own maximum, with the
/// newest value as its tooltip.
pub fn sparkline(label: &str, colour: &str, points: &[f64]) -> String {
    if points.len() < 2 {
        return String::new();
    }
    let max = points.iter().cloned().fold(1.0_f64, f64::max);
    let step = 120.0 / (points.len() - 1) as f64;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, 20.0 - v / max * 18.0))
        .collect();
    let last = points.last().copied().unwrap_or(0.0);
    format!(
        r#"<svg class="spark" width="120" height="22" role="img" aria-label="{l}"><title>{l}: {last:.0} now, {max:.0} max</title><polyline fill="none" stroke="{colour}" points="{}"/></svg>"#,
        coords.join(" "),
        l = esc(label),
    )
}

/// The three sparklines of a connection's last hour.
pub fn charts(s: &Series) -> String {
    if s.lag.len() < 2 {
        return "<small>collecting…</small>".to_owned();
    }
    format!(
        "<small>throughput</small> {}<br><small>errors</small> {}<br><small>lag</small> {}",
        sparkline("records per minute", "#17803d", &s.throughput),
        sparkline("records to the DLQ", "#b91c1c", &s.errors),
        sparkline("messages behind", "#2563eb", &s.lag),
    )
}

fn state_class(state: &str) -> &'static str {
    match state {
        "ok" => "ok",
        "stalled" => "stalled",
        s if s.starts_with("paused") => "paused",
        _ => "degraded",
    }
}

fn opt(n: Option<impl std::fmt::Display>) -> String {
    n.map_or("-".to_owned(), |n| n.to_string())
}

/// "98.5 %", or "—" when unknown.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or("—".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// "p95 1.2 s" (or "p95 850 ms" below a second), or "—" when unknown.
pub fn p95(ms: Option<i64>) -> String {
    match ms {
        None => "—".to_owned(),
        Some(ms) if ms < 1000 => format!("p95 {ms} ms"),
        Some(ms) => format!("p95 {:.1} s", ms as f64 / 1000.0),
    }
}

/// A target's success rates (5 min / 1 h) and p95 latency; empty for a source.
fn rates(c: &ConnectionRow) -> (String, String) {
    if !c.roles.contains(&"target") {
        return (String::new(), String::new());
    }
    (
        format!(
            "{} / {}",
            percent(c.success_rate_5m),
            percent(c.success_rate_1h)
        ),
        p95(c.p95_latency_ms),
    )
}

/// The dashboard: one row per connection (with its charts from `charts`), then the flow
/// instances that need review (`None`: not known yet).
pub fn dashboard(
    o: &Overview,
    charts: &dyn Fn(&str) -> String,
    partial: Option<&[PartialFailure]>,
) -> String {
    let mut rows = String::new();
    for c in &o.connections {
        rows.push_str(&row(o.at, c, &charts(&c.name)));
    }
    let body = format!(
        r#"<table id="connections"><tr><th>Connection</th><th>State</th><th>Last successful sync</th>
<th>Success (5 min / 1 h)</th><th>Latency</th><th>Lag (messages)</th><th>Lag (seconds)</th><th>Last hour</th><th>Retry backlog</th><th>DLQ depth</th><th>Parked keys</th><th>Recent alerts</th></tr>{rows}</table>
<h2>Needs review</h2>{review}
<p>Updated {}. JSON: <a href="/api/v1/connections">/api/v1/connections</a>, <a href="/api/v1/lag">/api/v1/lag</a>, <a href="/api/v1/partial-failures">/api/v1/partial-failures</a>.</p>"#,
        esc(&ago(crate::now(), Some(o.at))),
        review = partial_failures(o.at, partial),
    );
    page("Connections", true, &body)
}

/// Flow instances delivered to some targets and dead-lettered at another.
pub fn partial_failures(now: i64, partial: Option<&[PartialFailure]>) -> String {
    let Some(partial) = partial else {
        return "<p>Not known yet (sb.deliveries not read).</p>".to_owned();
    };
    if partial.is_empty() {
        return r#"<p id="partial-failures">No flow instance is partly delivered.</p>"#.to_owned();
    }
    let mut out = String::from(
        r#"<table id="partial-failures"><tr><th>Canonical record</th><th>Source record</th><th>Delivered</th><th>Failed</th><th>Other</th><th>When</th></tr>"#,
    );
    for p in partial {
        let delivered: Vec<String> = p
            .delivered
            .iter()
            .map(|t| {
                format!(
                    "{} → {}",
                    esc(&t.connection),
                    esc(t.native_id.as_deref().unwrap_or("?"))
                )
            })
            .collect();
        let failed: Vec<String> = p
            .failed
            .iter()
            .map(|t| {
                format!(
                    r#"<a href="/dlq/{c}">{c}</a>: {}"#,
                    esc(t.reason.as_deref().unwrap_or("")),
                    c = esc(&t.connection)
                )
            })
            .collect();
        let other: Vec<String> = p
            .other
            .iter()
            .map(|t| format!("{}: {:?}", esc(&t.connection), t.state))
            .collect();
        let source = match &p.record_id {
            Some(id) => format!(
                r#"<a href="/trace?id={}">{}</a>"#,
                esc(&percent_encode(id)),
                esc(id)
            ),
            None => "-".to_owned(),
        };
        out.push_str(&format!(
            "<tr class=\"partial\"><td>{} {}</td><td>{source}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.entity),
            esc(&p.canonical_id),
            delivered.join("<br>"),
            failed.join("<br>"),
            other.join("<br>"),
            esc(&ago(now, Some(p.at))),
        ));
    }
    out.push_str("</table>");
    out
}

/// `s` fit for a query value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn row(now: i64, c: &ConnectionRow, spark: &str) -> String {
    let alerts: Vec<String> = c
        .alerts
        .iter()
        .take(3)
        .map(|a| {
            format!(
                "{} {} ({})",
                esc(&a.status),
                esc(&a.kind),
                esc(&ago(now, Some(a.at)))
            )
        })
        .collect();
    let (rate, latency) = rates(c);
    format!(
        r#"<tr class="connection" data-connection="{n}"><td><a href="/connections/{n}">{n}</a> <small>{kind} · {roles}</small></td>
<td class="state {cls}">{state}</td><td class="last-sync" data-at="{at}">last successful sync: {ago}</td>
<td class="success-rate">{rate}</td><td class="latency">{latency}</td><td>{lag}</td><td>{lag_s}</td><td>{spark}</td><td class="retry-backlog">{retry}</td><td><a href="/dlq/{n}">{dlq}</a></td><td>{parked}</td><td>{alerts}</td></tr>"#,
        n = esc(&c.name),
        kind = esc(&c.kind),
        roles = esc(&c.roles.join("+")),
        cls = state_class(&c.state),
        state = esc(&c.state),
        at = c.last_sync_at.unwrap_or(0),
        ago = esc(&ago(now, c.last_sync_at)),
        lag = c.lag,
        lag_s = c.lag_seconds,
        dlq = opt(c.dlq_depth),
        parked = opt(c.parked_keys),
        retry = opt(c.retry_backlog),
        alerts = alerts.join("<br>"),
        rate = esc(&rate),
        latency = esc(&latency),
    )
}

/// A connection's page: its row, its charts, its recent errors (DLQ records) and alerts.
pub fn connection(
    o: &Overview,
    c: &ConnectionRow,
    charts: &str,
    errors: &[switchboard_core::dlq::DlqEntry],
) -> String {
    let mut body = format!(
        "<p>State: <b class=\"{}\">{}</b> {}</p><p>Last successful sync: {}</p><h2>Last hour</h2><p>{charts}</p>",
        state_class(&c.state),
        esc(&c.state),
        esc(c.message.as_deref().unwrap_or("")),
        esc(&ago(o.at, c.last_sync_at))
    );
    let (rate, latency) = rates(c);
    if !rate.is_empty() {
        body.push_str(&format!(
            r#"<p>Success rate (5 min / 1 h): <span class="success-rate">{}</span>. Source to target: <span class="latency">{}</span> (last 5 min).</p>"#,
            esc(&rate),
            esc(&latency)
        ));
    }
    body.push_str("<h2>Recent errors</h2>");
    body.push_str(&dlq_table(errors, None));
    body.push_str("<h2>Alerts</h2><ul>");
    for a in &c.alerts {
        body.push_str(&format!(
            "<li>{} {} — {} ({})</li>",
            esc(&a.status),
            esc(&a.kind),
            esc(&a.message),
            esc(&ago(o.at, Some(a.at)))
        ));
    }
    body.push_str("</ul>");
    page(&format!("Connection {}", c.name), false, &body)
}

/// A DLQ table; with `actions` (the connection), each open failed record gets redrive and
/// discard buttons that lead to a confirmation page.
pub fn dlq_table(entries: &[switchboard_core::dlq::DlqEntry], actions: Option<&str>) -> String {
    let mut out = String::from(
        "<table class=\"dlq\"><tr><th>ID</th><th>Key</th><th>Class</th><th>Message</th><th>Attempts</th><th>First failure</th><th>Parked</th><th>Handled</th><th></th></tr>",
    );
    for e in entries {
        let buttons = match actions {
            Some(conn) if !e.parked && e.handled.is_none() => format!(
                r#"<form method="get" action="/dlq/{c}/confirm"><input type="hidden" name="id" value="{id}">
<button name="action" value="redrive">Redrive…</button> <button name="action" value="discard">Discard…</button></form>"#,
                c = esc(conn),
                id = esc(&e.id())
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{buttons}</td></tr>",
            esc(&e.id()),
            esc(&e.key),
            esc(e.class.as_deref().unwrap_or("-")),
            esc(e.message.as_deref().unwrap_or("")),
            e.attempts.map_or("-".to_owned(), |a| a.to_string()),
            esc(e.first_failed_at.as_deref().unwrap_or("-")),
            if e.parked { "yes" } else { "no" },
            esc(e.handled.as_deref().unwrap_or("-")),
        ));
    }
    out.push_str("</table>");
    out
}

/// The confirmation page of a DLQ action: what will be sent, and the button that sends it.
pub fn confirm(
    connection: &str,
    action: &str,
    id: &str,
    plan: &[switchboard_core::dlq::DlqEntry],
) -> String {
    let body = format!(
        r#"<p>{action} record {id} of <b>{c}</b>. These {n} record(s) go to the retry topic, in this order:</p>{table}
<form method="post" action="/dlq/{c}/{action}"><input type="hidden" name="id" value="{id}">
<button type="submit">Confirm {action}</button> <a href="/dlq/{c}">Cancel</a></form>"#,
        action = esc(action),
        id = esc(id),
        c = esc(connection),
        n = plan.len(),
        table = dlq_table(plan, None),
    );
    page(&format!("Confirm {action}"), false, &body)
}

/// The record trace page (a form, and the trace if one was asked for).
pub fn trace(id: Option<&str>, t: Option<&Trace>) -> String {
    let mut body = format!(
        r#"<form method="get" action="/trace"><label>Source record ID <input name="id" value="{}"></label> <button>Trace</button></form>"#,
        esc(id.unwrap_or(""))
    );
    if let Some(t) = t {
        body.push_str(&format!(
            "<p>Canonical IDs: {}</p><table id=\"stages\"><tr><th>Stage</th><th>Topic</th><th>Position</th><th>Time</th><th>Summary</th><th>Detail</th></tr>",
            esc(&t.canonical_ids.join(", "))
        ));
        for s in &t.stages {
            body.push_str(&format!(
                "<tr class=\"stage stage-{st}\"><td>{st}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
                esc(&s.topic),
                esc(&s.position),
                esc(&crate::rfc3339(s.at)),
                esc(&s.summary),
                esc(&s.detail.to_string()),
                st = s.stage,
            ));
        }
        body.push_str("</table>");
        if t.stages.is_empty() {
            body.push_str("<p>Nothing found for this ID.</p>");
        }
    }
    page("Record trace", false, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::audit::{DeliveryOutcome, DeliveryState};

    #[test]
    fn rates_and_latency_read_as_percent_and_seconds_or_a_dash() {
        assert_eq!(percent(Some(0.985)), "98.5 %");
        assert_eq!(percent(Some(1.0)), "100.0 %");
        assert_eq!(percent(None), "—");
        assert_eq!(p95(Some(1_234)), "p95 1.2 s");
        assert_eq!(p95(Some(850)), "p95 850 ms");
        assert_eq!(p95(None), "—");
    }

    #[test]
    fn sparklines_have_one_point_per_value_and_need_two() {
        assert_eq!(sparkline("lag", "#000", &[1.0]), "");
        let svg = sparkline("lag", "#000", &[0.0, 5.0, 10.0]);
        assert!(
            svg.contains(r#"points="0.0,20.0 60.0,11.0 120.0,2.0""#),
            "{svg}"
        );
        assert!(svg.contains("<title>lag: 10 now, 10 max</title>"), "{svg}");
    }

    #[test]
    fn partial_failures_are_escaped_and_link_to_the_trace() {
        let outcome = |connection: &str, state| DeliveryOutcome {
            at: 0,
            canonical_id: "c-1".into(),
            entity: "order".into(),
            record_id: Some("a b".into()),
            connection: connection.into(),
            state,
            native_id: Some("n-1".into()),
            reason: Some("<script>x</script>".into()),
            source_at: None,
        };
        let p = crate::partial::group([
            outcome("crm", DeliveryState::Delivered),
            outcome("erp", DeliveryState::DeadLettered),
        ]);
        let html = partial_failures(0, Some(&p));
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "{html}"
        );
        assert!(html.contains(r#"href="/trace?id=a%20b""#), "{html}");
        assert!(html.contains("crm → n-1"), "{html}");
        assert!(partial_failures(0, None).contains("Not known yet"));
    }
}
