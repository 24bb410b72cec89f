//! Shared test support: private servers and the scenario suite every storage runs.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod scenarios;
pub mod servers;
