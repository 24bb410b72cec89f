//! `SessionLayer` end to end: on a bare `tower::service_fn` (the session from the request
//! extensions) and on an `axum::Router` (the extractor), with the cases of Remix's
//! session-middleware tests adapted.

use std::convert::Infallible;

use axum::body::Bytes;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use session_layer::{
    CookieStorage, Error, MemoryStorage, Session, SessionCookie, SessionLayer, SessionStorage,
};
use tower::{Layer, Service, ServiceExt, service_fn};

const NAME: &str = "sid";
const OLD_SECRET: &str = "the old secret, rotated out later";
const NEW_SECRET: &str = "the new secret that signs from now";

fn cookie() -> SessionCookie {
    SessionCookie::new(NAME).secrets(["the first secret, thirty-two bytes+"])
}

fn layer() -> SessionLayer<MemoryStorage> {
    SessionLayer::new(cookie(), MemoryStorage::new())
}

fn set_cookies<B>(response: &Response<B>) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The session's `Set-Cookie`, if the response has one.
fn session_set_cookie<B>(response: &Response<B>) -> Option<String> {
    let mut found = set_cookies(response)
        .into_iter()
        .filter(|c| c.starts_with(&format!("{NAME}=")));
    let first = found.next();
    assert!(found.next().is_none(), "more than one session Set-Cookie");
    first
}

/// `name=value`: what the browser sends back.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

// --- a bare tower service -----------------------------------------------------------------

type Handler = fn(&Session) -> (StatusCode, String);

/// A plain service: takes the session from the extensions, answers with a `String` body.
fn plain<St: SessionStorage>(
    layer: SessionLayer<St>,
    handler: Handler,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    layer.layer(service_fn(move |request: Request<String>| async move {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .expect("the layer puts a Session into the extensions");
        let (status, body) = handler(&session);
        let mut response = Response::new(body);
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    }))
}

fn req(cookie: Option<&str>) -> Request<String> {
    let mut builder = Request::get("/");
    if let Some(cookie) = cookie {
        builder = builder.header(COOKIE, cookie);
    }
    builder.body(String::new()).unwrap()
}

fn count(session: &Session) -> (StatusCode, String) {
    let n = session.get::<u64>("count").unwrap_or(0) + 1;
    session.set("count", n).unwrap();
    (StatusCode::OK, format!("Count: {n}"))
}

fn read_only(session: &Session) -> (StatusCode, String) {
    let n = session.get::<u64>("count").unwrap_or(0);
    (StatusCode::OK, format!("Count: {n}"))
}

#[tokio::test]
async fn untouched_session_without_cookie_sets_no_cookie() {
    let app = plain(layer(), read_only);
    let response = app.oneshot(req(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(response.body(), "Count: 0");
}

#[tokio::test]
async fn persists_session_data_across_requests() {
    let app = plain(layer(), count);
    let r1 = app.clone().oneshot(req(None)).await.unwrap();
    assert_eq!(r1.body(), "Count: 1");
    let c1 = pair(&session_set_cookie(&r1).expect("a new session sets a cookie"));
    let r2 = app.clone().oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(r2.body(), "Count: 2");
    let c2 = pair(&session_set_cookie(&r2).expect("a changed session re-sends"));
    let r3 = app.clone().oneshot(req(Some(&c2))).await.unwrap();
    assert_eq!(r3.body(), "Count: 3");
}

#[tokio::test]
async fn an_unchanged_loaded_session_sets_no_cookie() {
    let storage = MemoryStorage::new();
    let writer = plain(SessionLayer::new(cookie(), storage.clone()), count);
    let reader = plain(SessionLayer::new(cookie(), storage), read_only);
    let r1 = writer.oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let r2 = reader.oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(r2.body(), "Count: 1");
    assert!(set_cookies(&r2).is_empty());
}

#[tokio::test]
async fn the_same_value_is_resent_with_the_same_seal() {
    let app = plain(layer(), count);
    let r1 = app.clone().oneshot(req(None)).await.unwrap();
    let set1 = session_set_cookie(&r1).unwrap();
    let r2 = app.oneshot(req(Some(&pair(&set1)))).await.unwrap();
    assert_eq!(session_set_cookie(&r2).unwrap(), set1);
}

#[tokio::test]
async fn other_set_cookie_headers_are_kept() {
    let app = layer().layer(service_fn(|request: Request<String>| async move {
        let session = request.extensions().get::<Session>().cloned().unwrap();
        session.set("count", 1).unwrap();
        let mut response = Response::new(String::from("ok"));
        response
            .headers_mut()
            .append(SET_COOKIE, HeaderValue::from_static("count=1"));
        response
            .headers_mut()
            .append(SET_COOKIE, HeaderValue::from_static("theme=dark; Path=/"));
        Ok::<_, Infallible>(response)
    }));
    let response = app.oneshot(req(None)).await.unwrap();
    let all = set_cookies(&response);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0], "count=1");
    assert_eq!(all[1], "theme=dark; Path=/");
    assert!(all[2].starts_with("sid="), "{all:?}");
}

