//! Sessions without axum: plain hyper 1 and a `tower::service_fn` handler.
//!
//! ```sh
//! cargo run --example hyper     # then: curl -c jar -b jar http://127.0.0.1:3001/
//! ```
//!
//! The layer puts the [`Session`] into the request extensions; any Tower service (hyper,
//! tonic, a hand-written one) takes it from there.

#[path = "shared/secret.rs"]
mod secret;

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer};
use tower::ServiceBuilder;

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Always there when the layer wraps this service.
    let Some(session) = req.extensions().get::<Session>() else {
        return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "no session layer"));
    };
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    if let Err(error) = session.set("visits", visits) {
        eprintln!("session error: {error}"); // log it; tell the client nothing
        return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
    }
    Ok(text(StatusCode::OK, &format!("{visits} visit(s)\n")))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Storage errors are logged with `tracing`, and answered with a bare 500: show the logs.
    tracing_subscriber::fmt::init();
    let secret = secret::session_secret()?;
    // `.secure(false)` only because this example serves plain http://127.0.0.1.
    let cookie = SessionCookie::new("__session")
        .secrets([secret])
        .secure(false);
    // A day's idle timeout, and at most 100,000 sessions held (least recently used go first).
    let storage = MemoryStorage::new()
        .ttl(Duration::from_secs(24 * 3600))
        .max_sessions(100_000);
    let service = ServiceBuilder::new()
        .layer(SessionLayer::try_new(cookie, storage)?)
        .service_fn(handler);

    let port = std::env::var("PORT").unwrap_or_else(|_| "3001".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // Clones share the storage: every connection sees the same sessions.
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
