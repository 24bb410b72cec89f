use axum::{Router, body::Body, routing::get};
use http::{Request, header};
use session_layer::{MemoryStorage, Session, SessionCookie, SessionLayer};
use tower::ServiceExt;

async fn count(session: Session) -> String {
    let n = session.get::<u64>("n").unwrap_or(0) + 1;
    session.set("n", n).unwrap();
    n.to_string()
}

#[tokio::test]
async fn counter_over_axum() {
    let layer = SessionLayer::new(
        SessionCookie::new("sid").secrets(["k1"]),
        MemoryStorage::new(),
    );
    let app = Router::new().route("/", get(count)).layer(layer);
    let res = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let set = res
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    println!("{set}");
    let pair = set.split(';').next().unwrap().to_owned();
    let res = app
        .clone()
        .oneshot(
            Request::get("/")
                .header("cookie", &pair)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let set2 = res
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(set, set2, "same id, same seal is re-sent");
    let body = axum::body::to_bytes(res.into_body(), 100).await.unwrap();
    assert_eq!(&body[..], b"2");
}
