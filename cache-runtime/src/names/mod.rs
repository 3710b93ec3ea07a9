//! Backend names: the one place that turns keys, tags and functions into
//! the names the library writes.
//!
//! ```text
//! entries and locks:  <namespace> ":" <kind> [ "#" ] ":" <function> ":" "{" <text> "}"
//! versions:           <namespace> ":" <kind> [ "#" ] ":" "{" <text> "}"
//! ```
//! - `kind` is `e` (an entry), `l` (a stampede lock), `k` (a key's
//!   version), `t` (a tag's version) or `n` (the namespace's epoch, which
//!   every Redis entry records too: replacing it invalidates the whole
//!   namespace in one step); whether a function id follows is fixed by the
//!   kind;
//! - `function` is the id of the function that owns the entry or lock, so
//!   two functions (or two instantiations of a generic one) that render the
//!   same key never read each other's entries (I11), while a key's version
//!   stays shared: a key bust reaches every function under it;
//! - `text` is the rendered key or tag. One longer than [`MAX_NAME_LEN`]
//!   bytes (or empty, or starting with `}`, which would leave the cluster
//!   hash tag empty) is replaced by its SHA-256 in hex, `~` and its first
//!   64 bytes, and its kind is marked `#`. The mark sits outside the text,
//!   where no value can reach, so a shortened name never equals an
//!   unshortened one, whatever the text (I11).
//!
//! Every public way to name a key or tag (the attributes, `KeyBuilder`,
//! `escape` with `format!`, the `invalidate_*` and `get_or_fetch` strings)
//! reaches the backend through [`Name::new`], so they all get the same
//! name for the same text, at every length.
//!
//! The braces are a Redis Cluster hash tag: the entry, the lock and the
//! key's version of one key share a slot, which depends on the text alone.
//! A text with a `}` cuts the tag short the same way in every kind, so they
//! still share one; the tag is never empty.
//!
//! What a version *holds* is in `version.rs`: the scope of the server
//! that wrote it, then a random token.

use std::borrow::Cow;
use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

/// Longest key or tag, in bytes, stored as it is; longer ones are
/// shortened to a prefix and a digest.
pub const MAX_NAME_LEN: usize = 200;

/// Bytes of a long name kept before its digest.
const PREFIX_LEN: usize = 64;

/// A checked namespace: the prefix of every name a cache writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Namespace(String);

impl Namespace {
    /// Braces would move the cluster hash tag of every name into the
    /// namespace, and would let a namespace imitate the structure of names.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn new(ns: impl Into<String>) -> Result<Namespace, Error> {
        let ns = ns.into();
        if ns.contains(['{', '}']) {
            return Err(Error::new(
                ErrorKind::Config,
                "the namespace must not contain `{` or `}`",
            ));
        }
        Ok(Namespace(ns))
    }

    /// A namespace used only by an embedded backend, which no other cache
    /// shares and which has no hash tags: any text will do.
    pub(crate) fn unchecked(ns: String) -> Namespace {
        Namespace(ns)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a backend name holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Entry,
    Lock,
    KeyVersion,
    TagVersion,
    /// The namespace's epoch: on a single Redis one name, on a cluster one
    /// per slot (its text a hash tag of that slot, so it shares the slot of
    /// every key there).
    Epoch,
    /// The namespace's lease (see `near/lease.rs`): one name, a sorted
    /// set of the leases its processes read with.
    Lease,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Entry => 'e',
            Kind::Lock => 'l',
            Kind::KeyVersion => 'k',
            Kind::TagVersion => 't',
            Kind::Epoch => 'n',
            Kind::Lease => 'a',
        }
    }
}

/// A key or tag as it is stored: the text, shortened when too long.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Name<'a> {
    text: Cow<'a, str>,
    shortened: bool,
}

impl<'a> Name<'a> {
    /// Applies the length rule to a rendered key or tag.
    pub(crate) fn new(text: &'a str) -> Name<'a> {
        if text.len() <= MAX_NAME_LEN && !text.is_empty() && !text.starts_with('}') {
            return Name {
                text: Cow::Borrowed(text),
                shortened: false,
            };
        }
        let mut cut = PREFIX_LEN.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut short = String::with_capacity(64 + 1 + cut);
        for b in Sha256::digest(text.as_bytes()) {
            let _ = write!(short, "{b:02x}");
        }
        short.push('~');
        short.push_str(&text[..cut]);
        Name {
            text: Cow::Owned(short),
            shortened: true,
        }
    }

    /// The Redis Cluster hash tag of this name in every kind: the text up
    /// to its first `}` (never empty).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn hash_tag(&self) -> &str {
        match self.text.find('}') {
            Some(end) => &self.text[..end],
            None => &self.text,
        }
    }

