//! The same handlers and routers over session-layer and tower-sessions, for the criterion
//! comparison in `benches/overhead.rs` and the load-run servers in `src/bin/`.
//!
//! Every handler does the same work in both crates: read a counter `n`, and (for the
//! read-write case) store `n + 1`. The routers serve it at `/` and a seeding route at
//! `/seed` that always writes, so a benchmark can obtain a session cookie first.

use axum::Router;
use axum::routing::{MethodRouter, get};

/// 64 bytes: enough for session-layer's HMAC and XAES-256-GCM keys and for tower-sessions' `Key`.
pub const SECRET: &[u8; 64] = b"a benchmark secret of sixty-four bytes, the same for both crates";

/// A handler that touches no session: the bare Router's baseline, and the "untouched" case.
pub async fn untouched() -> &'static str {
    "ok"
}

/// The routes every app serves: `handler` at `/`, a writing handler at `/seed`.
fn routes(handler: MethodRouter, seed: MethodRouter) -> Router {
    Router::new().route("/", handler).route("/seed", seed)
}

/// `router` as `axum::serve` runs it: `into_make_service` calls `with_state(())`, which turns
/// every handler (with its layers) into a route once, instead of on every request.
fn served(router: Router) -> Router {
    router.with_state(())
}

/// session-layer: handlers and routers.
pub mod ours {
    use std::hint::black_box;

    use axum::Router;
    use axum::routing::{MethodRouter, get};
    use session_layer::{Session, SessionCookie, SessionLayer, SessionStorage};

    /// Reads `n` and stores `n + 1`.
    pub async fn read_write(session: Session) -> &'static str {
        let n = session.get::<u64>("n").unwrap_or(0);
        session.set("n", n + 1).expect("the session is live");
        "ok"
    }

    /// Reads `n` only.
    pub async fn read_only(session: Session) -> &'static str {
        black_box(session.get::<u64>("n"));
        "ok"
    }

    /// The signed (or encrypted) session cookie, `Secure` off for plain-HTTP load runs.
    pub fn cookie(encrypted: bool) -> SessionCookie {
        SessionCookie::new("id")
            .secrets([&super::SECRET[..]])
            .secure(false)
            .encrypted(encrypted)
    }

    /// `handler` at `/` behind a [`SessionLayer`] over `storage`.
    pub fn app<St: SessionStorage>(storage: St, encrypted: bool, handler: MethodRouter) -> Router {
        super::served(
            super::routes(handler, get(read_write))
                .layer(SessionLayer::new(cookie(encrypted), storage)),
        )
    }
}

/// Writes the handlers and router of one tower-sessions version: 0.15 for memory and files,
/// 0.14 for Redis and SQL (the newest Redis and sqlx stores are built on 0.14).
macro_rules! tower_sessions_app {
    ($(#[$doc:meta])* $module:ident, $crate_name:ident) => {
        $(#[$doc])*
        pub mod $module {
            use std::hint::black_box;

            use axum::Router;
            use axum::routing::{MethodRouter, get};
            use $crate_name::cookie::Key;
            use $crate_name::{Session, SessionManagerLayer, SessionStore};

            /// Reads `n` and stores `n + 1`.
            pub async fn read_write(session: Session) -> &'static str {
                let n: u64 = session.get("n").await.expect("the store answers").unwrap_or(0);
                session.insert("n", n + 1).await.expect("the store answers");
                "ok"
            }

            /// Reads `n` only.
            pub async fn read_only(session: Session) -> &'static str {
                black_box(session.get::<u64>("n").await.expect("the store answers"));
                "ok"
            }

            /// `handler` at `/` behind tower-sessions' layer with signed cookies over
            /// `store`.
            pub fn app<St: SessionStore + Clone>(store: St, handler: MethodRouter) -> Router {
                let layer = SessionManagerLayer::new(store)
                    .with_secure(false)
                    .with_signed(Key::from(&super::SECRET[..]));
                super::served(super::routes(handler, get(read_write)).layer(layer))
            }
        }
    };
}

tower_sessions_app!(
    /// tower-sessions 0.15: handlers and routers.
    peer,
    tower_sessions
);

tower_sessions_app!(
    /// tower-sessions 0.14 (for its Redis and sqlx stores): handlers and routers.
    peer_014,
    tower_sessions_014
);

/// tower-sessions-cookie-store: the whole session in a signed or private (encrypted) cookie,
/// with tower-sessions 0.14's handlers.
pub mod cookie_store {
    use axum::Router;
    use axum::routing::{MethodRouter, get};
    use tower_sessions_cookie_store::{CookieSessionConfig, CookieSessionManagerLayer, Key};

    /// `handler` at `/` behind the cookie store's layer, `Secure` off as for the others.
    pub fn app(encrypted: bool, handler: MethodRouter) -> Router {
        let key = Key::from(&super::SECRET[..]);
        let config = CookieSessionConfig::default().with_secure(false);
        let routes = super::routes(handler, get(super::peer_014::read_write));
        if encrypted {
            let layer = CookieSessionManagerLayer::private(key).with_config(config);
            super::served(routes.layer(layer))
        } else {
            let layer = CookieSessionManagerLayer::signed(key).with_config(config);
            super::served(routes.layer(layer))
        }
    }
}

/// The bare Router: the same route with no session layer.
pub fn bare() -> Router {
    served(Router::new().route("/", get(untouched)))
}
