#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))] // docs.rs marks each item with the feature it needs
//! Server-side sessions for any [Tower](https://docs.rs/tower) service: axum, hyper, tonic.
//!
//! A [`SessionLayer`] reads the session cookie of each request, loads the [`Session`] from a
//! [`SessionStorage`] into the request extensions, and after the handler has run saves it
//! and appends the `Set-Cookie` header. It follows the Remix session package: values, flash
//! messages that live for one request, id regeneration against session fixation, and
//! destroy.
//!
//! A whole server, with `axum`, `tokio` (features `macros`, `rt-multi-thread`, `net`) and
//! `tracing-subscriber` as dependencies; run it with `SESSION_SECRET=$(openssl rand -hex 32)`:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::{Router, routing::get};
//! use session_layer::{Error, MemoryStorage, Session, SessionCookie, SessionLayer};
//!
//! async fn count(session: Session) -> Result<String, Error> {
//!     let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
//!     session.set("visits", visits)?;
//!     Ok(format!("{visits} visits\n"))
//! }
//!
//! # #[cfg(feature = "axum")] // `Session` is an extractor with the default `axum` feature
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Storage errors are answered with a bare 500 and logged with `tracing`: show the log.
//!     tracing_subscriber::fmt::init();
//!     let secret = std::env::var("SESSION_SECRET")
//!         .map_err(|_| "set SESSION_SECRET to 32 or more random bytes (openssl rand -hex 32)")?;
//!     // `__Host-`: a sibling subdomain cannot plant a cookie of this name (HTTPS or localhost).
//!     let cookie = SessionCookie::new("__Host-session").secrets([secret]);
//!     let storage = MemoryStorage::new()
//!         .ttl(Duration::from_secs(24 * 3600)) // a day after the last change
//!         .max_sessions(100_000); // then the least recently used go first
//!     let app = Router::new()
//!         .route("/", get(count))
//!         // `try_new` refuses a secret under 32 bytes, with an error that says so.
//!         .layer(SessionLayer::try_new(cookie, storage)?);
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     println!("listening on http://{}", listener.local_addr()?);
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```
//!
//! `curl -c jar -b jar http://localhost:3000/` then answers `1 visits`, `2 visits`, and so
//! on. Handlers use `?` on session calls: [`Error`] is an axum response, a bare
//! `500 Internal Server Error` whose details go to the log, never to the client.
//!
//! # Storages
//!
//! | storage | where the data lives |
//! |---|---|
//! | [`CookieStorage`] | in the cookie itself, signed or encrypted |
//! | [`MemoryStorage`] | process memory (tests, development, one process) |
//! | [`FsStorage`] | one file per session |
//! | [`RedisStorage`] (feature `redis`) | Redis, a Redis Cluster or Sentinel |
//! | [`MemcacheStorage`] (feature `memcache`) | one or more Memcached servers |
//! | [`PostgresStorage`], [`MySqlStorage`], [`SqliteStorage`] (features `postgres`, `mysql`, `sqlite`) | a table, over your sqlx pool |
//!
//! Your own store (a database, say) implements [`storage::SessionBackend`]: three methods
//! that load a versioned record by id, and store and delete it conditionally;
//! [`storage::ServerStorage`] adds the rest of the lifecycle. Each storage's options and
//! failure behaviour: [`guide::storages`] and [`guide::sql`].
//!
//! # Concurrent requests
//!
//! Requests of one session may overlap (tabs, double clicks). With every server-side
//! storage, a save applies only what its request changed to the session as stored at save
//! time, so no update is lost and a logout is never undone by a request in flight; use
//! [`Session::update`] for values that several requests change at once (counters, carts).
//! [`CookieStorage`] cannot merge: each response carries its own copy. What is guaranteed,
//! and how: [`guide::concurrency`].
//!
//! # Security
//!
//! The cookie is always signed with HMAC-SHA256 over its name and value (or, with
//! [`SessionCookie::encrypted`], sealed with XAES-256-GCM), with secret rotation. Ids
//! are 144 random bits. The whole model: [`guide::security`]; running it in production
//! (HTTPS, secrets, several servers, Redis and Memcached): [`guide::deployment`].
//!
//! # Features
//!
//! * `axum` (default): [`Session`] is an axum extractor and [`Error`] a response.
//! * `redis`: [`RedisStorage`].
//! * `memcache`: [`MemcacheStorage`].
//! * `postgres`, `mysql`, `sqlite`: [`PostgresStorage`], [`MySqlStorage`], [`SqliteStorage`]
//!   on sqlx 0.9, which needs Rust 1.94.
//! * `tonic`: `From<Error> for tonic::Status` and `request.session()` for tonic handlers
//!   ([`TonicRequestExt`]); see [`guide::grpc`].
//!
//! Without `axum`, handlers find the session in the request extensions:
//! `request.extensions().get::<Session>()`.
//!
//! # Guides
//!
//! The [`guide`] module holds the longer pages: storages, SQL, concurrency, security,
//! deployment, gRPC, benchmarks, and a comparison with tower-sessions and actix-session.
//!
// Without its feature an item is not there to link to, so its link leads to the feature list
// instead. (The empty `//!` line ends the paragraph: a link definition cannot continue one.)
#![cfg_attr(not(feature = "redis"), doc = "[`RedisStorage`]: #features")]
#![cfg_attr(not(feature = "memcache"), doc = "[`MemcacheStorage`]: #features")]
#![cfg_attr(not(feature = "postgres"), doc = "[`PostgresStorage`]: #features")]
#![cfg_attr(not(feature = "mysql"), doc = "[`MySqlStorage`]: #features")]
#![cfg_attr(not(feature = "sqlite"), doc = "[`SqliteStorage`]: #features")]
#![cfg_attr(not(feature = "tonic"), doc = "[`TonicRequestExt`]: #features")]

#[cfg(feature = "axum")]
mod axum;
mod cookie;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod layer;
mod observe;
mod session;
pub mod storage;
#[cfg(feature = "tonic")]
mod tonic;

pub use crate::cookie::{MAX_COOKIE_SIZE, SameSite, SessionCookie};
pub use crate::error::Error;
pub use crate::layer::{ResponseFuture, SessionLayer, SessionService};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use crate::observe::metrics;
pub use crate::session::{InvalidSessionHandle, Key, Session, SessionData, SessionHandle};
#[cfg(any(feature = "redis", feature = "memcache"))]
pub use crate::storage::NetworkOptions;
pub use crate::storage::{
    CookieStorage, FsBackend, FsStorage, MemoryBackend, MemoryStorage, SessionIndex, SessionInfo,
    SessionStorage,
};
#[cfg(feature = "memcache")]
pub use crate::storage::{MemcacheBackend, MemcacheStorage};
#[cfg(feature = "mysql")]
pub use crate::storage::{MySqlBackend, MySqlStorage};
#[cfg(feature = "postgres")]
pub use crate::storage::{PostgresBackend, PostgresStorage};
#[cfg(feature = "redis")]
pub use crate::storage::{RedisBackend, RedisStorage};
#[cfg(feature = "sqlite")]
pub use crate::storage::{SqliteBackend, SqliteStorage};
#[cfg(feature = "tonic")]
pub use crate::tonic::TonicRequestExt;

/// The README's Rust blocks, compiled by `cargo test --doc` so that they keep compiling.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod guide;
