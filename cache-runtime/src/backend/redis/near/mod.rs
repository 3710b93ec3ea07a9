//! The near-cache: what lookups read from Redis, kept in process memory and
//! served again without reading Redis, never stale (I12).
//!
//! Why it holds. A lookup runs on a connection with `CLIENT TRACKING` on
//! (RESP3): from then on Redis writes an invalidation message into that
//! connection's stream whenever one of the names the lookup read (the
//! entry, the key's and tags' versions, the epoch) is written, expires, is
//! evicted or flushed, and it writes it while running the command that
//! changed it, so before the reply to any command this connection sends
//! later. The client applies each message here, synchronously, in its read
//! loop, before it hands out any later reply. So a caller that sends a
//! `PING` on that connection after it arrived, and has its reply, knows
//! that every invalidation made before the `PING` ran is applied: what is
//! still here for it was, at that moment, exactly what a lookup would read.
//! That `PING` is shared by every caller waiting when it is sent, and by
//! none that arrives after (see `tracking.rs`); a kept lookup is served
//! in `hit.rs`.
//!
//! Redis sends the messages for a connection's own writes (a fill) right
//! after the reply to that write instead of before it; they still come
//! before the reply to any later command on the connection, which is all
//! the ordering round trip needs, and a lookup they overtake is not kept.
//!
//! What can no longer be proven is dropped: everything read on a connection
//! that is gone (its disconnection notice), everything on a flush, and
//! what a lookup read if any of its names was invalidated while it was in
//! flight (checked under the same lock the messages take).

pub(crate) mod hit;
pub(crate) mod lease;
pub(crate) mod tracking;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::shim::{self as checked, Weakening};
use std::time::{Duration, Instant};

use crate::backend::stored::{Blob, Lookup};
use crate::version::Seen;

/// One lookup kept in memory.
pub(crate) struct KeptLookup {
    /// The entry's name.
    name: Arc<str>,
    /// The names it read: the entry, then each version, in the lookup's
    /// order. Served only to a caller whose lookup would read the same.
    names: Box<[Box<str>]>,
    /// The connections it was read on (one per server): only served after
    /// an ordering reply on each of them.
    pub conns: Vec<u64>,
    entry: Arc<[u8]>,
    versions: Vec<Seen>,
    /// The entry's value once decoded (see `keep.rs`).
    decoded: Arc<crate::keep::Decoded>,
    /// Set when a message invalidates it (it may still be referenced).
    dropped: checked::AtomicBool,
    /// The near-cache's flush count when it was kept.
    flushes: u64,
}

impl KeptLookup {
    /// Whether a lookup of `versions` (beside this entry) would read what
    /// this one read: a call of the same key with other tags would not.
    pub(crate) fn read_the_same<'a>(&self, mut versions: impl Iterator<Item = &'a str>) -> bool {
        let mut kept = self.names[1..].iter();
        loop {
            match (kept.next(), versions.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if **a == *b => {}
                _ => return false,
            }
        }
    }

    /// Its key in the readers of a name.
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// The lookup it stands for.
    pub(crate) fn lookup(&self) -> Lookup {
        Lookup {
            entry: Some(Blob::Shared(self.entry.clone())),
            oversized: false,
            versions: self.versions.clone(),
            decoded: Some(self.decoded.clone()),
            near: true,
        }
    }
}

/// Counters, for `Cache::stats`.
#[derive(Default)]
pub(crate) struct NearCounters {
    pub hits: crate::stats::Striped,
    pub orderings: AtomicU64,
    pub invalidations: AtomicU64,
    pub flushes: AtomicU64,
    /// Hits served under a lease, with no round trip.
    pub lease_hits: crate::stats::Striped,
    /// Refresh round trips a lease hit started.
    pub refreshes: AtomicU64,
}

/// Which names each kept lookup read, and the lookups in flight.
#[derive(Default)]
struct Table {
    /// Bumped by every invalidation message.
    seq: u64,
    /// A name read by kept lookups: those lookups, by address (unique
    /// while a `Weak` holds it).
    readers: HashMap<Box<str>, HashMap<usize, Weak<KeptLookup>>>,
    /// How many lookups `readers` holds in all, and how many it held after
    /// its last sweep (lookups the map evicted stay until a sweep).
    links: usize,
    swept: usize,
    /// Names read by lookups in flight: how many, and the last message
    /// that named them.
    reading: HashMap<Box<str>, (usize, u64)>,
    /// Lookups in flight whose connection was lost or flushed since they
    /// started (the message `seq` of it).
    flushed_at: u64,
}

