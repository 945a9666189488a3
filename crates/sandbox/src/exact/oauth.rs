//! Exact Online's OAuth2 token rules: authorization codes, access tokens, refresh-token
//! rotation and the too-early-refresh rule, all on the sandbox clock.
//!
//! Contract facts followed (saas-contracts.md §3.1):
//! - Access tokens live **10 minutes** whether used or not (`expires_in` `"600"`, a string).
//! - Authorization codes live **3 minutes** and are single-use.
//! - **Rotation:** every refresh returns a new refresh token; once it is issued all earlier
//!   refresh tokens of that authorization are dead. Reusing one answers **401**
//!   `{"error":"unauthorized_client","error_description":"Old refresh token used."}`
//!   (picqer/exact-php-client issue #644; #640 quotes the same text). The brief expected a
//!   400 `invalid_grant` here; the observed answer is the 401, so that is what is sent.
//! - An unused refresh token expires after **30 days**: 400 `{"error":"invalid_request",
//!   "error_description":"The refresh token expired at <M/d/yyyy h:mm:ss tt> and it is now
//!   <…>."}` (websmurf/laravel-exact-online issue #23).
//! - **Too early:** a new access token can be had only **570 s** after the previous one was
//!   received; earlier answers 400 `{"error":"access_denied","error_description":"Rate limit
//!   exceeded: access_token not expired"}` with header `Reason: TooEarlyToRefreshTokens:
//!   Rate limit exceeded: access_token not expired` (laravel-exact-online issue #31).
//! - A wrong client ID or secret answers 400 `{"error":"invalid_client"}`
//!   (laravel-exact-online issue #28).
//!
//! Stricter choices where sources are silent or disagree:
//! - The 570 s rule is applied exactly (no extra slack), counted from the moment the
//!   current access token of that authorization was issued. A refused refresh does not
//!   rotate: the refresh token stays valid (the error body carries no new token, and
//!   picqer #559's "a new refresh token comes back even on a rate-limit failure" cannot
//!   apply to a body without one).
//! - Once a refresh succeeds, the previous **access** token stops working too (sources
//!   only speak of refresh tokens). This surfaces the concurrent-refresh bug class that
//!   issues #549/#644 describe, instead of hiding it for up to ten minutes.
//!   `ExactConfig::revoke_access_on_refresh` turns this off.
//! - Unknown, revoked or reused authorization codes, a `redirect_uri` that differs from
//!   the one the code was issued for, and revoked refresh tokens answer 400
//!   `invalid_grant` (RFC 6749 §5.2; Exact's own wording for these is not public).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use time::OffsetDateTime;

/// Lifetimes and limits of the token rules (milliseconds of sandbox time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub access_ms: i64,
    pub code_ms: i64,
    pub refresh_idle_ms: i64,
    pub min_refresh_age_ms: i64,
    pub revoke_access_on_refresh: bool,
}

/// A successful token answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_secs: i64,
}

/// Why the token endpoint refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    InvalidClient,
    InvalidRequest(String),
    UnsupportedGrantType,
    InvalidGrant(&'static str),
    OldRefreshToken,
    RefreshExpired { expired_at_ms: i64, now_ms: i64 },
    TooEarly,
}

/// What a bearer token is worth right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessCheck {
    Valid,
    Expired,
    Invalid,
}

#[derive(Debug)]
struct Code {
    issued_ms: i64,
    redirect_uri: String,
    used: bool,
}

#[derive(Debug)]
struct Access {
    chain: u64,
    issued_ms: i64,
    revoked: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum RefreshState {
    Current,
    Rotated,
    Revoked,
}

#[derive(Debug)]
struct Refresh {
    chain: u64,
    issued_ms: i64,
    state: RefreshState,
}

/// Every token the emulator has issued.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Refresh>,
    next_chain: u64,
}

