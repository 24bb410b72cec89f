#![forbid(unsafe_code)]
#![deny(missing_docs)]
//! placeholder docs

mod error;
mod session;
pub mod storage;

pub use error::Error;
pub use session::{Session, SessionData};
#[cfg(feature = "memcache")]
pub use storage::MemcacheStorage;
#[cfg(feature = "redis")]
pub use storage::RedisStorage;
pub use storage::{CookieStorage, FsStorage, MemoryStorage, SessionStorage};