#[tokio::test]
async fn a_server_error_saves_nothing() {
    fn fail(session: &Session) -> (StatusCode, String) {
        session.set("count", 100).unwrap();
        (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
    }
    let storage = MemoryStorage::new();
    let ok = plain(SessionLayer::new(cookie(), storage.clone()), count);
    let failing = plain(SessionLayer::new(cookie(), storage.clone()), fail);
    // A new session: no cookie.
    let r = failing.clone().oneshot(req(None)).await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body(), "boom", "the handler's own response is kept");
    assert!(set_cookies(&r).is_empty());
    assert!(storage.is_empty(), "nothing stored");
    // A loaded session: the change is not saved.
    let r1 = ok.clone().oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let r2 = failing.oneshot(req(Some(&c1))).await.unwrap();
    assert!(set_cookies(&r2).is_empty());
    let r3 = ok.oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(r3.body(), "Count: 2");
}

#[tokio::test]
async fn a_client_error_still_saves() {
    fn not_found(session: &Session) -> (StatusCode, String) {
        session.set("seen", true).unwrap();
        (StatusCode::NOT_FOUND, String::new())
    }
    let response = plain(layer(), not_found).oneshot(req(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(session_set_cookie(&response).is_some());
}

#[tokio::test]
async fn an_inner_error_is_passed_through() {
    let app = layer().layer(service_fn(|request: Request<String>| async move {
        request
            .extensions()
            .get::<Session>()
            .unwrap()
            .set("k", 1)
            .unwrap();
        Err::<Response<String>, _>("inner failure")
    }));
    assert_eq!(app.oneshot(req(None)).await.unwrap_err(), "inner failure");
}

/// A storage that always fails, with details that must not reach the client.
struct FailingStorage {
    fail_read: bool,
}

const INTERNAL: &str = "db password is hunter2 at 10.0.0.7";

impl SessionStorage for FailingStorage {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        if self.fail_read {
            Err(Error::backend(INTERNAL))
        } else {
            Ok(Session::with_id(value.unwrap_or("x")))
        }
    }

    async fn save(&self, _session: &Session) -> Result<Option<String>, Error> {
        Err(Error::backend(INTERNAL))
    }
}

#[tokio::test]
async fn a_storage_error_on_save_is_a_bare_500() {
    let app = plain(
        SessionLayer::new(cookie(), FailingStorage { fail_read: false }),
        count,
    );
    let response = app.oneshot(req(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!response.body().contains("hunter2"), "{}", response.body());
    assert!(!response.body().contains("Count"), "not the handler's body");
    assert!(set_cookies(&response).is_empty());
}

#[tokio::test]
async fn a_storage_error_on_read_is_a_bare_500() {
    let app = plain(
        SessionLayer::new(cookie(), FailingStorage { fail_read: true }),
        count,
    );
    let valid = pair(&cookie().serialize("some-id").unwrap());
    let response = app.oneshot(req(Some(&valid))).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!response.body().contains("hunter2"));
    assert!(set_cookies(&response).is_empty());
}

/// A storage that answers later, as a network storage does: every read and save waits on a
/// timer first, so the layer's first poll of the read (made in `call`, with a waker that
/// does nothing) comes back pending, and the read must be polled again with the task's
/// waker to finish at all.
struct LaterStorage {
    inner: MemoryStorage,
    fail_read: bool,
}

impl SessionStorage for LaterStorage {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if self.fail_read {
            return Err(Error::backend(INTERNAL));
        }
        self.inner.read(value).await
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.inner.save(session).await
    }
}