    /// A name known when compiling: short, and neither empty nor starting
    /// with `}`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) const fn fixed(text: &'static str) -> Name<'static> {
        Name {
            text: Cow::Borrowed(text),
            shortened: false,
        }
    }

    pub(crate) fn into_owned(self) -> Name<'static> {
        Name {
            text: Cow::Owned(self.text.into_owned()),
            shortened: self.shortened,
        }
    }

    /// Whether the text was replaced by its hash (see the module docs).
    pub(crate) fn is_shortened(&self) -> bool {
        self.shortened
    }

    /// The stored text (for logs and errors).
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Writes the backend name of this key or tag as `kind`, owned by
    /// `function` (entries and locks only).
    fn write(&self, out: &mut String, ns: &Namespace, kind: Kind, function: Option<&Function>) {
        debug_assert_eq!(function.is_some(), matches!(kind, Kind::Entry | Kind::Lock));
        out.push_str(ns.as_str());
        out.push(':');
        out.push(kind.letter());
        if self.shortened {
            out.push('#');
        }
        out.push(':');
        if let Some(function) = function {
            out.push_str(function.id());
            out.push(':');
        }
        out.push('{');
        out.push_str(&self.text);
        out.push('}');
    }

    /// The backend name of this key or tag as a version of `kind`.
    pub(crate) fn version(&self, ns: &Namespace, kind: Kind) -> String {
        let mut out = String::with_capacity(ns.as_str().len() + self.text.len() + 8);
        self.write(&mut out, ns, kind, None);
        out
    }

    /// The backend name of this key's entry or lock (`kind`), owned by
    /// `function`.
    fn owned(&self, ns: &Namespace, kind: Kind, function: &Function) -> String {
        let mut out = String::with_capacity(ns.as_str().len() + self.text.len() + 26);
        self.write(&mut out, ns, kind, Some(function));
        out
    }

    /// The name of this key's entry of the function whose id is written
    /// `function` (`*` for a pattern).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn entry_of(&self, ns: &Namespace, function: &str) -> String {
        let mut out = String::with_capacity(ns.as_str().len() + self.text.len() + 26);
        out.push_str(ns.as_str());
        out.push(':');
        out.push(Kind::Entry.letter());
        if self.shortened {
            out.push('#');
        }
        out.push(':');
        out.push_str(function);
        out.push_str(":{");
        out.push_str(&self.text);
        out.push('}');
        out
    }

    /// Bytes a backend name of this takes beyond namespace and scope.
    fn len_hint(&self) -> usize {
        self.text.len() + 8
    }
}

/// The name of the namespace's lease: a sorted set of the leases its
/// processes serve near-cache hits under, the largest of which every bust
/// waits (see `backend/redis/near/lease.rs`).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn lease_name(ns: &Namespace) -> String {
    Name::new("lease").version(ns, Kind::Lease)
}

/// The names cachette writes, for tests and tools that look at a backend:
/// a glob pattern (`KEYS`, `SCAN MATCH`) matching the names of one kind
/// for a rendered key or tag, whatever function owns them. `kind` is
/// `'e'` (entries), `'l'` (locks), `'k'` (a key's version) or `'t'` (a
/// tag's version); anything else panics. Glob characters in the text are
/// escaped.
pub fn name_pattern(namespace: &str, kind: char, text: &str) -> String {
    let kind = match kind {
        'e' => Kind::Entry,
        'l' => Kind::Lock,
        'k' => Kind::KeyVersion,
        't' => Kind::TagVersion,
        other => panic!("no kind of name {other:?}"),
    };
    let name = Name::new(text);
    let mut out = String::new();
    let ns = Namespace::unchecked(namespace.to_string());
    let glob = |s: &str| {
        s.chars().fold(String::new(), |mut out, c| {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
            out
        })
    };
    // Written as a key's version, then given its own kind letter.
    let mut written = name.version(&ns, Kind::KeyVersion);
    let letter = namespace.len() + 1;
    written.replace_range(letter..letter + 1, &kind.letter().to_string());
    // `<ns>:<kind>[#]:` then, for entries and locks, any function id.
    let open = written.find('{').expect("every name has a hash tag");
    out.push_str(&glob(&written[..open]));
    if matches!(kind, Kind::Entry | Kind::Lock) {
        out.push_str("*:");
    }
    out.push_str(&glob(&written[open..]));
    out
}

/// Which function owns an entry: every function, and every instantiation
/// of a generic one, has its own id, taken from the type name of a closure
/// declared inside it, which carries the function's path and all its
/// generic arguments (those of its impl included), and from a hash of the
/// function's code that the attribute computes, which tells apart
/// functions of one path (in sibling blocks, or expanded twice from one
/// macro) and changes when the function does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// The function's path without closures, for logs and metrics.
    pub(crate) label: &'static str,
    /// 16 hex digits of a hash of the full type name.
    pub(crate) id: [u8; 16],
}

