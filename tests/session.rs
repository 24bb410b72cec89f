//! `Session`: the handle handlers read and write (the `Session` rustdoc; the README, "The
//! Session API"), with the cases of Remix's `session.test.ts` adapted to our API.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use session_layer::{Error, Session, SessionData};

fn data(values: Value, flash: Value) -> SessionData {
    SessionData {
        values: values.as_object().cloned().unwrap(),
        flash: flash.as_object().cloned().unwrap(),
    }
}

fn url_safe(id: &str) -> bool {
    id.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

// --- creation ---------------------------------------------------------------------------

#[test]
fn new_session_is_clean_and_empty() {
    let session = Session::new();
    assert!(!session.id().is_empty());
    assert!(!session.is_destroyed());
    assert!(!session.is_dirty());
    assert_eq!(session.len(), 0);
    assert!(session.is_empty());
    assert_eq!(session.data(), SessionData::default());
    assert_eq!(session.delete_id(), None);
    assert_eq!(session.original_id(), session.id());
}

#[test]
fn new_ids_are_long_url_safe_and_distinct() {
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let id = Session::new().id();
        // 128 bits need at least 22 base64 characters (6 bits each).
        assert!(id.len() >= 22, "id {id:?} is too short for 128 bits");
        assert!(
            url_safe(&id),
            "id {id:?} has characters that are not URL-safe"
        );
        assert!(seen.insert(id), "an id repeated");
    }
}

#[test]
fn new_ids_use_the_whole_alphabet() {
    // A CSPRNG id spreads over many characters; a counter or a timestamp does not.
    let chars: HashSet<char> = (0..200)
        .flat_map(|_| Session::new().id().chars().collect::<Vec<_>>())
        .collect();
    assert!(
        chars.len() > 50,
        "only {} distinct characters in 200 ids",
        chars.len()
    );
}

#[test]
fn with_id_keeps_the_id_and_is_empty() {
    let session = Session::with_id("custom-id");
    assert_eq!(session.id(), "custom-id");
    assert_eq!(session.original_id(), "custom-id");
    assert!(session.is_empty());
    assert!(!session.is_dirty());
}

#[test]
fn from_data_with_values_only_is_clean() {
    let session = Session::from_data("id", data(json!({"hello": "world"}), json!({})));
    assert_eq!(session.id(), "id");
    assert_eq!(session.len(), 1);
    assert_eq!(session.get::<String>("hello").as_deref(), Some("world"));
    assert!(!session.is_dirty());
}

#[test]
fn from_data_with_flash_is_dirty_and_reads_the_flash() {
    let session = Session::from_data("id", data(json!({}), json!({"hello": "world"})));
    assert_eq!(session.get::<String>("hello").as_deref(), Some("world"));
    assert!(session.has("hello"));
    assert!(session.is_dirty(), "the save must drop the incoming flash");
    // The incoming flash is not written again.
    assert!(session.data().flash.is_empty());
    assert!(session.data().values.is_empty());
}

#[test]
fn incoming_flash_is_readable_for_the_whole_request() {
    let session = Session::from_data("id", data(json!({}), json!({"msg": "hi"})));
    for _ in 0..3 {
        assert_eq!(session.get::<String>("msg").as_deref(), Some("hi"));
    }
    assert_eq!(session.get_value("msg"), Some(json!("hi")));
}

#[test]
fn a_value_shadows_a_flash_of_the_same_key() {
    let session = Session::from_data("id", data(json!({"k": "value"}), json!({"k": "flash"})));
    assert_eq!(session.get::<String>("k").as_deref(), Some("value"));
    assert_eq!(session.len(), 1, "a key in both counts once");
}

// --- get / set / unset ------------------------------------------------------------------

#[test]
fn set_get_has_unset() {
    let session = Session::new();
    assert!(!session.has("hello"));
    assert_eq!(session.get::<String>("hello"), None);
    assert!(!session.is_dirty());

    session.set("hello", "world").unwrap();
    assert!(session.has("hello"));
    assert_eq!(session.get::<String>("hello").as_deref(), Some("world"));
    assert_eq!(session.get_value("hello"), Some(json!("world")));
    assert!(session.is_dirty());
    assert_eq!(session.data().values.get("hello"), Some(&json!("world")));

    session.unset("hello").unwrap();
    assert!(!session.has("hello"));
    assert_eq!(session.get::<String>("hello"), None);
    assert_eq!(session.get_value("hello"), None);
    assert!(session.is_dirty());
    assert!(session.data().values.is_empty());
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
}

