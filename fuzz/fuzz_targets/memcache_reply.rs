//! The Memcached client's reply parser (in src/storage/memcache/: `read_line` and
//! `read_item` in connection.rs, `parse_value_header` and the per-command replies in
//! reply.rs) on bytes from a server, which are untrusted input too. It runs the crate's own
//! code over an in-memory connection through the `cfg(fuzzing)` hook
//! `session_layer::fuzzing`.
//!
//! Properties: no panic, nothing allocated for a value beyond the limit the `gets` names
//! (`MEMCACHE_MAX_VALUE`, 1 KiB here so that inputs reach both sides of it; a longer value
//! is read past and reported as none, and the memory limit of the run catches an
//! allocation), a value is only accepted when the server really sent it (with its `VALUE`
//! line, its CAS unique, the bytes, CRLF and `END`), and error text is bounded and free of
//! control characters (it goes to the log).
//!
//! Input: first byte is the number of commands (1 to 4), the next ones pick each command
//! (`gets`, `add`, `set`, `cas`, `delete`, `md`, `version`), the rest is what the server
//! sends.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session_layer::fuzzing::{
    MEMCACHE_MAX_VALUE, MemcacheOutcome, memcache_converse, memcache_key,
};
use tokio::runtime::Runtime;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

static KEY: LazyLock<String> = LazyLock::new(memcache_key);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 4) + 1;
    if rest.len() < count {
        return;
    }
    let (commands, server) = rest.split_at(count);
    let outcomes = RUNTIME.block_on(memcache_converse(commands, server));
    assert!(!outcomes.is_empty() && outcomes.len() <= count);
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            MemcacheOutcome::Value(Some((value, cas))) => {
                assert!(value.len() <= MEMCACHE_MAX_VALUE);
                let mut block = format!("VALUE {} ", &*KEY).into_bytes();
                assert!(contains(server, &block), "a value without its VALUE line");
                // The digits that end the VALUE line, leading zeros aside.
                let cas = format!(" {cas}\r\n");
                let digits = cas.trim_start_matches([' ', '0']);
                assert!(
                    contains(server, digits.as_bytes()),
                    "a CAS unique the server did not send"
                );
                block.clear();
                block.extend_from_slice(value);
                block.extend_from_slice(b"\r\nEND\r\n");
                assert!(contains(server, &block), "a value the server did not send");
            }
            MemcacheOutcome::Fault(message) => {
                assert_eq!(i, outcomes.len() - 1, "a command ran after a fault");
                assert!(
                    message.len() <= 400,
                    "a {}-byte error message",
                    message.len()
                );
                assert!(
                    !message.chars().any(char::is_control),
                    "control characters in {message:?}"
                );
            }
            MemcacheOutcome::Version(version) => {
                assert!(version.len() <= 120);
                assert!(!version.chars().any(char::is_control));
            }
            MemcacheOutcome::Value(None)
            | MemcacheOutcome::Stored(_)
            | MemcacheOutcome::Deleted(_) => {}
        }
    }
});
