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
//! ```
//! # #[cfg(feature = "axum")] { // the extractor needs the default `axum` feature
//! use axum::{Router, routing::get};
//! use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer};
//!
//! async fn handler(session: Session) -> Result<String, session_layer::Error> {
//!     let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
//!     session.set("visits", visits)?;
//!     Ok(format!("{visits} visits"))
//! }
//!
//! let cookie = SessionCookie::new("__session").secrets(["use 32 or more random bytes here"]);
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(cookie, MemoryStorage::new()));
//! # }
//! ```
//!
//! # Storages
//!
//! | storage | where the data lives |
//! |---|---|
//! | [`CookieStorage`] | in the cookie itself, signed or encrypted |
//! | [`MemoryStorage`] | process memory (tests, development, one process) |
//! | [`FsStorage`] | one file per session |
//! | `RedisStorage` (feature `redis`) | Redis, a Redis Cluster or Sentinel |
//! | `MemcacheStorage` (feature `memcache`) | one or more Memcached servers |
//! | `PostgresStorage`, `MySqlStorage`, `SqliteStorage` (features `postgres`, `mysql`, `sqlite`) | a table, over your sqlx pool |
//!
//! Your own store (a database, say) implements [`storage::SessionBackend`]: three methods
//! that load a versioned record by id, and store and delete it conditionally;
//! [`storage::ServerStorage`] adds the rest of the lifecycle.
//!
//! # Concurrent requests
//!
//! Requests of one session may overlap (tabs, double clicks). With every server-side
//! storage, a save applies only what its request changed to the session as stored at save
//! time, so no update is lost and a logout is never undone by a request in flight; use
//! [`Session::update`] for values that several requests change at once (counters, carts).
//! [`CookieStorage`] cannot merge: each response carries its own copy.
//!
//! # Security
//!
//! The cookie is always signed with HMAC-SHA256 over its name and value (or, with
//! [`SessionCookie::encrypted`], sealed with XChaCha20-Poly1305), with secret rotation. Ids
//! are 144 random bits. The whole model is in the crate's `docs/security.md`.
//!
//! # Features
//!
//! * `axum` (default): [`Session`] is an axum extractor and [`Error`] a response.
//! * `redis`: `RedisStorage`.
//! * `memcache`: `MemcacheStorage`.
//! * `postgres`, `mysql`, `sqlite`: `PostgresStorage`, `MySqlStorage`, `SqliteStorage` on
//!   sqlx 0.9, which needs Rust 1.94.
//! * `tonic`: `From<Error> for tonic::Status` and `request.session()` for tonic handlers
//!   (`TonicRequestExt`).
//!
//! Without `axum`, handlers find the session in the request extensions:
//! `request.extensions().get::<Session>()`.

#[cfg(feature = "axum")]
mod axum;
mod cookie;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod layer;
mod session;
pub mod storage;
#[cfg(feature = "tonic")]
mod tonic;

pub use crate::cookie::{MAX_COOKIE_SIZE, SameSite, SessionCookie};
pub use crate::error::Error;
pub use crate::layer::{ResponseFuture, SessionLayer, SessionService};
pub use crate::session::{Key, Session, SessionData};
#[cfg(feature = "memcache")]
pub use crate::storage::{MemcacheBackend, MemcacheOptions, MemcacheStorage};
#[cfg(feature = "mysql")]
pub use crate::storage::{MySqlBackend, MySqlStorage};
#[cfg(feature = "postgres")]
pub use crate::storage::{PostgresBackend, PostgresStorage};
#[cfg(feature = "redis")]
pub use crate::storage::{RedisBackend, RedisOptions, RedisStorage};
#[cfg(feature = "sqlite")]
pub use crate::storage::{SqliteBackend, SqliteStorage};
pub use crate::storage::{
    CookieStorage, FsBackend, FsStorage, MemoryBackend, MemoryStorage, SessionStorage,
};
#[cfg(feature = "tonic")]
pub use crate::tonic::TonicRequestExt;

/// The README's Rust blocks, compiled by `cargo test --doc` so that they keep compiling.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod guide;
