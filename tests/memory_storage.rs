//! MemoryStorage against the shared scenario suite.
mod common;

use std::time::Duration;

use common::scenarios::{server_storage_scenarios, storage_scenarios};
use session_layer::MemoryStorage;

storage_scenarios! {
    plain: async { MemoryStorage::new() },
    ttl: |ttl: Duration| async move { MemoryStorage::new().ttl(ttl) },
}

server_storage_scenarios! {
    plain: async { MemoryStorage::new() },
    unknown_ids: async { MemoryStorage::new().use_unknown_ids(true) },
}
