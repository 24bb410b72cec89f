//! A real tonic server and client over loopback, with the `SessionLayer` in front of the
//! `examples/tonic` counter: what a gRPC client sees when the session works and when it
//! fails.
#![cfg(feature = "tonic")]
mod common;
#[path = "../examples/tonic/counter.rs"]
mod counter;
#[path = "../examples/tonic/service.rs"]
mod service;

use std::fmt::Debug;

use common::broken::Broken;
use common::logs::Captured;
use session_layer::{
    CookieStorage, Error, FsStorage, MemoryStorage, SessionCookie, SessionLayer, SessionStorage,
};
use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

use crate::counter::{CounterClient, CounterServer, IncrementRequest, LoginRequest};
use crate::service::{LIMIT, SessionCounter};

const SECRET: &str = "a tonic test secret, 32 bytes long";

fn cookie() -> SessionCookie {
    SessionCookie::new("sid").secrets([SECRET])
}

/// A client that echoes the session cookie back, and remembers what the last answer set.
struct Client {
    counter: CounterClient,
    cookie: Option<String>,
    last_set_cookie: Option<String>,
}

impl Client {
    async fn connect(address: String) -> Client {
        Client {
            counter: CounterClient::connect(address).await.unwrap(),
            cookie: None,
            last_set_cookie: None,
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(cookie) = &self.cookie {
            request
                .metadata_mut()
                .insert("cookie", cookie.parse().unwrap());
        }
        request
    }

    /// Keeps the `set-cookie` of an answer, after checking that its headers arrived.
    fn keep<T>(&mut self, result: Result<Response<T>, Status>) -> Result<T, Status> {
        let metadata: &MetadataMap = match &result {
            Ok(response) => response.metadata(),
            Err(status) => status.metadata(),
        };
        assert!(
            metadata.get("content-type").is_some(),
            "the answer's headers reach the client: {metadata:?}"
        );
        self.last_set_cookie = metadata
            .get("set-cookie")
            .map(|value| value.to_str().unwrap().to_owned());
        if let Some(set_cookie) = &self.last_set_cookie {
            self.cookie = Some(set_cookie.split(';').next().unwrap().to_owned());
        }
        result.map(Response::into_inner)
    }

    async fn login(&mut self, user: &str) -> Result<(), Status> {
        let request = self.request(LoginRequest { user: user.into() });
        let result = self.counter.login(request).await;
        self.keep(result)
    }

    async fn increment(&mut self, by: u64) -> Result<u64, Status> {
        let request = self.request(IncrementRequest { by });
        let result = self.counter.increment(request).await;
        self.keep(result).map(|reply| reply.count)
    }

    async fn logout(&mut self) -> Result<(), Status> {
        let request = self.request(());
        let result = self.counter.logout(request).await;
        self.keep(result)
    }
}

/// A free loopback port: its address for the client, its listener for the server.
async fn bind() -> (String, TcpIncoming) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    (address, TcpIncoming::from(listener))
}

/// Serves the counter behind `layer` and connects a client to it.
async fn serve<St: SessionStorage>(layer: SessionLayer<St>) -> Client {
    let (address, incoming) = bind().await;
    let server = Server::builder()
        .layer(layer)
        .add_service(CounterServer::new(SessionCounter));
    tokio::spawn(server.serve_with_incoming(incoming));
    Client::connect(address).await
}

/// Serves the counter with no session layer in front of it.
async fn serve_without_layer() -> Client {
    let (address, incoming) = bind().await;
    let server = Server::builder().add_service(CounterServer::new(SessionCounter));
    tokio::spawn(server.serve_with_incoming(incoming));
    Client::connect(address).await
}

/// Status INTERNAL as the layer answers it: no message, no details, no cookie.
fn assert_internal_without_details<T: Debug>(result: Result<T, Status>, client: &Client) {
    let status = result.expect_err("the call fails");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "", "{status:?}");
    assert!(status.details().is_empty(), "{status:?}");
    assert!(!format!("{status:?}").contains("hunter2"), "{status:?}");
    assert_eq!(client.last_set_cookie, None, "nothing saved");
}

