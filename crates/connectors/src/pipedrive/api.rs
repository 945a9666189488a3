//! Calls to Pipedrive's persons API, with errors classified at this boundary.

use std::time::Duration;

use reqwest::Client;
use switchboard_core::error::ClassifiedError;

use super::PipedriveConnection;
use super::model::{Envelope, Person, PersonInput, SearchData};
use crate::http::{check, network_error};

/// A client for one Pipedrive connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct PipedriveClient {
    http: Client,
    connection: PipedriveConnection,
}

impl PipedriveClient {
    /// A client with the connection's timeout.
    pub fn new(connection: PipedriveConnection) -> Result<Self, ClassifiedError> {
        let http = Client::builder()
            .timeout(Duration::from_millis(connection.timeout_ms))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| network_error("build http client", &e))?;
        Ok(Self { http, connection })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.connection.base_url.trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("x-api-token", self.connection.api_token.expose())
    }

    /// The ID of the person whose e-mail is exactly `email`, if any.
    pub async fn find_person_by_email(&self, email: &str) -> Result<Option<u64>, ClassifiedError> {
        let response = self
            .request(reqwest::Method::GET, "/api/v2/persons/search")
            .query(&[
                ("term", email),
                ("fields", "email"),
                ("exact_match", "true"),
            ])
            .send()
            .await
            .map_err(|e| network_error("search persons", &e))?;
        let found: Envelope<SearchData> = check("search persons", response)
            .await?
            .json()
            .await
            .map_err(|e| network_error("search persons", &e))?;
        // exact_match matches whole terms; compare again so a near hit never links.
        Ok(found
            .data
            .items
            .into_iter()
            .map(|hit| hit.item)
            .find(|p| p.emails.iter().any(|e| e.eq_ignore_ascii_case(email)))
            .map(|p| p.id))
    }

    /// Creates a person and returns its ID.
    pub async fn create_person(&self, person: &PersonInput) -> Result<u64, ClassifiedError> {
        let response = self
            .request(reqwest::Method::POST, "/api/v2/persons")
            .json(person)
            .send()
            .await
            .map_err(|e| network_error("create person", &e))?;
        let created: Envelope<Person> = check("create person", response)
            .await?
            .json()
            .await
            .map_err(|e| network_error("create person", &e))?;
        Ok(created.data.id)
    }

    /// Updates person `id`.
    pub async fn update_person(
        &self,
        id: u64,
        person: &PersonInput,
    ) -> Result<(), ClassifiedError> {
        let response = self
            .request(reqwest::Method::PATCH, &format!("/api/v2/persons/{id}"))
            .json(person)
            .send()
            .await
            .map_err(|e| network_error("update person", &e))?;
        check("update person", response).await.map(|_| ())
    }
}
