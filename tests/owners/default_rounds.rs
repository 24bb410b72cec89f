//! The default `OwnerIndexBackend::delete_all_owned` (list, then delete each, in rounds),
//! for backends that do not override it.

use session_layer::storage::{OwnerIndexBackend, Record, ServerStorage};
use session_layer::{Error, SessionHandle, SessionIndex, SessionStorage};

use crate::common::required_only::RequiredOnly;
use crate::owned_session;

/// The listing and single deletes passed on, but not the one-step `delete_all_owned`, so
/// that the default one runs.
impl OwnerIndexBackend for RequiredOnly {
    async fn records_of(&self, owner: &str) -> Result<Vec<(SessionHandle, Record)>, Error> {
        self.0.records_of(owner).await
    }

    async fn delete_owned(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        self.0.delete_owned(owner, handle).await
    }
}

#[tokio::test]
async fn the_default_delete_all_owned_ends_all_but_the_spared() {
    let storage = ServerStorage::with_backend(RequiredOnly::default());
    for _ in 0..3 {
        owned_session(&storage, "ann").await;
    }
    let bob = owned_session(&storage, "bob").await;
    let this = owned_session(&storage, "ann").await;
    let this = storage.read(Some(&this)).await.unwrap();
    this.regenerate_id(false).unwrap();
    assert_eq!(
        storage.end_sessions_of("ann", Some(&this)).await.unwrap(),
        3
    );
    let listed = storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, SessionHandle::of_id(&this.original_id()));
    assert_eq!(storage.end_sessions_of("ann", None).await.unwrap(), 1);
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
    let bob = storage.read(Some(&bob)).await.unwrap();
    assert_eq!(
        bob.owner().as_deref(),
        Some("bob"),
        "another owner's session stays"
    );
}
