//! The scenario suite every storage passes, written once.
//!
//! A storage's test file runs all of it with
//!
//! ```ignore
//! storage_scenarios! {
//!     // a storage with default options
//!     plain: async { MemoryStorage::new() },
//!     // the same with an idle TTL
//!     ttl: |ttl: Duration| async move { MemoryStorage::new().ttl(ttl) },
//! }
//! server_storage_scenarios! {
//!     // server-side storages only: use_unknown_ids and regenerate-with-delete
//!     plain: async { MemoryStorage::new() },
//!     unknown_ids: async { MemoryStorage::new().use_unknown_ids(true) },
//! }
//! ```
//!
//! Each expression is evaluated once per test, so every test has a storage of its own.

use std::time::Duration;

use session_layer::{Session, SessionStorage};

/// One simulated request: read the session from `cookie`, let `handler` use it, save.
/// Returns the session as the handler saw it and the cookie for the next request
/// (the previous one when the save set none, "" cleared).
pub async fn request<S: SessionStorage>(
    storage: &S,
    cookie: Option<&str>,
    handler: impl FnOnce(&Session),
) -> (Session, Option<String>) {
    let session = storage.read(cookie).await.expect("read");
    handler(&session);
    let saved = storage.save(&session).await.expect("save");
    let next = match saved {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(v),
        None => cookie.map(str::to_owned),
    };
    (session, next)
}

/// Seed 001: a counter that survives three requests.
pub async fn counter<S: SessionStorage>(storage: S) {
    let bump = |s: &Session| {
        let n = s.get::<u64>("count").unwrap_or(0);
        s.set("count", n + 1).unwrap();
    };
    let (s1, c1) = request(&storage, None, bump).await;
    assert_eq!(s1.get::<u64>("count"), Some(1));
    let (s2, c2) = request(&storage, c1.as_deref(), bump).await;
    assert_eq!(s2.get::<u64>("count"), Some(2));
    let (s3, _) = request(&storage, c2.as_deref(), bump).await;
    assert_eq!(s3.get::<u64>("count"), Some(3));
}

/// Seeds 000/001: flash is invisible where set, readable on the next request, then gone.
pub async fn flash<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |_| {}).await;
    assert_eq!(s1.get::<String>("message"), None);
    let (s2, c2) = request(&storage, c1.as_deref(), |s| {
        s.flash("message", "success!").unwrap()
    })
    .await;
    assert_eq!(s2.get::<String>("message"), None);
    let (s3, c3) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("message").as_deref(), Some("success!"));
    let (s4, _) = request(&storage, c3.as_deref(), |_| {}).await;
    assert_eq!(s4.get::<String>("message"), None);
}

/// An idle TTL: a session not written for longer than the TTL is gone.
pub async fn ttl_expires<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let (s2, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(s2.get::<String>("user").as_deref(), Some("mj"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (s3, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(
        s3.get::<String>("user"),
        None,
        "expired session must not be returned"
    );
}

/// Seed 000: regenerate_id(true) deletes the original id's data on save.
pub async fn regenerate_deletes_old<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let old_id = s1.id();
    let (s2, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
    assert_ne!(s2.id(), old_id);
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("user").as_deref(), Some("anon"));
    let (old, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(
        old.get::<String>("user"),
        None,
        "the old id's data must be gone"
    );
}

/// use_unknown_ids(true) keeps a non-empty id that names no session.
pub async fn unknown_id_kept<S: SessionStorage>(storage: S) {
    let session = storage.read(Some("client-chosen-id")).await.unwrap();
    assert_eq!(session.id(), "client-chosen-id");
}

/// A fresh id as `Session::new` makes them: 128+ bits, URL-safe.
fn is_url_safe_random_id(id: &str) -> bool {
    id.len() >= 22
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Seed 000 (login): `regenerate_id()` changes the id and keeps the data.
pub async fn login_regenerates<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |s| s.set("cart", vec![1, 2]).unwrap()).await;
    let (s2, c2) = request(&storage, c1.as_deref(), |s| {
        s.set("user", "mj").unwrap();
        s.regenerate_id(false).unwrap();
    })
    .await;
    assert_ne!(s2.id(), s1.id(), "login must change the session id");
    assert_eq!(s2.get::<Vec<u32>>("cart"), Some(vec![1, 2]));
    assert_ne!(c2, c1, "a regenerated session sends a new cookie");
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.id(), s2.id());
    assert_eq!(s3.get::<String>("user").as_deref(), Some("mj"));
    assert_eq!(s3.get::<Vec<u32>>("cart"), Some(vec![1, 2]));
}

/// A regenerated session (even with delete) is read back under its new cookie.
pub async fn regenerate_then_read<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| s.set("k", "v").unwrap()).await;
    let (s2, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(true).unwrap()).await;
    let c2 = c2.expect("regenerate sends a cookie");
    let s3 = storage.read(Some(&c2)).await.unwrap();
    assert_eq!(s3.id(), s2.id());
    assert_eq!(s3.get::<String>("k").as_deref(), Some("v"));
    assert!(!s3.is_dirty());
}

