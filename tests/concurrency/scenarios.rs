//! The scenarios, each written once and run on every storage by `storages.rs`. Server-side
//! storages merge overlapping requests (docs/concurrency.md, "What is guaranteed"); the cookie
//! storage cannot, and its expectations say what it does instead.

use std::collections::{HashMap, HashSet};

use http::StatusCode;
use serde_json::{Map, Value, json};
use session_layer::SessionStorage;
use tokio::task::JoinSet;

use crate::harness::*;

/// Requests at once on one session.
const WRITERS: u64 = 300;
/// Every third of them waits, after loading, until all of these have loaded: that many
/// requests certainly overlap, whatever the scheduling.
const TOGETHER: u64 = WRITERS / 3;
/// Sessions at once, each with `REQUESTS_PER_SESSION` requests one after the other.
const SESSIONS: usize = 1000;
const REQUESTS_PER_SESSION: u64 = 3;
/// Destroy and regenerate races: rounds.
const RACE_ROUNDS: u64 = 10;
/// Requests at once that each `update` one session (the contract's 64 concurrent writers).
const UPDATERS: u64 = 64;

/// `WRITERS` requests at once on one session, each writing its whole value; a third of them
/// certainly overlap (all of them load before any of them saves).
///
/// Every request is answered 200 and loaded a whole state, never a torn or lost one.
/// Server-side no change is lost: the stored record holds every request's own key, and `a`,
/// `b`, `c` and `pad` all from one request (the last to save). With the cookie storage, each
/// response's cookie holds exactly what its request wrote, and the client keeps the last.
pub(crate) async fn many_requests_on_one_session<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::with(fixture, false, TOGETHER);
    let (cookie, _) = h.seed().await;
    let seed_value = h.value(&cookie);

    let mut running = JoinSet::new();
    for i in 1..=WRITERS {
        let path = if i % 3 == 0 {
            format!("/write-together/{i}")
        } else {
            format!("/write/{i}")
        };
        let answer = send(h.app.clone(), Some(cookie.clone()), path);
        running.spawn(async move { (i, answer.await) });
    }
    let mut answers = Vec::new(); // in the order they completed
    while let Some(joined) = running.join_next().await {
        answers.push(joined.expect("no panic"));
    }
    assert_eq!(answers.len() as u64, WRITERS, "every request answered");

    let mut seen: HashMap<u64, Map<String, Value>> = HashMap::new();
    let mut wrote: HashMap<u64, Map<String, Value>> = HashMap::new();
    for (i, answer) in &answers {
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {answer:?}");
        let trace = answer.trace();
        let from = whole_value(&trace.seen)
            .unwrap_or_else(|e| panic!("request {i} loaded a bad session: {e}"));
        assert_ne!(from, *i, "request {i} cannot have seen its own write");
        assert_eq!(whole_value(&trace.wrote), Ok(*i), "request {i} wrote");
        let pair = answer.pair();
        if h.server_side {
            assert_eq!(h.value(&pair), seed_value, "request {i}: the id is kept");
        } else {
            assert_eq!(from, 0, "request {i} sent the seed cookie");
            let in_cookie = h.stored(&pair).await.data().values;
            assert_eq!(
                in_cookie, trace.wrote,
                "request {i}'s cookie holds what it wrote"
            );
        }
        seen.insert(*i, trace.seen);
        wrote.insert(*i, trace.wrote);
    }
    let together: Vec<u64> = (1..=WRITERS).filter(|i| i % 3 == 0).collect();
    for i in &together {
        for j in &together {
            assert!(
                !seen[i].contains_key(&own_key(*j)),
                "request {i} loaded after request {j} saved, though both waited for each other"
            );
        }
    }

    if h.server_side {
        let stored = h.stored(&cookie).await;
        assert_eq!(stored.id(), seed_value, "the session still exists");
        let values = stored.data().values;
        let last = whole_value(&values).unwrap_or_else(|e| panic!("the stored record: {e}"));
        let lost: Vec<u64> = (0..=WRITERS)
            .filter(|i| values.get(&own_key(*i)) != Some(&json!(i)))
            .collect();
        assert!(
            lost.is_empty(),
            "the changes of requests {lost:?} were lost"
        );
        let shown = h.send(Some(&cookie), "/show").await.trace();
        assert_eq!(shown.seen, values, "the layer loads the same");
        eprintln!(
            "  one session: {WRITERS} writers, every own key kept, a/b/c/pad from request {last}"
        );
    } else {
        // The client keeps whichever cookie it gets last; the session is then that request's.
        let (last, answer) = answers.last().unwrap();
        let shown = h.send(Some(&answer.pair()), "/show").await.trace();
        assert_eq!(shown.seen, wrote[last]);
    }
}

