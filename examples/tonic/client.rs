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

impl CookieJar {
    /// Keeps the reply's cookie and prints the call: its reply or status, and what became
    /// of the session cookie.
    fn show<T: Debug>(&mut self, call: &str, reply: Result<Response<T>, Status>) {
        let cookie = self.keep(&reply);
        let outcome = match reply {
            Ok(reply) => format!("{:?}", reply.into_inner()),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        println!("{call:<18} -> {outcome:<50} cookie {cookie}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3005".to_owned());
    let address = format!("http://127.0.0.1:{port}");
    let mut client = CounterClient::connect(address.clone())
        .await
        .map_err(|error| format!("cannot reach {address} (is tonic_server running?): {error}"))?;
    let mut jar = CookieJar::default();
    let increment = |by| IncrementRequest { by };

    let reply = client.increment(jar.request(increment(1))).await;
    jar.show("increment 1", reply);
    let login = LoginRequest { user: "ada".into() };
    let reply = client.login(jar.request(login)).await;
    jar.show("login ada", reply);
    for by in [1, 2, 3] {
        let reply = client.increment(jar.request(increment(by))).await;
        jar.show(&format!("increment {by}"), reply);
    }
    // Refused after the handler wrote 16: the session keeps 6.
    let reply = client.increment(jar.request(increment(10))).await;
    jar.show("increment 10", reply);
    let reply = client.increment(jar.request(increment(0))).await;
    jar.show("increment 0", reply);
    let reply = client.logout(jar.request(())).await;
    jar.show("logout", reply);
    let reply = client.increment(jar.request(increment(1))).await;
    jar.show("increment 1", reply);
    Ok(())
}
