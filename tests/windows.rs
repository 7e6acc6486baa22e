//! Long articles recognized in windows give (nearly) what the whole article
//! gives: the same tokens, and the same entities except near window edges.

mod common;

use article_analyzer::pipeline::{windows, Recognized};

fn mentions(r: &Recognized) -> Vec<(usize, usize, String)> {
    r.sentences
        .iter()
        .flat_map(|s| &s.mentions)
        .map(|m| (m.span.start_char, m.span.end_char, m.label.clone()))
        .collect()
}

#[test]
fn windowed_recognition_matches_the_whole_article() {
    let pipeline = common::pipeline();
    let text = common::sample_article();
    let whole = pipeline
        .recognize_batch(&[&text])
        .pop()
        .unwrap()
        .result
        .unwrap();

    let ranges = windows::split(&text, 2_000);
    assert!(ranges.len() >= 4, "{} windows", ranges.len());
    let parts = ranges
        .iter()
        .map(|r| {
            let part = pipeline.recognize_batch(&[&text[r.clone()]]).pop().unwrap();
            (r.clone(), part.result.unwrap())
        })
        .collect();
    let joined = windows::join(&text, parts);

    // Windows are cut after whitespace, so tokenization is unchanged.
    assert_eq!(joined.token_count, whole.token_count);
    let tokens: Vec<_> = joined.sentences.iter().flat_map(|s| &s.tokens).collect();
    assert_eq!(tokens.len(), whole.token_count);
    let chars: Vec<char> = text.chars().collect();
    for (i, t) in tokens.iter().enumerate() {
        let by_char: String = chars[t.span.start_char..t.span.end_char].iter().collect();
        assert_eq!(by_char, t.text);
        assert_eq!(&text[t.span.start_byte..t.span.end_byte], t.text);
        if let Some(h) = t.head {
            assert!(h < whole.token_count, "token {i}: head {h} out of range");
        }
    }
    for (i, s) in joined.sentences.iter().enumerate() {
        assert_eq!(s.index, i);
    }

    let (a, b) = (mentions(&whole), mentions(&joined));
    let same = b.iter().filter(|m| a.contains(m)).count();
    println!(
        "windows of 2,000 chars: {} windows, {same} of {} whole-article entities found again ({} found)",
        ranges.len(),
        a.len(),
        b.len()
    );
    assert!(same * 100 >= a.len() * 95, "{same} of {}", a.len());
}
