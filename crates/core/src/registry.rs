//! The schema registry's Confluent-compatible REST API, as far as the CLI and the services need it: list
//! subjects, look a schema up in a subject, test compatibility, register.
//!
//! Guarantee: a refusal always carries the registry's own reason. Confluent and Redpanda
//! give it in `messages` of `?verbose=true`; Apicurio's ccompat API answers only
//! `{"is_compatible": false}`, so for an Apicurio URL (`…/apis/ccompat/…`) the reason comes
//! from a dry run of the same version on its native v3 API, which registers nothing.

use std::time::Duration;

use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};

use crate::config::{BasicAuth, RegistryConfig};

/// Content type of the Confluent API.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Confluent error code: the subject does not exist.
const SUBJECT_NOT_FOUND: i64 = 40401;

/// A registry request that could not be made or was answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The URL does not parse.
    #[error("registry URL `{0}` is not a valid http(s) URL")]
    BadUrl(String),
    /// No answer (connection refused, timeout, …).
    #[error("registry at {url} did not answer")]
    Unreachable {
        /// The request URL.
        url: String,
        /// What went wrong.
        source: reqwest::Error,
    },
    /// An answer that cannot be used.
    #[error("registry answered {status} to {url}: {body}")]
    Unexpected {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body, as text.
        body: String,
    },
}

/// Where a schema stands in a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The subject does not exist.
    NoSubject,
    /// The subject exists but does not hold this schema.
    NotInSubject,
    /// The subject holds this schema.
    Registered {
        /// Schema ID, as in Confluent-framed bytes.
        id: u32,
        /// Version within the subject.
        version: u32,
    },
}

/// The registry's verdict on a schema for a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted (compatible, or registered).
    Accepted,
    /// Refused, with the registry's reasons (never empty).
    Refused(Vec<String>),
}

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct Registry {
    http: Client,
    base: Url,
    auth: Option<BasicAuth>,
}

impl Registry {
    /// A client of the Confluent-compatible API at `url`.
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let base = Url::parse(url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| RegistryError::BadUrl(url.to_owned()))?;
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| RegistryError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            http,
            base,
            auth: None,
        })
    }

    /// A client of the registry a service is configured with, its credentials included.
    pub fn for_config(config: &RegistryConfig) -> Result<Self, RegistryError> {
        Ok(Self {
            auth: config.basic_auth.clone(),
            ..Self::new(&config.url)?
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<(StatusCode, Value), RegistryError> {
        let request = match &self.auth {
            Some(auth) => request.basic_auth(&auth.username, Some(auth.password.expose())),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn post(&self, url: Url, body: &Value) -> Result<(StatusCode, Value), RegistryError> {
        let request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body.to_string());
        self.send(request, &url).await
    }

    fn unexpected(url: &Url, status: StatusCode, body: &Value) -> RegistryError {
        RegistryError::Unexpected {
            url: url.to_string(),
            status: status.as_u16(),
            body: body.to_string(),
        }
    }

    /// Every subject the registry holds.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let url = self.url(&["subjects"]);
        let (status, body) = self.send(self.http.get(url.clone()), &url).await?;
        match (status.is_success(), body.as_array()) {
            (true, Some(list)) => Ok(list
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()),
            _ => Err(Self::unexpected(&url, status, &body)),
        }
    }

    /// Whether `subject` holds `schema` (`POST /subjects/<subject>`).
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Lookup, RegistryError> {
        let url = self.url(&["subjects", subject]);
        let (status, body) = self.post(url.clone(), &json!({ "schema": schema })).await?;
        if status.is_success() {
            let field = |name: &str| body[name].as_u64().and_then(|n| u32::try_from(n).ok());
            return match (field("id"), field("version")) {
                (Some(id), Some(version)) => Ok(Lookup::Registered { id, version }),
                _ => Err(Self::unexpected(&url, status, &body)),
            };
        }
        match (status, body["error_code"].as_i64()) {
            (StatusCode::NOT_FOUND, Some(SUBJECT_NOT_FOUND)) => Ok(Lookup::NoSubject),
            (StatusCode::NOT_FOUND, _) => Ok(Lookup::NotInSubject),
            _ => Err(Self::unexpected(&url, status, &body)),
        }
    }

    /// Whether `schema` is compatible with the latest version of `subject`
    /// (`POST /compatibility/subjects/<subject>/versions/latest?verbose=true`). A subject
    /// that does not exist accepts anything.
    pub async fn compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Verdict, RegistryError> {
        let mut url = self.url(&["compatibility", "subjects", subject, "versions", "latest"]);
        url.set_query(Some("verbose=true"));
        let (status, body) = self.post(url.clone(), &json!({ "schema": schema })).await?;
        if status == StatusCode::NOT_FOUND && body["error_code"].as_i64() == Some(SUBJECT_NOT_FOUND)
        {
            return Ok(Verdict::Accepted);
        }
        match (status.is_success(), body["is_compatible"].as_bool()) {
            (true, Some(true)) => Ok(Verdict::Accepted),
            (true, Some(false)) => {
                let mut reasons: Vec<String> = body["messages"]
                    .as_array()
                    .map(|m| m.iter().map(reason_text).collect())
                    .unwrap_or_default();
                if reasons.is_empty() {
                    reasons = self.apicurio_reasons(subject, schema).await;
                }
                if reasons.is_empty() {
                    reasons.push(
                        "the registry gave no reason; `switchboard schemas register` shows the one it gives on refusal"
                            .to_owned(),
                    );
                }
                Ok(Verdict::Refused(reasons))
            }
            _ => Err(Self::unexpected(&url, status, &body)),
        }
    }

    /// Registers `schema` under `subject` (`POST /subjects/<subject>/versions`). Registering
    /// a schema the subject already holds changes nothing.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<Verdict, RegistryError> {
        let url = self.url(&["subjects", subject, "versions"]);
        let (status, body) = self.post(url.clone(), &json!({ "schema": schema })).await?;
        if status.is_success() && body["id"].is_u64() {
            return Ok(Verdict::Accepted);
        }
        if status == StatusCode::CONFLICT || status == StatusCode::UNPROCESSABLE_ENTITY {
            let reason = body["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| body.to_string());
            return Ok(Verdict::Refused(vec![reason]));
        }
        Err(Self::unexpected(&url, status, &body))
    }

    /// Apicurio's reasons for refusing `schema` in `subject`, from a dry run on its native
    /// API (`/apis/registry/v3`, group `default`, where ccompat subjects live). Empty when
    /// the registry is not Apicurio or the dry run says nothing useful.
    async fn apicurio_reasons(&self, subject: &str, schema: &str) -> Vec<String> {
        let Some((root, _)) = self.base.as_str().split_once("/apis/ccompat/") else {
            return Vec::new();
        };
        let Ok(mut url) = Url::parse(&format!("{root}/apis/registry/v3")) else {
            return Vec::new();
        };
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(["groups", "default", "artifacts", subject, "versions"]);
        }
        url.set_query(Some("dryRun=true"));
        let body = json!({"content": {"content": schema, "contentType": "application/json"}});
        let request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let Ok((status, answer)) = self.send(request, &url).await else {
            return Vec::new();
        };
        if status.is_success() {
            return Vec::new();
        }
        let causes: Vec<String> = answer["causes"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(
                        |c| match (c["description"].as_str(), c["context"].as_str()) {
                            (Some(d), Some(at)) => format!("{d} at {at}"),
                            _ => reason_text(c),
                        },
                    )
                    .collect()
            })
            .unwrap_or_default();
        if !causes.is_empty() {
            return causes;
        }
        answer["detail"]
            .as_str()
            .or(answer["title"].as_str())
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default()
    }
}

