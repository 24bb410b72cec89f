//! Shared test support: private servers and the scenario suite every storage runs.
#![allow(dead_code, unused_macros, unused_imports)]

#[cfg(feature = "axum")]
pub mod app;
pub mod broken;
pub mod logs;
pub mod proxy;
pub mod redis_ha;
pub mod required_only;
pub mod scenarios;
pub mod servers;
pub mod sessions;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub mod sql;
pub mod traffic;
