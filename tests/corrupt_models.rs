//! Corrupt or truncated model files make `Language::load` fail with an error
//! that names the file; they never panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use article_analyzer::config::DEFAULT_MODEL;
use article_analyzer::spacy::language::Language;
use tempfile::TempDir;

/// The files `Language::load` reads (tokenizer + NER), relative to the
/// pipeline directory, and whether they are binary (msgpack).
const FILES: &[(&str, bool)] = &[
    ("config.cfg", false),
    ("meta.json", false),
    ("tokenizer", true),
    ("vocab/lookups.bin", true),
    ("ner/cfg", false),
    ("ner/model", true),
    ("ner/moves", true),
];

/// A private copy of the pipeline files that the test may damage, in a
/// temporary directory removed when the copy is dropped.
struct Scratch {
    /// `<temporary directory>/<DEFAULT_MODEL>`.
    dir: PathBuf,
    _tmp: TempDir,
}

impl Scratch {
    fn new(source: &Path, tag: &str) -> Scratch {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("article-analyzer-{tag}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path().join(DEFAULT_MODEL);
        for (file, _) in FILES {
            let to = dir.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(source.join(file), &to).unwrap();
        }
        Scratch { dir, _tmp: tmp }
    }
}

enum Damage {
    /// Keep only the first n bytes.
    Truncate(usize),
    /// Overwrite 8 bytes at this offset with 0xC1 (never valid in msgpack,
    /// not UTF-8).
    Overwrite(usize),
    /// Replace the whole file.
    Replace(&'static [u8]),
}

fn damaged(original: &[u8], damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Truncate(n) => original[..*n].to_vec(),
        Damage::Overwrite(at) => {
            let mut bytes = original.to_vec();
            let end = (*at + 8).min(bytes.len());
            bytes[*at..end].fill(0xC1);
            bytes
        }
        Damage::Replace(bytes) => bytes.to_vec(),
    }
}

#[test]
fn damaged_model_files_give_an_error_naming_the_file() {
    let source = common::models_dir().join(DEFAULT_MODEL);
    let scratch = Scratch::new(&source, "damaged");
    // The undamaged copy loads.
    Language::load(&scratch.dir).expect("the undamaged copy loads");

    let mut cases = 0;
    for &(file, binary) in FILES {
        let path = scratch.dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let len = original.len();
        // Damage that must make the load fail.
        let mut fatal = vec![
            Damage::Truncate(0),
            Damage::Truncate(1),
            Damage::Overwrite(0),
            Damage::Replace(b"this is not a model file \xff\xfe"),
        ];
        if binary {
            // Truncated msgpack is always incomplete.
            fatal.extend([
                Damage::Truncate(2),
                Damage::Truncate(17.min(len - 1)),
                Damage::Truncate(len / 3),
                Damage::Truncate(len / 2),
                Damage::Truncate(len - 1),
            ]);
        }
        // Damage that may or may not be noticed (it can land inside a
        // weight array), but must never panic.
        let survivable = [
            Damage::Overwrite(len / 3),
            Damage::Overwrite(len / 2),
            Damage::Overwrite(len.saturating_sub(8)),
        ];
        let all = fatal
            .iter()
            .map(|d| (d, true))
            .chain(survivable.iter().map(|d| (d, false)));
        for (damage, must_fail) in all {
            let what = match damage {
                Damage::Truncate(n) => format!("{file} truncated to {n} of {len} bytes"),
                Damage::Overwrite(at) => format!("{file} overwritten at {at} of {len}"),
                Damage::Replace(_) => format!("{file} replaced by text"),
            };
            std::fs::write(&path, damaged(&original, damage)).unwrap();
            let outcome = catch_unwind(AssertUnwindSafe(|| Language::load(&scratch.dir)));
            let result = outcome.unwrap_or_else(|_| panic!("{what}: Language::load panicked"));
            match result {
                Err(e) => {
                    let message = e.to_string();
                    assert!(
                        message.contains(&path.display().to_string()),
                        "{what}: the error does not name the file: {message}"
                    );
                }
                Ok(_) => assert!(!must_fail, "{what}: loaded without an error"),
            }
            cases += 1;
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(cases > 50, "{cases}");
}

#[test]
fn a_missing_model_file_gives_an_error_naming_it() {
    let source = common::models_dir().join(DEFAULT_MODEL);
    let scratch = Scratch::new(&source, "missing");
    // lookups.bin is optional, as in spaCy.
    for &(file, _) in FILES.iter().filter(|(f, _)| *f != "vocab/lookups.bin") {
        let path = scratch.dir.join(file);
        let original = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = Language::load(&scratch.dir).expect_err(file);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{file}: {err}"
        );
        std::fs::write(&path, &original).unwrap();
    }
}
