//! Kafka security settings (`kafka.security`): SASL (SCRAM or PLAIN) and TLS, applied to
//! every Kafka client a service creates (producers, consumers, admin) through
//! [`client_config`](crate::kafka::client_config), so no client can be left on plaintext by
//! accident.
//!
//! The password and the key password are [`Secret`] references (`${env:..}` / `${file:..}`),
//! resolved at load time and handed only to librdkafka; certificates and keys are paths to
//! mounted files. Validation names the key that is wrong and says how to fix it, before any
//! client is built: librdkafka's own errors for a missing CA file or an unset mechanism only
//! appear later, as connection failures, far from their cause.

use std::path::{Path, PathBuf};

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::Secret;
use crate::config::ConfigError;

/// `kafka.security`: how clients authenticate to the brokers and protect the connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// The listener's protocol (Kafka's `security.protocol`).
    #[serde(default)]
    pub protocol: SecurityProtocol,
    /// SASL credentials; required with `SASL_PLAINTEXT` and `SASL_SSL`.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// TLS settings; only with `SSL` and `SASL_SSL` (without it the system CAs are trusted).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SecurityProtocol {
    /// No authentication, no encryption (a local broker, a private network).
    #[default]
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    /// SASL authentication over plaintext.
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// TLS, optionally with a client certificate (mutual TLS).
    #[serde(rename = "SSL")]
    Ssl,
    /// SASL authentication over TLS: MSK SCRAM, Confluent Cloud, Redpanda Cloud, Strimzi.
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// The value librdkafka expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// `kafka.security.sasl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `SCRAM-SHA-512` (the default), `SCRAM-SHA-256` or `PLAIN` (Confluent Cloud API keys;
    /// only over TLS).
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// The Kafka user (for Confluent Cloud: the API key).
    pub username: String,
    /// The user's password, by reference: `${env:NAME}` or `${file:/path}`.
    pub password: Secret,
}

/// Kafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512: what MSK and Strimzi's `scram-sha-512` authentication use.
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// PLAIN: the password travels as it is, so only allowed over TLS.
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    /// The value librdkafka expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::Plain => "PLAIN",
        }
    }
}

/// `kafka.security.tls`: PEM files, as Kubernetes mounts them from a Secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle that signed the brokers' certificates; unset trusts the system CAs (cloud
    /// services with public certificates).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (needs `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key of the client certificate (needs `cert_file`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted `key_file`, by reference.
    #[serde(default)]
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host connected to (default true).
    /// Turn off only for brokers addressed by names their certificates lack.
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
}

fn default_true() -> bool {
    true
}

/// librdkafka properties that carry credentials or security settings: they belong under
/// `kafka.security`, where secrets are references and the combination is checked.
const RESERVED_PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl.key.password",
];

impl KafkaSecurity {
    /// Checks the combination, and that every named file is readable. `properties` are the
    /// operator's extra librdkafka properties (`kafka.properties`), which must not bypass
    /// this section.
    pub fn validate<'a>(
        &self,
        properties: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), ConfigError> {
        for key in properties {
            if RESERVED_PROPERTIES.contains(&key.as_str()) {
                return Err(ConfigError::invalid(
                    format!("kafka.properties.{key}"),
                    "security settings go under `kafka.security` (protocol, sasl, tls), where \
                     secrets are references",
                ));
            }
        }
        let protocol = self.protocol.as_str();
        match (&self.sasl, self.protocol.uses_sasl()) {
            (None, true) => {
                return Err(ConfigError::invalid(
                    "kafka.security.sasl",
                    format!("protocol {protocol} needs `sasl: {{mechanism, username, password}}`"),
                ));
            }
            (Some(_), false) => {
                return Err(ConfigError::invalid(
                    "kafka.security.sasl",
                    format!(
                        "SASL is not used with protocol {protocol}: set protocol to \
                         SASL_PLAINTEXT or SASL_SSL, or remove `sasl`"
                    ),
                ));
            }
            (Some(sasl), true) => {
                if sasl.username.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        "kafka.security.sasl.username",
                        "must not be empty",
                    ));
                }
                if sasl.mechanism == SaslMechanism::Plain && !self.protocol.uses_tls() {
                    return Err(ConfigError::invalid(
                        "kafka.security.sasl.mechanism",
                        "PLAIN sends the password as it is: use it only with protocol SASL_SSL",
                    ));
                }
            }
            (None, false) => {}
        }
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        if !self.protocol.uses_tls() {
            return Err(ConfigError::invalid(
                "kafka.security.tls",
                format!(
                    "TLS is not used with protocol {protocol}: set protocol to SSL or SASL_SSL, \
                     or remove `tls`"
                ),
            ));
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "kafka.security.tls.key_file",
                    "a client certificate (`cert_file`) needs its private key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "kafka.security.tls.cert_file",
                    "a private key (`key_file`) needs its client certificate",
                ));
            }
            _ => {}
        }
        if tls.key_password.is_some() && tls.key_file.is_none() {
            return Err(ConfigError::invalid(
                "kafka.security.tls.key_password",
                "set only together with `key_file`",
            ));
        }
        for (key, path) in [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if let Some(path) = path {
                readable(&format!("kafka.security.tls.{key}"), path)?;
            }
        }
        Ok(())
    }

    /// Sets librdkafka's properties for this section on `config`.
    pub fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanism", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        if let Some(tls) = &self.tls {
            let path = |p: &Path| p.to_string_lossy().into_owned();
            if let Some(ca) = &tls.ca_file {
                config.set("ssl.ca.location", path(ca));
            }
            if let Some(cert) = &tls.cert_file {
                config.set("ssl.certificate.location", path(cert));
            }
            if let Some(key) = &tls.key_file {
                config.set("ssl.key.location", path(key));
            }
            if let Some(password) = &tls.key_password {
                config.set("ssl.key.password", password.expose());
            }
            let algorithm = if tls.verify_hostname { "https" } else { "none" };
            config.set("ssl.endpoint.identification.algorithm", algorithm);
        }
    }
}

