//! Every scenario of `contract` on every storage that implements `SessionIndex`.

use std::path::Path;
use std::time::Duration;

use session_layer::{FsStorage, MemoryStorage};

use crate::contract::{Fixture, SHORT_TTL, TTL};

pub(crate) async fn memory(ttl: Duration) -> Fixture<MemoryStorage> {
    let storage = MemoryStorage::new().ttl(ttl);
    let (scanned, swept) = (storage.clone(), storage.clone());
    Fixture {
        storage,
        scan: Box::new(move || {
            let held = scanned.len();
            Box::pin(async move { vec!["a session".to_owned(); held] })
        }),
        sweep: Box::new(move || {
            swept.remove_expired();
            Box::pin(async {})
        }),
        keep: Box::new(()),
    }
}

pub(crate) async fn fs(ttl: Duration) -> Fixture<FsStorage> {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path()).unwrap().ttl(ttl);
    let (root, swept) = (dir.path().to_owned(), storage.clone());
    Fixture {
        storage,
        scan: Box::new(move || {
            let files = files_under(&root);
            Box::pin(async move { files })
        }),
        sweep: Box::new(move || {
            let swept = swept.clone();
            Box::pin(async move {
                swept.remove_expired().await.unwrap();
            })
        }),
        keep: Box::new(dir),
    }
}

/// The files under `dir`, at any depth, by their path below it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}

/// One test per scenario for the storage `$make` builds from a TTL.
macro_rules! contract_tests {
    ($make:expr; $($scenario:ident: $ttl:expr),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            crate::contract::$scenario($make($ttl).await).await
        }
    )+};
}

/// Every scenario for every storage: `name: constructor;`.
macro_rules! index_suite {
    ($($(#[$attr:meta])* $storage:ident: $make:expr;)+) => {$(
        $(#[$attr])*
        mod $storage {
            use super::*;
            contract_tests! {$make;
                a_listing_shows_each_live_session_newest_save_first: TTL,
                ending_one_session_is_owner_checked: TTL,
                ending_all_sessions_or_all_but_this_one: TTL,
                the_listing_follows_regenerate_destroy_and_owner_changes: TTL,
                nothing_of_an_owner_outlives_its_expired_sessions: SHORT_TTL,
                a_request_in_flight_during_end_sessions_of_brings_nothing_back: TTL,
                no_session_survives_a_race_with_end_sessions_of: TTL,
            }
        }
    )+};
}

index_suite! {
    memory: memory;
    fs: fs;
}
