//! Guides: how the crate behaves in operation, beyond what each item's documentation says.
//!
//! * [`storages`]: each storage, its options and its failure behaviour, and writing your own
//!   backend.
//! * [`sql`]: the SQL storages, their tables, `remove_expired` and table bloat.
//! * [`concurrency`]: what happens when requests of one session overlap, and how.
//! * [`security`]: what the layer defends against, and how; what it leaves to you (CSRF).
//! * [`deployment`]: HTTPS and secrets, several app servers, Redis and Memcached in
//!   production.
//! * [`grpc`]: tonic servers and clients, and what a gRPC client sees when a session fails.
//! * [`observability`]: the `session` span's fields, the metrics of the feature `metrics`,
//!   and the alerts worth setting.
//! * [`benchmarks`]: what it costs against tower-sessions, per storage and over HTTP, and
//!   what floods and faults do.
//! * [`comparison`]: against tower-sessions and actix-session.
//!
//! Each is a page of the repository's `docs/` folder, included whole, so the two never
//! differ. The pages for working on the crate itself (running its tests, benchmarks and
//! fuzzers; the record of every benchmark run; a bug report for redis-rs) are not here: they
//! are in the crate's source.
//!
//! The Rust blocks of these pages are compiled by `cargo test --doc`; a page whose blocks
//! need optional features is compiled only when they are on (`--all-features`), and shown
//! here whatever the features.

// The definition of `$label` as a file of this version of the published crate, in docs.rs's
// view of its source.
macro_rules! published {
    ($label:literal, $path:literal) => {
        concat!(
            "[",
            $label,
            "]: https://docs.rs/crate/session-layer/",
            env!("CARGO_PKG_VERSION"),
            "/source/",
            $path,
            "\n"
        )
    };
}

// The pages link each other with reference links (`[sql.md]`), defined at the bottom of each
// page as the relative file, which is right on GitHub. These definitions come before the
// page, and of two definitions of a label the first wins, so here the same links lead to the
// guide modules, and to the published files for the pages that are not guides.
macro_rules! links {
    () => {
        concat!(
            "[security.md]: crate::guide::security\n",
            "[concurrency.md]: crate::guide::concurrency\n",
            "[storages.md]: crate::guide::storages\n",
            "[sql.md]: crate::guide::sql\n",
            "[deployment.md]: crate::guide::deployment\n",
            "[deployment.md#redis]: crate::guide::deployment#redis\n",
            "[deployment.md#memcached]: crate::guide::deployment#memcached\n",
            "[deployment.md#eviction]: crate::guide::deployment#eviction\n",
            "[deployment.md#failover-measured]: crate::guide::deployment#failover-measured\n",
            "[grpc.md]: crate::guide::grpc\n",
            "[benchmarks.md]: crate::guide::benchmarks\n",
            "[observability.md]: crate::guide::observability\n",
            "[comparison.md]: crate::guide::comparison\n",
            "[storage module]: crate::storage\n",
            published!("benchmarks.svg", "docs/benchmarks.svg"),
            published!("benchmarks-history.md", "docs/benchmarks-history.md"),
            published!(
                "benchmarks-history.md#fuzzing",
                "docs/benchmarks-history.md"
            ),
            published!("development.md", "docs/development.md"),
            published!("redis-cluster-bug.md", "docs/redis-cluster-bug.md"),
            published!("examples/custom_backend", "examples/custom_backend/"),
        )
    };
}

// A page whose Rust blocks need optional features is left out of the doctests without them
// (`cfg(doctest)` is set only while rustdoc collects doctests); the docs always have it.

#[doc = links!()]
#[cfg_attr(
    any(not(doctest), all(feature = "axum", feature = "redis", feature = "memcache")),
    doc = include_str!("../docs/storages.md")
)]
pub mod storages {}

#[doc = links!()]
#[cfg_attr(any(not(doctest), feature = "postgres"), doc = include_str!("../docs/sql.md"))]
pub mod sql {}

#[doc = links!()]
#[doc = include_str!("../docs/concurrency.md")]
pub mod concurrency {}

#[doc = links!()]
#[doc = include_str!("../docs/security.md")]
pub mod security {}

#[doc = links!()]
#[doc = include_str!("../docs/deployment.md")]
pub mod deployment {}

#[doc = links!()]
#[cfg_attr(any(not(doctest), feature = "tonic"), doc = include_str!("../docs/grpc.md"))]
pub mod grpc {}

#[doc = links!()]
#[cfg_attr(
    any(not(doctest), feature = "metrics"),
    doc = include_str!("../docs/observability.md")
)]
pub mod observability {}

#[doc = links!()]
#[doc = include_str!("../docs/benchmarks.md")]
pub mod benchmarks {}

#[doc = links!()]
#[doc = include_str!("../docs/comparison.md")]
pub mod comparison {}

#[cfg(test)]
mod tests {
    /// The pages included above.
    const GUIDES: [(&str, &str); 9] = [
        ("storages.md", include_str!("../docs/storages.md")),
        ("sql.md", include_str!("../docs/sql.md")),
        ("concurrency.md", include_str!("../docs/concurrency.md")),
        ("security.md", include_str!("../docs/security.md")),
        ("deployment.md", include_str!("../docs/deployment.md")),
        ("grpc.md", include_str!("../docs/grpc.md")),
        ("benchmarks.md", include_str!("../docs/benchmarks.md")),
        ("comparison.md", include_str!("../docs/comparison.md")),
        ("observability.md", include_str!("../docs/observability.md")),
    ];

    /// A link to another file that rustdoc cannot check: an inline relative link, or a
    /// label that only the page defines, works on GitHub and is dead on docs.rs.
    #[test]
    fn every_link_to_a_file_is_defined_again_for_the_api_docs() {
        let ours = links!();
        for (page, text) in GUIDES {
            for (at, _) in text.match_indices("](") {
                let target = &text[at + 2..];
                assert!(
                    target.starts_with("https://") || target.starts_with('#'),
                    "{page}: an inline link to {:?}: make it a reference link",
                    target.split(')').next().unwrap_or_default(),
                );
            }
            for line in text.lines() {
                let Some((label, target)) = line
                    .strip_prefix('[')
                    .and_then(|line| line.split_once("]: "))
                else {
                    continue;
                };
                assert!(
                    target.starts_with("https://") || ours.contains(&format!("[{label}]: ")),
                    "{page}: the label [{label}] leads to {target:?}: define it in `links!` too",
                );
            }
        }
    }
}