fn readable(key: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path).map(drop).map_err(|e| {
        ConfigError::invalid(
            key,
            format!(
                "cannot read {}: {} (mount the file, or fix the path)",
                path.display(),
                e.kind()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const BASE: &str = "registry: {url: 'http://r'}\nkafka:\n  bootstrap_servers: 'b:9092'\n";

    fn load(security: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("{BASE}  security: {security}\n")).map_err(|e| e.to_string())
    }

    fn props(config: &Config) -> std::collections::HashMap<String, String> {
        let client = crate::kafka::client_config(&config.kafka);
        client
            .config_map()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn scram_over_tls_reaches_every_client() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ca.pem", "-----BEGIN CERTIFICATE-----\n")?;
            jail.set_env("SB_TEST_KAFKA_PASSWORD", "pw-from-env");
            let ca = jail.directory().join("ca.pem");
            let config = load(&format!(
                "{{protocol: SASL_SSL, sasl: {{mechanism: SCRAM-SHA-256, username: sb, \
                 password: '${{env:SB_TEST_KAFKA_PASSWORD}}'}}, tls: {{ca_file: '{}'}}}}",
                ca.display()
            ))?;
            let p = props(&config);
            assert_eq!(p["security.protocol"], "SASL_SSL");
            assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-256");
            assert_eq!(p["sasl.username"], "sb");
            // rdkafka masks passwords in its own map; the real value is set underneath.
            assert_eq!(p["sasl.password"], "[sanitized for safety]");
            let client = crate::kafka::client_config(&config.kafka);
            assert_eq!(client.get("sasl.password"), Some("pw-from-env"));
            assert_eq!(p["ssl.ca.location"], ca.display().to_string());
            assert_eq!(p["ssl.endpoint.identification.algorithm"], "https");
            // The password never shows in the config's Debug output.
            assert!(!format!("{config:?}").contains("pw-from-env"));
            Ok(())
        });
    }

    #[test]
    fn default_is_plaintext_and_sets_no_credentials() {
        let config = load("{}").unwrap();
        let p = props(&config);
        assert_eq!(p["security.protocol"], "PLAINTEXT");
        assert!(!p.contains_key("sasl.username"));
    }

    #[test]
    fn sasl_protocol_without_credentials_names_the_key() {
        let err = load("{protocol: SASL_PLAINTEXT}").unwrap_err();
        assert!(
            err.starts_with("config key `kafka.security.sasl`:"),
            "{err}"
        );
    }

    #[test]
    fn inline_password_is_refused() {
        let err =
            load("{protocol: SASL_PLAINTEXT, sasl: {username: u, password: hunter2}}").unwrap_err();
        assert!(err.contains("references"), "{err}");
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn unknown_protocol_and_mechanism_are_refused() {
        let err = load("{protocol: TLS}").unwrap_err();
        assert!(err.contains("protocol"), "{err}");
        let err = load(
            "{protocol: SASL_SSL, sasl: {mechanism: GSSAPI, username: u, password: '${env:X}'}}",
        )
        .unwrap_err();
        assert!(err.contains("mechanism"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn plain_needs_tls_and_sasl_needs_a_sasl_protocol() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SB_TEST_PW", "x");
            let sasl = "sasl: {mechanism: PLAIN, username: u, password: '${env:SB_TEST_PW}'}";
            let err = load(&format!("{{protocol: SASL_PLAINTEXT, {sasl}}}")).unwrap_err();
            assert!(
                err.starts_with("config key `kafka.security.sasl.mechanism`:"),
                "{err}"
            );
            let err = load(&format!("{{protocol: SSL, {sasl}}}")).unwrap_err();
            assert!(
                err.starts_with("config key `kafka.security.sasl`:"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn tls_files_are_checked_and_paired() {
        let err = load("{protocol: SSL, tls: {ca_file: /nonexistent/ca.pem}}").unwrap_err();
        assert!(
            err.starts_with("config key `kafka.security.tls.ca_file`: cannot read /nonexistent"),
            "{err}"
        );
        let err = load("{protocol: SSL, tls: {cert_file: /x.pem}}").unwrap_err();
        assert!(
            err.starts_with("config key `kafka.security.tls.key_file`:"),
            "{err}"
        );
        let err = load("{protocol: PLAINTEXT, tls: {}}").unwrap_err();
        assert!(err.starts_with("config key `kafka.security.tls`:"), "{err}");
    }

    #[test]
    fn credentials_in_raw_properties_are_refused() {
        let err = Config::from_yaml(&format!("{BASE}  properties: {{sasl.password: hunter2}}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config key `kafka.properties.sasl.password`:"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