#[test]
fn complex_values_round_trip() {
    let session = Session::from_data(
        "id",
        data(json!({"user": {"id": 123, "name": "alice"}}), json!({})),
    );
    assert_eq!(
        session.get::<User>("user"),
        Some(User {
            id: 123,
            name: "alice".into()
        })
    );
    session
        .set(
            "user",
            User {
                id: 456,
                name: "bob".into(),
            },
        )
        .unwrap();
    assert_eq!(
        session.get::<User>("user"),
        Some(User {
            id: 456,
            name: "bob".into()
        })
    );
    assert_eq!(
        session.get_value("user"),
        Some(json!({"id": 456, "name": "bob"}))
    );
}

#[test]
fn typed_get_of_the_wrong_type_is_none() {
    let session = Session::new();
    session.set("n", "not a number").unwrap();
    assert_eq!(session.get::<u64>("n"), None);
    assert_eq!(session.get::<User>("n"), None);
    // ...while the value is there.
    assert!(session.has("n"));
    assert_eq!(session.get::<String>("n").as_deref(), Some("not a number"));
    session.set("big", -1).unwrap();
    assert_eq!(session.get::<u32>("big"), None);
    assert_eq!(session.get::<i32>("big"), Some(-1));
}

#[test]
fn unset_of_an_absent_key_marks_dirty() {
    let session = Session::new();
    session.unset("never-set").unwrap();
    assert!(session.is_dirty());
}

#[test]
fn set_to_null_removes_the_key_and_marks_dirty() {
    let session = Session::from_data("id", data(json!({"hello": "world"}), json!({})));
    assert!(!session.is_dirty());
    session.set("hello", Value::Null).unwrap();
    assert!(!session.has("hello"));
    assert_eq!(session.get_value("hello"), None);
    assert!(session.is_dirty());
    assert!(!session.data().values.contains_key("hello"));

    // Option::None serializes to null too (Remix's `undefined`).
    session.set("other", "x").unwrap();
    session.set("other", None::<String>).unwrap();
    assert!(!session.has("other"));
    assert!(session.is_empty());
}

#[test]
fn set_to_null_on_an_absent_key_is_still_dirty() {
    let session = Session::new();
    session.set("nothing", ()).unwrap();
    assert!(session.is_dirty());
    assert!(!session.has("nothing"));
}

#[test]
fn unset_removes_an_incoming_flash_too() {
    let session = Session::from_data("id", data(json!({}), json!({"msg": "hi"})));
    session.unset("msg").unwrap();
    assert!(!session.has("msg"));
    assert_eq!(session.len(), 0);
}

// --- flash ------------------------------------------------------------------------------

#[test]
fn flash_is_invisible_in_the_same_request() {
    let session = Session::new();
    session.flash("message", "success!").unwrap();
    assert!(session.is_dirty());
    assert_eq!(session.get::<String>("message"), None);
    assert!(!session.has("message"));
    assert_eq!(session.len(), 0);
    let saved = session.data();
    assert_eq!(saved.flash.get("message"), Some(&json!("success!")));
    assert!(saved.values.is_empty());
}

#[test]
fn flash_then_next_request_then_gone() {
    let first = Session::new();
    first.flash("message", "success!").unwrap();
    let second = Session::from_data(first.id(), first.data());
    assert_eq!(second.get::<String>("message").as_deref(), Some("success!"));
    assert_eq!(second.len(), 1);
    let third = Session::from_data(second.id(), second.data());
    assert_eq!(third.get::<String>("message"), None);
    assert!(third.is_empty());
}

#[test]
fn flash_and_set_in_the_same_request() {
    let session = Session::new();
    session.set("user", "mj").unwrap();
    session.flash("notice", "welcome").unwrap();
    let saved = session.data();
    assert_eq!(saved.values.get("user"), Some(&json!("mj")));
    assert_eq!(saved.flash.get("notice"), Some(&json!("welcome")));
    assert_eq!(session.len(), 1);
}

// --- regenerate_id ----------------------------------------------------------------------

#[test]
fn regenerate_id_without_delete() {
    let session = Session::new();
    session.set("user", "mj").unwrap();
    let original = session.id();
    session.regenerate_id(false).unwrap();
    assert_ne!(session.id(), original);
    assert!(url_safe(&session.id()));
    assert_eq!(session.original_id(), original);
    assert_eq!(session.delete_id(), None);
    assert!(session.is_dirty());
    assert_eq!(session.get::<String>("user").as_deref(), Some("mj"));
}