fn reason_text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_path_segment_each() {
        let registry = Registry::new("http://127.0.0.1:8081/apis/ccompat/v7/").unwrap();
        let url = registry.url(&["subjects", "sb.canonical.contact-value", "versions"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8081/apis/ccompat/v7/subjects/sb.canonical.contact-value/versions"
        );
        let odd = registry.url(&["subjects", "a/b c"]);
        assert_eq!(
            odd.as_str(),
            "http://127.0.0.1:8081/apis/ccompat/v7/subjects/a%2Fb%20c"
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_refused() {
        assert!(matches!(
            Registry::new("127.0.0.1:8081"),
            Err(RegistryError::BadUrl(_))
        ));
    }
}

/// A schema a service is about to write: for the refusal message.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// The subject it is registered under (`<topic>-value`).
    pub subject: &'a str,
    /// What it is, e.g. `canonical schema contact v2`.
    pub what: &'a str,
    /// The `.avsc` text.
    pub schema: &'a str,
}

/// Why a service does not start: the registry refuses a schema it would write.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Refused by the subject's compatibility rule.
    #[error("the schema registry refuses {what} for subject `{subject}`: {}", reasons.join("; "))]
    Refused {
        /// The subject.
        subject: String,
        /// The schema and version.
        what: String,
        /// The registry's own reasons.
        reasons: Vec<String>,
    },
    /// The registry could not be asked.
    #[error("checking {what} against the schema registry: {source}")]
    Registry {
        /// The schema and version.
        what: String,
        /// What went wrong.
        source: RegistryError,
    },
}

/// Checks every schema in `writes` against its subject's compatibility rule, before a
/// service writes a record: a schema the registry would refuse stops the service at start
/// with the subject, the version and the registry's reason, instead of sending every
/// record to the dead-letter topic. A subject that does not exist yet accepts anything.
pub async fn check_writes(config: &RegistryConfig, writes: &[Write<'_>]) -> Result<(), StartError> {
    let registry = Registry::for_config(config).map_err(|source| StartError::Registry {
        what: "the configured registry".to_owned(),
        source,
    })?;
    for write in writes {
        let verdict = registry
            .compatibility(write.subject, write.schema)
            .await
            .map_err(|source| StartError::Registry {
                what: write.what.to_owned(),
                source,
            })?;
        if let Verdict::Refused(reasons) = verdict {
            return Err(StartError::Refused {
                subject: write.subject.to_owned(),
                what: write.what.to_owned(),
                reasons,
            });
        }
    }
    Ok(())
}