/// Destroy: `save` returns `Some("")` (clear the cookie); a new request starts afresh.
pub async fn destroy_clears_the_cookie<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| s.set("count", 1).unwrap()).await;
    let session = storage.read(c1.as_deref()).await.unwrap();
    assert_eq!(session.get::<u32>("count"), Some(1));
    session.destroy();
    assert_eq!(storage.save(&session).await.unwrap().as_deref(), Some(""));
    let (fresh, _) = request(&storage, None, |_| {}).await;
    assert!(fresh.is_empty());
    assert_ne!(fresh.id(), session.id());
}

/// Destroying a session that was never saved still clears the cookie.
pub async fn destroy_a_new_session<S: SessionStorage>(storage: S) {
    let session = storage.read(None).await.unwrap();
    session.destroy();
    assert_eq!(storage.save(&session).await.unwrap().as_deref(), Some(""));
}

/// An unchanged session saves nothing, new or loaded.
pub async fn unchanged_saves_nothing<S: SessionStorage>(storage: S) {
    let fresh = storage.read(None).await.unwrap();
    assert!(!fresh.is_dirty());
    assert_eq!(storage.save(&fresh).await.unwrap(), None);
    let read_only = storage.read(None).await.unwrap();
    let _ = read_only.get::<String>("anything");
    let _ = read_only.has("anything");
    assert_eq!(storage.save(&read_only).await.unwrap(), None);

    let (_, c1) = request(&storage, None, |s| s.set("k", 1).unwrap()).await;
    let loaded = storage.read(c1.as_deref()).await.unwrap();
    assert_eq!(loaded.get::<u32>("k"), Some(1));
    assert_eq!(storage.save(&loaded).await.unwrap(), None);
}

/// `read(None)` and `read(Some(""))` give fresh sessions with new random ids.
pub async fn read_nothing_is_fresh<S: SessionStorage>(storage: S) {
    let a = storage.read(None).await.unwrap();
    let b = storage.read(Some("")).await.unwrap();
    let c = storage.read(None).await.unwrap();
    for s in [&a, &b, &c] {
        assert!(s.is_empty());
        assert!(!s.is_dirty());
        assert!(!s.is_destroyed());
        assert!(is_url_safe_random_id(&s.id()), "{:?}", s.id());
    }
    assert_ne!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    assert_ne!(b.id(), c.id());
}

/// The string `save` returns goes straight into the next `read`, and a saved value is the
/// one the next read sees, however many times it is saved.
pub async fn save_value_feeds_read<S: SessionStorage>(storage: S) {
    let session = storage.read(None).await.unwrap();
    session.set("a", 1).unwrap();
    let v1 = storage.save(&session).await.unwrap().expect("dirty saves");
    assert!(!v1.is_empty());
    let loaded = storage.read(Some(&v1)).await.unwrap();
    assert_eq!(loaded.id(), session.id());
    assert_eq!(loaded.get::<u32>("a"), Some(1));
    loaded.set("a", 2).unwrap();
    let v2 = storage.save(&loaded).await.unwrap().expect("dirty saves");
    let again = storage.read(Some(&v2)).await.unwrap();
    assert_eq!(again.get::<u32>("a"), Some(2));
    assert_eq!(again.id(), session.id(), "the id is stable across saves");
}

