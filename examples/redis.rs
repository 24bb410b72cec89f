//! An axum app whose sessions live in Redis, so any number of copies of it can run behind a
//! load balancer.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 SESSION_SECRET=$(openssl rand -hex 32) \
//!     cargo run --example redis --features redis
//! curl -c jar -b jar http://127.0.0.1:3003/          # 1 visit
//! curl -c jar -b jar http://127.0.0.1:3003/          # 2 visits
//! curl -c jar -b jar -X POST http://127.0.0.1:3003/login
//! curl -c jar -b jar -X POST http://127.0.0.1:3003/logout
//! ```
//!
//! Without `SESSION_SECRET` a random secret is used (and a warning logged): sessions then
//! end with the process, and copies of the app cannot share them. A secret shorter than
//! 32 bytes is refused. Sessions expire after 30 idle minutes, and 12 hours after they
//! started at the latest, by the keys' own expiry in Redis (a Redis storage has no
//! capacity limit of its own: the TTL is what keeps it bounded).

#[path = "shared/secret.rs"]
mod secret;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use session_layer::storage::NetworkOptions;
use session_layer::{Error, RedisStorage, Session, SessionCookie, SessionLayer};
use tracing_subscriber::EnvFilter;

async fn home(session: Session) -> Result<String, Error> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits)?;
    let user = session.get::<String>("user");
    let message = session.get::<String>("message").unwrap_or_default();
    Ok(format!(
        "{message}\nhello {}, visit {visits}\n",
        user.as_deref().unwrap_or("stranger")
    ))
}

async fn login(session: Session) -> Result<&'static str, Error> {
    // A new id on privilege change (session fixation), and the old one deleted.
    session.regenerate_id(true)?;
    session.set("user", "mj")?;
    session.flash("message", "logged in")?;
    Ok("logged in\n")
}

async fn logout(session: Session) -> &'static str {
    session.destroy();
    "logged out\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The layer logs storage errors (and corrupt records it replaced) through `tracing`.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let secret = secret::session_secret()?;

    let storage = RedisStorage::connect_with(
        &url,
        NetworkOptions::new()
            .connect_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(1)),
    )
    .await?
    .key_prefix("example:session:")
    .ttl(Duration::from_secs(30 * 60))
    .max_lifetime(Duration::from_secs(12 * 3600));

    let cookie = SessionCookie::new("__session")
        .secrets([secret])
        .secure(false) // plain http on localhost; keep the default `true` in production
        .max_age(Duration::from_secs(12 * 3600));

    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::try_new(cookie, storage)?);

    // Its own port, so that it runs beside the demo (3000); PORT overrides it.
    let port = std::env::var("PORT").unwrap_or_else(|_| "3003".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