/// `SESSIONS` sessions at once, each with `REQUESTS_PER_SESSION` requests one after the
/// other: every counter is exact, every session holds only its own data, ids never repeat.
pub(crate) async fn many_sessions_in_parallel<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let mut running = JoinSet::new();
    for s in 0..SESSIONS {
        let app = h.app.clone();
        running.spawn(async move {
            let owner = format!("s{s}");
            let mut cookie: Option<String> = None;
            for r in 1..=REQUESTS_PER_SESSION {
                let answer = send(app.clone(), cookie.clone(), format!("/count/{owner}")).await;
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "{owner} request {r}: {answer:?}"
                );
                let trace = answer.trace();
                let expected = if r == 1 {
                    Map::new()
                } else {
                    let Value::Object(map) = json!({"n": r - 1, "owner": owner}) else {
                        unreachable!()
                    };
                    map
                };
                assert_eq!(
                    trace.seen, expected,
                    "{owner} request {r}: another session's data or a lost update"
                );
                cookie = Some(answer.pair());
            }
            (owner, cookie.unwrap())
        });
    }
    let mut ids = HashSet::new();
    let mut done = 0;
    while let Some(joined) = running.join_next().await {
        let (owner, cookie) = joined.expect("no panic");
        let stored = h.stored(&cookie).await;
        assert_eq!(
            Value::Object(stored.data().values),
            json!({"n": REQUESTS_PER_SESSION, "owner": owner}),
            "{owner} ends with exactly its own data"
        );
        assert!(ids.insert(stored.id()), "two sessions share an id");
        done += 1;
    }
    assert_eq!(done, SESSIONS);
}

/// `WRITERS` requests at once on one session, every other one cancelled (its task aborted)
/// somewhere between sending and answering, as when clients disconnect. The answered ones
/// are whole; then more requests, one after the other and at once, all succeed (no
/// connection is left mid-command) and the record is still one request's whole value.
pub(crate) async fn cancelled_requests_leave_whole_records<St: SessionStorage>(
    fixture: Fixture<St>,
) {
    let h = Harness::new(fixture);
    let (cookie, _) = h.seed().await;
    let mut tasks = Vec::new();
    for i in 1..=WRITERS {
        let task = h.spawn(Some(&cookie), &format!("/write/{i}"));
        if i % 2 == 1 {
            let abort = task.abort_handle();
            let polls = i % 13;
            tokio::spawn(async move {
                for _ in 0..polls {
                    tokio::task::yield_now().await;
                }
                abort.abort();
            });
        }
        tasks.push((i, task));
    }
    let check = |i: u64, answer: &Answer| {
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {answer:?}");
        let trace = answer.trace();
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("request {i} loaded: {e}"));
        assert_eq!(whole_value(&trace.wrote), Ok(i), "request {i} wrote");
    };
    let (mut answered, mut cancelled) = (0, 0);
    for (i, task) in tasks {
        match task.await {
            Ok(answer) => {
                check(i, &answer);
                answered += 1;
            }
            Err(e) if e.is_cancelled() => cancelled += 1,
            Err(e) => panic!("request {i} panicked: {e}"),
        }
    }
    assert!(
        answered >= WRITERS / 2,
        "the requests not cancelled are answered"
    );
    let after = WRITERS + 1..=WRITERS + 20;
    for i in after.clone() {
        check(i, &h.send(Some(&cookie), &format!("/write/{i}")).await);
    }
    let mut running = JoinSet::new();
    for i in after.end() + 1..=after.end() + 50 {
        let answer = send(h.app.clone(), Some(cookie.clone()), format!("/write/{i}"));
        running.spawn(async move { (i, answer.await) });
    }
    while let Some(joined) = running.join_next().await {
        let (i, answer) = joined.expect("no panic");
        check(i, &answer);
    }
    if h.server_side {
        let values = h.stored(&cookie).await.data().values;
        whole_value(&values).unwrap_or_else(|e| panic!("the stored record: {e}"));
    }
    eprintln!("  cancelled: {cancelled} of {WRITERS} requests, {answered} answered");
}

