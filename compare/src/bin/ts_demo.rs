//! The demo's `/count` route on tower-sessions 0.15, for the side-by-side memory load run of
//! `scripts/load` (see `docs/benchmarks.md`).
//!
//! Same work per request as `examples/demo.rs` with `SESSION_STORAGE=memory`: read the
//! counter `visits`, store `visits + 1`, answer `{"visits":N}`; signed cookies
//! (HMAC-SHA256), an idle expiry of `SESSION_TTL` seconds, `MemoryStore`.
//!
//! ```sh
//! SESSION_TTL=10 PORT=0 cargo run --release -p session-layer-compare --bin ts_demo
//! ```

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_sessions::cookie::Key;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer};

/// `{"visits":N}`, as `axum::Json` writes it in the demo (the same bytes and header).
async fn count(session: Session) -> Result<impl IntoResponse, StatusCode> {
    let error = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let visits = session
        .get::<u64>("visits")
        .await
        .map_err(error)?
        .unwrap_or(0)
        + 1;
    session.insert("visits", visits).await.map_err(error)?;
    Ok((
        [(CONTENT_TYPE, "application/json")],
        format!(r#"{{"visits":{visits}}}"#),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ttl: i64 = match std::env::var("SESSION_TTL") {
        Ok(secs) => secs.parse()?,
        Err(_) => 24 * 3600,
    };
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_name("__session")
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::seconds(ttl)))
        .with_signed(Key::generate());
    let app = Router::new().route("/count", get(count)).layer(layer);

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!(
        "tower-sessions memory, ttl={ttl}: listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
