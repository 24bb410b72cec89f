//! Sessions in a tonic gRPC server: a counter per logged-in session.
//!
//! ```sh
//! cargo run --features tonic --example tonic_server    # listens on 127.0.0.1:3005
//! cargo run --features tonic --example tonic_client    # in another terminal
//! ```
//!
//! `SESSION_SECRET` (32 bytes or more) signs the cookie, else a random one is used; `PORT`
//! changes the port. The session cookie travels as gRPC metadata: `set-cookie` in responses,
//! `cookie` in requests, which the client echoes back. No protoc is needed: see `counter.rs`.

// The server uses the service half of the hand-written gRPC code, the client the other half.
#[allow(dead_code)]
mod counter;
#[path = "../shared/secret.rs"]
mod secret;
mod service;

use std::time::Duration;

use session_layer::{MemoryStorage, SessionCookie, SessionLayer};
use tonic::transport::Server;

use crate::counter::CounterServer;
use crate::service::SessionCounter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let secret = secret::session_secret()?;
    // A gRPC client echoes the cookie whatever its attributes; they matter only to browsers.
    let cookie = SessionCookie::new("__Host-session").secrets([secret]);
    // A day's idle timeout, and at most 100,000 sessions held (least recently used go first).
    let storage = MemoryStorage::new()
        .ttl(Duration::from_secs(24 * 3600))
        .max_sessions(100_000);
    let layer = SessionLayer::try_new(cookie, storage)?;

    let port = std::env::var("PORT").unwrap_or_else(|_| "3005".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    Server::builder()
        .layer(layer)
        .add_service(CounterServer::new(SessionCounter))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