/// What each writer of a race round did, from its answer.
pub(crate) enum Writer {
    /// Loaded the old session and saved into it before it went: its change is kept.
    Saved,
    /// Loaded the old session, which went before it saved: it wrote nothing and its answer
    /// clears the cookie (server-side storages only).
    Gone,
    /// Loaded after the old session went: a fresh session under a new id, holding only its
    /// own write.
    Fresh,
}

/// Checks a racing writer's answer against the seed session `seed_id`.
pub(crate) async fn racing_writer<St: SessionStorage>(
    h: &Harness<St>,
    i: u64,
    answer: &Answer,
    seed_id: &str,
) -> Writer {
    assert_eq!(answer.status, StatusCode::OK, "writer {i}: {answer:?}");
    let trace = answer.trace();
    assert_eq!(whole_value(&trace.wrote), Ok(i), "writer {i} wrote");
    if answer.set_cookie == SetCookie::Removal {
        assert!(
            h.server_side,
            "writer {i}: only a server-side session can go"
        );
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("writer {i} loaded: {e}"));
        return Writer::Gone;
    }
    let pair = answer.pair();
    if h.id_of(&pair).await == seed_id {
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("writer {i} loaded: {e}"));
        assert!(
            !trace.seen.contains_key("user"),
            "writer {i}: no login data"
        );
        if !h.server_side {
            let in_cookie = h.stored(&pair).await.data().values;
            assert_eq!(in_cookie, trace.wrote, "writer {i}'s cookie");
        }
        Writer::Saved
    } else {
        assert!(
            h.server_side,
            "with the cookie storage every writer keeps the id"
        );
        assert!(
            trace.seen.is_empty(),
            "writer {i} got a new id, so it must have found nothing: {:?}",
            trace.seen
        );
        // Nobody else knows the new id.
        let stored = h.stored(&pair).await;
        assert_eq!(
            stored.data().values,
            trace.wrote,
            "writer {i}'s new session"
        );
        Writer::Fresh
    }
}

/// How many writers of a round ended each way, for the log.
#[derive(Default)]
pub(crate) struct Tally {
    saved: u64,
    gone: u64,
    fresh: u64,
}

impl Tally {
    fn count(&mut self, writer: &Writer) {
        match writer {
            Writer::Saved => self.saved += 1,
            Writer::Gone => self.gone += 1,
            Writer::Fresh => self.fresh += 1,
        }
    }
}

/// Rounds of one logout racing `RACE_WRITERS` writers on one session: the logout clears the
/// cookie, and server-side the session is gone at the end of every round, whatever the
/// writers did: one that saved after the delete wrote nothing and cleared its cookie.
pub(crate) async fn destroy_races_writers<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let mut tally = Tally::default();
    for round in 0..RACE_ROUNDS {
        let (cookie, _) = h.seed().await;
        let seed_id = h.stored(&cookie).await.id();
        for (i, task) in h.spawn_race(&cookie, "/logout") {
            let answer = task.await.expect("no panic");
            if i == 0 {
                assert_eq!(answer.status, StatusCode::OK, "logout: {answer:?}");
                assert_eq!(answer.set_cookie, SetCookie::Removal, "logout clears");
                continue;
            }
            tally.count(&racing_writer(&h, i, &answer, &seed_id).await);
        }
        if h.server_side {
            assert!(
                h.is_gone(&cookie, &seed_id).await,
                "round {round}: a request in flight undid the logout"
            );
        }
    }
    eprintln!(
        "  destroy races: {RACE_ROUNDS} rounds; writers saved before the logout {}, found \
         it gone at save {}, started afresh {}",
        tally.saved, tally.gone, tally.fresh
    );
}