/// Flash and set in the same request: the value now and later, the flash next time only.
pub async fn flash_and_set_together<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |s| {
        s.set("user", "mj").unwrap();
        s.flash("notice", "welcome").unwrap();
    })
    .await;
    assert_eq!(s1.get::<String>("notice"), None);
    assert_eq!(s1.get::<String>("user").as_deref(), Some("mj"));
    let (s2, c2) = request(&storage, c1.as_deref(), |s| {
        // Read twice: reading does not consume it within the request.
        assert_eq!(s.get::<String>("notice").as_deref(), Some("welcome"));
        assert_eq!(s.get::<String>("notice").as_deref(), Some("welcome"));
        assert_eq!(s.len(), 2);
    })
    .await;
    assert!(s2.is_dirty(), "a consumed flash makes the session dirty");
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("notice"), None);
    assert_eq!(s3.get::<String>("user").as_deref(), Some("mj"));
    assert_eq!(s3.len(), 1);
}

/// A flash set again on the request that reads it lives one more request.
pub async fn flash_renewed<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| s.flash("step", 1).unwrap()).await;
    let (_, c2) = request(&storage, c1.as_deref(), |s| {
        assert_eq!(s.get::<u32>("step"), Some(1));
        s.flash("step", 2).unwrap();
    })
    .await;
    let (s3, c3) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<u32>("step"), Some(2));
    let (s4, _) = request(&storage, c3.as_deref(), |_| {}).await;
    assert_eq!(s4.get::<u32>("step"), None);
}

/// `unset` persists.
pub async fn unset_persists<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| {
        s.set("a", 1).unwrap();
        s.set("b", 2).unwrap();
    })
    .await;
    let (_, c2) = request(&storage, c1.as_deref(), |s| s.unset("a").unwrap()).await;
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert!(!s3.has("a"));
    assert_eq!(s3.get::<u32>("b"), Some(2));
    assert_eq!(s3.len(), 1);
}

/// Setting JSON null persists as a removal.
pub async fn null_persists_as_removal<S: SessionStorage>(storage: S) {
    let (_, c1) = request(&storage, None, |s| {
        s.set("a", "x").unwrap();
        s.set("b", "y").unwrap();
    })
    .await;
    let (_, c2) = request(&storage, c1.as_deref(), |s| {
        s.set("a", serde_json::Value::Null).unwrap();
        s.set("b", None::<String>).unwrap();
    })
    .await;
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert!(!s3.has("a"));
    assert!(!s3.has("b"));
    assert!(s3.is_empty());
    assert!(s3.data().values.is_empty());
}