pub(crate) struct Near {
    kept: moka::sync::Cache<Arc<str>, Arc<KeptLookup>>,
    /// Lookups the map evicted or expired, to take out of the table (the
    /// map hands them over from wherever it runs its upkeep, where the
    /// table's lock may be held).
    evicted: Arc<Mutex<Vec<Arc<KeptLookup>>>>,
    /// Bumped by every flush: what was kept before is gone.
    flushed: checked::AtomicU64,
    table: checked::Mutex<Table>,
    pub counters: NearCounters,
    /// The lease hits are served under, when the process reads with one.
    pub lease: Option<Arc<lease::Lease>>,
    /// Told of flushes.
    events: crate::events::Listener,
}

/// A lookup in flight, registered before it is sent.
pub(crate) struct InFlight<'a> {
    near: &'a Near,
    names: Vec<Box<str>>,
    since: u64,
    done: bool,
}

/// How long a kept lookup may stay at most, whatever its entry's TTL.
const MAX_AGE: Duration = Duration::from_secs(3600);

impl Near {
    /// A near-cache of at most `bytes` bytes of entries, counting their
    /// decoded values when values are kept decoded.
    pub(crate) fn new(bytes: u64, keep_decoded: bool, lease: Option<Arc<lease::Lease>>) -> Near {
        struct Until;
        impl moka::Expiry<Arc<str>, Arc<KeptLookup>> for Until {
            fn expire_after_create(
                &self,
                _key: &Arc<str>,
                kept: &Arc<KeptLookup>,
                _now: Instant,
            ) -> Option<Duration> {
                // The entry's own expiry (Redis drops it then, and says
                // so; this is the bound if the message is late).
                Some(
                    crate::entry::remaining(&kept.entry).map_or(Duration::ZERO, |d| d.min(MAX_AGE)),
                )
            }
        }
        let evicted: Arc<Mutex<Vec<Arc<KeptLookup>>>> = Arc::default();
        let handed = evicted.clone();
        Near {
            evicted,
            kept: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(move |_: &Arc<str>, kept: &Arc<KeptLookup>| {
                    // The entry, its decoded value, its versions, and its
                    // names (here and in the table of readers).
                    let names: usize = kept.names.iter().map(|n| 2 * n.len() + 64).sum();
                    let decoded = if keep_decoded {
                        crate::keep::allowance(crate::entry::decoded_len(&kept.entry))
                    } else {
                        0
                    };
                    let bytes = kept.entry.len()
                        + decoded
                        + std::mem::size_of::<Seen>() * kept.versions.len()
                        + names
                        + 128;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .expire_after(Until)
                .eviction_listener(move |_, kept, cause| {
                    // Replaced and removed ones are dropped where that is
                    // done.
                    if cause.was_evicted() {
                        crate::sync::lock(&handed).push(kept);
                    }
                })
                .build(),
            flushed: checked::AtomicU64::new(0),
            table: checked::Mutex::new(Table::default()),
            counters: NearCounters::default(),
            lease: lease.filter(|l| l.reads()),
            events: crate::events::Listener::default(),
        }
    }

    /// The near-cache, telling `events` of its flushes.
    pub(crate) fn with_events(self, events: crate::events::Listener) -> Near {
        Near { events, ..self }
    }

    /// How many lookups it holds.
    pub(crate) fn len(&self) -> u64 {
        self.kept.entry_count()
    }

    /// The counters, and the lookups held now.
    pub(crate) fn stats(&self) -> crate::backend::stored::NearStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        crate::backend::stored::NearStats {
            hits: c.hits.load(),
            orderings: c.orderings.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
            flushes: c.flushes.load(Relaxed),
            lease_hits: c.lease_hits.load(),
            refreshes: c.refreshes.load(Relaxed),
            entries: self.len(),
        }
    }

    /// The kept lookup of the entry `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<KeptLookup>> {
        self.kept.get(name)
    }