/// Rounds of one login (`regenerate_id(true)`) racing `RACE_WRITERS` writers. Server-side
/// the old id is gone at the end of every round and never got `user`; the login's new id
/// holds `user` plus the change of every writer that saved into the old id before the move,
/// and of none that found it gone. With the cookie storage the new id holds what the login
/// wrote.
pub(crate) async fn regenerate_races_writers<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let mut tally = Tally::default();
    for round in 0..RACE_ROUNDS {
        let (cookie, _) = h.seed().await;
        let seed_id = h.stored(&cookie).await.id();
        let mut login = None;
        let mut writers = HashMap::new();
        for (i, task) in h.spawn_race(&cookie, "/login") {
            let answer = task.await.expect("no panic");
            if i == 0 {
                login = Some(answer);
                continue;
            }
            let writer = racing_writer(&h, i, &answer, &seed_id).await;
            tally.count(&writer);
            writers.insert(i, writer);
        }
        let login = login.unwrap();
        let trace = login.trace();
        whole_value(&trace.seen).unwrap_or_else(|e| panic!("login loaded: {e}"));
        assert_eq!(trace.wrote["user"], "mj");
        let new = h.stored(&login.pair()).await;
        assert_ne!(new.id(), seed_id, "round {round}: the login has a new id");
        let values = new.data().values;
        if !h.server_side {
            assert_eq!(values, trace.wrote, "round {round}: the login's cookie");
            continue;
        }
        assert!(
            h.is_gone(&cookie, &seed_id).await,
            "round {round}: a request in flight brought the old id back"
        );
        assert_eq!(values["user"], "mj", "round {round}");
        whole_value(&values).unwrap_or_else(|e| panic!("round {round}: the new id: {e}"));
        for (i, writer) in &writers {
            let kept = values.get(&own_key(*i)) == Some(&json!(i));
            match writer {
                Writer::Saved => assert!(kept, "round {round}: writer {i}'s change was lost"),
                Writer::Gone | Writer::Fresh => {
                    assert!(
                        !kept,
                        "round {round}: writer {i} wrote into the moved session"
                    )
                }
            }
        }
    }
    eprintln!(
        "  regenerate races: {RACE_ROUNDS} rounds; writers saved before the login {}, found \
         the old id gone {}, started afresh {}",
        tally.saved, tally.gone, tally.fresh
    );
}

/// A and B load the session; A sets `x` and a flash and saves first; B sets `y` and saves
/// last. Server-side the record holds both changes and A's flash. With the cookie storage
/// each response carries its own request's session, and the client keeps whichever it gets
/// last.
pub(crate) async fn concurrent_changes_merge<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let a = h.start_gated(&cookie, "A", "x").await;
    let b = h.start_gated(&cookie, "B", "y").await;
    let a = a.finish().await;
    let b = b.finish().await;
    let (ta, tb) = (a.trace(), b.trace());
    assert_eq!(ta.seen, seed);
    assert_eq!(tb.seen, seed);
    if h.server_side {
        assert_eq!(h.value(&a.pair()), h.value(&cookie));
        assert_eq!(h.value(&b.pair()), h.value(&cookie));
        let mut both = seed.clone();
        both.insert("x".into(), json!(true));
        both.insert("y".into(), json!(true));
        assert_eq!(
            h.stored(&cookie).await.data().values,
            both,
            "both changes kept"
        );
        let next = h.send(Some(&cookie), "/show").await.trace();
        assert_eq!(next.notice.as_deref(), Some("from x"), "and A's flash");
    } else {
        let in_a = h.stored(&a.pair()).await;
        assert_eq!(in_a.data().values, ta.wrote);
        assert_eq!(
            h.send(Some(&a.pair()), "/show")
                .await
                .trace()
                .notice
                .as_deref(),
            Some("from x")
        );
        assert_eq!(h.stored(&b.pair()).await.data().values, tb.wrote);
        assert_eq!(h.send(Some(&b.pair()), "/show").await.trace().notice, None);
    }
}

