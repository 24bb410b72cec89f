//! Sealing and opening one session cookie alone, signed and encrypted: `serialize` (seal and
//! `Set-Cookie`) and `parse` (find and open), without a layer or a storage around them.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use session_layer::SessionCookie;

/// About what the cookie storage carries for a small session.
const VALUE: &str =
    r#"{"id":"Yl4fQm3n8d0xKc2vR7sT1uWzA5bE9hJ","data":{"n":41},"expires":1767225600}"#;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("cookie");
    for (mode, encrypted) in [("signed", false), ("encrypted", true)] {
        let cookie = SessionCookie::new("id")
            .secrets(["a secret of thirty-two bytes or more, for benchmarks"])
            .encrypted(encrypted);
        let header = cookie.serialize(VALUE).unwrap();
        let pair = header.split(';').next().unwrap().to_owned();
        group.bench_function(format!("{mode}_seal"), |b| {
            b.iter(|| cookie.serialize(black_box(VALUE)))
        });
        group.bench_function(format!("{mode}_open"), |b| {
            b.iter(|| cookie.parse(black_box(Some(pair.as_str()))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
