//! The slot map of a Redis Cluster: who serves each slot (`CLUSTER
//! SLOTS`), read again when something moved, and the slot of every name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value;

use super::{Addr, Cluster};
use crate::error::{Error, ErrorKind};
use crate::names::Name;

/// Who serves each slot range, and how many replicas each master has.
#[derive(Debug)]
pub(super) struct SlotMap {
    pub(super) learned: Instant,
    pub(super) ranges: Vec<SlotRange>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct SlotRange {
    pub(super) first: u16,
    pub(super) last: u16,
    pub(super) master: Addr,
    pub(super) replicas: u32,
}

impl SlotMap {
    pub(super) fn range(&self, slot: u16) -> Option<&SlotRange> {
        self.ranges
            .iter()
            .find(|r| (r.first..=r.last).contains(&slot))
    }

    pub(super) fn master(&self, slot: u16) -> Result<&SlotRange, Error> {
        self.range(slot).ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("no master of the Redis Cluster serves slot {slot}"),
            )
        })
    }
}

/// How old the map may be when a bust needs the replica counts.
pub(super) const MAP_REFRESH: Duration = Duration::from_secs(1);
/// The least time between two readings of the map.
pub(super) const MAP_MIN_INTERVAL: Duration = Duration::from_millis(100);

impl Cluster {
    pub(super) fn current(&self) -> Option<Arc<SlotMap>> {
        crate::sync::lock(&self.map).clone()
    }

    /// The slot map, read first if there is none yet.
    pub(super) async fn map(&self) -> Result<Arc<SlotMap>, Error> {
        match self.current() {
            Some(map) => Ok(map),
            None => self.refresh(None).await,
        }
    }

    /// Reads the slot map again, unless it was read after `seen` (another
    /// caller did it) or very recently.
    pub(super) async fn refresh(&self, seen: Option<Instant>) -> Result<Arc<SlotMap>, Error> {
        let _one = self.refreshing.lock().await;
        if let Some(map) = self.current() {
            let newer = seen.is_some_and(|seen| map.learned > seen);
            if newer || map.learned.elapsed() < MAP_MIN_INTERVAL {
                return Ok(map);
            }
        }
        let mut candidates: Vec<Addr> = self
            .current()
            .map(|m| m.ranges.iter().map(|r| r.master.clone()).collect())
            .unwrap_or_default();
        candidates.extend(self.seeds.iter().cloned());
        candidates.dedup();
        let mut last = None;
        for addr in candidates {
            let node = self.node(&addr)?;
            let asked = node
                .reads
                .run(|s| async move {
                    redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query_async::<Vec<Vec<Value>>>(&mut s.conn.clone())
                        .await
                })
                .await;
            match asked {
                Ok(ranges) => {
                    let ranges: Vec<SlotRange> = ranges
                        .iter()
                        .filter_map(|r| slot_range(r, &addr.0))
                        .collect();
                    let map = Arc::new(SlotMap {
                        learned: Instant::now(),
                        ranges,
                    });
                    *crate::sync::lock(&self.map) = Some(map.clone());
                    return Ok(map);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(
                ErrorKind::Connection,
                "no node of the Redis Cluster answered",
            )
        }))
    }

    /// Reads the map again in the background: something moved or failed.
    pub(super) fn stale(self: &Arc<Self>, seen: &SlotMap) {
        let seen = seen.learned;
        let cluster = self.clone();
        let _ = crate::background::spawn(async move {
            if let Err(e) = cluster.refresh(Some(seen)).await {
                tracing::debug!(error = %e, "cachette: could not read the slot map");
            }
        });
    }
}

/// Where the namespace's epoch lives for `key`: in its slot.
pub(crate) fn epoch_of(key: &Name<'_>) -> Name<'static> {
    epoch_of_slot(key_slot(key.hash_tag()))
}

/// The epoch of `slot`: a name whose hash tag is in that slot, the same
/// in every process (the first decimal number that hashes there).
pub(super) fn epoch_of_slot(slot: u16) -> Name<'static> {
    static TAGS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags: Vec<Option<&'static str>> = vec![None; 16384];
        let mut left = tags.len();
        let mut n: u64 = 0;
        while left > 0 {
            let text = n.to_string();
            let slot = usize::from(key_slot(&text));
            if tags[slot].is_none() {
                tags[slot] = Some(Box::leak(text.into_boxed_str()));
                left -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(|t| t.expect("every slot")).collect()
    });
    Name::fixed(tags[usize::from(slot)])
}

/// Where a `MOVED` or `ASK` sends the command, and whether it is `ASK`.
pub(super) fn redirection(e: &redis::RedisError) -> Option<(Addr, bool)> {
    let ask = e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask);
    let (addr, _slot) = e.redirect_node()?;
    let (host, port) = addr.rsplit_once(':')?;
    Some(((host.to_string(), port.parse().ok()?), ask))
}

/// One `CLUSTER SLOTS` range: first slot, last slot, the master as
/// `[host, port, id, ...]`, then one entry per replica. A master that does
/// not know its own address says `""`: it is the node that was asked.
pub(super) fn slot_range(range: &[Value], asked: &str) -> Option<SlotRange> {
    let [Value::Int(first), Value::Int(last), Value::Array(master), replicas @ ..] = range else {
        return None;
    };
    let host = match master.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let host = if host.is_empty() || host == "?" {
        asked.to_string()
    } else {
        host
    };
    let Value::Int(port) = master.get(1)? else {
        return None;
    };
    Some(SlotRange {
        first: u16::try_from(*first).ok()?,
        last: u16::try_from(*last).ok()?,
        master: (host, u16::try_from(*port).ok()?),
        replicas: u32::try_from(replicas.len()).unwrap_or(u32::MAX),
    })
}

/// The slot of a hash tag: CRC16 (XMODEM) modulo 16384.
pub(crate) fn key_slot(tag: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % 16384
}

/// The slot of a full name: of its hash tag, the text between the first
/// `{` and the next `}` when that is not empty, or of the whole name.
pub(super) fn key_slot_of_name(name: &str) -> u16 {
    let hashed = name
        .find('{')
        .and_then(|open| {
            let rest = &name[open + 1..];
            let close = rest.find('}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(name);
    key_slot(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{Namespace, Subject};

    #[test]
    fn slots_follow_hash_tags() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot_of_name("foo"), 12182);
        assert_eq!(
            key_slot_of_name("{user1000}.following"),
            key_slot("user1000")
        );
        assert_eq!(key_slot_of_name("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_ne!(key_slot_of_name("foo{}{bar}"), key_slot("bar"));
        assert_eq!(key_slot_of_name("foo{{bar}}zap"), key_slot("{bar"));
        // Every name of a key, in any origin, is in the slot of its hash tag.
        let ns = Namespace::new("ns").unwrap();
        let f = crate::names::Function::named("f", "f");
        for key in ["user:1", "a}b", "", "}x", &"k".repeat(300)] {
            let subject = Subject::new(&ns, f, key, &[] as &[&str], Some(epoch_of));
            let slot = key_slot(subject.key().hash_tag());
            let names = subject.names();
            assert_eq!(key_slot_of_name(subject.entry()), slot, "{key:?}");
            assert_eq!(key_slot_of_name(&subject.lock()), slot, "{key:?}");
            for version in names.versions() {
                assert_eq!(key_slot_of_name(version), slot, "{key:?}");
            }
        }
    }
}
