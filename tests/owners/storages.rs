//! Every scenario of `contract` on every storage that implements `SessionIndex`.

use std::time::Duration;

use session_layer::MemoryStorage;

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
}