#[tokio::test]
async fn a_storage_that_answers_later_loads_and_saves_through_the_layer() {
    let app = plain(
        SessionLayer::new(
            cookie(),
            LaterStorage {
                inner: MemoryStorage::new(),
                fail_read: false,
            },
        ),
        count,
    );
    let mut sent = None::<String>;
    for expected in 1..=3 {
        let request = app.clone().oneshot(req(sent.as_deref()));
        // A read left with the do-nothing waker would never finish.
        let response = tokio::time::timeout(std::time::Duration::from_secs(5), request)
            .await
            .expect("the pending read is polled again with the task's waker")
            .unwrap();
        assert_eq!(response.body(), &format!("Count: {expected}"));
        sent = Some(pair(&session_set_cookie(&response).expect("saved")));
    }
}

#[tokio::test]
async fn a_storage_that_fails_later_on_read_is_a_bare_500() {
    let app = plain(
        SessionLayer::new(
            cookie(),
            LaterStorage {
                inner: MemoryStorage::new(),
                fail_read: true,
            },
        ),
        count,
    );
    let valid = pair(&cookie().serialize("some-id").unwrap());
    let request = app.oneshot(req(Some(&valid)));
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), request)
        .await
        .expect("the pending read is polled again with the task's waker")
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!response.body().contains("hunter2"));
    assert!(set_cookies(&response).is_empty());
}

