//! Shared pieces of the comparison between session-layer and tower-sessions: the same
//! handlers over both crates, for the criterion benchmarks and the load-run servers.
