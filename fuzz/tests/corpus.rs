//! Replays every fuzz target's committed corpus (`fuzz/corpus/<target>/`) and every input a
//! fuzzer found to crash it (`fuzz/regressions/<target>/`, kept after the fix): none panics.
//! The seeds come from the spec vectors and test fixtures (`fuzz/seed.py`).

use std::path::{Path, PathBuf};

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target)
}

fn files(d: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(d)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn every_target_survives_its_corpus_and_its_regressions() {
    let mut replayed = 0;
    for (name, target) in knoop_fuzz::TARGETS {
        let seeds = files(&dir("corpus", name));
        assert!(!seeds.is_empty(), "{name}: no seed corpus");
        for f in seeds.iter().chain(files(&dir("regressions", name)).iter()) {
            let data = std::fs::read(f).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panics", f.display());
            replayed += 1;
        }
    }
    eprintln!(
        "{replayed} inputs replayed over {} targets",
        knoop_fuzz::TARGETS.len()
    );
}

#[test]
fn every_target_has_a_corpus_directory_and_no_other_exists() {
    let names: Vec<&str> = knoop_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    for kind in ["corpus", "regressions"] {
        for d in files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(kind)) {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                names.contains(&name.as_str()),
                "{kind}/{name} names no target"
            );
        }
    }
}