/// A sets `x`; B, loaded before A saved, only reads and finishes after A. Without `rolling`
/// B saves nothing and sends no cookie, so A's change stays.
pub(crate) async fn read_only_request_saves_nothing<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let a = h.start_gated(&cookie, "A", "x").await;
    let b = h.start_gated(&cookie, "B", "read").await;
    let a = a.finish().await;
    let b = b.finish().await;
    assert_eq!(b.trace().seen, seed);
    assert_eq!(
        b.set_cookie,
        SetCookie::None,
        "a read-only request saves nothing"
    );
    let kept = if h.server_side { cookie } else { a.pair() };
    assert_eq!(h.stored(&kept).await.data().values, a.trace().wrote);
}

/// With `rolling(true)` a read-only request re-saves its session: A sets `x`; B, loaded
/// before A saved, only reads and saves after A. Server-side B's save refreshes the expiry
/// and keeps A's change; with the cookie storage B's cookie holds the state B loaded.
pub(crate) async fn rolling_read_only_request_keeps_changes<St: SessionStorage>(
    fixture: Fixture<St>,
) {
    let h = Harness::with(fixture, true, 1);
    let (cookie, seed) = h.seed().await;
    let a = h.start_gated(&cookie, "A", "x").await;
    let b = h.start_gated(&cookie, "B", "read").await;
    let a = a.finish().await;
    let b = b.finish().await;
    assert!(a.trace().wrote.contains_key("x"));
    assert_eq!(b.trace().seen, seed);
    let in_b = h.stored(&b.pair()).await;
    if h.server_side {
        assert_eq!(
            h.value(&b.pair()),
            h.value(&cookie),
            "B re-sends the cookie"
        );
        assert_eq!(in_b.data().values, a.trace().wrote, "A's change is kept");
    } else {
        assert_eq!(in_b.data().values, seed, "B's cookie: the state B loaded");
    }
}

/// W loads the session; a logout runs completely (the record is deleted, the cookie
/// cleared); then W saves. Server-side W writes nothing and clears its cookie too: a
/// request in flight never undoes a logout. With the cookie storage W's cookie holds the
/// old session with W's change: nothing can be deleted there.
pub(crate) async fn destroy_then_late_writer<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let id = h.stored(&cookie).await.id();
    let w = h.start_gated(&cookie, "W", "x").await;
    let logout = h.send(Some(&cookie), "/logout").await;
    assert_eq!(logout.set_cookie, SetCookie::Removal);
    let w = w.finish().await;
    let trace = w.trace();
    assert_eq!(trace.seen, seed);
    if h.server_side {
        assert_eq!(
            w.set_cookie,
            SetCookie::Removal,
            "W's answer clears the cookie"
        );
        assert!(h.is_gone(&cookie, &id).await, "the session stays gone");
    } else {
        let back = h.stored(&w.pair()).await;
        assert_eq!(back.id(), id);
        assert_eq!(back.data().values, trace.wrote);
    }
}

/// The other order: a logout loads, a write completes, then the logout saves: the session
/// is gone, the write with it.
pub(crate) async fn writer_then_late_destroy<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, _) = h.seed().await;
    let id = h.stored(&cookie).await.id();
    let logout = h.start_gated(&cookie, "L", "destroy").await;
    let w = h.send(Some(&cookie), "/write/1").await;
    assert_eq!(whole_value(&w.trace().wrote), Ok(1));
    let logout = logout.finish().await;
    assert_eq!(logout.set_cookie, SetCookie::Removal);
    if h.server_side {
        assert!(
            h.is_gone(&cookie, &id).await,
            "the destroy saved last: gone"
        );
    }
}

