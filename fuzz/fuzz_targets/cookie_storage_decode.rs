//! `CookieStorage::read(Some(value))` on arbitrary strings: the value is JSON the storage
//! decodes into a session. The decoded session is then used as a handler would (read every
//! key, change it, flash, save), and what the save returns must read back to the same
//! session (the layer passes it straight to the next request's `read`).
//!
//! Input: first byte picks the storage options (none, TTL, absolute lifetime), the rest
//! (read leniently as UTF-8) is the cookie value.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use session_layer::{CookieStorage, Session, SessionStorage};
use tokio::runtime::Runtime;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

fn storage(selector: u8) -> CookieStorage {
    match selector % 4 {
        0 => CookieStorage::new(),
        1 => CookieStorage::new().ttl(Duration::from_secs(3600)),
        2 => CookieStorage::new().max_lifetime(Duration::from_secs(86_400)),
        _ => CookieStorage::new()
            .ttl(Duration::from_secs(3600))
            .max_lifetime(Duration::from_secs(86_400)),
    }
}

/// Reads everything a handler could read; checks the answers agree with each other.
fn touch_reads(session: &Session) {
    let data = session.data();
    let _ = session.id();
    let _ = session.original_id();
    let _ = session.created_at();
    let _ = session.is_loaded();
    let _ = format!("{session:?}");
    let len = session.len();
    assert_eq!(session.is_empty(), len == 0);
    assert!(len >= data.values.len());
    for (key, value) in &data.values {
        assert!(session.has(key));
        assert_eq!(session.get_value(key).as_ref(), Some(value));
        let _ = session.get::<String>(key);
        let _ = session.get::<u64>(key);
        let _ = session.get::<Vec<serde_json::Value>>(key);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let value = String::from_utf8_lossy(rest);
    let storage = storage(selector);
    RUNTIME.block_on(async {
        let session = storage
            .read(Some(&value))
            .await
            .expect("cookie reads never fail");
        touch_reads(&session);
        let incoming: Vec<(String, serde_json::Value)> = {
            // Values plus incoming flash, as `get_value` sees them now.
            let mut keys: Vec<String> = session.data().values.keys().cloned().collect();
            keys.extend(value_keys(&value));
            keys.into_iter()
                .filter_map(|k| session.get_value(&k).map(|v| (k, v)))
                .collect()
        };

        // What a handler does next.
        session.set("fuzz-counter", 1).expect("live session");
        session
            .flash("fuzz-flash", "next request")
            .expect("live session");
        if selector & 0x10 != 0 {
            session
                .regenerate_id(selector & 0x20 != 0)
                .expect("live session");
        }
        if selector & 0x40 != 0 {
            if let Some((key, _)) = incoming.first() {
                session.unset(key).expect("live session");
            }
        }
        touch_reads(&session);
        let saved = storage
            .save(&session)
            .await
            .expect("cookie saves never fail");
        let saved = saved.expect("a dirty session is written");

        // The next request reads what this one wrote: the same id, values and flash
        // (unless the absolute lifetime has run out: then it starts afresh).
        let next = storage
            .read(Some(&saved))
            .await
            .expect("cookie reads never fail");
        touch_reads(&next);
        if next.is_loaded() {
            assert_eq!(next.id(), session.id());
            let written = session.data();
            for (key, value) in &written.values {
                assert_eq!(next.get_value(key).as_ref(), Some(value), "value {key:?}");
            }
            for (key, value) in &written.flash {
                if !written.values.contains_key(key) {
                    assert_eq!(next.get_value(key).as_ref(), Some(value), "flash {key:?}");
                }
            }
            assert_eq!(next.len(), {
                let flash_only = written
                    .flash
                    .keys()
                    .filter(|k| !written.values.contains_key(*k))
                    .count();
                written.values.len() + flash_only
            });
        } else {
            assert!(
                selector % 4 >= 2,
                "lost a session without an absolute lifetime"
            );
        }

        session.destroy();
        assert_eq!(
            storage.save(&session).await.expect("destroy saves"),
            Some(String::new())
        );
    });
});

/// The keys of the `d.flash` object of a cookie value, if it is one.
fn value_keys(value: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(value)
        .ok()
        .and_then(|v| {
            v.get("d")?
                .get("flash")?
                .as_object()
                .map(|m| m.keys().cloned().collect())
        })
        .unwrap_or_default()
}
