//! Replays what the fuzzers kept (`tests/fuzz/corpus/<target>`) and the inputs that once
//! crashed them (`tests/fuzz/regressions/<target>`) through the same entry points, on the
//! stable toolchain: a fixed crash stays fixed. (The fuzzers themselves: `tests/fuzz`.)

use std::path::{Path, PathBuf};

use diaban_server::fuzz;

/// Replays on a thread with a release build's headroom: an unoptimised build's stack frames
/// are several times larger, and the parsers recurse once per nesting level (at most
/// `MAX_NESTING`), so the test harness's 2 MiB threads would overflow where a phone's or the
/// server's optimised code does not.
fn replay(target: &'static str, entry: fn(&[u8])) {
    let thread = std::thread::Builder::new().stack_size(64 << 20).spawn(move || replay_here(target, entry));
    if let Err(panic) = thread.expect("a replay thread").join() {
        std::panic::resume_unwind(panic);
    }
}

fn replay_here(target: &str, entry: fn(&[u8])) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz");
    let mut inputs = 0;
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.map(|e| e.expect("a corpus entry").path()) {
            let data = std::fs::read(&path).expect("a corpus file");
            if std::panic::catch_unwind(|| entry(&data)).is_err() {
                panic!("{target}: {} panics", display(&path));
            }
            inputs += 1;
        }
    }
    assert!(inputs > 0, "no corpus for {target}");
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn sync_frames() {
    replay("sync_frame", fuzz::sync_frame);
}

#[test]
fn pushed_bundles_through_the_check_path() {
    replay("pushed_bundle", fuzz::pushed_bundle);
}

#[test]
fn template_json() {
    replay("template_json", fuzz::template_json);
}

#[test]
fn cel_expressions() {
    replay("cel_expression", fuzz::cel_expression);
}

#[test]
fn units_csv() {
    replay("units_csv", fuzz::units_csv);
}

#[test]
fn attachment_uploads() {
    replay("attachment_upload", fuzz::attachment_upload);
}
