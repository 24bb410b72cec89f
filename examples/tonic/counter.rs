//! The `counter.Counter` gRPC service, written by hand where tonic-build would generate it
//! from a `.proto` file, so that building needs no protoc:
//!
//! ```proto
//! syntax = "proto3";
//! package counter;
//! import "google/protobuf/empty.proto";
//!
//! service Counter {
//!   rpc Login(LoginRequest) returns (google.protobuf.Empty);
//!   rpc Increment(IncrementRequest) returns (CountReply);
//!   rpc Logout(google.protobuf.Empty) returns (google.protobuf.Empty);
//! }
//! message LoginRequest { string user = 1; }
//! message IncrementRequest { uint64 by = 1; }
//! message CountReply { uint64 count = 1; }
//! ```
//!
//! `()` is prost's `google.protobuf.Empty`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::{Service, service_fn};

/// `counter.LoginRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LoginRequest {
    /// Who logs in.
    #[prost(string, tag = "1")]
    pub user: String,
}

/// `counter.IncrementRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IncrementRequest {
    /// How much to add to the session's count.
    #[prost(uint64, tag = "1")]
    pub by: u64,
}

/// `counter.CountReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CountReply {
    /// The session's count after the call.
    #[prost(uint64, tag = "1")]
    pub count: u64,
}

/// The RPCs of `counter.Counter`, which a server implements.
pub trait Counter: Send + Sync + 'static {
    /// `Login`.
    fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> impl Future<Output = Result<Response<()>, Status>> + Send;

    /// `Increment`.
    fn increment(
        &self,
        request: Request<IncrementRequest>,
    ) -> impl Future<Output = Result<Response<CountReply>, Status>> + Send;

    /// `Logout`.
    fn logout(
        &self,
        request: Request<()>,
    ) -> impl Future<Output = Result<Response<()>, Status>> + Send;
}

/// A [`Counter`] as a service for `tonic::transport::Server::add_service`: it routes each
/// call by its path, and decodes and encodes the messages with prost.
pub struct CounterServer<T> {
    inner: Arc<T>,
}

impl<T> CounterServer<T> {
    /// Serves the RPCs of `inner`.
    pub fn new(inner: T) -> Self {
        CounterServer {
            inner: Arc::new(inner),
        }
    }
}

impl<T> Clone for CounterServer<T> {
    fn clone(&self) -> Self {
        CounterServer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> NamedService for CounterServer<T> {
    const NAME: &'static str = "counter.Counter";
}

impl<T: Counter> Service<http::Request<Body>> for CounterServer<T> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let inner = &*inner;
            let response = match request.uri().path() {
                "/counter.Counter/Login" => {
                    let method = service_fn(|request| inner.login(request));
                    Grpc::new(ProstCodec::new()).unary(method, request).await
                }
                "/counter.Counter/Increment" => {
                    let method = service_fn(|request| inner.increment(request));
                    Grpc::new(ProstCodec::new()).unary(method, request).await
                }
                "/counter.Counter/Logout" => {
                    let method = service_fn(|request| inner.logout(request));
                    Grpc::new(ProstCodec::new()).unary(method, request).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

/// A client of `counter.Counter`.
#[derive(Clone)]
pub struct CounterClient {
    inner: tonic::client::Grpc<Channel>,
}

impl CounterClient {
    /// Connects to a server, for example `"http://127.0.0.1:50051"`.
    pub async fn connect(address: String) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::new(address)?.connect().await?;
        Ok(CounterClient {
            inner: tonic::client::Grpc::new(channel),
        })
    }

    /// `Login`.
    pub async fn login(&mut self, request: Request<LoginRequest>) -> Result<Response<()>, Status> {
        self.unary("/counter.Counter/Login", request).await
    }

    /// `Increment`.
    pub async fn increment(
        &mut self,
        request: Request<IncrementRequest>,
    ) -> Result<Response<CountReply>, Status> {
        self.unary("/counter.Counter/Increment", request).await
    }

    /// `Logout`.
    pub async fn logout(&mut self, request: Request<()>) -> Result<Response<()>, Status> {
        self.unary("/counter.Counter/Logout", request).await
    }

    async fn unary<Req, Res>(
        &mut self,
        path: &'static str,
        request: Request<Req>,
    ) -> Result<Response<Res>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Res: prost::Message + Default + Send + Sync + 'static,
    {
        self.inner
            .ready()
            .await
            .map_err(|error| Status::unavailable(format!("server not ready: {error}")))?;
        let path = PathAndQuery::from_static(path);
        self.inner.unary(request, path, ProstCodec::new()).await
    }
}