#[test]
fn regenerate_id_on_a_clean_session_marks_dirty_and_keeps_data() {
    let session = Session::from_data("loaded", data(json!({"count": 3}), json!({})));
    assert!(!session.is_dirty());
    session.regenerate_id(false).unwrap();
    assert!(session.is_dirty());
    assert_ne!(session.id(), "loaded");
    assert_eq!(session.get::<u32>("count"), Some(3));
    assert_eq!(session.data().values.get("count"), Some(&json!(3)));
}

#[test]
fn regenerate_id_with_delete() {
    let session = Session::from_data("loaded", data(json!({"a": 1}), json!({})));
    session.regenerate_id(true).unwrap();
    assert_ne!(session.id(), "loaded");
    assert_eq!(session.delete_id().as_deref(), Some("loaded"));
    assert!(session.is_dirty());
    assert_eq!(session.get::<u32>("a"), Some(1));
}

#[test]
fn delete_id_survives_later_regenerations() {
    let session = Session::with_id("first");
    session.regenerate_id(true).unwrap();
    let second = session.id();
    session.regenerate_id(false).unwrap();
    assert_ne!(session.id(), second);
    assert_eq!(session.delete_id().as_deref(), Some("first"));
    session.regenerate_id(true).unwrap();
    assert_eq!(session.delete_id().as_deref(), Some("first"));
    assert_eq!(session.original_id(), "first");
}

#[test]
fn delete_id_after_false_then_true_is_the_original() {
    let session = Session::with_id("first");
    session.regenerate_id(false).unwrap();
    assert_eq!(session.delete_id(), None);
    session.regenerate_id(true).unwrap();
    assert_eq!(session.delete_id().as_deref(), Some("first"));
}

// --- destroy ----------------------------------------------------------------------------

#[test]
fn destroy_hides_everything() {
    let session = Session::from_data("id", data(json!({"hello": "world"}), json!({"f": 1})));
    session.set("other", 2).unwrap();
    session.flash("next", 3).unwrap();
    assert!(session.has("hello"));
    session.destroy();
    assert!(session.is_destroyed());
    assert!(session.is_dirty());
    assert_eq!(session.get::<String>("hello"), None);
    assert_eq!(session.get_value("other"), None);
    assert_eq!(session.get::<u32>("f"), None);
    assert!(!session.has("hello"));
    assert!(!session.has("f"));
    assert_eq!(session.len(), 0);
    assert!(session.is_empty());
    assert_eq!(session.data(), SessionData::default());
}

#[test]
fn a_destroyed_session_refuses_changes() {
    let session = Session::new();
    session.destroy();
    assert!(matches!(
        session.set("hello", "world"),
        Err(Error::Destroyed)
    ));
    assert!(matches!(session.unset("hello"), Err(Error::Destroyed)));
    assert!(matches!(
        session.flash("hello", "world"),
        Err(Error::Destroyed)
    ));
    assert!(matches!(
        session.regenerate_id(false),
        Err(Error::Destroyed)
    ));
    assert!(matches!(session.regenerate_id(true), Err(Error::Destroyed)));
    assert_eq!(session.delete_id(), None);
    assert!(session.is_empty());
    assert_eq!(session.data(), SessionData::default());
    // Destroying twice is harmless.
    session.destroy();
    assert!(session.is_destroyed());
}

#[test]
fn destroyed_error_message() {
    let session = Session::new();
    session.destroy();
    let error = session.set("k", 1).unwrap_err();
    assert!(error.to_string().contains("destroyed"), "{error}");
}

#[test]
fn destroy_keeps_the_delete_id() {
    let session = Session::with_id("first");
    session.regenerate_id(true).unwrap();
    session.destroy();
    assert_eq!(session.delete_id().as_deref(), Some("first"));
}

// --- len, clones, traits ----------------------------------------------------------------

#[test]
fn len_counts_values_plus_incoming_flash() {
    let session = Session::from_data("id", data(json!({"a": 1, "b": 2}), json!({"c": 3})));
    assert_eq!(session.len(), 3);
    assert!(!session.is_empty());
    session.set("d", 4).unwrap();
    assert_eq!(session.len(), 4);
    session.flash("e", 5).unwrap();
    assert_eq!(session.len(), 4, "outgoing flash is not counted");
    session.unset("a").unwrap();
    assert_eq!(session.len(), 3);
}

#[test]
fn clones_share_state() {
    let a = Session::new();
    let b = a.clone();
    a.set("k", "v").unwrap();
    assert_eq!(b.get::<String>("k").as_deref(), Some("v"));
    assert!(b.is_dirty());
    b.regenerate_id(true).unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.delete_id(), b.delete_id());
    b.destroy();
    assert!(a.is_destroyed());
    assert!(a.set("x", 1).is_err());
}