/// A future made by `call` outside any runtime and run on one later: the layer must not
/// start the read there, since `FsStorage`'s read spawns a blocking task, which panics
/// outside a runtime.
#[test]
fn a_call_made_outside_a_runtime_runs_later_on_one() {
    let dir = tempfile::tempdir().unwrap();
    let storage = session_layer::FsStorage::new(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut app = plain(SessionLayer::new(cookie(), storage), count);
    let first = runtime.block_on(app.clone().oneshot(req(None))).unwrap();
    let sent = pair(&session_set_cookie(&first).unwrap());

    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(app.poll_ready(&mut cx).is_ready());
    let later = app.call(req(Some(&sent)));
    let response = runtime.block_on(later).unwrap();
    assert_eq!(response.body(), "Count: 2");
}

/// A storage whose records never decode, as after a disk fault or a format change.
struct CorruptStorage(MemoryStorage);

impl SessionStorage for CorruptStorage {
    async fn read(&self, value: Option<&str>) -> Result<Session, Error> {
        match value {
            Some(_) => Err(Error::Corrupt {
                record: "a record".into(),
                reason: "expected value at line 1 column 1".into(),
            }),
            None => self.0.read(None).await,
        }
    }

    async fn save(&self, session: &Session) -> Result<Option<String>, Error> {
        self.0.save(session).await
    }
}

#[tokio::test]
async fn a_corrupt_record_starts_a_fresh_session_instead_of_a_500_forever() {
    let valid = pair(&cookie().serialize("some-id").unwrap());

    // Read-only handler: the response clears the cookie that names the corrupt record.
    let reader = plain(
        SessionLayer::new(cookie(), CorruptStorage(MemoryStorage::new())),
        |session: &Session| (StatusCode::OK, format!("empty={}", session.is_empty())),
    );
    let response = reader.oneshot(req(Some(&valid))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body(), "empty=true");
    assert_eq!(set_cookies(&response), vec![cookie().serialize_removal()]);

    // Writing handler: the new session replaces the cookie.
    let writer = plain(
        SessionLayer::new(cookie(), CorruptStorage(MemoryStorage::new())),
        count,
    );
    let response = writer.oneshot(req(Some(&valid))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookies(&response);
    assert_eq!(set.len(), 1);
    assert_ne!(set[0], cookie().serialize_removal());
    assert_ne!(pair(&set[0]), valid);
}

#[tokio::test]
async fn an_oversize_cookie_is_a_500() {
    fn big(session: &Session) -> (StatusCode, String) {
        session.set("big", "x".repeat(5000)).unwrap();
        (StatusCode::OK, "stored".into())
    }
    let app = plain(SessionLayer::new(cookie(), CookieStorage::new()), big);
    let response = app.oneshot(req(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());
    assert!(!response.body().contains("4096") && !response.body().contains("stored"));
}

#[test]
#[should_panic(expected = "must be signed")]
fn an_unsigned_cookie_panics() {
    let _ = SessionLayer::new(SessionCookie::new(NAME), MemoryStorage::new());
}

#[test]
fn try_new_returns_the_error() {
    let error = SessionLayer::try_new(SessionCookie::new(NAME), MemoryStorage::new()).unwrap_err();
    assert!(error.to_string().contains("must be signed"), "{error}");
    assert!(
        SessionLayer::try_new(
            SessionCookie::new("bad name").secrets(["a secret that is long enough to pass"]),
            MemoryStorage::new()
        )
        .is_err()
    );
    assert!(SessionLayer::try_new(cookie(), MemoryStorage::new()).is_ok());
}

#[tokio::test]
async fn a_tampered_cookie_gives_a_fresh_session() {
    let app = plain(layer(), count);
    let r1 = app.clone().oneshot(req(None)).await.unwrap();
    let good = pair(&session_set_cookie(&r1).unwrap());
    let r2 = app.clone().oneshot(req(Some(&good))).await.unwrap();
    assert_eq!(r2.body(), "Count: 2");
    // Change one character of the value.
    let mut tampered = good.clone().into_bytes();
    let at = NAME.len() + 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r3 = app.clone().oneshot(req(Some(&tampered))).await.unwrap();
    assert_eq!(
        r3.body(),
        "Count: 1",
        "a tampered cookie must not load the session"
    );
    let fresh = pair(&session_set_cookie(&r3).unwrap());
    assert_ne!(fresh, good);
    // A cookie signed with another secret, or not at all.
    let forged = pair(
        &SessionCookie::new(NAME)
            .secrets(["another secret, also thirty-two bytes"])
            .serialize("x")
            .unwrap(),
    );
    let r4 = app.clone().oneshot(req(Some(&forged))).await.unwrap();
    assert_eq!(r4.body(), "Count: 1");
    let r5 = app.oneshot(req(Some("sid=plain-value"))).await.unwrap();
    assert_eq!(r5.body(), "Count: 1");
}

#[tokio::test]
async fn the_cookie_is_found_in_a_second_cookie_header() {
    let app = plain(layer(), count);
    let r1 = app.clone().oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let request = Request::get("/")
        .header(COOKIE, "a=1; b=2")
        .header(COOKIE, HeaderValue::from_bytes(b"junk=\xff\xfe").unwrap())
        .header(COOKIE, format!("c=3; {c1}"))
        .body(String::new())
        .unwrap();
    let r2 = app.oneshot(request).await.unwrap();
    assert_eq!(r2.body(), "Count: 2");
}

#[tokio::test]
async fn rolling_resends_the_cookie_of_an_existing_session() {
    let storage = MemoryStorage::new();
    let writer = plain(SessionLayer::new(cookie(), storage.clone()), count);
    let rolling = plain(
        SessionLayer::new(
            cookie().max_age(std::time::Duration::from_secs(60)),
            storage.clone(),
        )
        .rolling(true),
        read_only,
    );
    // No cookie: nothing to roll, nothing to send.
    let r0 = rolling.clone().oneshot(req(None)).await.unwrap();
    assert!(set_cookies(&r0).is_empty());
    assert!(storage.is_empty());

    let r1 = writer.oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let r2 = rolling.clone().oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(r2.body(), "Count: 1");
    let resent = session_set_cookie(&r2).expect("rolling re-sends the cookie");
    assert!(resent.contains("Max-Age=60"), "{resent}");
    let r3 = rolling.oneshot(req(Some(&pair(&resent)))).await.unwrap();
    assert_eq!(
        r3.body(),
        "Count: 1",
        "the re-sent cookie names the same session"
    );
}

#[tokio::test]
async fn rotation_accepts_old_cookies_and_resigns_with_the_new_secret() {
    let storage = MemoryStorage::new();
    let old_cookie = SessionCookie::new(NAME).secrets([OLD_SECRET]);
    let rotated = SessionCookie::new(NAME).secrets([NEW_SECRET, OLD_SECRET]);
    let old_app = plain(
        SessionLayer::new(old_cookie.clone(), storage.clone()),
        count,
    );
    let new_app = plain(SessionLayer::new(rotated.clone(), storage.clone()), count);
    let r1 = old_app.oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let r2 = new_app.oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(
        r2.body(),
        "Count: 2",
        "a cookie signed by the old secret is accepted"
    );
    let c2 = pair(&session_set_cookie(&r2).unwrap());
    assert_ne!(c2, c1, "re-signed");
    let only_new = SessionCookie::new(NAME).secrets([NEW_SECRET]);
    assert!(
        only_new.parse(Some(&c2)).is_some(),
        "signed with the new secret"
    );
    assert!(old_cookie.parse(Some(&c2)).is_none());
    assert_eq!(
        only_new.parse(Some(&c2)),
        rotated.parse(Some(&c1)),
        "same session id"
    );
}

/// Seals `value` as session-layer 0.1 did: base64url of nonce || XChaCha20-Poly1305
/// ciphertext || tag, under HMAC-SHA256(secret, label), the cookie's name as associated data.
fn seal_as_0_1(secret: &str, nonce: [u8; 24], value: &str) -> String {
    use base64::Engine as _;
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use hmac::Mac as _;
    let mut derive = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    derive.update(b"session-layer xchacha20-poly1305 key");
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(&derive.finalize().into_bytes());
    let mut bytes = [&nonce[..], value.as_bytes()].concat();
    let tag = cipher
        .encrypt_inout_detached(&nonce.into(), NAME.as_bytes(), (&mut bytes[24..]).into())
        .unwrap();
    bytes.extend_from_slice(&tag);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn an_encrypted_cookie_of_0_1_keeps_its_session_and_is_sealed_again() {
    let secret = "the first secret, thirty-two bytes+";
    let encrypted = cookie().encrypted(true);
    let app = plain(
        SessionLayer::new(encrypted.clone(), MemoryStorage::new()),
        count,
    );
    let r1 = app.clone().oneshot(req(None)).await.unwrap();
    let id = encrypted
        .parse(Some(&pair(&session_set_cookie(&r1).unwrap())))
        .unwrap();
    // A nonce starting with XAES-256-GCM's format byte is tried as XAES-256-GCM first.
    for (round, first_byte) in [(2, 7), (3, 1)] {
        let old = format!("{NAME}={}", seal_as_0_1(secret, [first_byte; 24], &id));
        let response = app.clone().oneshot(req(Some(&old))).await.unwrap();
        assert_eq!(response.body(), &format!("Count: {round}"), "same session");
        let resealed = pair(&session_set_cookie(&response).expect("sealed again"));
        assert_ne!(resealed, old);
        let value = resealed.split_once('=').unwrap().1;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .unwrap();
        assert_eq!(bytes[0], 1, "in the XAES-256-GCM format");
        assert_eq!(encrypted.parse(Some(&resealed)), Some(id.clone()));
    }
}

#[tokio::test]
async fn encrypted_cookie_storage_end_to_end() {
    fn remember(session: &Session) -> (StatusCode, String) {
        let n = session.get::<u64>("count").unwrap_or(0) + 1;
        session.set("count", n).unwrap();
        session.set("secret", "plaintext-marker").unwrap();
        (StatusCode::OK, format!("Count: {n}"))
    }
    let layer = SessionLayer::new(cookie().encrypted(true), CookieStorage::new());
    let app = plain(layer, remember);
    let mut jar: Option<String> = None;
    for expected in 1..=3 {
        let response = app.clone().oneshot(req(jar.as_deref())).await.unwrap();
        assert_eq!(response.body(), &format!("Count: {expected}"));
        let set = session_set_cookie(&response).unwrap();
        assert!(
            !set.contains("plaintext-marker") && !set.contains("count"),
            "{set}"
        );
        jar = Some(pair(&set));
    }
    // A signed-only layer with the same secret cannot read it.
    let signed = plain(SessionLayer::new(cookie(), CookieStorage::new()), read_only);
    let response = signed.oneshot(req(jar.as_deref())).await.unwrap();
    assert_eq!(response.body(), "Count: 0");
}

#[tokio::test]
async fn signed_cookie_storage_end_to_end() {
    let app = plain(SessionLayer::new(cookie(), CookieStorage::new()), count);
    let r1 = app.clone().oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let r2 = app.oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(r2.body(), "Count: 2");
}

#[tokio::test]
async fn a_full_bytes_body() {
    let layer_for_echo = layer();
    let app =
        layer_for_echo
            .clone()
            .layer(service_fn(|request: Request<Full<Bytes>>| async move {
                let session = request.extensions().get::<Session>().cloned().unwrap();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                session
                    .set("echo", String::from_utf8(body.to_vec()).unwrap())
                    .unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"stored"))))
            }));
    let request = Request::post("/")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let c1 = pair(&session_set_cookie(&response).unwrap());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"stored");

    // The next request (same body type) sees what was stored.
    let reader = layer_for_echo.layer(service_fn(|request: Request<Full<Bytes>>| async move {
        let session = request.extensions().get::<Session>().cloned().unwrap();
        let echo = session.get::<String>("echo").unwrap_or_default();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(echo))))
    }));
    let request = Request::get("/")
        .header(COOKIE, &c1)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = reader.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello");

    // A 500 of this body type is empty.
    let failing = SessionLayer::new(cookie(), FailingStorage { fail_read: false }).layer(
        service_fn(|request: Request<Full<Bytes>>| async move {
            request
                .extensions()
                .get::<Session>()
                .unwrap()
                .set("k", 1)
                .unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"x"))))
        }),
    );
    let response = failing
        .oneshot(Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());
}

