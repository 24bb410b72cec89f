//! Many requests at once through the real `SessionLayer` (an axum `Router`, multi-threaded
//! runtime), on one session and on many, for every storage: no panic, no deadlock (every
//! scenario runs under a time limit), no torn data, and no lost update: server-side storages
//! keep what docs/concurrency.md ("What is guaranteed") promises, the cookie storage what
//! its docs say.
//!
//! * `harness`: the app and how the tests drive it (gates between load and save).
//! * `scenarios`: each scenario, written once.
//! * `storages`: every scenario on every storage (memory, filesystem, cookie signed and
//!   encrypted, Redis and Memcached on private servers, PostgreSQL, MariaDB, an SQLite file
//!   and SQLite in memory, the custom backend example over redb, a private Redis Cluster),
//!   the checks' self-test, and storage-specific runs.
//! * `model`: random interleavings of requests checked against a model of the contract.
//!
//! How torn data would show: a write request `i` sets `a`, `b`, `c` and `pad` from its own
//! number, plus a key `k{i}` of its own, in one request. A state holding `a`, `b`, `c` and
//! `pad` of two requests, or a truncated one, fails `whole_value`; a record that no longer
//! decodes fails the final read (`Error::Corrupt`) and, during the run, makes the layer start
//! a fresh session, which the request's trace shows as an empty `seen`.

#[path = "../common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../../examples/custom_backend/backend.rs"]
mod backend;

mod harness;
mod model;
mod scenarios;
mod storages;
