//! A request digests each session id once: the id a backend's save or delete gets carries
//! the digest its load computed.

use std::sync::Mutex;
use std::time::Duration;

use crate::storage::{
    Expected, MemoryBackend, Record, ServerStorage, SessionBackend, SessionId, Versioned,
};
use crate::{Error, SessionStorage};

/// A memory backend that notes, for each call, whether the id came with its digest, and
/// then asks for it as a store keyed by digest does.
#[derive(Default)]
struct Noting {
    inner: MemoryBackend,
    calls: Mutex<Vec<(&'static str, bool)>>,
}

impl Noting {
    fn note(&self, call: &'static str, id: &SessionId) {
        self.calls.lock().unwrap().push((call, id.has_digest()));
        let _ = id.digest();
    }

    fn take(&self) -> Vec<(&'static str, bool)> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

impl SessionBackend for Noting {
    async fn load(&self, id: &SessionId) -> Result<Option<Versioned>, Error> {
        self.note("load", id);
        self.inner.load(id).await
    }

    async fn store(
        &self,
        id: &SessionId,
        record: &Record,
        ttl: Option<Duration>,
        expected: Expected,
    ) -> Result<bool, Error> {
        self.note("store", id);
        self.inner.store(id, record, ttl, expected).await
    }

    async fn delete(&self, id: &SessionId, expected: Expected) -> Result<bool, Error> {
        self.note("delete", id);
        self.inner.delete(id, expected).await
    }
}

/// A stored session's id, and the storage with its notes cleared.
async fn stored() -> (ServerStorage<Noting>, String) {
    let storage = ServerStorage::with_backend(Noting::default());
    let session = storage.read(None).await.unwrap();
    session.set("n", 1).unwrap();
    let id = storage.save(&session).await.unwrap().unwrap();
    storage.backend().take();
    (storage, id)
}

#[tokio::test]
async fn the_save_gets_the_digest_the_load_computed() {
    let (storage, id) = stored().await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.set("n", 2).unwrap();
    storage.save(&session).await.unwrap();
    assert_eq!(storage.backend().take(), [("load", false), ("store", true)]);
}

#[tokio::test]
async fn a_destroy_deletes_with_the_digest_the_load_computed() {
    let (storage, id) = stored().await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.destroy();
    storage.save(&session).await.unwrap();
    assert_eq!(
        storage.backend().take(),
        [("load", false), ("delete", true)]
    );
}

#[tokio::test]
async fn a_new_id_is_digested_and_the_old_one_is_not_again() {
    let (storage, id) = stored().await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.regenerate_id(true).unwrap();
    storage.save(&session).await.unwrap();
    // The default move: store under the new id, then delete the old one at its version.
    let calls = storage.backend().take();
    assert_eq!(calls, [("load", false), ("store", false), ("delete", true)]);
}