#[tokio::test]
async fn layer_clones_share_the_storage() {
    let layer = layer();
    let a = plain(layer.clone(), count);
    let b = plain(layer.clone(), count);
    let r1 = a.oneshot(req(None)).await.unwrap();
    let c1 = pair(&session_set_cookie(&r1).unwrap());
    let r2 = b.oneshot(req(Some(&c1))).await.unwrap();
    assert_eq!(r2.body(), "Count: 2");
    assert_eq!(layer.storage().len(), 1);
    assert_eq!(layer.cookie().name(), NAME);
}

// --- axum -----------------------------------------------------------------------------------

#[cfg(feature = "axum")]
mod axum_router {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use http::header::LOCATION;

    async fn axum_count(session: Session) -> Result<String, Error> {
        let n = session.get::<u64>("count").unwrap_or(0) + 1;
        session.set("count", n)?;
        Ok(format!("Count: {n}"))
    }

    async fn axum_show(session: Session) -> String {
        format!(
            "user={} message={}",
            session
                .get::<String>("user")
                .unwrap_or_else(|| "anonymous".into()),
            session
                .get::<String>("message")
                .unwrap_or_else(|| "none".into()),
        )
    }

    async fn axum_flash(session: Session) -> Result<impl IntoResponse, Error> {
        session.flash("message", "saved!")?;
        Ok((StatusCode::FOUND, [(LOCATION, "/show")]))
    }