    /// Whether `kept` is still kept (no message removed it meanwhile, no
    /// flush emptied the near-cache).
    pub(crate) fn still(&self, kept: &KeptLookup) -> bool {
        !kept.dropped.load(Ordering::Acquire)
            && kept.flushes == self.flushed.load(Ordering::Acquire)
    }

    /// The lookup `kept` stands for, once its ordering round trip is in,
    /// if it is still kept (counted as a hit); `None`: read Redis.
    pub(crate) fn serve(&self, kept: &KeptLookup) -> Option<Lookup> {
        if !self.still(kept) {
            return None;
        }
        self.counters.hits.bump();
        Some(kept.lookup())
    }

    /// Drops `kept`: from the map, from the table, and for whoever holds
    /// it already.
    fn drop_kept(&self, table: &mut Table, kept: &Arc<KeptLookup>) {
        kept.dropped.store(true, Ordering::Release);
        for name in kept.names.iter() {
            if let Some(readers) = table.readers.get_mut(name) {
                if readers.remove(&kept.id()).is_some() {
                    table.links -= 1;
                }
                if readers.is_empty() {
                    table.readers.remove(name);
                }
            }
        }
        // Only if the map still holds this one, not a newer lookup (what
        // the map holds changes under the table's lock only, evictions
        // aside).
        if self
            .kept
            .get(&*kept.name)
            .is_some_and(|held| Arc::ptr_eq(&held, kept))
        {
            self.kept.invalidate(&*kept.name);
        }
    }

    /// Registers a lookup of `names` (the entry first) before it is sent.
    pub(crate) fn reading<'a>(&'a self, names: impl Iterator<Item = &'a str>) -> InFlight<'a> {
        let names: Vec<Box<str>> = names.map(Box::from).collect();
        let mut table = checked::lock(&self.table);
        for name in &names {
            table.reading.entry(name.clone()).or_insert((0, 0)).0 += 1;
        }
        InFlight {
            since: table.seq,
            near: self,
            names,
            done: false,
        }
    }

