//! A small axum app that shows everything a session does: a counter, flash messages
//! (Post/Redirect/Get), login with id regeneration, and logout with destroy.
//!
//! ```sh
//! cargo run --example demo                          # then open http://127.0.0.1:3000
//! curl -c jar -b jar http://127.0.0.1:3000/count    # the counter alone, as JSON
//! SESSION_STORAGE=fs cargo run --example demo       # files under $SESSION_DIR or /tmp/sessions
//! SESSION_STORAGE=cookie cargo run --example demo   # the whole session in an encrypted cookie
//! SESSION_STORAGE=redis cargo run --example demo --features redis   # in Redis at $REDIS_URL
//! SESSION_SECRET=... PORT=8080 SESSION_TTL=600 cargo run --example demo
//! ```
//!
//! Settings, all optional:
//!
//! | variable | default | |
//! |---|---|---|
//! | `SESSION_STORAGE` | `memory` | `memory`, `fs`, `cookie`, or `redis` (built with `--features redis`) |
//! | `SESSION_SECRET` | random | signs the cookie; a random one ends every session with the process |
//! | `SESSION_TTL` | `86400` | seconds a session lives after its last change |
//! | `SESSION_MAX_SESSIONS` | `100000` | the `memory` storage's capacity (least recently used go first) |
//! | `SESSION_DIR` | `$TMPDIR/sessions` | the `fs` storage's directory |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | the `redis` storage's server |
//! | `SESSION_KEY_PREFIX` | `demo:session:` | the `redis` storage's key prefix |
//! | `PORT` | `3000` | on 127.0.0.1; `0` picks a free port (the log says which) |
//!
//! `scripts/load` serves this demo (built with `--release`) to `wrk` for the load and fault
//! runs of `BENCHMARKS.md`.

use std::time::Duration;

use axum::extract::Form;
use axum::response::{Html, Redirect};
use axum::routing::get;
use axum::{Json, Router, serve};
use serde::Deserialize;
use session_layer::{
    CookieStorage, Error, FsStorage, MemoryStorage, Session, SessionCookie, SessionLayer,
    SessionStorage,
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let secret = match std::env::var("SESSION_SECRET") {
        Ok(secret) if secret.len() >= 32 => secret,
        Ok(secret) if !secret.is_empty() => {
            return Err("SESSION_SECRET must be at least 32 bytes (openssl rand -hex 32)".into());
        }
        _ => {
            tracing::warn!(
                "SESSION_SECRET is not set: using a random secret, so sessions do not \
                 survive a restart"
            );
            random_secret()
        }
    };
    let storage = std::env::var("SESSION_STORAGE").unwrap_or_else(|_| "memory".to_owned());

    let cookie = SessionCookie::new("__session")
        .secrets([secret])
        // Only because this demo serves plain http://127.0.0.1: browsers (and curl's cookie
        // jar) do not send a `Secure` cookie back over http. Keep the default `Secure` in
        // production, behind HTTPS.
        .secure(false)
        .max_age(Duration::from_secs(7 * 24 * 3600));
    // How long a session lives after its last change (every visit changes the counter).
    let ttl = match std::env::var("SESSION_TTL") {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .map_err(|_| format!("SESSION_TTL must be a number of seconds, not {secs:?}"))?,
        ),
        Err(_) => Duration::from_secs(24 * 3600),
    };

    // At most this many sessions in memory: beyond it, the least recently used one goes, so
    // a flood of cookieless requests cannot exhaust memory.
    let max_sessions = match std::env::var("SESSION_MAX_SESSIONS") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("SESSION_MAX_SESSIONS must be a number of sessions, not {n:?}"))?,
        Err(_) => 100_000,
    };

    // The storages are different types, so each arm builds its own router.
    let app = match storage.as_str() {
        // Expired sessions go as writes come: no task needed.
        "memory" => app(
            cookie,
            MemoryStorage::new().ttl(ttl).max_sessions(max_sessions),
        ),
        "fs" => {
            let dir = std::env::var_os("SESSION_DIR")
                .map(Into::into)
                .unwrap_or_else(|| std::env::temp_dir().join("sessions"));
            let storage = FsStorage::new(dir)?.ttl(ttl);
            tracing::info!(dir = %storage.dir().display(), "sessions are files");
            // Expired files are ignored on read but stay on disk until swept: sweep them
            // (and temporary files a crash left) now and then.
            let sweeper = storage.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(
                    ttl.clamp(Duration::from_secs(1), Duration::from_secs(3600)),
                );
                loop {
                    every.tick().await;
                    match sweeper.remove_expired().await {
                        Ok(removed) => tracing::debug!(removed, "swept expired session files"),
                        Err(error) => tracing::warn!(%error, "sweeping session files failed"),
                    }
                }
            });
            app(cookie, storage)
        }
        // The data travels in the cookie: encrypt it, so the client cannot read it either.
        "cookie" => app(cookie.encrypted(true), CookieStorage::new().ttl(ttl)),
        #[cfg(feature = "redis")]
        "redis" => {
            use session_layer::RedisStorage;
            use session_layer::storage::RedisOptions;

            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            let prefix =
                std::env::var("SESSION_KEY_PREFIX").unwrap_or_else(|_| "demo:session:".into());
            // While Redis is down, requests fail with a 500 within the response timeout
            // rather than hang; the connection comes back by itself.
            let options = RedisOptions::new()
                .connect_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(1));
            let storage = RedisStorage::connect_with(&url, options)
                .await?
                .key_prefix(&prefix)
                .ttl(ttl);
            tracing::info!(prefix, "sessions are in Redis");
            app(cookie, storage)
        }
        #[cfg(not(feature = "redis"))]
        "redis" => {
            return Err("SESSION_STORAGE=redis needs `--features redis`".into());
        }
        other => {
            return Err(format!(
                "SESSION_STORAGE must be memory, fs, cookie or redis, not {other:?}"
            )
            .into());
        }
    };

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!(
        storage,
        ttl = ttl.as_secs(),
        "listening on http://{}",
        listener.local_addr()?
    );
    serve(listener, app).await?;
    Ok(())
}

