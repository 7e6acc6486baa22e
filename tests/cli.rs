//! The command line, as users and scripts call it: the `analyze` JSON contract
//! and the `client` JSON lines.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_article-analyzer"));
    cmd.env("ARTICLE_ANALYZER_MODELS", common::models_dir());
    cmd
}

/// Runs the binary with `args`, feeding `stdin`, and waits for it.
fn run_with_stdin(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn analyze_json(args: &[&str], stdin: &str) -> Value {
    let mut all = vec!["analyze"];
    all.extend_from_slice(args);
    all.extend(["--json", "-"]);
    let out = run_with_stdin(&all, stdin.as_bytes());
    assert!(
        out.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn analyze_json_prints_entities_with_text_label_and_both_offsets() {
    let text = "“Zürich” welcomed Angela Merkel on 12 May 2022.";
    let v = analyze_json(&[], text);
    let entities = v["entities"].as_array().expect("entities array");
    let chars: Vec<char> = text.chars().collect();
    let mut names = Vec::new();
    for e in entities {
        let t = e["text"].as_str().unwrap();
        let (sc, ec) = (
            e["start_char"].as_u64().unwrap(),
            e["end_char"].as_u64().unwrap(),
        );
        let (sb, eb) = (
            e["start_byte"].as_u64().unwrap(),
            e["end_byte"].as_u64().unwrap(),
        );
        assert_eq!(
            chars[sc as usize..ec as usize].iter().collect::<String>(),
            t
        );
        assert_eq!(&text[sb as usize..eb as usize], t);
        assert!(e["label"].is_string());
        names.push((t.to_string(), e["label"].as_str().unwrap().to_string()));
    }
    assert!(
        names.contains(&("Angela Merkel".into(), "PERSON".into())),
        "{names:?}"
    );
    assert!(v["completed"]["token_count"].as_u64().unwrap() > 5);
    assert_eq!(v["models"][0]["name"], "en_core_web_sm");
}

#[test]
fn analyze_reads_a_file_argument() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/china-russia-friendship.txt");
    let out = bin()
        .args(["analyze", "--json", "--no-stance"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        labels.contains(&"China") && labels.contains(&"Russia"),
        "{labels:?}"
    );
    // Without stance the learned model is not loaded at all.
    let models: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        !models.contains(&"stance-minilm-newsmtsc"),
        "--no-stance loaded {models:?}"
    );
    assert!(v["stances"].as_array().unwrap().is_empty());
}

#[test]
fn analyze_rejects_text_that_is_not_utf8() {
    let out = run_with_stdin(&["analyze", "--json", "-"], b"caf\xe9 au lait");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

#[test]
fn a_missing_model_directory_is_a_clear_error() {
    let out = bin()
        .args(["analyze", "--models", "/nonexistent/models", "--json", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fetch-models"), "{err}");
}

#[test]
fn full_components_give_tokens_with_tags_dependencies_and_lemmas() {
    let text = "Angela Merkel visited Paris. She met Emmanuel Macron there.";
    let v = analyze_json(&["--components", "full", "--no-stance"], text);
    let sentences = v["sentences"].as_array().unwrap();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Angela Merkel visited Paris.",
            "She met Emmanuel Macron there."
        ]
    );
    let tokens: Vec<&Value> = sentences
        .iter()
        .flat_map(|s| s["tokens"].as_array().unwrap())
        .collect();
    let visited = tokens.iter().find(|t| t["text"] == "visited").unwrap();
    assert_eq!(visited["tag"], "VBD");
    assert_eq!(visited["pos"], "VERB");
    assert_eq!(visited["dep"], "ROOT");
    assert_eq!(visited["lemma"], "visit");
    let merkel = tokens.iter().find(|t| t["text"] == "Merkel").unwrap();
    assert_eq!(merkel["dep"], "nsubj");
    assert_eq!(merkel["head"], 2, "Merkel's head is 'visited'");
    let models = v["models"][0]["components"].as_array().unwrap();
    for c in [
        "tokenizer",
        "tok2vec",
        "tagger",
        "parser",
        "attribute_ruler",
        "lemmatizer",
        "ner",
    ] {
        assert!(models.iter().any(|m| m == c), "{c} missing from {models:?}");
    }
}

#[test]
fn ner_only_components_skip_the_parser() {
    let v = analyze_json(
        &["--components", "ner", "--no-stance"],
        "Angela Merkel visited Paris.",
    );
    let components = v["models"][0]["components"].as_array().unwrap();
    assert!(!components.iter().any(|c| c == "parser"), "{components:?}");
    let token = &v["sentences"][0]["tokens"][0];
    assert_eq!(token["text"], "Angela");
    assert!(
        token.get("dep").is_none(),
        "no syntax without the parser: {token}"
    );
}

#[tokio::test]
async fn client_prints_the_streamed_events_as_json_lines() {
    let server = common::start(article_analyzer::config::Limits::default()).await;
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        run_with_stdin(
            &[
                "client",
                "--addr",
                &url,
                "--request-id",
                "cli-1",
                "--targets",
                "China",
                "-",
            ],
            "China and Russia signed a deal in Moscow, Reuters reported.".as_bytes(),
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"started"));
    assert_eq!(types.last(), Some(&"completed"));
    assert!(
        types.contains(&"sentence") && types.contains(&"entities"),
        "{types:?}"
    );
    assert!(events.iter().all(|e| e["request_id"] == "cli-1"));
    let stance = events
        .iter()
        .find(|e| e["type"] == "stance")
        .expect("a stance");
    assert_eq!(stance["target"], "China");
    assert!(["FAVOR", "AGAINST", "NEUTRAL"].contains(&stance["label"].as_str().unwrap()));
    let mention = &events.iter().find(|e| e["type"] == "sentence").unwrap()["entities"][0];
    for key in [
        "text",
        "label",
        "start_char",
        "end_char",
        "start_byte",
        "end_byte",
    ] {
        assert!(mention.get(key).is_some(), "{key} missing in {mention}");
    }
}

/// A binary built without the `rust-bert` feature refuses transformer
/// models at start-up with a reason, instead of silently using spaCy.
#[cfg(not(feature = "rust-bert"))]
#[test]
fn transformer_flags_need_the_rust_bert_build() {
    let out = run_with_stdin(
        &[
            "analyze",
            "--bert-ner",
            "tests/fixtures/rust_bert/ner-tiny",
            "-",
        ],
        b"Angela Merkel visited Paris.",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rust-bert"), "{stderr}");
}

/// With the `rust-bert` feature, `analyze --bert-ner/--bert-nli` runs the
/// transformer models and says so in its JSON.
#[cfg(feature = "rust-bert")]
#[test]
fn analyze_serves_transformer_models_with_the_rust_bert_build() {
    let v = analyze_json(
        &[
            "--bert-ner",
            "tests/fixtures/rust_bert/ner-tiny",
            "--bert-nli",
            "tests/fixtures/rust_bert/nli-tiny",
            "--bert-aggregation",
            "max",
            "--targets",
            "Paris",
        ],
        "John Smith works for Microsoft in London. He visited Paris.",
    );
    let models = v["models"].as_array().expect("models");
    for task in ["ner", "stance"] {
        let m = models.iter().find(|m| m["task"] == task).unwrap();
        assert_eq!(m["backend"], "rust-bert", "{task}");
    }
    let stances = v["stances"].as_array().unwrap();
    assert_eq!(stances.len(), 1);
    let p = &stances[0]["probabilities"];
    let sum: f64 = ["favor", "against", "neutral"]
        .iter()
        .map(|k| p[k].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "{p}");
    assert_eq!(stances[0]["evidence"].as_array().unwrap().len(), 1);
}

#[test]
fn an_invalid_log_filter_is_an_error_that_names_it() {
    let out = run_with_stdin(
        &["--log", "article_analyzer=[", "analyze", "--json", "-"],
        b"Angela Merkel visited Paris.",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid --log filter"), "{stderr}");
    assert!(stderr.contains("article_analyzer=["), "{stderr}");
}

#[test]
fn analyze_dot_draws_who_stands_where_and_the_table_lists_it() {
    let text = "The United States condemns Iran's attack on Israel.";
    let out = run_with_stdin(&["analyze", "--dot", "-"], text.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("digraph who_stands_where {"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    // One red edge to Iran, one green edge to Israel, from the same holder.
    let edge = |label: &str, color: &str| {
        dot.lines()
            .any(|l| l.contains(" -> ") && l.contains(label) && l.contains(color))
    };
    assert!(edge("AGAINST", "#c62828"), "{dot}");
    assert!(edge("FAVOR", "#2e7d32"), "{dot}");
    assert!(
        dot.contains("label=\"Iran\"") && dot.contains("label=\"Israel\""),
        "{dot}"
    );

    let out = run_with_stdin(&["analyze", "-"], text.as_bytes());
    let table = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("who stands where"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.contains("United States") && r.contains("AGAINST") && r.contains("Iran")),
        "{table}"
    );
}
