//! A client of the `tonic_server` example: it calls the counter several times, keeping the
//! session the way a browser would, by echoing the `set-cookie` it gets as `cookie`.
//!
//! ```sh
//! cargo run --features tonic --example tonic_server    # first, in another terminal
//! cargo run --features tonic --example tonic_client    # PORT as for the server (3005)
//! ```

// The client uses the client half of the hand-written gRPC code, the server the other half.
#[allow(dead_code)]
mod counter;

use std::fmt::Debug;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Request, Response, Status};

use crate::counter::{CounterClient, IncrementRequest, LoginRequest};

/// The session cookie, kept between calls.
#[derive(Default)]
struct CookieJar {
    cookie: Option<AsciiMetadataValue>,
}

impl CookieJar {
    /// A request that carries the session cookie, once there is one.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(cookie) = &self.cookie {
            request.metadata_mut().insert("cookie", cookie.clone());
        }
        request
    }

    /// Takes in the `set-cookie` of a reply or an error status, and says what it did.
    fn keep<T>(&mut self, result: &Result<Response<T>, Status>) -> &'static str {
        let metadata: &MetadataMap = match result {
            Ok(response) => response.metadata(),
            Err(status) => status.metadata(),
        };
        let Some(set_cookie) = metadata.get("set-cookie").and_then(|v| v.to_str().ok()) else {
            return "not sent";
        };
        // `name=value; Path=/; ...`: only `name=value` goes back; an empty value clears it.
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let before = self.cookie.take();
        match pair.split_once('=') {
            Some((_, "")) | None => "cleared",
            Some(_) => {
                self.cookie = pair.parse().ok();
                if self.cookie == before {
                    "renewed"
                } else {
                    "new"
                }
            }
        }
    }
}

/// Prints one call: its reply or status, and what became of the session cookie.
fn show<T: Debug>(call: &str, cookie: &str, result: Result<T, Status>) {
    let outcome = match result {
        Ok(reply) => format!("{reply:?}"),
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    };
    println!("{call:<18} -> {outcome:<50} cookie {cookie}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3005".to_owned());
    let address = format!("http://127.0.0.1:{port}");
    let mut client = CounterClient::connect(address.clone())
        .await
        .map_err(|error| format!("cannot reach {address} (is tonic_server running?): {error}"))?;
    let mut jar = CookieJar::default();

    let reply = client
        .increment(jar.request(IncrementRequest { by: 1 }))
        .await;
    show(
        "increment 1",
        jar.keep(&reply),
        reply.map(|r| r.into_inner()),
    );

    let reply = client
        .login(jar.request(LoginRequest { user: "ada".into() }))
        .await;
    show("login ada", jar.keep(&reply), reply.map(|r| r.into_inner()));

    for by in [1, 2, 3] {
        let reply = client.increment(jar.request(IncrementRequest { by })).await;
        show(
            &format!("increment {by}"),
            jar.keep(&reply),
            reply.map(|r| r.into_inner()),
        );
    }

    // Refused after the handler wrote 16: the session keeps 6.
    let reply = client
        .increment(jar.request(IncrementRequest { by: 10 }))
        .await;
    show(
        "increment 10",
        jar.keep(&reply),
        reply.map(|r| r.into_inner()),
    );
    let reply = client
        .increment(jar.request(IncrementRequest { by: 0 }))
        .await;
    show(
        "increment 0",
        jar.keep(&reply),
        reply.map(|r| r.into_inner()),
    );

    let reply = client.logout(jar.request(())).await;
    show("logout", jar.keep(&reply), reply.map(|r| r.into_inner()));
    let reply = client
        .increment(jar.request(IncrementRequest { by: 1 }))
        .await;
    show(
        "increment 1",
        jar.keep(&reply),
        reply.map(|r| r.into_inner()),
    );
    Ok(())
}
