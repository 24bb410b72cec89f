//! Sessions in Memcached behind an axum app: a visit counter, a flash message and logout.
//!
//! ```sh
//! memcached -p 11211 &                      # or MEMCACHE_ADDR=host:port (comma-separated for a pool)
//! cargo run --example memcache --features memcache
//! curl -c jar -b jar localhost:3000/        # run it a few times
//! curl -c jar -b jar localhost:3000/logout
//! ```

use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use session_layer::{MemcacheStorage, Session, SessionCookie, SessionLayer};

async fn index(session: Session) -> String {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits).expect("a live session");
    let notice = session.get::<String>("notice").unwrap_or_default();
    format!("visit number {visits} {notice}\n")
}

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
    let addrs = std::env::var("MEMCACHE_ADDR").unwrap_or_else(|_| "127.0.0.1:11211".into());
    let storage = MemcacheStorage::connect_pool(addrs.split(','))
        .await?
        .key_prefix("example:session:")?
        .ttl(Duration::from_secs(30 * 60));

    // In production the secret comes from configuration, never from the source.
    let secret = std::env::var("SESSION_SECRET").unwrap_or_else(|_| "change-me".into());
    let cookie = SessionCookie::new("__session")
        .secrets([secret])
        .secure(false); // plain http on localhost; keep the default `true` behind TLS

    let app = Router::new()
        .route("/", get(index))
        .route("/logout", get(logout))
        .route("/bye", get(bye))
        .layer(SessionLayer::new(cookie, storage));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