/// W loads the session; a login (`regenerate_id(true)`) runs completely (new id written,
/// old id deleted); then W saves. Server-side W writes nothing and clears its cookie: the
/// old id stays gone, and the new id keeps exactly the login's state. With the cookie
/// storage W's cookie holds the old id with W's change, never the login's data.
pub(crate) async fn regenerate_then_late_writer<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, seed) = h.seed().await;
    let id = h.stored(&cookie).await.id();
    let w = h.start_gated(&cookie, "W", "x").await;
    let login = h.send(Some(&cookie), "/login").await;
    let login_trace = login.trace();
    let new = h.stored(&login.pair()).await;
    assert_ne!(new.id(), id);
    assert_eq!(new.data().values, login_trace.wrote);
    let w = w.finish().await;
    let trace = w.trace();
    assert_eq!(trace.seen, seed);
    if h.server_side {
        assert_eq!(
            w.set_cookie,
            SetCookie::Removal,
            "W's answer clears the cookie"
        );
        assert!(h.is_gone(&cookie, &id).await, "the old id stays gone");
    } else {
        let old = h.stored(&w.pair()).await;
        assert_eq!(old.id(), id, "W's cookie names the old id");
        assert_eq!(old.data().values, trace.wrote);
        assert!(!old.has("user"), "but never with the login's data");
    }
    let new = h.stored(&login.pair()).await;
    assert_eq!(
        new.data().values,
        login_trace.wrote,
        "the new id is untouched"
    );
    assert!(!new.has("x"), "and does not get W's change");
}

/// A flash is shown to every request that loaded it before the first of them saved: A and
/// B both load it, both see it; W, loaded at the same time, sets `y` and saves first; A and
/// B save after it, to drop the flash. Server-side `y` is kept. After that the flash is gone
/// and nothing is left to save.
pub(crate) async fn flash_seen_by_every_overlapping_request<St: SessionStorage>(
    fixture: Fixture<St>,
) {
    let h = Harness::new(fixture);
    let cookie = h.send(None, "/flash").await.pair();
    let a = h.start_gated(&cookie, "A", "read").await;
    let b = h.start_gated(&cookie, "B", "read").await;
    let w = h.start_gated(&cookie, "W", "y").await;
    let w = w.finish().await;
    let a = a.finish().await;
    let b = b.finish().await;
    assert_eq!(w.trace().notice.as_deref(), Some("hello"));
    for answer in [&a, &b] {
        assert_eq!(answer.trace().notice.as_deref(), Some("hello"));
        assert!(
            matches!(answer.set_cookie, SetCookie::Pair(_)),
            "consuming a flash saves"
        );
    }
    let next = if h.server_side { cookie } else { b.pair() };
    let after = h.send(Some(&next), "/show").await;
    let trace = after.trace();
    assert_eq!(trace.notice, None, "then it is gone");
    assert_eq!(
        after.set_cookie,
        SetCookie::None,
        "and nothing is left to save"
    );
    if h.server_side {
        assert_eq!(
            trace.seen.get("y"),
            Some(&json!(true)),
            "W's change is kept"
        );
    }
}

/// `UPDATERS` requests at once each add one to `n` and their number to `cart` through
/// `Session::update`. Every request is answered 200; server-side `n` ends at exactly
/// `UPDATERS` and the cart holds every number once. With the cookie storage each cookie
/// holds its own request's increment only: a cookie cannot merge.
pub(crate) async fn concurrent_updates_are_never_lost<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, _) = h.seed().await;
    let mut running = JoinSet::new();
    for i in 1..=UPDATERS {
        let answer = send(h.app.clone(), Some(cookie.clone()), format!("/bump/{i}"));
        running.spawn(async move { (i, answer.await) });
    }
    while let Some(joined) = running.join_next().await {
        let (i, answer) = joined.expect("no panic");
        assert_eq!(answer.status, StatusCode::OK, "request {i}: {answer:?}");
        if !h.server_side {
            let in_cookie = h.stored(&answer.pair()).await;
            assert_eq!(in_cookie.get::<u64>("n"), Some(1), "request {i}");
            assert_eq!(
                in_cookie.get::<Vec<u64>>("cart"),
                Some(vec![i]),
                "request {i}"
            );
        }
    }
    if h.server_side {
        let stored = h.stored(&cookie).await;
        assert_eq!(stored.get::<u64>("n"), Some(UPDATERS), "no increment lost");
        let mut cart = stored.get::<Vec<u64>>("cart").expect("a cart");
        cart.sort_unstable();
        assert_eq!(cart, (1..=UPDATERS).collect::<Vec<_>>(), "every item once");
    }
}