impl Function {
    /// The function in which the closure `F` is declared.
    pub(crate) fn of<F>(code: &str) -> Function {
        let full = std::any::type_name::<F>();
        let mut label = full;
        while let Some(outer) = label.strip_suffix("::{{closure}}") {
            label = outer;
        }
        Function::hashed(
            label,
            stable_hash(full.as_bytes()) ^ stable_hash(code.as_bytes()).rotate_left(1),
        )
    }

    /// A function known by `label`, with an id from `identity`.
    pub(crate) fn named(label: &'static str, identity: &str) -> Function {
        Function::hashed(label, stable_hash(identity.as_bytes()))
    }

    fn hashed(label: &'static str, hash: u64) -> Function {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = HEX[((hash >> (60 - 4 * i)) & 15) as usize];
        }
        Function { label, id }
    }

    pub(crate) fn id(&self) -> &str {
        std::str::from_utf8(&self.id).expect("hex digits")
    }
}

/// A 64-bit hash that is the same in every process and on every platform,
/// cheap enough for every call: eight bytes per step, then a final mix
/// (the finalizer of MurmurHash3).
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        h = (h.rotate_left(23) ^ word).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(23) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

mod bust;
mod subject;

pub(crate) use self::bust::Bust;
pub(crate) use self::subject::{EpochOf, Subject};

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::new("ns").unwrap()
    }

    #[test]
    fn names_have_their_kind_scope_and_hash_tag() {
        let f = Function::named("m::f", "m::f::{{closure}}");
        let tags = ["org:7"];
        let ns = ns();
        let subject = Subject::new(&ns, f, "user:1", &tags, None);
        let id = f.id();
        assert_eq!(subject.entry(), format!("ns:e:{id}:{{user:1}}"));
        assert_eq!(subject.lock(), format!("ns:l:{id}:{{user:1}}"));
        let names = subject.names();
        let versions: Vec<&str> = names.versions().collect();
        assert_eq!(versions, ["ns:k:{user:1}", "ns:t:{org:7}"]);
        assert_eq!(names.entry(), subject.entry());
    }

    #[test]
    fn long_names_are_shortened_and_marked_outside_the_text() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let name = Name::new(&long);
        assert!(name.shortened);
        assert_eq!(name.text().len(), PREFIX_LEN + 1 + 64);
        assert_eq!(name, Name::new(&long), "deterministic");
        assert_ne!(name, Name::new(&format!("{long}y")));
        // The shortened text itself, given as a name, is not shortened and
        // gets a different backend name.
        let forged = Name::new(name.text());
        assert!(!forged.shortened);
        assert_ne!(
            name.version(&ns(), Kind::TagVersion),
            forged.version(&ns(), Kind::TagVersion)
        );
        assert!(Name::new(&"é".repeat(300)).text().contains('~'));
        let at_limit = "y".repeat(MAX_NAME_LEN);
        assert_eq!(Name::new(&at_limit).text(), at_limit);
    }

    #[test]
    fn hash_tags_are_never_empty() {
        for text in ["", "}", "}x", "a}b", "plain", &"z".repeat(500)] {
            let name = Name::new(text);
            assert!(!name.hash_tag().is_empty(), "{text:?}");
            let full = name.owned(&ns(), Kind::Entry, &Function::named("f", "f"));
            let open = full.find('{').unwrap();
            let close = open + 1 + full[open + 1..].find('}').unwrap();
            assert_eq!(&full[open + 1..close], name.hash_tag(), "{text:?}");
        }
        assert_eq!(Name::new("a}b").hash_tag(), "a");
        assert!(Name::new("").shortened && Name::new("}x").shortened);
    }

    #[test]
    fn function_ids_differ_by_identity_and_stay_stable() {
        let a = Function::named("f", "app::load<app::User>::{{closure}}");
        let b = Function::named("f", "app::load<app::Invoice>::{{closure}}");
        assert_ne!(a.id, b.id);
        assert_eq!(
            a.id,
            Function::named("g", "app::load<app::User>::{{closure}}").id
        );
        // Pinned, so that every build and platform agree.
        assert_eq!(stable_hash(b""), stable_hash(b""));
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_ne!(stable_hash(&[0; 8]), stable_hash(&[0; 9]));
        assert_eq!(Function::named("f", "app::f").id(), "a6df4453b3723c25");
    }

    #[test]
    fn the_label_drops_closures_and_the_code_tells_functions_apart() {
        fn of<F>(_: F, code: &str) -> Function {
            Function::of::<F>(code)
        }
        let a = of(|| (), "fn load() -> u64 { 1999 }");
        assert!(
            a.label.ends_with("the_code_tells_functions_apart"),
            "{}",
            a.label
        );
        // The same path, other code (sibling blocks do this).
        let b = of(|| (), "fn load() -> u64 { 3 }");
        assert_eq!(a.label, b.label);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn namespaces_with_braces_are_refused() {
        assert!(Namespace::new("a{b").unwrap_err().is_config());
        assert!(Namespace::new("shop").is_ok());
    }
}