#[tokio::test]
async fn the_session_is_kept_across_calls() {
    let mut client = serve(SessionLayer::new(cookie(), MemoryStorage::new())).await;
    client.login("ada").await.unwrap();
    assert!(client.last_set_cookie.is_some(), "login starts a session");
    assert_eq!(client.increment(1).await.unwrap(), 1);
    assert_eq!(client.increment(2).await.unwrap(), 3);

    // The count lives in the session the cookie names, not in the connection.
    client.cookie = None;
    let status = client.increment(1).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn logout_clears_the_cookie_and_ends_the_session() {
    let mut client = serve(SessionLayer::new(cookie(), MemoryStorage::new())).await;
    client.login("ada").await.unwrap();
    let logged_in = client.cookie.clone();
    client.logout().await.unwrap();
    let removal = client
        .last_set_cookie
        .clone()
        .expect("logout clears the cookie");
    assert!(removal.starts_with("sid=;"), "{removal}");

    // Replaying the cookie from before the logout finds no session.
    client.cookie = logged_in;
    let status = client.increment(1).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test]
async fn a_call_its_handler_failed_saves_nothing() {
    let mut client = serve(SessionLayer::new(cookie(), MemoryStorage::new())).await;
    client.login("ada").await.unwrap();
    assert_eq!(client.increment(4).await.unwrap(), 4);

    // The handler writes 4 + LIMIT into the session, then refuses the call.
    let status = client.increment(LIMIT).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(client.last_set_cookie, None, "no cookie for a failed call");
    assert_eq!(
        client.increment(0).await.unwrap(),
        4,
        "the write was dropped"
    );
}

#[tokio::test]
async fn a_storage_failure_on_save_is_internal_without_details() {
    let (logs, _guard) = Captured::start();
    let mut client = serve(SessionLayer::new(cookie(), Broken)).await;
    let result = client.login("ada").await;
    assert_internal_without_details(result, &client);
    assert!(logs.text().contains("hunter2"), "the cause is logged");
}

#[tokio::test]
async fn a_storage_failure_on_read_is_internal_without_details() {
    let (logs, _guard) = Captured::start();
    let mut client = serve(SessionLayer::new(cookie(), Broken)).await;
    let sealed = cookie().serialize("some-id").unwrap();
    client.cookie = Some(sealed.split(';').next().unwrap().to_owned());
    let result = client.increment(1).await;
    assert_internal_without_details(result, &client);
    assert!(logs.text().contains("hunter2"), "the cause is logged");
}

#[tokio::test]
async fn a_record_over_the_size_limit_is_internal_without_details() {
    let (logs, _guard) = Captured::start();
    let storage = MemoryStorage::new().max_record_size(256);
    let mut client = serve(SessionLayer::new(cookie(), storage)).await;
    let result = client.login(&"a".repeat(300)).await;
    assert_internal_without_details(result, &client);
    assert!(
        logs.text().contains("limit of 256 bytes"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn a_stored_record_over_the_size_limit_gives_a_fresh_session() {
    let (logs, _guard) = Captured::start();
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap();
    let mut writer = serve(SessionLayer::new(cookie(), storage)).await;
    writer.login(&"a".repeat(300)).await.unwrap();

    let storage = FsStorage::new(dir.path()).unwrap().max_record_size(256);
    let mut reader = serve(SessionLayer::new(cookie(), storage)).await;
    reader.cookie = writer.cookie.clone();
    // A fresh session: not logged in.
    let status = reader.increment(1).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(logs.text().contains("fresh session"), "{}", logs.text());
}

#[tokio::test]
async fn a_cookie_over_the_browser_limit_is_internal_without_details() {
    let (logs, _guard) = Captured::start();
    let mut client = serve(SessionLayer::new(cookie(), CookieStorage::new())).await;
    let result = client.login(&"a".repeat(5000)).await;
    assert_internal_without_details(result, &client);
    assert!(logs.text().contains("4096 bytes"), "{}", logs.text());
}

#[tokio::test]
async fn without_the_layer_the_session_is_internal_with_a_generic_message() {
    let (logs, _guard) = Captured::start();
    let mut client = serve_without_layer().await;
    let status = client.login("ada").await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "internal error");
    assert!(status.details().is_empty(), "{status:?}");
    assert!(logs.text().contains("SessionLayer"), "the cause is logged");
}

#[test]
fn a_session_error_converts_to_internal_and_is_logged_not_sent() {
    let (logs, _guard) = Captured::start();
    let status = Status::from(Error::backend("db password is hunter2"));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
    assert!(status.details().is_empty());
    assert!(status.metadata().is_empty());
    assert!(logs.text().contains("hunter2"), "the detail is logged");
}
