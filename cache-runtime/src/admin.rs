//! What the `cachette` command-line tool reads of the names and entries
//! the library writes. Not a stable API: it follows the library's layout.

use crate::names::{Kind, Name, Namespace};

/// The backend names of a key: the pattern of its entries (every
/// function's), its version, and the namespace's epoch it is checked
/// against (single server, or the key's slot on a cluster).
pub struct KeyNames {
    /// A `SCAN MATCH` pattern for the key's entries.
    pub entries: String,
    /// The key's version.
    pub version: String,
    /// The namespace's epoch on a single server.
    pub epoch: String,
    /// The namespace's epoch in the key's slot on a cluster.
    pub cluster_epoch: String,
    /// The key's cluster slot.
    pub slot: u16,
}

/// The names of `key` in namespace `ns`.
pub fn key_names(ns: &str, key: &str) -> KeyNames {
    let ns = Namespace::unchecked(ns.to_string());
    let name = Name::new(key);
    let entry = name.entry_of(&ns, "*");
    KeyNames {
        entries: glob_escape_except_function(&entry),
        version: name.version(&ns, Kind::KeyVersion),
        epoch: crate::backend::redis::single::epoch_of(&name).version(&ns, Kind::Epoch),
        cluster_epoch: cluster_epoch(&name).version(&ns, Kind::Epoch),
        slot: slot(&name),
    }
}

#[cfg(feature = "cluster")]
fn cluster_epoch(name: &Name<'_>) -> Name<'static> {
    crate::backend::redis::cluster::epoch_of(name)
}

#[cfg(not(feature = "cluster"))]
fn cluster_epoch(name: &Name<'_>) -> Name<'static> {
    crate::backend::redis::single::epoch_of(name)
}

#[cfg(feature = "cluster")]
fn slot(name: &Name<'_>) -> u16 {
    crate::backend::redis::cluster::key_slot(name.hash_tag())
}

#[cfg(not(feature = "cluster"))]
fn slot(_name: &Name<'_>) -> u16 {
    0
}

/// Whether `name` (from a `SCAN` of [`KeyNames::entries`]) is really an
/// entry of `key` in `ns`: the pattern's `*` also matches `:` and `{`, so
/// the entries of other keys and namespaces can match it.
pub fn is_entry_of(name: &str, ns: &str, key: &str) -> bool {
    let key = Name::new(key);
    let namespace = Namespace::unchecked(ns.to_string());
    let prefix = key.entry_of(&namespace, "");
    let Some((head, _)) = prefix.split_once("::{") else {
        return false;
    };
    let Some(rest) = name.strip_prefix(head).and_then(|r| r.strip_prefix(':')) else {
        return false;
    };
    match rest.split_once(':') {
        Some((function, _))
            if function.len() == 16 && function.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            key.entry_of(&namespace, function) == name
        }
        _ => false,
    }
}

/// The name of namespace `ns`'s lease: a sorted set of the leases its
/// processes read under (`CacheBuilder::near_cache_lease`), the largest
/// of which every bust waits.
pub fn lease_name(ns: &str) -> String {
    crate::names::lease_name(&Namespace::unchecked(ns.to_string()))
}

/// The kind of a name in namespace `ns` (`e`, `k`, `t`, `l`, `n`, `a`),
/// if it is one of the names the library writes there.
pub fn kind_of(name: &str, ns: &str) -> Option<char> {
    let rest = name.strip_prefix(ns)?.strip_prefix(':')?;
    let mut chars = rest.chars();
    let kind = chars.next().filter(|k| "ektlna".contains(*k))?;
    let after = chars.as_str();
    let after = after.strip_prefix('#').unwrap_or(after);
    after.starts_with(':').then_some(kind)
}

/// The version name of `tag` in namespace `ns`.
pub fn tag_version(ns: &str, tag: &str) -> String {
    Name::new(tag).version(&Namespace::unchecked(ns.to_string()), Kind::TagVersion)
}

/// Escapes `SCAN MATCH` metacharacters, but for the one `*` standing for
/// the function id.
fn glob_escape_except_function(name: &str) -> String {
    let (head, tail) = name
        .split_once(":*:")
        .expect("an entry name with a function");
    format!("{}:*:{}", glob_escape(head), glob_escape(tail))
}

/// `text` with `SCAN MATCH` metacharacters escaped.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Redis URL with its credentials hidden, for messages.
pub fn redact(url: &str) -> String {
    crate::global::redact(url)
}

/// The origin a server writes its versions in, from its `INFO server` and
/// `INFO replication`.
pub fn origin(info_server: &str, info_replication: &str) -> Option<String> {
    crate::backend::redis::link::origin(info_server, info_replication)
}

/// A stored version, as read on a server of origin `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionState {
    /// Written in this server's origin: its token.
    Current(String),
    /// Not there.
    Missing,
    /// Written by another server process (or not by cachette): proves
    /// nothing.
    Foreign,
}

