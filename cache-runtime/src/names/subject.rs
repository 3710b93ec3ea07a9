//! What one call or one bust names: the entry, the versions it is checked
//! against and the epoch, each built once.

use smallvec::SmallVec;

use super::{Function, Kind, Name, Namespace};

/// Tags a call names without allocating for them (most name a few).
const INLINE_TAGS: usize = 4;

/// Which name holds the namespace's epoch for a key, as the backend
/// keeps it (none on the embedded backend).
pub(crate) type EpochOf = fn(&Name<'_>) -> Name<'static>;

/// What one call names: its function's entry under its key, and the key
/// and tags the entry is validated against, with every backend name built
/// once, in one buffer.
#[derive(Debug)]
pub(crate) struct Subject<'a> {
    ns: &'a Namespace,
    function: Function,
    key: Name<'a>,
    tags: SmallVec<[Name<'a>; INLINE_TAGS]>,
    names: Names,
}

impl<'a> Subject<'a> {
    pub(crate) fn new<S: AsRef<str>>(
        ns: &'a Namespace,
        function: Function,
        key: &'a str,
        tags: &'a [S],
        epoch: Option<EpochOf>,
    ) -> Subject<'a> {
        let key = Name::new(key);
        let tags: SmallVec<[Name<'a>; INLINE_TAGS]> =
            tags.iter().map(|t| Name::new(t.as_ref())).collect();
        let epoch = epoch.map(|of| of(&key));
        let names = Names::build(ns, &function, &key, &tags, epoch.as_ref());
        Subject {
            ns,
            function,
            key,
            tags,
            names,
        }
    }

    pub(crate) fn function(&self) -> Function {
        self.function
    }

    /// The entry's backend name.
    pub(crate) fn entry(&self) -> &str {
        self.names.entry()
    }

    /// The stampede lock's backend name.
    pub(crate) fn lock(&self) -> String {
        self.key.owned(self.ns, Kind::Lock, &self.function)
    }

    pub(crate) fn key(&self) -> &Name<'a> {
        &self.key
    }

    pub(crate) fn tags(&self) -> &[Name<'a>] {
        &self.tags
    }

    /// The names of a lookup: the entry, then each version, then the
    /// namespace's epoch if the backend keeps one.
    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    /// The key's name then each tag's, in version order.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn version_names(&self) -> impl Iterator<Item = &Name<'a>> {
        std::iter::once(&self.key).chain(&self.tags)
    }
}

/// The backend names of one lookup: the entry, then the version names it
/// is validated against (the key's first, then one per tag), in one
/// buffer so that a lookup allocates once for all of them.
#[derive(Debug)]
pub(crate) struct Names {
    buf: String,
    /// End of each name in `buf`: the entry's, then each version's.
    ends: SmallVec<[usize; INLINE_TAGS + 3]>,
    /// The last version is the namespace's epoch.
    epoch: bool,
}

impl Names {
    fn build(
        ns: &Namespace,
        function: &Function,
        key: &Name<'_>,
        tags: &[Name<'_>],
        epoch: Option<&Name<'_>>,
    ) -> Names {
        let per_name = ns.as_str().len() + 26;
        let len = 2 * (key.len_hint() + per_name)
            + tags.iter().map(|t| t.len_hint() + per_name).sum::<usize>()
            + epoch.map_or(0, |e| e.len_hint() + per_name);
        let mut names = Names {
            buf: String::with_capacity(len),
            ends: SmallVec::with_capacity(3 + tags.len()),
            epoch: false,
        };
        key.write(&mut names.buf, ns, Kind::Entry, Some(function));
        names.ends.push(names.buf.len());
        key.write(&mut names.buf, ns, Kind::KeyVersion, None);
        names.ends.push(names.buf.len());
        for tag in tags {
            tag.write(&mut names.buf, ns, Kind::TagVersion, None);
            names.ends.push(names.buf.len());
        }
        if let Some(epoch) = epoch {
            epoch.write(&mut names.buf, ns, Kind::Epoch, None);
            names.ends.push(names.buf.len());
            names.epoch = true;
        }
        names
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// The entry's name.
    pub(crate) fn entry(&self) -> &str {
        self.name(0)
    }

    /// The version names, in lookup order.
    pub(crate) fn versions(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        (1..self.ends.len()).map(|i| self.name(i))
    }

    /// Whether version `i` is the namespace's epoch.
    pub(crate) fn is_epoch(&self, i: usize) -> bool {
        self.epoch && i + 2 == self.ends.len()
    }
}
