//! The demo's "Where you are signed in" routes without a browser, through tower's `oneshot`:
//! signing out another session or all others, what a bad or foreign handle does, escaping,
//! and the device labels.
#![cfg(feature = "axum")]

#[path = "../examples/demo/app.rs"]
mod app;
#[path = "../examples/demo/device.rs"]
mod device;
#[path = "../examples/demo/page.rs"]
mod page;
#[path = "../examples/demo/sessions.rs"]
mod sessions;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE, USER_AGENT};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use session_layer::{MemoryStorage, SessionIndex, SessionStorage};
use tower::ServiceExt;

const CHROME_ON_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like \
                               Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The demo over `storage`, which the test keeps a clone of to look at the sessions.
fn demo(storage: MemoryStorage) -> Router {
    let settings = app::Settings {
        storage: "memory".into(),
        ttl: Duration::from_secs(3600),
    };
    let secret = "a demo test secret, at least 32 bytes long";
    app::app_with_index(app::cookie(secret), storage, settings).expect("the demo's router")
}

/// A browser's cookie: `name=value`, or empty before the first response.
#[derive(Clone, Default)]
struct Jar(String);

impl Jar {
    /// Sends `request` with this cookie, and keeps the cookie the response sets.
    async fn send(&mut self, app: &Router, mut request: Request<Body>) -> Response<Body> {
        if !self.0.is_empty() {
            request
                .headers_mut()
                .insert(COOKIE, self.0.parse().unwrap());
        }
        let response = app.clone().oneshot(request).await.unwrap();
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            // A cleared cookie comes back empty: the browser drops it.
            self.0 = if pair.ends_with('=') {
                String::new()
            } else {
                pair.to_owned()
            };
        }
        response
    }

    async fn post(&mut self, app: &Router, path: &str, form: &str) -> Response<Body> {
        let request = Request::post(path)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(USER_AGENT, CHROME_ON_LINUX)
            .body(Body::from(form.to_owned()))
            .unwrap();
        self.send(app, request).await
    }

    /// The home page's HTML.
    async fn home(&mut self, app: &Router) -> String {
        let request = Request::get("/").body(Body::empty()).unwrap();
        let response = self.send(app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        body(response).await
    }
}