    async fn axum_login(session: Session) -> Result<&'static str, Error> {
        session.set("user", "mj")?;
        session.regenerate_id(true)?;
        Ok("logged in")
    }

    async fn axum_logout(session: Session) -> &'static str {
        session.destroy();
        "logged out"
    }

    async fn axum_optional(session: Option<Session>) -> String {
        match session {
            Some(_) => "some".into(),
            None => "none".into(),
        }
    }

    fn router() -> (Router, SessionLayer<MemoryStorage>) {
        let layer = layer();
        let app = Router::new()
            .route("/", get(axum_count))
            .route("/show", get(axum_show))
            .route("/flash", post(axum_flash))
            .route("/login", post(axum_login))
            .route("/logout", post(axum_logout))
            .route("/optional", get(axum_optional))
            .layer(layer.clone());
        (app, layer)
    }

    /// A browser: keeps the session cookie between requests.
    struct Browser {
        app: Router,
        jar: Option<String>,
    }

    struct Answer {
        status: StatusCode,
        set_cookie: Option<String>,
        location: Option<String>,
        body: String,
    }

    impl Browser {
        async fn send(&mut self, method: &str, uri: &str) -> Answer {
            let mut builder = Request::builder().method(method).uri(uri);
            if let Some(cookie) = &self.jar {
                builder = builder.header(COOKIE, cookie);
            }
            let response = self
                .app
                .clone()
                .oneshot(builder.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let set_cookie = session_set_cookie(&response);
            if let Some(set) = &set_cookie {
                let pair = pair(set);
                self.jar = (pair != format!("{NAME}=")).then_some(pair);
            }
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned());
            let body = axum_body(response).await;
            Answer {
                status,
                set_cookie,
                location,
                body,
            }
        }
    }

    #[tokio::test]
    async fn axum_counter() {
        let (app, _) = router();
        let mut browser = Browser { app, jar: None };
        for n in 1..=3 {
            let answer = browser.send("GET", "/").await;
            assert_eq!(answer.status, StatusCode::OK);
            assert_eq!(answer.body, format!("Count: {n}"));
        }
    }

    #[tokio::test]
    async fn axum_flash_across_a_redirect() {
        let (app, _) = router();
        let mut browser = Browser { app, jar: None };
        let post = browser.send("POST", "/flash").await;
        assert_eq!(post.status, StatusCode::FOUND);
        assert_eq!(post.location.as_deref(), Some("/show"));
        assert!(post.set_cookie.is_some(), "flashing starts a session");
        let shown = browser.send("GET", "/show").await;
        assert_eq!(shown.body, "user=anonymous message=saved!");
        let again = browser.send("GET", "/show").await;
        assert_eq!(again.body, "user=anonymous message=none");
    }

    #[tokio::test]
    async fn axum_login_regenerates_and_deletes_the_old_session() {
        let (app, layer) = router();
        let mut browser = Browser { app, jar: None };
        browser.send("GET", "/").await;
        let before = browser.jar.clone().unwrap();
        let login = browser.send("POST", "/login").await;
        assert_eq!(login.body, "logged in");
        let after = browser.jar.clone().unwrap();
        assert_ne!(before, after, "login must send a new session id");
        assert_eq!(
            browser.send("GET", "/show").await.body,
            "user=mj message=none"
        );
        assert_eq!(layer.storage().len(), 1, "the old session was deleted");
        // The old cookie no longer loads anything.
        let mut attacker = Browser {
            app: browser.app.clone(),
            jar: Some(before),
        };
        assert_eq!(
            attacker.send("GET", "/show").await.body,
            "user=anonymous message=none"
        );
        assert_eq!(attacker.send("GET", "/").await.body, "Count: 1");
    }

    #[tokio::test]
    async fn axum_logout_destroys() {
        let (app, layer) = router();
        let mut browser = Browser { app, jar: None };
        browser.send("POST", "/login").await;
        let logged_in = browser.jar.clone().unwrap();
        let logout = browser.send("POST", "/logout").await;
        assert_eq!(logout.body, "logged out");
        assert_eq!(
            logout.set_cookie.as_deref(),
            Some(cookie().serialize_removal().as_str())
        );
        assert_eq!(browser.jar, None);
        assert!(layer.storage().is_empty(), "the data is deleted");
        let mut replay = Browser {
            app: browser.app.clone(),
            jar: Some(logged_in),
        };
        assert_eq!(
            replay.send("GET", "/show").await.body,
            "user=anonymous message=none"
        );
    }

    #[tokio::test]
    async fn axum_missing_layer_is_a_500() {
        let app: Router = Router::new().route("/", get(axum_count));
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum_body(response).await;
        assert!(
            !body.contains("SessionLayer") && !body.contains("extensions"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn axum_optional_session() {
        let without: Router = Router::new().route("/optional", get(axum_optional));
        let response = without
            .oneshot(Request::get("/optional").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum_body(response).await;
        assert_eq!(body, "none");

        let (app, _) = router();
        let mut browser = Browser { app, jar: None };
        let answer = browser.send("GET", "/optional").await;
        assert_eq!(answer.body, "some");
        assert_eq!(
            answer.set_cookie, None,
            "an untouched session sets no cookie"
        );
    }

    #[tokio::test]
    async fn axum_error_from_a_handler_is_a_bare_500() {
        async fn after_destroy(session: Session) -> Result<&'static str, Error> {
            session.destroy();
            session.set("k", 1)?;
            Ok("unreachable")
        }
        let app = Router::new().route("/", get(after_destroy)).layer(layer());
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            session_set_cookie(&response).is_none(),
            "a 5xx saves nothing"
        );
        let body = axum_body(response).await;
        assert!(!body.contains("destroyed"));
    }

    #[tokio::test]
    async fn non_ascii_cookies_beside_the_session_cookie_do_not_hide_it() {
        // Browsers send other cookies' bytes as they were set, UTF-8 or not, in the same header.
        let app = plain(layer(), count);
        let r1 = app.clone().oneshot(req(None)).await.unwrap();
        let c1 = pair(&session_set_cookie(&r1).unwrap());
        for (expected, other) in [(2, &b"pref=caf\xc3\xa9"[..]), (3, &b"legacy=\xe9t\xe9"[..])] {
            let mut header = other.to_vec();
            header.extend_from_slice(b"; ");
            header.extend_from_slice(c1.as_bytes());
            let request = Request::get("/")
                .header(COOKIE, HeaderValue::from_bytes(&header).unwrap())
                .body(String::new())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.body(), &format!("Count: {expected}"), "{header:?}");
        }
    }

    /// The whole body of an axum response, as text.
    async fn axum_body(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The accessors tower-http services have: the inner service is reachable and can be
/// taken back out.
#[test]
fn the_service_gives_access_to_its_inner_service() {
    #[derive(Clone, Debug, PartialEq)]
    struct Inner(u32);
    let mut service = layer().layer(Inner(1));
    assert_eq!(service.get_ref(), &Inner(1));
    service.get_mut().0 = 2;
    assert_eq!(service.clone().into_inner(), Inner(2));
}

/// `rolling` on one clone of a layer leaves the others as they were.
#[tokio::test]
async fn options_set_on_a_clone_do_not_change_the_original() {
    let original = layer();
    let rolling = original.clone().rolling(true);
    let untouched = |session: &Session| {
        let _ = session.get::<u64>("n");
        (StatusCode::OK, String::new())
    };
    let count = |session: &Session| {
        session.set("n", 1).unwrap();
        (StatusCode::OK, String::new())
    };
    let first = plain(original.clone(), count)
        .oneshot(req(None))
        .await
        .unwrap();
    let sent = pair(&session_set_cookie(&first).unwrap());
    let plain_again = plain(original, untouched).oneshot(req(Some(&sent))).await;
    assert!(session_set_cookie(&plain_again.unwrap()).is_none());
    let rolled = plain(rolling, untouched).oneshot(req(Some(&sent))).await;
    assert!(session_set_cookie(&rolled.unwrap()).is_some());
}
