//! [`Refusal`]: what a Redis Cluster node's error asks of a request (follow a redirection,
//! wait, give up on the node, or pass the answer on).

use std::sync::Arc;

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// What a node's error asks of the request.
pub(super) enum Refusal {
    /// The slot has moved for good: to this master.
    Moved(Arc<str>),
    /// The slot is moving, and this key is already at this master.
    Ask(Arc<str>),
    /// The cluster is between states (a slot half-moved, a master not yet replaced).
    NotNow,
    /// The node could not be reached or dropped the connection; `sent`: the request may
    /// have reached it.
    NodeDown { sent: bool },
    /// An answer to pass on.
    Final,
}

impl Refusal {
    /// The refusal `error` is.
    pub fn of(error: &RedisError) -> Refusal {
        let redirect = || {
            let errors = error.clone().into_server_errors()?;
            let details = errors.first()?.1.details()?.to_owned();
            let address = details.split_ascii_whitespace().nth(1)?;
            Some(Arc::<str>::from(address))
        };
        match error.kind() {
            ErrorKind::Server(ServerErrorKind::Moved) => {
                redirect().map_or(Refusal::Final, Refusal::Moved)
            }
            ErrorKind::Server(ServerErrorKind::Ask) => {
                redirect().map_or(Refusal::Final, Refusal::Ask)
            }
            ErrorKind::Server(
                ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading,
            ) => Refusal::NotNow,
            _ if error.is_connection_refusal() => Refusal::NodeDown { sent: false },
            _ if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() => {
                Refusal::NodeDown { sent: true }
            }
            _ => Refusal::Final,
        }
    }
}