/// Reads a stored version.
pub fn version_state(raw: Option<Vec<u8>>, origin: &str) -> VersionState {
    match crate::version::Seen::read(raw.as_deref(), origin) {
        crate::version::Seen::Current(t) => VersionState::Current(format!("{t:?}")),
        crate::version::Seen::Missing => VersionState::Missing,
        crate::version::Seen::Foreign(_) => VersionState::Foreign,
    }
}

/// What an entry's header says.
#[derive(Debug, Clone)]
pub struct EntryHeader {
    /// The versions' tokens the fill recorded, in order: the key's, each
    /// tag's, then the namespace's epoch.
    pub tokens: Vec<String>,
    /// End of the fresh window (swr, early, stale_if_error), ms since the
    /// epoch; 0 if none.
    pub fresh_until_ms: u64,
    /// How long the body took, ms.
    pub compute_ms: u32,
    /// When the fill stored it, ms since the epoch.
    pub filled_ms: u64,
    /// When the entry expires by its header, ms since the epoch.
    pub expires_ms: u64,
    /// Whether the value is compressed.
    pub compressed: bool,
    /// The fingerprint of the value's type, version and codec.
    pub fingerprint: u64,
    /// The stored value's size, in bytes.
    pub value_bytes: usize,
}

/// Parses an entry; `None` if it is not one of this format (an older
/// format, a signed entry's wrapper, or foreign bytes).
pub fn entry_header(blob: &[u8]) -> Option<EntryHeader> {
    entry_header_of(blob, blob.len())
}

/// The most bytes of a version worth reading: one more than any version
/// cachette writes, so a longer value shows as foreign without being read
/// whole.
pub const VERSION_READ: usize = crate::version::VERSION_READ;

/// The most bytes of an entry its header can take: what to read of an
/// entry to learn its header without reading its value.
pub const ENTRY_HEADER_MAX: usize = crate::entry::value_at(255);

/// The header of an entry of `total` bytes from its first bytes (`head`,
/// at least [`ENTRY_HEADER_MAX`] of them when the entry is that long).
/// Untrusted input: anything malformed is `None`, never a panic.
pub fn entry_header_of(head: &[u8], total: usize) -> Option<EntryHeader> {
    let meta = crate::entry::peek(head)?;
    let at = crate::entry::value_at(usize::from(*head.get(2)?));
    let tokens = head.get(crate::entry::value_at(0)..at)?;
    Some(EntryHeader {
        tokens: tokens
            .chunks_exact(crate::version::TOKEN_LEN)
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect(),
        fresh_until_ms: meta.fresh_until_ms,
        compute_ms: meta.compute_ms,
        filled_ms: meta.filled_ms,
        expires_ms: meta.expires_ms,
        compressed: meta.flags & crate::entry::COMPRESSED != 0,
        fingerprint: meta.fingerprint,
        value_bytes: total.saturating_sub(at),
    })
}