/// A and B load the session; A unsets `a` and B sets `y`, in both save orders. Server-side
/// `a` never comes back and `y` is kept. With the cookie storage the last cookie is the
/// last request's copy, `a` included when B's comes last.
pub(crate) async fn an_unset_key_never_comes_back<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    for unset_first in [true, false] {
        let (cookie, _) = h.seed().await;
        let a = h.start_gated(&cookie, "A", "unset-a").await;
        let b = h.start_gated(&cookie, "B", "y").await;
        let (first, second) = if unset_first { (a, b) } else { (b, a) };
        first.finish().await;
        let last = second.finish().await;
        let kept = if h.server_side { cookie } else { last.pair() };
        let stored = h.stored(&kept).await;
        if h.server_side {
            assert!(
                !stored.has("a"),
                "unset first: {unset_first}: `a` came back"
            );
            assert!(stored.has("y"), "unset first: {unset_first}: `y` was lost");
        } else {
            assert_eq!(stored.has("a"), unset_first, "the last cookie's copy");
        }
    }
}

/// A arrives with flash `hello` and only reads; W arrives with it too, flashes a newer
/// `notice` and saves first; then A saves, consuming the `hello` it saw. Server-side the
/// newer flash survives for the next request. With the cookie storage the last cookie
/// (A's) holds no flash.
pub(crate) async fn a_newer_flash_survives<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let cookie = h.send(None, "/flash").await.pair();
    let a = h.start_gated(&cookie, "A", "read").await;
    let w = h.start_gated(&cookie, "W", "newer-flash").await;
    let w = w.finish().await;
    let a = a.finish().await;
    assert_eq!(a.trace().notice.as_deref(), Some("hello"));
    let next = if h.server_side { cookie } else { a.pair() };
    let notice = h.send(Some(&next), "/show").await.trace().notice;
    if h.server_side {
        assert_eq!(notice.as_deref(), Some("newer"), "the newer flash was lost");
    } else {
        assert_eq!(notice, None);
        let in_w = h.send(Some(&w.pair()), "/show").await.trace().notice;
        assert_eq!(in_w.as_deref(), Some("newer"));
    }
}

/// An owner change merges like a `set`: a writer that saves meanwhile keeps its keys and
/// the owner change stays; a writer that loaded the owner before it was cleared and saves
/// after does not bring it back. The cookie storage carries the owner in its cookie.
pub(crate) async fn an_owner_change_merges<St: SessionStorage>(fixture: Fixture<St>) {
    let h = Harness::new(fixture);
    let (cookie, _) = h.seed().await;
    let own = h.start_gated(&cookie, "O", "own").await;
    let w = h.send(Some(&cookie), "/write/1").await;
    assert_eq!(whole_value(&w.trace().wrote), Ok(1));
    let own = own.finish().await;
    if !h.server_side {
        let carried = h.stored(&own.pair()).await;
        assert_eq!(carried.owner().as_deref(), Some("ann"));
        return;
    }
    let stored = h.stored(&cookie).await;
    assert_eq!(
        stored.owner().as_deref(),
        Some("ann"),
        "the owner change stays"
    );
    assert_eq!(
        whole_value(&stored.data().values),
        Ok(1),
        "the writer's keys stay"
    );

    let w = h.start_gated(&cookie, "W", "y").await;
    let disown = h.start_gated(&cookie, "D", "disown").await;
    disown.finish().await.trace();
    w.finish().await.trace();
    let stored = h.stored(&cookie).await;
    assert_eq!(
        stored.owner(),
        None,
        "the later writer did not bring the owner back"
    );
    assert_eq!(stored.get::<bool>("y"), Some(true));
}