/// The same routes over any storage.
///
/// The forms carry no CSRF token: the cookie's default `SameSite=Lax` keeps browsers from
/// sending it with cross-site POSTs. A real app that accepts cross-site requests needs one.
fn app<St: SessionStorage>(cookie: SessionCookie, storage: St) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/count", get(count))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/message", get(message_form).post(message))
        .layer(SessionLayer::new(cookie, storage))
}

async fn index(session: Session) -> Result<Html<String>, Error> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits)?;

    // Flash values arrive on the request after the one that set them, then are gone.
    let notice = session
        .get::<String>("notice")
        .map(|n| format!(r#"<p class="notice">{}</p>"#, escape(&n)))
        .unwrap_or_default();
    let who = match session.get::<String>("user") {
        Some(user) => format!(
            r#"Logged in as <b>{}</b>. <form method="post" action="/logout"><button>Log out</button></form>"#,
            escape(&user)
        ),
        None => r#"Not logged in. <a href="/login">Log in</a>"#.to_owned(),
    };
    Ok(page(format!(
        r#"{notice}<p>You have been here {visits} time(s).</p><p>{who}</p>
<p><a href="/message">Leave a message</a></p>"#
    )))
}

/// The same counter as JSON, `{"visits":3}`: what `scripts/load` drives with `wrk`.
async fn count(session: Session) -> Result<Json<serde_json::Value>, Error> {
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.set("visits", visits)?;
    Ok(Json(serde_json::json!({ "visits": visits })))
}

async fn login_form() -> Html<String> {
    page(
        r#"<form method="post" action="/login">
<label>Username <input name="username" required></label> <button>Log in</button></form>"#
            .to_owned(),
    )
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

async fn login(session: Session, Form(form): Form<Login>) -> Result<Redirect, Error> {
    let name = form.username.trim();
    if name.is_empty() {
        return Ok(Redirect::to("/login"));
    }
    // (A real app checks a password here.)
    session.set("user", name)?;
    // A new id after a privilege change, and the old id's data deleted: an id an attacker
    // planted before the login (session fixation) is worthless afterwards.
    session.regenerate_id(true)?;
    session.flash("notice", format!("Welcome, {name}"))?;
    // `Redirect::to` answers 303 See Other: the browser follows with a GET.
    Ok(Redirect::to("/"))
}

async fn logout(session: Session) -> Redirect {
    // Deletes the stored data and clears the cookie. A destroyed session takes no more
    // values, so there is no flash here: the next request starts a fresh session.
    session.destroy();
    Redirect::to("/")
}

async fn message_form() -> Html<String> {
    page(
        r#"<form method="post" action="/message">
<label>Message <input name="message" required></label> <button>Send</button></form>"#
            .to_owned(),
    )
}

#[derive(Deserialize)]
struct Message {
    message: String,
}

/// Post/Redirect/Get: the POST stores a flash and redirects; the GET that follows shows it
/// once, and reloading that page does not resubmit the form.
async fn message(session: Session, Form(form): Form<Message>) -> Result<Redirect, Error> {
    session.flash("notice", form.message)?;
    Ok(Redirect::to("/"))
}

fn page(body: String) -> Html<String> {
    Html(format!(
        r#"<!doctype html><meta charset="utf-8"><title>session-layer demo</title>
<p><a href="/">Home</a></p>
{body}
"#
    ))
}

/// Everything a user typed must be escaped before it goes into HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// 32 random bytes as hex: fine for a demo, but a restart makes every cookie invalid.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
