//! Checks that every session file under a `FsStorage` directory decodes: the fault run of
//! `scripts/load fault-fs` runs it after a `kill -9` of the server.
//!
//! ```sh
//! cargo run -p session-layer-compare --bin fs_check -- /tmp/sessions
//! ```
//!
//! Walks `dir/<2 hex>/<62 hex>`, decodes each file with [`Record::decode`], and prints one
//! summary line: session files, how many parse, how many are live or expired, and the
//! temporary files (`.tmp-*`) a write left behind, with how many of those are complete.
//! Exits with status 1 when any session file fails to decode or an unexpected entry is
//! found.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use session_layer::storage::Record;

#[derive(Default)]
struct Counts {
    files: usize,
    parsed: usize,
    live: usize,
    failed: usize,
    temp: usize,
    temp_complete: usize,
    temp_empty: usize,
    unexpected: usize,
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: fs_check <session dir>");
        return ExitCode::from(2);
    };
    match check(Path::new(&dir)) {
        Ok(counts) => {
            println!(
                "fs_check: {} session files, {} parse ({} live, {} expired), {} fail; \
                 {} temporary files ({} complete records, {} empty); {} unexpected entries",
                counts.files,
                counts.parsed,
                counts.live,
                counts.parsed - counts.live,
                counts.failed,
                counts.temp,
                counts.temp_complete,
                counts.temp_empty,
                counts.unexpected,
            );
            if counts.failed == 0 && counts.unexpected == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("fs_check: {error}");
            ExitCode::from(2)
        }
    }
}

fn check(dir: &Path) -> std::io::Result<Counts> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut counts = Counts::default();
    for bucket in std::fs::read_dir(dir)? {
        let bucket = bucket?;
        let name = bucket.file_name().to_string_lossy().into_owned();
        if !bucket.file_type()?.is_dir() || !is_hex(&name, 2) {
            eprintln!("unexpected entry {}", bucket.path().display());
            counts.unexpected += 1;
            continue;
        }
        for entry in std::fs::read_dir(bucket.path())? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path)?;
            let decoded = Record::decode(&path.display().to_string(), &bytes);
            if name.starts_with(".tmp-") {
                counts.temp += 1;
                counts.temp_complete += usize::from(decoded.is_ok());
                counts.temp_empty += usize::from(bytes.is_empty());
            } else if is_hex(&name, 62) {
                counts.files += 1;
                match decoded {
                    Ok(record) => {
                        counts.parsed += 1;
                        counts.live += usize::from(record.is_live(now_ms, None));
                    }
                    Err(error) => {
                        eprintln!("{error}");
                        counts.failed += 1;
                    }
                }
            } else {
                eprintln!("unexpected entry {}", path.display());
                counts.unexpected += 1;
            }
        }
    }
    Ok(counts)
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| b.is_ascii_hexdigit())
}