#[test]
fn clones_share_state_across_threads() {
    let session = Session::new();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = session.clone();
            std::thread::spawn(move || s.set(format!("k{i}"), i).unwrap())
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(session.len(), 8);
}

#[test]
fn session_is_send_sync_clone_debug() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<Session>();
    fn assert_data<
        T: Default + Clone + std::fmt::Debug + PartialEq + Serialize + for<'de> Deserialize<'de>,
    >() {
    }
    assert_data::<SessionData>();
}

#[test]
fn debug_never_prints_the_id() {
    let session = Session::with_id("super-secret-session-id");
    session.set("visible_key", 1).unwrap();
    let debug = format!("{session:?}");
    assert!(!debug.contains("super-secret-session-id"), "{debug}");
    let pretty = format!("{session:#?}");
    assert!(!pretty.contains("super-secret-session-id"), "{pretty}");
    session.regenerate_id(false).unwrap();
    let id = session.id();
    assert!(!format!("{session:?}").contains(&id));
}

#[test]
fn update_sets_and_returns_what_the_closure_made() {
    let session = Session::new();
    assert_eq!(
        session
            .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
            .unwrap(),
        1
    );
    assert_eq!(
        session
            .update("n", |n: Option<u64>| n.unwrap_or(0) + 1)
            .unwrap(),
        2
    );
    assert_eq!(session.get::<u64>("n"), Some(2));
    assert!(session.is_dirty());
}

#[test]
fn update_gets_none_for_a_value_of_another_type() {
    let session = Session::new();
    session.set("n", "not a number").unwrap();
    let seen = session
        .update("n", |n: Option<u64>| if n.is_none() { 7 } else { 0 })
        .unwrap();
    assert_eq!(seen, 7);
    assert_eq!(session.get::<u64>("n"), Some(7));
}

#[test]
fn update_to_null_removes_the_key() {
    let session = Session::new();
    session.set("k", 1).unwrap();
    let removed: Option<u64> = session.update("k", |_: Option<Option<u64>>| None).unwrap();
    assert_eq!(removed, None);
    assert!(!session.has("k"));
}

#[test]
fn update_of_a_destroyed_session_fails() {
    let session = Session::new();
    session.destroy();
    let result = session.update("n", |n: Option<u64>| n.unwrap_or(0) + 1);
    assert!(matches!(result, Err(Error::Destroyed)));
}

#[test]
fn unset_hides_the_incoming_flash_under_its_key() {
    let session = Session::from_data("id", data(json!({}), json!({"msg": "hi", "other": 1})));
    session.unset("msg").unwrap();
    assert!(!session.has("msg"));
    assert_eq!(session.len(), 1);
    session.set("other", Value::Null).unwrap();
    assert!(session.is_empty());
}

#[test]
fn session_data_serde_round_trip() {
    let original = data(json!({"a": [1, 2], "b": {"c": null}}), json!({"f": "x"}));
    let text = serde_json::to_string(&original).unwrap();
    let back: SessionData = serde_json::from_str(&text).unwrap();
    assert_eq!(back, original);
    // Both fields default when missing.
    let empty: SessionData = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, SessionData::default());
}

#[test]
fn a_value_that_cannot_be_serialized_is_an_error() {
    let session = Session::new();
    let mut map = std::collections::HashMap::new();
    map.insert((1, 2), 3); // JSON object keys must be strings
    assert!(matches!(session.set("m", &map), Err(Error::Serialize(_))));
    assert!(!session.is_dirty(), "a failed set changes nothing");
    assert!(!session.has("m"));
    assert!(matches!(session.flash("m", &map), Err(Error::Serialize(_))));
    assert!(!session.is_dirty());
    assert!(session.data().flash.is_empty());
}

#[test]
fn a_fresh_id_is_drawn_once_even_when_first_asked_for_late() {
    let session = Session::new();
    let first = session.id();
    assert_eq!(first.len(), 24);
    assert_eq!(session.id(), first, "the id stays the same once drawn");
    assert_eq!(session.original_id(), first);

    // Regenerating before anything read the id: the original id still exists, is the
    // one a save deletes, and differs from the new id.
    let session = Session::new();
    session.regenerate_id(true).unwrap();
    let original = session.original_id();
    assert_eq!(original.len(), 24);
    assert_eq!(session.delete_id().as_deref(), Some(original.as_str()));
    assert_ne!(session.id(), original);
    assert_eq!(session.id().len(), 24);
}
