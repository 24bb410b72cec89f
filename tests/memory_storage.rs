//! MemoryStorage against the shared scenario suite.
mod common;

use std::time::Duration;

use common::scenarios::{server_storage_scenarios, storage_scenarios};
use session_layer::MemoryStorage;

storage_scenarios! {
    plain: async { MemoryStorage::new() },
    ttl: |ttl: Duration| async move { MemoryStorage::new().ttl(ttl) },
    max_lifetime: |limit: Duration| async move {
        MemoryStorage::new().ttl(Duration::from_secs(60)).max_lifetime(limit)
    },
}

server_storage_scenarios! {
    plain: async { MemoryStorage::new() },
    unknown_ids: async { MemoryStorage::new().use_unknown_ids(true) },
}

/// Expired sessions do not pile up: `remove_expired` (and the sweep on writes) drops them.
#[tokio::test]
async fn expired_sessions_do_not_pile_up() {
    use session_layer::SessionStorage;
    let storage = MemoryStorage::new().ttl(Duration::from_millis(300));
    for i in 0..10 {
        let s = storage.read(None).await.unwrap();
        s.set("i", i).unwrap();
        storage.save(&s).await.unwrap();
    }
    let live = storage.read(None).await.unwrap();
    assert_eq!(storage.len(), 10);
    tokio::time::sleep(Duration::from_millis(400)).await;
    live.set("k", 1).unwrap();
    storage.save(&live).await.unwrap();
    assert_eq!(storage.remove_expired(), 10);
    assert_eq!(storage.len(), 1);
}