/// Large and awkward values round trip unchanged.
pub async fn large_values_round_trip<S: SessionStorage>(storage: S) {
    let big = "x".repeat(64 * 1024);
    let nested = serde_json::json!({
        "unicode": "日本語 ✓ \u{0} \"quotes\" \\ ; = , \n",
        "numbers": [0, -1, 1.5, u64::MAX, i64::MIN],
        "deep": {"a": {"b": {"c": [true, false, null]}}},
        "empty": {},
    });
    let (_, c1) = request(&storage, None, |s| {
        s.set("big", &big).unwrap();
        s.set("nested", &nested).unwrap();
        s.set("clé ✓", 1).unwrap();
    })
    .await;
    let (s2, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(s2.get::<String>("big").as_deref(), Some(big.as_str()));
    assert_eq!(s2.get_value("nested"), Some(nested));
    assert_eq!(s2.get::<u32>("clé ✓"), Some(1));
}

/// An absolute lifetime: gone after it, however recently it was written.
pub async fn max_lifetime_expires<S: SessionStorage>(storage: S) {
    // The storage is built with a 2 s lifetime and a long idle TTL.
    let (_, c1) = request(&storage, None, |s| s.set("user", "mj").unwrap()).await;
    let (s2, c2) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(s2.get::<String>("user").as_deref(), Some("mj"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Activity does not extend it.
    let (_, c3) = request(&storage, c2.as_deref(), |s| s.set("n", 1).unwrap()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for cookie in [c1, c3] {
        let (s, _) = request(&storage, cookie.as_deref(), |_| {}).await;
        assert_eq!(s.get::<String>("user"), None, "past the absolute lifetime");
    }
}

/// Server-side: `regenerate_id(false)` leaves the old data in place (Remix's default).
pub async fn regenerate_keeps_old<S: SessionStorage>(storage: S) {
    let bump = |s: &Session| {
        let n = s.get::<u64>("count").unwrap_or(0);
        s.set("count", n + 1).unwrap();
    };
    let (s1, c1) = request(&storage, None, bump).await;
    let (s2, c2) = request(&storage, c1.as_deref(), |s| s.regenerate_id(false).unwrap()).await;
    assert_ne!(s2.id(), s1.id());
    let (s3, _) = request(&storage, c2.as_deref(), bump).await;
    assert_eq!(s3.get::<u64>("count"), Some(2));
    let (s4, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(s4.id(), s1.id());
    assert_eq!(
        s4.get::<u64>("count"),
        Some(1),
        "old data stays without delete"
    );
}

/// Server-side: `regenerate_id(true)` deletes the original even after several regenerations,
/// and the intermediate ids were never stored.
pub async fn regenerate_many_deletes_original<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |s| s.set("user", "anon").unwrap()).await;
    let mut middle = Vec::new();
    let (s2, c2) = request(&storage, c1.as_deref(), |s| {
        s.regenerate_id(true).unwrap();
        middle.push(s.id());
        s.regenerate_id(false).unwrap();
        middle.push(s.id());
        s.regenerate_id(true).unwrap();
    })
    .await;
    assert_eq!(s2.delete_id(), Some(s1.id()));
    let (s3, _) = request(&storage, c2.as_deref(), |_| {}).await;
    assert_eq!(s3.get::<String>("user").as_deref(), Some("anon"));
    let (old, _) = request(&storage, c1.as_deref(), |_| {}).await;
    assert_eq!(
        old.get::<String>("user"),
        None,
        "the original must be deleted"
    );
    assert_ne!(old.id(), s1.id());
    for id in middle {
        let s = storage.read(Some(&id)).await.unwrap();
        assert!(s.is_empty(), "an intermediate id was stored");
        assert_ne!(s.id(), id);
    }
}

/// Server-side: destroy deletes the data; the old cookie then gives a fresh, empty session.
pub async fn destroy_deletes_data<S: SessionStorage>(storage: S) {
    let bump = |s: &Session| {
        let n = s.get::<u64>("count").unwrap_or(0);
        s.set("count", n + 1).unwrap();
    };
    let (_, c1) = request(&storage, None, bump).await;
    let (s2, c2) = request(&storage, c1.as_deref(), bump).await;
    assert_eq!(s2.get::<u64>("count"), Some(2));
    let (s3, c3) = request(&storage, c2.as_deref(), |s| s.destroy()).await;
    assert!(s3.is_destroyed());
    assert_eq!(c3, None, "the cookie is cleared");
    let (s4, _) = request(&storage, c2.as_deref(), bump).await;
    assert_eq!(
        s4.get::<u64>("count"),
        Some(1),
        "the old cookie must not load the data"
    );
    assert_ne!(s4.id(), s3.id());
}

/// Server-side: destroy after `regenerate_id(true)` deletes both the original and the new id.
pub async fn destroy_after_regenerate_deletes_both<S: SessionStorage>(storage: S) {
    let (s1, c1) = request(&storage, None, |s| s.set("k", 1).unwrap()).await;
    let session = storage.read(c1.as_deref()).await.unwrap();
    session.regenerate_id(true).unwrap();
    session.destroy();
    assert_eq!(storage.save(&session).await.unwrap().as_deref(), Some(""));
    let old = storage.read(Some(&s1.id())).await.unwrap();
    assert!(old.is_empty());
    let new = storage.read(Some(&session.id())).await.unwrap();
    assert!(new.is_empty());
}

/// Server-side: an unknown id gives a fresh session with a new random id.
pub async fn unknown_id_replaced<S: SessionStorage>(storage: S) {
    let a = storage.read(Some("unknown")).await.unwrap();
    assert_ne!(a.id(), "unknown");
    assert!(is_url_safe_random_id(&a.id()), "{:?}", a.id());
    assert!(a.is_empty());
    let b = storage.read(Some("unknown")).await.unwrap();
    assert_ne!(a.id(), b.id());
    // Saving it stores under the new id, never under the client's.
    a.set("k", 1).unwrap();
    let saved = storage.save(&a).await.unwrap().expect("saved");
    assert_eq!(saved, a.id());
    let c = storage.read(Some("unknown")).await.unwrap();
    assert!(c.is_empty());
}

/// Server-side: hostile ids are just unknown ids, never errors or paths.
pub async fn hostile_ids_are_unknown<S: SessionStorage>(storage: S) {
    let long = "a".repeat(10_000);
    for id in [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "a/b\\c",
        "with space",
        "nul\0byte",
        "日本語",
        "\r\nSET x y",
        long.as_str(),
    ] {
        let session = storage
            .read(Some(id))
            .await
            .expect("an odd id is not an error");
        assert!(session.is_empty());
        assert_ne!(session.id(), id);
    }
}

/// Server-side: a new session is not stored until it is saved dirty.
pub async fn new_session_not_stored_until_saved<S: SessionStorage>(storage: S) {
    let fresh = storage.read(None).await.unwrap();
    let id = fresh.id();
    assert_eq!(storage.save(&fresh).await.unwrap(), None);
    let again = storage.read(Some(&id)).await.unwrap();
    assert_ne!(
        again.id(),
        id,
        "an unsaved id must not be known to the storage"
    );
    fresh.set("k", 1).unwrap();
    assert_eq!(
        storage.save(&fresh).await.unwrap().as_deref(),
        Some(id.as_str())
    );
    let loaded = storage.read(Some(&id)).await.unwrap();
    assert_eq!(loaded.id(), id);
    assert_eq!(loaded.get::<u32>("k"), Some(1));
}

/// Server-side with `use_unknown_ids(true)`: the id is kept and the save stores under it.
pub async fn unknown_id_kept_and_stored<S: SessionStorage>(storage: S) {
    let session = storage.read(Some("client-chosen-id")).await.unwrap();
    assert_eq!(session.id(), "client-chosen-id");
    assert!(session.is_empty());
    session.set("k", "v").unwrap();
    assert_eq!(
        storage.save(&session).await.unwrap().as_deref(),
        Some("client-chosen-id")
    );
    let loaded = storage.read(Some("client-chosen-id")).await.unwrap();
    assert_eq!(loaded.get::<String>("k").as_deref(), Some("v"));
    // An empty value is still no id at all.
    let empty = storage.read(Some("")).await.unwrap();
    assert!(is_url_safe_random_id(&empty.id()), "{:?}", empty.id());
    let none = storage.read(None).await.unwrap();
    assert!(is_url_safe_random_id(&none.id()));
}

/// Runs the scenarios every storage must pass.
///
/// The optional `max_lifetime` constructor takes the absolute limit (the scenario passes
/// 2 s) and should also set a long idle TTL if the storage needs one.
macro_rules! storage_scenarios {
    (plain: $plain:expr, ttl: $ttl:expr, max_lifetime: $max_lifetime:expr $(,)?) => {
        storage_scenarios! { plain: $plain, ttl: $ttl }
        #[tokio::test]
        async fn scenario_max_lifetime_expires() {
            let make = $max_lifetime;
            common::scenarios::max_lifetime_expires(make(std::time::Duration::from_secs(2)).await)
                .await
        }
    };
    (plain: $plain:expr, ttl: $ttl:expr $(,)?) => {
        #[tokio::test]
        async fn scenario_counter() {
            common::scenarios::counter($plain.await).await
        }
        #[tokio::test]
        async fn scenario_flash() {
            common::scenarios::flash($plain.await).await
        }
        #[tokio::test]
        async fn scenario_ttl_expires() {
            let make = $ttl;
            common::scenarios::ttl_expires(make(std::time::Duration::from_secs(1)).await).await
        }
        #[tokio::test]
        async fn scenario_login_regenerates() {
            common::scenarios::login_regenerates($plain.await).await
        }
        #[tokio::test]
        async fn scenario_regenerate_then_read() {
            common::scenarios::regenerate_then_read($plain.await).await
        }
        #[tokio::test]
        async fn scenario_destroy_clears_the_cookie() {
            common::scenarios::destroy_clears_the_cookie($plain.await).await
        }
        #[tokio::test]
        async fn scenario_destroy_a_new_session() {
            common::scenarios::destroy_a_new_session($plain.await).await
        }
        #[tokio::test]
        async fn scenario_unchanged_saves_nothing() {
            common::scenarios::unchanged_saves_nothing($plain.await).await
        }
        #[tokio::test]
        async fn scenario_read_nothing_is_fresh() {
            common::scenarios::read_nothing_is_fresh($plain.await).await
        }
        #[tokio::test]
        async fn scenario_save_value_feeds_read() {
            common::scenarios::save_value_feeds_read($plain.await).await
        }
        #[tokio::test]
        async fn scenario_flash_and_set_together() {
            common::scenarios::flash_and_set_together($plain.await).await
        }
        #[tokio::test]
        async fn scenario_flash_renewed() {
            common::scenarios::flash_renewed($plain.await).await
        }
        #[tokio::test]
        async fn scenario_unset_persists() {
            common::scenarios::unset_persists($plain.await).await
        }
        #[tokio::test]
        async fn scenario_null_persists_as_removal() {
            common::scenarios::null_persists_as_removal($plain.await).await
        }
        #[tokio::test]
        async fn scenario_large_values_round_trip() {
            common::scenarios::large_values_round_trip($plain.await).await
        }
    };
}

/// Runs the scenarios every server-side storage must pass besides `storage_scenarios!`.
macro_rules! server_storage_scenarios {
    (plain: $plain:expr, unknown_ids: $unknown:expr $(,)?) => {
        #[tokio::test]
        async fn scenario_regenerate_deletes_old() {
            common::scenarios::regenerate_deletes_old($plain.await).await
        }
        #[tokio::test]
        async fn scenario_unknown_id_kept() {
            common::scenarios::unknown_id_kept($unknown.await).await
        }
        #[tokio::test]
        async fn scenario_regenerate_keeps_old() {
            common::scenarios::regenerate_keeps_old($plain.await).await
        }
        #[tokio::test]
        async fn scenario_regenerate_many_deletes_original() {
            common::scenarios::regenerate_many_deletes_original($plain.await).await
        }
        #[tokio::test]
        async fn scenario_destroy_deletes_data() {
            common::scenarios::destroy_deletes_data($plain.await).await
        }
        #[tokio::test]
        async fn scenario_destroy_after_regenerate_deletes_both() {
            common::scenarios::destroy_after_regenerate_deletes_both($plain.await).await
        }
        #[tokio::test]
        async fn scenario_unknown_id_replaced() {
            common::scenarios::unknown_id_replaced($plain.await).await
        }
        #[tokio::test]
        async fn scenario_hostile_ids_are_unknown() {
            common::scenarios::hostile_ids_are_unknown($plain.await).await
        }
        #[tokio::test]
        async fn scenario_new_session_not_stored_until_saved() {
            common::scenarios::new_session_not_stored_until_saved($plain.await).await
        }
        #[tokio::test]
        async fn scenario_unknown_id_kept_and_stored() {
            common::scenarios::unknown_id_kept_and_stored($unknown.await).await
        }
    };
}

pub(crate) use server_storage_scenarios;
pub(crate) use storage_scenarios;
