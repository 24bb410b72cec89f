//! Sessions in a store session-layer does not ship (redb, an embedded key-value file),
//! through a custom `SessionBackend` (see `backend.rs`).
//!
//! ```sh
//! cargo run --example custom_backend     # SESSIONS_FILE, default session-layer-sessions.redb in the temporary directory
//! curl -c jar -b jar http://127.0.0.1:3002/
//! ```

mod backend;
#[path = "../shared/secret.rs"]
mod secret;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use session_layer::{Error, Session, SessionCookie, SessionLayer};
use tracing_subscriber::EnvFilter;

use crate::backend::{RedbBackend, RedbStorage};

async fn count(session: Session) -> Result<String, Error> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits)?;
    Ok(format!("{visits} visit(s), stored in redb\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    // Never the checkout: an example leaves no file beside the sources.
    let file = std::env::var_os("SESSIONS_FILE").map_or_else(
        || std::env::temp_dir().join("session-layer-sessions.redb"),
        std::path::PathBuf::from,
    );
    let backend = RedbBackend::open(&file)?;
    let storage = RedbStorage::with_backend(backend).ttl(Duration::from_secs(24 * 3600));

    let secret = secret::session_secret()?;
    // `.secure(false)` only because this example serves plain http://127.0.0.1.
    let cookie = SessionCookie::new("__session")
        .secrets([secret])
        .secure(false);
    let layer = SessionLayer::try_new(cookie, storage)?;

    // Expired sessions never come back, but they stay in the file until something deletes them.
    let sweeper = layer.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match sweeper.storage().backend().remove_expired().await {
                Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
                Err(error) => tracing::error!(%error, "removing expired sessions failed"),
            }
        }
    });

    let app = Router::new().route("/", get(count)).layer(layer);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3002".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
