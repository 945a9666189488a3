//! Which system can take which canonical entity as a sink target, and whether a target
//! connection has what writing needs; checked at config load so a bad flow never starts.

use switchboard_core::Config;

use crate::Connection;

/// Target entities per system and the canonical entity each is written from.
pub const TARGETS: &[(&str, &str, &str)] = &[
    ("pipedrive", "persons", "contact"),
    ("pipedrive", "organizations", "organization"),
    ("pipedrive", "deals", "deal"),
    ("shopify", "customers", "contact"),
    ("shopify", "orders", "order"),
    ("exact", "accounts", "organization"),
    ("exact", "sales_invoices", "invoice"),
    ("telegram", "messages", "order"),
];

/// Whether `entity` of `connection` can take records of canonical entity `canonical`, and
/// the connection has what writing needs; the message says how to fix it.
pub(crate) fn check_target(
    config: &Config,
    name: &str,
    connection: &Connection,
    entity: &str,
    canonical: &str,
) -> Result<(), String> {
    if let Connection::Generic(g) = connection {
        return match &g.target {
            Some(_) => Ok(()),
            None => Err(format!(
                "connection `{name}` (http) has no `target:` block; add one to write to it"
            )),
        };
    }
    let system = connection.system();
    if !TARGETS
        .iter()
        .any(|(s, e, c)| *s == system && *e == entity && *c == canonical)
    {
        let supported: Vec<String> = TARGETS
            .iter()
            .filter(|(s, _, _)| *s == system)
            .map(|(_, e, c)| format!("`{e}` from `{c}`"))
            .collect();
        return Err(format!(
            "{system} targets take {}; not `{entity}` from `{canonical}`",
            if supported.is_empty() {
                "nothing".to_owned()
            } else {
                supported.join(", ")
            }
        ));
    }
    match connection {
        Connection::Shopify(s) if s.access_token.is_none() => Err(format!(
            "connection `{name}`: writing to Shopify needs access_token"
        )),
        Connection::Telegram(t) if t.bot_token.is_none() || t.notify_chat_id.is_none() => Err(
            format!("connection `{name}`: notifications need bot_token and notify_chat_id"),
        ),
        Connection::Exact(_) if config.secrets_key.is_none() => Err(format!(
            "connection `{name}` rotates refresh tokens, kept encrypted: set secrets_key"
        )),
        Connection::Exact(e)
            if entity == "sales_invoices"
                && (e.target.journal.is_none() || e.target.sales_item.is_none()) =>
        {
            Err(format!(
                "connection `{name}`: invoices need target.journal and target.sales_item"
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use switchboard_core::Config;
    use switchboard_core::config::ConfigError;

    use crate::connections;

    fn flow_to(connection: &str, target: &str, to: &str) -> Result<(), ConfigError> {
        let yaml = format!(
            "kafka: {{bootstrap_servers: 127.0.0.1:9092}}\nregistry: {{url: http://127.0.0.1:1}}\nconnections:\n  src:\n    type: pipedrive\n    api_token: ${{env:CARGO_PKG_NAME}}\n    poll: {{entities: [persons]}}\n  c:\n{connection}flows:\n  - {{name: f, from: src.persons, mapping: m.v1, to: {to}, sinks: [{{target: {target}}}]}}\n"
        );
        connections(&Config::from_yaml(&yaml).unwrap()).map(|_| ())
    }

    #[test]
    fn sink_targets_name_the_bad_key_and_what_is_supported() {
        let shop = "    type: shopify\n    shop_domain: a.myshopify.com\n    api_version: '2025-01'\n    webhook_secret: ${env:CARGO_PKG_NAME}\n    access_token: ${env:CARGO_PKG_NAME}\n";
        assert!(flow_to(shop, "c.customers", "contact").is_ok());
        match flow_to(shop, "c.customers", "deal").unwrap_err() {
            ConfigError::Invalid { key, message } => {
                assert_eq!(key, "flows[0].sinks[0].target");
                assert!(message.contains("`customers` from `contact`"), "{message}");
            }
            other => panic!("{other}"),
        }
        let bot = "    type: telegram\n    bot_token: ${env:CARGO_PKG_NAME}\n";
        assert!(flow_to(bot, "c.messages", "order").is_err());
        let bot =
            "    type: telegram\n    bot_token: ${env:CARGO_PKG_NAME}\n    notify_chat_id: '42'\n";
        assert!(flow_to(bot, "c.messages", "order").is_ok());
        let http = "    type: http\n    target: {base_url: 'http://127.0.0.1:1', path: /c, update_path: /c}\n";
        match flow_to(http, "c.things", "contact").unwrap_err() {
            ConfigError::Invalid { key, .. } => assert_eq!(key, "connections.c.target.update_path"),
            other => panic!("{other}"),
        }
    }
}
