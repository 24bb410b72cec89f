//! Sessions in Memcached behind an axum app: a visit counter, a flash message and logout.
//!
//! ```sh
//! memcached -u nobody -p 11211 &            # or MEMCACHE_ADDR=host:port (comma-separated for a pool)
//! SESSION_SECRET=$(openssl rand -hex 32) cargo run --example memcache --features memcache
//! curl -c jar -b jar localhost:3004/              # run it a few times
//! curl -c jar -b jar -L -d '' localhost:3004/logout   # a POST, then the redirect as a GET
//! ```
//!
//! Without `SESSION_SECRET` a random secret is used (and a warning logged): sessions then
//! end with the process, and copies of the app cannot share them. A secret shorter than
//! 32 bytes is refused. Sessions expire after 30 idle minutes, and 12 hours after they
//! started at the latest, by the items' own expiry in Memcached.

#[path = "shared/secret.rs"]
mod secret;

use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use session_layer::{MemcacheStorage, Session, SessionCookie, SessionLayer};
use tracing_subscriber::EnvFilter;

async fn index(session: Session) -> String {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits).expect("a live session");
    let notice = session.get::<String>("notice").unwrap_or_default();
    format!("visit number {visits} {notice}\n")
}

/// A POST: a GET could be fetched by a link preview or a prefetch and log the user out.
async fn logout(session: Session) -> Redirect {
    session.destroy();
    Redirect::to("/bye")
}

async fn bye(session: Session) -> &'static str {
    session
        .flash("notice", "(welcome back)")
        .expect("a live session");
    "logged out\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The layer logs storage errors (and records it replaced) through `tracing`.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let secret = secret::session_secret()?;

    let addrs = std::env::var("MEMCACHE_ADDR").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let storage = MemcacheStorage::connect_pool(addrs.split(','))
        .await?
        .key_prefix("example:session:")?
        .ttl(Duration::from_secs(30 * 60))
        .max_lifetime(Duration::from_secs(12 * 3600));

    let cookie = SessionCookie::new("__session")
        .secrets([secret])
        .secure(false) // plain http on localhost; keep the default `true` behind TLS
        .max_age(Duration::from_secs(12 * 3600));

    let app = Router::new()
        .route("/", get(index))
        .route("/logout", post(logout))
        .route("/bye", get(bye))
        .layer(SessionLayer::try_new(cookie, storage)?);

    // Its own port, so that it runs beside the demo (3000); PORT overrides it.
    let port = std::env::var("PORT").unwrap_or_else(|_| "3004".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