    /// Applies an invalidation message naming `names` (`None`: everything,
    /// a flush).
    pub(crate) fn invalidate(&self, names: Option<&[&[u8]]>) {
        let mut table = checked::lock(&self.table);
        table.seq += 1;
        let seq = table.seq;
        let Some(names) = names else {
            table.flushed_at = seq;
            table.readers.clear();
            crate::sync::lock(&self.evicted).clear();
            table.links = 0;
            table.swept = 0;
            self.flushed.fetch_add(1, Ordering::AcqRel);
            self.kept.invalidate_all();
            self.counters.flushes.fetch_add(1, Ordering::Relaxed);
            drop(table);
            self.events
                .emit(|| crate::events::Event::new(crate::events::EventKind::NearFlushed, ""));
            return;
        };
        for raw in names {
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            if let Some(entry) = table.reading.get_mut(name) {
                entry.1 = seq;
            }
            // Every kept lookup that read the name, even one the map
            // already let go of while a caller still holds it.
            let readers = table.readers.remove(name).unwrap_or_default();
            table.links -= readers.len();
            for kept in readers.into_values() {
                if let Some(kept) = kept.upgrade() {
                    self.drop_kept(&mut table, &kept);
                }
            }
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops everything: a connection that read them is gone, or its
    /// tracking can no longer be trusted.
    pub(crate) fn flush(&self) {
        self.invalidate(None);
    }

    /// Sweeps the table of lookups no longer kept that are still in it (a
    /// safety net: evicted ones are handed over and taken out) once it
    /// holds twice as many as after the last sweep: its size stays within
    /// a constant of what is kept, at a constant cost per lookup kept.
    fn sweep(&self, table: &mut Table) {
        if table.links <= 2 * table.swept + 4096 {
            return;
        }
        let mut links = 0;
        table.readers.retain(|_, readers| {
            readers.retain(|_, kept| {
                kept.upgrade()
                    .is_some_and(|kept| !kept.dropped.load(Ordering::Relaxed))
            });
            links += readers.len();
            !readers.is_empty()
        });
        table.links = links;
        table.swept = links;
    }
}

impl InFlight<'_> {
    /// The message count when it was registered.
    #[cfg(all(test, feature = "__loom"))]
    pub(crate) fn since(&self) -> u64 {
        self.since
    }

    /// Keeps what the lookup read on the connections `conns` (until its
    /// entry expires), unless one of its names was invalidated (or
    /// everything flushed) since it was sent.
    pub(crate) fn keep(mut self, conns: Vec<u64>, entry: &[u8], versions: &[Seen]) {
        self.done = true;
        let near = self.near;
        let mut table = checked::lock(&near.table);
        let overlooked = checked::weakened(Weakening::KeepOvertaken);
        let clean = overlooked
            || table.flushed_at <= self.since
                && self
                    .names
                    .iter()
                    .all(|n| table.reading.get(n).is_none_or(|(_, at)| *at <= self.since));
        Self::leave(&mut table, &self.names);
        if !clean {
            return;
        }
        let names = std::mem::take(&mut self.names).into_boxed_slice();
        let kept = Arc::new(KeptLookup {
            name: Arc::from(&*names[0]),
            names,
            conns,
            entry: entry.into(),
            versions: versions.to_vec(),
            decoded: crate::keep::slot(),
            dropped: checked::AtomicBool::new(false),
            flushes: near.flushed.load(Ordering::Acquire),
        });
        // What the map evicted leaves the table (and whoever still holds
        // it reads Redis instead: a message for it would no longer reach
        // it).
        let evicted = std::mem::take(&mut *crate::sync::lock(&near.evicted));
        for old in &evicted {
            near.drop_kept(&mut table, old);
        }
        // The lookup it replaces is dropped (a caller holding it reads
        // Redis instead).
        if let Some(old) = near.kept.get(&*kept.name) {
            near.drop_kept(&mut table, &old);
        }
        // Its entry name and every version name it read lead to it.
        for name in kept.names.iter() {
            table
                .readers
                .entry(name.clone())
                .or_default()
                .insert(kept.id(), Arc::downgrade(&kept));
            table.links += 1;
        }
        // Under the lock: a message for these names applied after this
        // insert drops it.
        near.kept.insert(kept.name.clone(), kept);
        near.sweep(&mut table);
    }

    fn leave(table: &mut Table, names: &[Box<str>]) {
        for name in names {
            if let Some(entry) = table.reading.get_mut(name) {
                entry.0 -= 1;
                if entry.0 == 0 {
                    table.reading.remove(name);
                }
            }
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut table = checked::lock(&self.near.table);
            Self::leave(&mut table, &self.names);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Token;

    fn entry() -> Vec<u8> {
        let meta = crate::entry::Meta {
            expires_ms: u64::MAX / 2,
            ..Default::default()
        };
        crate::entry::begin(&[], meta, 1).unwrap()
    }

    const NAMES: [&str; 3] = ["ns:e:f:{k}", "ns:k:{k}", "ns:t:{t}"];

    fn versions() -> Vec<Seen> {
        vec![
            Seen::Current(Token::random()),
            Seen::Current(Token::random()),
        ]
    }

    #[test]
    fn a_lookup_is_kept_and_dropped_when_any_of_its_names_changes() {
        let near = Near::new(1 << 20, true, None);
        for changed in NAMES {
            near.reading(NAMES.into_iter())
                .keep(vec![1], &entry(), &versions());
            assert!(near.get(NAMES[0]).is_some(), "kept");
            near.invalidate(Some(&[changed.as_bytes()]));
            assert!(near.get(NAMES[0]).is_none(), "{changed} changed");
        }
    }

    /// An invalidation that arrives while the lookup is in flight (its
    /// read may have come before the change) keeps it from being kept.
    #[test]
    fn a_lookup_overtaken_by_an_invalidation_is_not_kept() {
        let near = Near::new(1 << 20, true, None);
        for changed in NAMES {
            let reading = near.reading(NAMES.into_iter());
            near.invalidate(Some(&[changed.as_bytes()]));
            reading.keep(vec![1], &entry(), &versions());
            assert!(near.get(NAMES[0]).is_none(), "{changed} changed in flight");
        }
        let reading = near.reading(NAMES.into_iter());
        near.flush();
        reading.keep(vec![1], &entry(), &versions());
        assert!(near.get(NAMES[0]).is_none(), "flushed in flight");
        // Another name's change does not matter.
        let reading = near.reading(NAMES.into_iter());
        near.invalidate(Some(&[b"ns:k:{other}"]));
        reading.keep(vec![1], &entry(), &versions());
        assert!(near.get(NAMES[0]).is_some());
    }

    /// How many lookups the table of readers holds, in all.
    fn links(near: &Near) -> usize {
        let table = checked::lock(&near.table);
        table.readers.values().map(HashMap::len).sum()
    }

    /// One key with 200 tags, busted by key and kept again 1,000 times:
    /// the readers of its tags do not pile up (each bust leaves its
    /// lookup under every tag it read unless it is unlinked).
    #[test]
    fn the_table_of_readers_stays_within_what_is_kept() {
        let near = Near::new(1 << 20, true, None);
        let tags: Vec<String> = (0..200).map(|i| format!("ns:t:{{t{i}}}")).collect();
        let names = || {
            ["ns:e:f:{k}", "ns:k:{k}"]
                .into_iter()
                .chain(tags.iter().map(String::as_str))
        };
        let versions: Vec<Seen> = (0..201).map(|_| Seen::Current(Token::random())).collect();
        for _ in 0..1000 {
            near.reading(names()).keep(vec![1], &entry(), &versions);
            near.invalidate(Some(&[b"ns:k:{k}"]));
        }
        assert!(
            links(&near) <= 8192,
            "{} lookups in the table",
            links(&near)
        );
        // And one kept again without a bust replaces the one before.
        for _ in 0..1000 {
            near.reading(names()).keep(vec![1], &entry(), &versions);
        }
        assert!(
            links(&near) <= 8192,
            "{} lookups in the table",
            links(&near)
        );
        assert!(near.get("ns:e:f:{k}").is_some());
    }

    /// A kept lookup is served only to a lookup of the same names.
    #[test]
    fn a_kept_lookup_serves_only_a_lookup_of_the_same_names() {
        let near = Near::new(1 << 20, true, None);
        near.reading(NAMES.into_iter())
            .keep(vec![1], &entry(), &versions());
        let kept = near.get(NAMES[0]).unwrap();
        assert!(kept.read_the_same(NAMES[1..].iter().copied()));
        assert!(!kept.read_the_same(["ns:k:{k}", "ns:t:{other}"].into_iter()));
        assert!(!kept.read_the_same(["ns:k:{k}"].into_iter()));
        assert!(!kept.read_the_same(NAMES[1..].iter().copied().chain(["ns:t:{u}"])));
    }

    /// A lookup replaced by a newer one is dropped for whoever holds it.
    #[test]
    fn a_replaced_lookup_is_dropped() {
        let near = Near::new(1 << 20, true, None);
        near.reading(NAMES.into_iter())
            .keep(vec![1], &entry(), &versions());
        let old = near.get(NAMES[0]).unwrap();
        near.reading(NAMES.into_iter())
            .keep(vec![1], &entry(), &versions());
        assert!(!near.still(&old));
        let new = near.get(NAMES[0]).unwrap();
        assert!(near.still(&new));
        near.invalidate(Some(&[NAMES[2].as_bytes()]));
        assert!(!near.still(&new));
        assert_eq!(links(&near), 0);
    }

    /// Lookups the byte budget evicts leave the table too.
    #[test]
    fn evicted_lookups_leave_the_table() {
        let near = Near::new(64 << 10, true, None);
        for i in 0..2000 {
            let names = [
                format!("ns:e:f:{{k{i}}}"),
                format!("ns:k:{{k{i}}}"),
                "ns:t:{t}".into(),
            ];
            near.reading(names.iter().map(String::as_str))
                .keep(vec![1], &entry(), &versions());
            near.kept.run_pending_tasks();
        }
        let kept = near.kept.entry_count() as usize;
        assert!(kept < 2000, "the budget evicts");
        // Three names each, and what was evicted since the last keep.
        assert!(
            links(&near) <= 3 * kept + 64,
            "{} links for {kept} kept",
            links(&near)
        );
    }
}
