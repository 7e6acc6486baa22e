//! What a stance classifier computed for one document, kept for its later
//! calls on the same document.
//!
//! The stance stage and the relations stage both ask the sentence model
//! about the same sentences: the learned model would encode each of them
//! twice. The pipeline makes one [`DocumentMemo`] per analysis and hands it
//! to every classifier call on that document, so that a model can keep what
//! it computed (the learned model: its encoded sentences) and read it back.
//! What is inside is the classifier's business; the pipeline only owns it
//! and drops it with the analysis, so nothing is shared across requests.

use std::any::Any;

/// A classifier's per-document scratch space (see the module docs).
#[derive(Default)]
pub struct DocumentMemo(Option<Box<dyn Any + Send>>);

impl DocumentMemo {
    /// The memo's content as a `T`, made with `T::default()` on first use.
    /// One classifier serves a pipeline, so one type is ever stored; a
    /// different type replaces what was there (the memo is only a cache).
    pub fn get_or_default<T: Any + Send + Default>(&mut self) -> &mut T {
        if !self.0.as_ref().is_some_and(|b| b.is::<T>()) {
            self.0 = Some(Box::new(T::default()));
        }
        self.0
            .as_mut()
            .and_then(|b| b.downcast_mut::<T>())
            .expect("the memo holds a T: it was just stored")
    }
}

impl std::fmt::Debug for DocumentMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentMemo")
            .field("used", &self.0.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_was_stored_and_replaces_another_type() {
        let mut memo = DocumentMemo::default();
        memo.get_or_default::<Vec<u32>>().push(7);
        assert_eq!(memo.get_or_default::<Vec<u32>>(), &vec![7]);
        assert_eq!(memo.get_or_default::<String>(), "");
        assert!(memo.get_or_default::<Vec<u32>>().is_empty());
    }
}