fn random(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(bytes.as_mut_slice());
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Tokens {
    /// A new single-use authorization code for `redirect_uri`. Real codes contain `!`,
    /// which a client must form-encode correctly; so do these.
    pub fn issue_code(&mut self, redirect_uri: &str, now_ms: i64) -> String {
        let code = format!("stampNL001.{}!IAAAA{}", random(6), random(48));
        self.codes.insert(
            code.clone(),
            Code {
                issued_ms: now_ms,
                redirect_uri: redirect_uri.to_owned(),
                used: false,
            },
        );
        code
    }

    fn issue(&mut self, chain: u64, now_ms: i64, rules: &Rules) -> Grant {
        let access_token = format!("AAEAA{}", random(96));
        let refresh_token = format!("Gcp1!IAAAA{}", random(64));
        self.access.insert(
            access_token.clone(),
            Access {
                chain,
                issued_ms: now_ms,
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            Refresh {
                chain,
                issued_ms: now_ms,
                state: RefreshState::Current,
            },
        );
        Grant {
            access_token,
            refresh_token,
            expires_in_secs: rules.access_ms / 1000,
        }
    }

    /// `grant_type=authorization_code`.
    pub fn exchange_code(
        &mut self,
        code: &str,
        redirect_uri: &str,
        now_ms: i64,
        rules: &Rules,
    ) -> Result<Grant, TokenError> {
        let Some(entry) = self.codes.get_mut(code) else {
            return Err(TokenError::InvalidGrant(
                "The authorization code is invalid.",
            ));
        };
        if entry.used {
            return Err(TokenError::InvalidGrant(
                "The authorization code has already been used.",
            ));
        }
        if now_ms - entry.issued_ms >= rules.code_ms {
            return Err(TokenError::InvalidGrant(
                "The authorization code has expired.",
            ));
        }
        if entry.redirect_uri != redirect_uri {
            return Err(TokenError::InvalidGrant(
                "The redirect_uri does not match the authorization request.",
            ));
        }
        entry.used = true;
        self.next_chain += 1;
        let chain = self.next_chain;
        Ok(self.issue(chain, now_ms, rules))
    }

    /// `grant_type=refresh_token`, with rotation and the too-early rule.
    pub fn refresh(
        &mut self,
        token: &str,
        now_ms: i64,
        rules: &Rules,
    ) -> Result<Grant, TokenError> {
        let Some(entry) = self.refresh.get(token) else {
            return Err(TokenError::InvalidGrant("The refresh token is invalid."));
        };
        match entry.state {
            RefreshState::Rotated => return Err(TokenError::OldRefreshToken),
            RefreshState::Revoked => {
                return Err(TokenError::InvalidGrant(
                    "The refresh token has been revoked.",
                ));
            }
            RefreshState::Current => {}
        }
        let expires_ms = entry.issued_ms + rules.refresh_idle_ms;
        if now_ms >= expires_ms {
            return Err(TokenError::RefreshExpired {
                expired_at_ms: expires_ms,
                now_ms,
            });
        }
        let chain = entry.chain;
        let last_access = self
            .access
            .values()
            .filter(|a| a.chain == chain)
            .map(|a| a.issued_ms)
            .max()
            .unwrap_or(i64::MIN);
        if now_ms.saturating_sub(last_access) < rules.min_refresh_age_ms {
            return Err(TokenError::TooEarly);
        }
        for r in self.refresh.values_mut().filter(|r| r.chain == chain) {
            if r.state == RefreshState::Current {
                r.state = RefreshState::Rotated;
            }
        }
        if rules.revoke_access_on_refresh {
            for a in self.access.values_mut().filter(|a| a.chain == chain) {
                a.revoked = true;
            }
        }
        Ok(self.issue(chain, now_ms, rules))
    }

    /// Checks a bearer token.
    pub fn check(&self, token: &str, now_ms: i64, rules: &Rules) -> AccessCheck {
        match self.access.get(token) {
            Some(a) if a.revoked => AccessCheck::Invalid,
            Some(a) if now_ms - a.issued_ms >= rules.access_ms => AccessCheck::Expired,
            Some(_) => AccessCheck::Valid,
            None => AccessCheck::Invalid,
        }
    }

    /// Ages every access token to its expiry, as if ten minutes had passed for it (so
    /// the too-early rule no longer blocks a refresh either).
    pub fn expire_access_tokens(&mut self, now_ms: i64, rules: &Rules) {
        for a in self.access.values_mut() {
            a.issued_ms = a.issued_ms.min(now_ms - rules.access_ms);
        }
    }

    /// Revokes one refresh token (`Some`) or all of them; returns how many were live.
    pub fn revoke_refresh(&mut self, token: Option<&str>) -> usize {
        let mut n = 0;
        for (t, r) in &mut self.refresh {
            if token.is_none_or(|want| want == t) && r.state == RefreshState::Current {
                r.state = RefreshState::Revoked;
                n += 1;
            }
        }
        n
    }
}

/// `10/11/2022 9:18:20 PM`, the format of the refresh-expiry message (UTC here).
pub(crate) fn us_time(ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::new();
    };
    let (hour, half) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{}/{}/{} {hour}:{:02}:{:02} {half}",
        u8::from(t.month()),
        t.day(),
        t.year(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        access_ms: 600_000,
        code_ms: 180_000,
        refresh_idle_ms: 30 * 86_400_000,
        min_refresh_age_ms: 570_000,
        revoke_access_on_refresh: true,
    };

    #[test]
    fn codes_are_single_use_short_lived_and_bound_to_the_redirect() {
        let mut t = Tokens::default();
        let code = t.issue_code("https://app/cb", 0);
        assert!(code.contains('!'));
        assert!(matches!(
            t.exchange_code(&code, "https://other/cb", 1, &RULES),
            Err(TokenError::InvalidGrant(_))
        ));
        assert!(t.exchange_code(&code, "https://app/cb", 1, &RULES).is_ok());
        assert!(matches!(
            t.exchange_code(&code, "https://app/cb", 2, &RULES),
            Err(TokenError::InvalidGrant(_))
        ));
        let late = t.issue_code("https://app/cb", 0);
        assert!(
            t.exchange_code(&late, "https://app/cb", 180_000, &RULES)
                .is_err()
        );
    }

    #[test]
    fn rotation_too_early_and_expiry() {
        let mut t = Tokens::default();
        let code = t.issue_code("cb", 0);
        let first = t.exchange_code(&code, "cb", 0, &RULES).unwrap();
        assert_eq!(first.expires_in_secs, 600);
        assert_eq!(
            t.check(&first.access_token, 599_999, &RULES),
            AccessCheck::Valid
        );
        assert_eq!(
            t.check(&first.access_token, 600_000, &RULES),
            AccessCheck::Expired
        );
        assert_eq!(
            t.refresh(&first.refresh_token, 569_999, &RULES),
            Err(TokenError::TooEarly)
        );
        let second = t.refresh(&first.refresh_token, 570_000, &RULES).unwrap();
        assert_eq!(
            t.check(&first.access_token, 570_000, &RULES),
            AccessCheck::Invalid
        );
        assert_eq!(
            t.refresh(&first.refresh_token, 2_000_000, &RULES),
            Err(TokenError::OldRefreshToken)
        );
        t.expire_access_tokens(600_000, &RULES);
        assert_eq!(
            t.check(&second.access_token, 600_000, &RULES),
            AccessCheck::Expired
        );
        let third = t.refresh(&second.refresh_token, 600_000, &RULES).unwrap();
        let idle = 600_000 + RULES.refresh_idle_ms;
        assert!(matches!(
            t.refresh(&third.refresh_token, idle, &RULES),
            Err(TokenError::RefreshExpired { .. })
        ));
        assert_eq!(t.revoke_refresh(Some(&third.refresh_token)), 1);
        assert!(matches!(
            t.refresh(&third.refresh_token, 700_000, &RULES),
            Err(TokenError::InvalidGrant(_))
        ));
    }

    #[test]
    fn expiry_message_time_format() {
        // 2022-10-11T21:18:20Z, the example in laravel-exact-online #23.
        assert_eq!(us_time(1_665_523_100_000), "10/11/2022 9:18:20 PM");
        assert_eq!(us_time(0), "1/1/1970 12:00:00 AM");
    }
}
