//! The Tower middleware: [`SessionLayer`] is the configuration, [`SessionService`] wraps the
//! inner service, and [`ResponseFuture`] carries one request from the session's read through
//! the inner service to its save.

mod future;
mod grpc_status;
mod request_context;
mod service;
mod session_layer;
mod storage_calls;
mod transport;

pub use self::future::ResponseFuture;
pub use self::service::SessionService;
pub use self::session_layer::SessionLayer;
