//! The HTTP ceiling of this machine for `make bench`: an axum server that reads the body
//! and answers 200, nothing else. Ingest's numbers are read against it.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let app = Router::new().route(
        "/webhooks/{connection}",
        post(|_body: Bytes| async { "ok" }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
