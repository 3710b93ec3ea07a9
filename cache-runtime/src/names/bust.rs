//! An invalidation: the keys and tags whose versions it replaces, merged
//! without repeats.

use super::{Kind, Name, Namespace};

/// An invalidation: keys and tags whose versions are replaced. Entries are
/// not deleted: they belong to functions the invalidation does not know,
/// and stop validating at once; they expire with their TTL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bust {
    pub keys: Vec<Name<'static>>,
    pub tags: Vec<Name<'static>>,
}

impl Bust {
    pub(crate) fn of<K, KS, T, TS>(keys: K, tags: T) -> Bust
    where
        K: IntoIterator<Item = KS>,
        KS: AsRef<str>,
        T: IntoIterator<Item = TS>,
        TS: AsRef<str>,
    {
        Bust {
            keys: keys
                .into_iter()
                .map(|k| Name::new(k.as_ref()).into_owned())
                .collect(),
            tags: tags
                .into_iter()
                .map(|t| Name::new(t.as_ref()).into_owned())
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.tags.is_empty()
    }

    /// Adds the names of `other` that this bust does not have yet.
    pub(crate) fn merge(&mut self, other: &Bust) {
        merge_names(&mut self.keys, &other.keys);
        merge_names(&mut self.tags, &other.tags);
    }

    /// Keys and tags together.
    pub(crate) fn len(&self) -> usize {
        self.keys.len() + self.tags.len()
    }

    /// Each key and tag with the kind of its version.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = (&Name<'static>, Kind)> {
        let keys = self.keys.iter().map(|k| (k, Kind::KeyVersion));
        keys.chain(self.tags.iter().map(|t| (t, Kind::TagVersion)))
    }

    /// Each version name.
    pub(crate) fn versions<'b>(&'b self, ns: &'b Namespace) -> impl Iterator<Item = String> + 'b {
        self.kinds().map(move |(name, kind)| name.version(ns, kind))
    }

    /// The stored texts, for logs.
    pub(crate) fn texts(&self) -> Vec<&str> {
        self.keys
            .iter()
            .chain(&self.tags)
            .map(|n| n.text())
            .collect()
    }
}

/// Adds to `into` each of `more` it lacks, in order: by scanning when both
/// are small, else through a set (a bust of 40,000 keys merged into
/// another must not compare every pair).
fn merge_names(into: &mut Vec<Name<'static>>, more: &[Name<'static>]) {
    if into.len().saturating_mul(more.len()) <= 4096 {
        for name in more {
            if !into.contains(name) {
                into.push(name.clone());
            }
        }
        return;
    }
    let mut seen: std::collections::HashSet<Name<'static>> = into.iter().cloned().collect();
    for name in more {
        if seen.insert(name.clone()) {
            into.push(name.clone());
        }
    }
}
