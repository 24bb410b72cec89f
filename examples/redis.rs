//! An axum app whose sessions live in Redis, so any number of copies of it can run behind a
//! load balancer.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379 SESSION_SECRET=$(openssl rand -hex 32) PORT=3000 \
//!     cargo run --example redis --features redis
//! curl -c jar -b jar http://127.0.0.1:3000/          # 1 visit
//! curl -c jar -b jar http://127.0.0.1:3000/          # 2 visits
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/login
//! curl -c jar -b jar -X POST http://127.0.0.1:3000/logout
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use session_layer::storage::RedisOptions;
use session_layer::{Error, RedisStorage, Session, SessionCookie, SessionLayer};

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
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let secret = std::env::var("SESSION_SECRET")
        .unwrap_or_else(|_| "development only: set SESSION_SECRET".into());

    let storage = RedisStorage::connect_with(
        &url,
        RedisOptions::new()
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
        .layer(SessionLayer::new(cookie, storage));

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
