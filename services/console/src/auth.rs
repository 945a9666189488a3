//! Who may do what in the console: a bearer token, or the password of HTTP basic auth
//! (any user name), compared in constant time with `console.read_token` and
//! `console.admin_token`.
//!
//! Guarantee: reads need a credential only when `read_token` is set; admin actions
//! (redrive, discard, replay) always need the admin token: 401 without a valid credential,
//! 403 with the read-only one (or when no admin token is configured). Tokens are never
//! logged or echoed.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use subtle::ConstantTimeEq;
use switchboard_core::config::ConsoleConfig;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// No valid credential.
    Anonymous,
    /// May read pages and the API.
    Read,
    /// May also redrive, discard and replay.
    Admin,
}

/// The role the request's credential grants.
pub fn role(headers: &HeaderMap, config: &ConsoleConfig) -> Role {
    let Some(token) = credential(headers) else {
        return Role::Anonymous;
    };
    let matches = |secret: &Option<switchboard_core::Secret>| {
        secret
            .as_ref()
            .is_some_and(|s| bool::from(s.expose().as_bytes().ct_eq(token.as_bytes())))
    };
    if matches(&config.admin_token) {
        Role::Admin
    } else if matches(&config.read_token) {
        Role::Read
    } else {
        Role::Anonymous
    }
}

/// Allows a read, or says why not.
pub fn require_read(headers: &HeaderMap, config: &ConsoleConfig) -> Result<Role, StatusCode> {
    let role = role(headers, config);
    if config.read_token.is_none() || role >= Role::Read {
        Ok(role)
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

/// Allows an admin action, or says why not (401 no credential, 403 not admin).
pub fn require_admin(headers: &HeaderMap, config: &ConsoleConfig) -> Result<(), StatusCode> {
    match role(headers, config) {
        Role::Admin => Ok(()),
        Role::Read => Err(StatusCode::FORBIDDEN),
        Role::Anonymous if config.admin_token.is_none() && credential(headers).is_some() => {
            Err(StatusCode::FORBIDDEN)
        }
        Role::Anonymous => Err(StatusCode::UNAUTHORIZED),
    }
}

fn credential(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::Secret;

    fn config() -> ConsoleConfig {
        ConsoleConfig {
            admin_token: Some(Secret::from_value("admin-t")),
            read_token: Some(Secret::from_value("read-t")),
            ..ConsoleConfig::default()
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_grant_their_roles() {
        let c = config();
        assert_eq!(role(&with("Bearer admin-t"), &c), Role::Admin);
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:read-t");
        assert_eq!(role(&with(&format!("Basic {basic}")), &c), Role::Read);
        assert_eq!(role(&with("Bearer nope"), &c), Role::Anonymous);
        assert_eq!(role(&HeaderMap::new(), &c), Role::Anonymous);
    }

    #[test]
    fn admin_actions_are_401_then_403() {
        let c = config();
        assert_eq!(
            require_admin(&HeaderMap::new(), &c),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            require_admin(&with("Bearer read-t"), &c),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(require_admin(&with("Bearer admin-t"), &c), Ok(()));
        assert_eq!(
            require_read(&HeaderMap::new(), &c),
            Err(StatusCode::UNAUTHORIZED)
        );
    }
}
