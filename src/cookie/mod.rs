//! The cookie that carries the session: [`SessionCookie`] holds its name, attributes and
//! secrets; it seals values ([`seal`]), finds them in requests ([`header`]) and renders the
//! `Set-Cookie` that sends them ([`render`]).

mod header;
mod render;
mod seal;
mod secrets;
mod session_cookie;

pub(crate) use self::header::Received;
pub use self::session_cookie::{SameSite, SessionCookie};

/// Browsers drop cookies longer than this (name, value and attributes together).
pub const MAX_COOKIE_SIZE: usize = 4096;
