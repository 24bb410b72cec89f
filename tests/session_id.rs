//! A request digests each session id once: the `SessionId` a backend's load gets is the one
//! its save and delete get, with the digest the load computed.

use std::sync::Mutex;
use std::time::Duration;

use session_layer::storage::{
    Expected, MemoryBackend, Record, ServerStorage, SessionBackend, SessionId, Versioned, id_digest,
};
use session_layer::{Error, SessionStorage};

/// A memory backend that notes where the digest of every id it is given lives.
#[derive(Default)]
struct Noting {
    inner: MemoryBackend,
    digests: Mutex<Vec<(&'static str, usize, String)>>,
}

impl Noting {
    fn note(&self, call: &'static str, id: &SessionId) {
        let digest = id.digest();
        assert_eq!(digest, id_digest(id));
        let at = digest.as_ptr() as usize;
        self.digests
            .lock()
            .unwrap()
            .push((call, at, digest.to_owned()));
    }

    fn take(&self) -> Vec<(&'static str, usize, String)> {
        std::mem::take(&mut self.digests.lock().unwrap())
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
async fn the_save_uses_the_digest_the_load_computed() {
    let (storage, id) = stored().await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.set("n", 2).unwrap();
    storage.save(&session).await.unwrap();

    let calls = storage.backend().take();
    let names: Vec<_> = calls.iter().map(|(call, ..)| *call).collect();
    assert_eq!(names, ["load", "store"]);
    assert_eq!(calls[0].1, calls[1].1, "the save digested the id again");
    assert_eq!(calls[1].2, id_digest(&id));
}

#[tokio::test]
async fn a_destroy_deletes_under_the_digest_the_load_computed() {
    let (storage, id) = stored().await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.destroy();
    storage.save(&session).await.unwrap();

    let calls = storage.backend().take();
    let names: Vec<_> = calls.iter().map(|(call, ..)| *call).collect();
    assert_eq!(names, ["load", "delete"]);
    assert_eq!(calls[0].1, calls[1].1, "the delete digested the id again");
}

#[tokio::test]
async fn a_new_id_is_digested_apart_from_the_one_it_replaces() {
    let (storage, id) = stored().await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.regenerate_id(true).unwrap();
    let new_id = storage.save(&session).await.unwrap().unwrap();

    // The default move: store under the new id, then delete the old one at its version.
    let calls = storage.backend().take();
    let names: Vec<_> = calls.iter().map(|(call, ..)| *call).collect();
    assert_eq!(names, ["load", "store", "delete"]);
    let (load, store, delete) = (&calls[0], &calls[1], &calls[2]);
    assert_eq!(load.1, delete.1, "the old id was digested again");
    assert_eq!(store.2, id_digest(&new_id));
    assert_ne!(store.2, load.2);
}