async fn body(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A new browser logged in as `user`.
async fn logged_in(app: &Router, user: &str) -> Jar {
    let mut jar = Jar::default();
    let response = jar.post(app, "/login", &format!("username={user}")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(jar.home(app).await.contains(r#"<b id="user">"#));
    jar
}

fn redirect(response: &Response<Body>) -> &str {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()[LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn login_sets_the_owner_and_the_device_and_the_card_lists_them() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    let mut laptop = logged_in(&app, "ann").await;
    let listed = storage.sessions_of("ann").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].data.values["device"], "Chrome on Linux");

    let _phone = logged_in(&app, "ann").await;
    let page = laptop.home(&app).await;
    assert_eq!(page.matches(r#"<td class="device">"#).count(), 2);
    assert_eq!(page.matches("<b>this device</b>").count(), 1);
    assert_eq!(page.matches(r#"name="handle""#).count(), 1, "{page}");
    assert!(page.contains(r#"id="end-others""#));
}

#[tokio::test]
async fn sign_out_ends_the_other_session_only() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    let mut laptop = logged_in(&app, "ann").await;
    let mut phone = logged_in(&app, "ann").await;
    let listed = storage.sessions_of("ann").await.unwrap();
    let laptop_page = laptop.home(&app).await;
    let other = listed
        .iter()
        .find(|info| laptop_page.contains(&format!(r#"value="{}""#, info.handle)))
        .expect("the phone's row has a sign-out form");

    let response = laptop
        .post(&app, "/sessions/end", &format!("handle={}", other.handle))
        .await;
    assert_eq!(redirect(&response), "/");
    assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 1);
    assert!(
        laptop
            .home(&app)
            .await
            .contains("Signed out the other session")
    );
    assert!(!phone.home(&app).await.contains(r#"<b id="user">"#));
}

#[tokio::test]
async fn sign_out_everywhere_else_keeps_this_session_under_a_new_id() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    let mut laptop = logged_in(&app, "ann").await;
    let mut others = [logged_in(&app, "ann").await, logged_in(&app, "ann").await];
    let _bob = logged_in(&app, "bob").await;
    let before = laptop.0.clone();

    let response = laptop.post(&app, "/sessions/end-others", "").await;
    assert_eq!(redirect(&response), "/");
    assert_ne!(laptop.0, before, "a new id for this session");
    let page = laptop.home(&app).await;
    assert!(page.contains("Signed out 2 other sessions"), "{page}");
    assert_eq!(page.matches(r#"<td class="device">"#).count(), 1);
    for other in &mut others {
        assert!(!other.home(&app).await.contains(r#"<b id="user">"#));
    }
    assert_eq!(storage.sessions_of("bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_handle_of_another_users_session_ends_nothing() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    let mut ann = logged_in(&app, "ann").await;
    let mut bob = logged_in(&app, "bob").await;
    let bobs = storage.sessions_of("bob").await.unwrap()[0].handle.clone();

    let response = ann
        .post(&app, "/sessions/end", &format!("handle={bobs}"))
        .await;
    assert_eq!(redirect(&response), "/");
    assert!(
        ann.home(&app)
            .await
            .contains("That session had already ended")
    );
    assert_eq!(storage.sessions_of("bob").await.unwrap().len(), 1);
    assert!(bob.home(&app).await.contains(r#"<b id="user">bob</b>"#));

    // Signed out, the same handle ends nothing either.
    let mut stranger = Jar::default();
    let response = stranger
        .post(&app, "/sessions/end", &format!("handle={bobs}"))
        .await;
    assert_eq!(redirect(&response), "/");
    let response = stranger.post(&app, "/sessions/end-others", "").await;
    assert_eq!(redirect(&response), "/");
    assert_eq!(storage.sessions_of("bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_malformed_handle_is_a_400_that_says_what_a_handle_is() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    let mut ann = logged_in(&app, "ann").await;
    let _other = logged_in(&app, "ann").await;
    let upper = "A".repeat(64);
    for form in [
        "handle=zz",
        "handle=",
        "",
        "handle=%3Cscript%3E",
        &format!("handle={upper}"),
    ] {
        let response = ann.post(&app, "/sessions/end", form).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{form:?}");
        let text = body(response).await;
        assert!(text.contains("not a session handle"), "{text}");
        assert!(!text.contains("script"), "{text}");
    }
    assert_eq!(storage.sessions_of("ann").await.unwrap().len(), 2);
}

#[tokio::test]
async fn posting_this_sessions_own_handle_logs_out() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    let mut ann = logged_in(&app, "ann").await;
    let own = storage.sessions_of("ann").await.unwrap()[0].handle.clone();
    let response = ann
        .post(&app, "/sessions/end", &format!("handle={own}"))
        .await;
    assert_eq!(redirect(&response), "/logged-out");
    assert!(ann.0.is_empty(), "the cookie is cleared");
    assert!(storage.sessions_of("ann").await.unwrap().is_empty());
}

#[tokio::test]
async fn what_a_session_holds_is_escaped_in_the_card() {
    let storage = MemoryStorage::new();
    let app = demo(storage.clone());
    // A session written by something other than the demo's login, with markup for a label.
    let planted = storage.read(None).await.unwrap();
    planted.set_owner("ann").unwrap();
    planted
        .set("device", "<img src=x onerror=alert(1)>")
        .unwrap();
    storage.save(&planted).await.unwrap();

    let mut ann = logged_in(&app, "ann").await;
    let page = ann.home(&app).await;
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img"));
}

#[tokio::test]
async fn a_storage_without_an_index_says_so() {
    let settings = app::Settings {
        storage: "cookie".into(),
        ttl: Duration::from_secs(3600),
    };
    let secret = "a demo test secret, at least 32 bytes long";
    let cookie = app::cookie(secret).encrypted(true);
    let app = app::app(cookie, session_layer::CookieStorage::new(), settings).unwrap();
    let mut ann = logged_in(&app, "ann").await;
    assert!(
        ann.home(&app)
            .await
            .contains("cannot list a user's sessions")
    );
    let response = ann.post(&app, "/sessions/end-others", "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn device_labels() {
    let cases = [
        (CHROME_ON_LINUX, "Chrome on Linux"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/131.0.0.0 Safari/537.36",
            "Chrome on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, \
             like Gecko) Version/17.5 Safari/605.1.15",
            "Safari on macOS",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        ("curl/8.5.0", "Unknown browser"),
        ("", "Unknown browser"),
        ("<script>Firefox/1</script>", "Firefox"),
    ];
    for (user_agent, label) in cases {
        assert_eq!(device::label(user_agent), label, "{user_agent}");
    }
}
