//! A renewal looked at on the store itself, with the store's own client: the record's
//! bytes stay as written, and only the expiry beside them moves.

#[cfg(any(feature = "redis", feature = "postgres"))]
use std::time::Duration;

#[cfg(any(feature = "redis", feature = "postgres"))]
use session_layer::SessionStorage;

/// A stored session, `between` run on its id, then a request that only renews it; answers
/// the id.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn saved_then_renewed<St: SessionStorage>(
    storage: &St,
    between: impl AsyncFnOnce(&str),
) -> String {
    let session = storage.read(None).await.unwrap();
    session.set("n", 1).unwrap();
    let id = storage.save(&session).await.unwrap().unwrap();
    between(&id).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let session = storage.read(Some(&id)).await.unwrap();
    session.touch().unwrap();
    assert_eq!(storage.save(&session).await.unwrap(), Some(id.clone()));
    id
}

/// Redis: field `d` is byte for byte what the save wrote, field `e` holds the new expiry,
/// the key's TTL was renewed, and no store script ran for the renewal.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_keeps_the_record_and_moves_field_e_and_the_ttl() {
    use crate::common::servers::{redis_cmd, start_redis};
    let server = start_redis();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let storage = session_layer::RedisStorage::connect(&url)
        .await
        .unwrap()
        .ttl(Duration::from_secs(600));
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let written = std::cell::RefCell::new(None);
    let id = saved_then_renewed(&storage, async |id: &str| {
        let key = storage.key_for(id);
        let fields: (Vec<u8>, String) = redis_cmd(&mut conn, "HMGET", (&key, "d", "v")).await;
        *written.borrow_mut() = Some(fields);
        let _: () = redis_cmd(&mut conn, "CONFIG", ("RESETSTAT",)).await;
        let _: () = redis_cmd(&mut conn, "PEXPIRE", (&key, 300_000)).await;
    })
    .await;
    let key = storage.key_for(&id);
    let now: (Vec<u8>, String) = redis_cmd(&mut conn, "HMGET", (&key, "d", "v")).await;
    assert_eq!(Some(now), written.into_inner(), "field d and v as written");
    let renewed: Option<u64> = redis_cmd(&mut conn, "HGET", (&key, "e")).await;
    assert!(renewed.is_some(), "the renewal's expiry is in field e");
    let pttl: i64 = redis_cmd(&mut conn, "PTTL", &key).await;
    assert!(pttl > 590_000, "the key's TTL renewed: {pttl}");
    let stats: String = redis_cmd(&mut conn, "INFO", "commandstats").await;
    let hset = stats.lines().find(|l| l.starts_with("cmdstat_hset:"));
    let calls = |line: &str| line.split(['=', ',']).nth(1).unwrap().to_owned();
    // One HSET: field e. A store writes v and d with one HSET too, but then v would differ.
    assert_eq!(hset.map(calls).as_deref(), Some("1"), "{stats}");
}

/// PostgreSQL: the data column and the version are as the save wrote them, `expires_at`
/// moved.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_keeps_the_data_column_and_moves_expires_at() {
    use crate::common::sql::{Cleanup, Server, postgres_pool};
    use session_layer::storage::id_digest;
    let (table, _cleanup) = Cleanup::table(Server::Postgres).await;
    let pool = postgres_pool(2).await;
    let storage = session_layer::PostgresStorage::new(pool.clone())
        .table(&table)
        .ttl(Duration::from_secs(600));
    storage.migrate().await.unwrap();
    let row = |id: String| {
        let (pool, table) = (pool.clone(), table.clone());
        async move {
            let sql = format!("SELECT data, version, expires_at FROM {table} WHERE id = $1");
            let row: (Vec<u8>, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id_digest(&id))
                .fetch_one(&pool)
                .await
                .unwrap();
            row
        }
    };
    let written = std::cell::RefCell::new(None);
    let id = saved_then_renewed(&storage, async |id: &str| {
        *written.borrow_mut() = Some(row(id.to_owned()).await);
    })
    .await;
    let (data, version, expires_at) = written.into_inner().unwrap();
    let now = row(id).await;
    assert_eq!(
        (&now.0, now.1),
        (&data, version),
        "data and version as written"
    );
    assert!(now.2 > expires_at, "expires_at moved");
}
