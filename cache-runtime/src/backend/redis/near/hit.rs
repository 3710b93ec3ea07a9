//! Serving a kept lookup: from one connection on a single Redis, or, on a
//! cluster, from each master's connection that read one of its names,
//! after an ordering round trip on each (see the module above for why it
//! holds). On a cluster each master's round trip also reads one name of
//! every slot of the lookup it holds (its probes), so that a node that no
//! longer serves one of those slots refuses it, where a `PING` would be
//! answered.

use std::sync::Arc;
#[cfg(feature = "cluster")]
use std::time::Duration;

use super::Near;
use crate::backend::redis::link::Link;
use crate::backend::redis::link::Session;
use crate::backend::stored::Lookup;
use crate::error::Error;
use crate::names::Subject;

/// One name for each slot of a lookup on one connection.
#[cfg(feature = "cluster")]
type Probes<'a> = Vec<(u16, &'a str)>;

/// The lookup kept for `subject`, served at once under a lease: read on
/// the current connection of `reads`, whose latest confirmation is recent
/// enough (`lease.rs`). Nothing to wait for, so nothing to enter: a hit
/// served here costs no poll of the runtime's context. `None`: see
/// `on_one`.
pub(crate) fn leased(reads: &Link, subject: &Subject<'_>) -> Option<Lookup> {
    let near = reads.near()?;
    let lease = near.lease.as_ref()?;
    let (kept, session) = kept_on_current(reads, near, subject)?;
    let now = lease.clock.now();
    let cap = lease.now_us(now);
    let left = session.confirmation.left(now, cap)?;
    if left.as_micros() * 2 < u128::from(cap) {
        // Less than half the lease left: one refresh, in the background.
        reads.refresh(&session, &[]);
    }
    let served = near.serve(&kept)?;
    near.counters.lease_hits.bump();
    Some(served)
}

/// The lookup kept for `subject`, if one was read on the current
/// connection of `reads` and is still kept after an ordering round trip;
/// `None`: read Redis. (A hit under a lease is served by `leased`, tried
/// first.)
pub(crate) async fn on_one(reads: &Link, subject: &Subject<'_>) -> Option<Result<Lookup, Error>> {
    let near = reads.near()?;
    let (kept, session) = kept_on_current(reads, near, subject)?;
    if let Err(e) = reads.order(&session, &[], false).await {
        return Some(Err(e));
    }
    near.serve(&kept).map(Ok)
}

/// The lookup kept for `subject`, with the current session of `reads`, if
/// it was read on that session's connection, which is tracked, and still
/// names the versions the subject does.
fn kept_on_current(
    reads: &Link,
    near: &Near,
    subject: &Subject<'_>,
) -> Option<(Arc<super::KeptLookup>, Arc<Session>)> {
    let names = subject.names();
    let kept = near.get(names.entry())?;
    let session = reads.current()?;
    if !session.tracked || kept.conns != [session.conn_id] || !kept.read_the_same(names.versions())
    {
        return None;
    }
    Some((kept, session))
}

/// The lookup kept for `subject` on a cluster, if every master holding
/// one of its names (`reads_of` a name's hash tag: its slot, and the reads
/// link of the slot's master as the slot map last read says) still has the connection it was read on,
/// and it is still kept after an ordering round trip on each, all sent at
/// once; `None`: read the masters.
#[cfg(feature = "cluster")]
pub(crate) async fn on_masters(
    near: &Near,
    subject: &Subject<'_>,
    reads_of: impl Fn(&str) -> Option<(u16, Arc<Link>)>,
    lease_holder: impl FnOnce() -> Option<Arc<Link>>,
) -> Option<Result<Lookup, Error>> {
    let names = subject.names();
    let kept = near.get(names.entry())?;
    if !kept.read_the_same(names.versions()) {
        return None;
    }
    // The entry and the epoch share the key's slot.
    let mut links: Vec<(Arc<Link>, Probes)> = Vec::new();
    for (name, version) in subject.version_names().zip(names.versions()) {
        let (slot, link) = reads_of(name.hash_tag())?;
        match links.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &link)) {
            Some((_, probes)) => {
                if !probes.iter().any(|(s, _)| *s == slot) {
                    probes.push((slot, version));
                }
            }
            None => {
                // A node whose near-cache was turned off (its ACL refused
                // the round trip) serves nothing from memory.
                link.near()?;
                links.push((link, vec![(slot, version)]));
            }
        }
    }
    let mut sessions = Vec::with_capacity(links.len());
    for (link, _) in &links {
        let session = link.current()?;
        if !session.tracked || !kept.conns.contains(&session.conn_id) {
            return None;
        }
        sessions.push(session);
    }
    if tracked_conns(sessions.iter().zip(links.iter().map(|(l, _)| &**l)))? != kept.conns {
        return None;
    }
    let mut lease_read = None;
    if let Some(lease) = &near.lease {
        // A lease read: served at once while every slot the lookup read is
        // confirmed recently enough on the connection it was read on.
        let now = lease.clock.now();
        let cap = lease.now_us(now);
        if cap > 0 {
            let left: Option<Vec<Duration>> = links
                .iter()
                .zip(&sessions)
                .map(|((_, probes), session)| {
                    let slots = probes.iter().map(|(slot, _)| *slot);
                    session.confirmation.left_slots(now, cap, slots)
                })
                .collect();
            if let Some(left) = left {
                for (((link, probes), session), left) in links.iter().zip(&sessions).zip(left) {
                    if left.as_micros() * 2 < u128::from(cap) {
                        link.refresh(session, probes);
                    }
                }
                let served = near.serve(&kept)?;
                near.counters.lease_hits.bump();
                return Some(Ok(served));
            }
        } else {
            // None known: the round trip on the master that holds the
            // namespace's lease reads it (joining this lookup's, or one
            // of its own).
            lease_read = lease_holder();
        }
    }
    let mut orders: Vec<_> = links
        .iter()
        .zip(&sessions)
        .map(|((link, probes), session)| {
            let reads = lease_read.as_ref().is_some_and(|l| Arc::ptr_eq(l, link));
            link.order(session, probes, reads)
        })
        .collect();
    if let Some(link) = lease_read.filter(|l| !links.iter().any(|(k, _)| Arc::ptr_eq(k, l))) {
        // Another master, maybe never connected yet: its round trip is
        // started, one at a time, and not waited for.
        if let Some(learning) = near.lease.as_ref().and_then(|l| l.start_learning()) {
            let _ = crate::background::spawn(async move {
                if let Ok(session) = link.session().await {
                    if session.tracked {
                        let _ = link.order(&session, &[], true).await;
                    }
                }
                drop(learning);
            });
        }
    }
    let ordered = futures_util::future::try_join_all(orders.drain(..)).await;
    if ordered.is_err() {
        // A redirection, a node cut off, a timeout: the lookup finds out
        // which, and follows it or reports it.
        return None;
    }
    near.serve(&kept).map(Ok)
}

/// The hash tag of the namespace's lease (`names::lease_name`).
#[cfg(feature = "cluster")]
pub(crate) const LEASE_TAG: &str = "lease";

/// The connections a lookup's names were read on (each session with the
/// link it came from), sorted, if every one of them is tracked (else it
/// cannot be kept).
pub(crate) fn tracked_conns<'a>(
    read_on: impl Iterator<Item = (&'a Arc<Session>, &'a Link)>,
) -> Option<Vec<u64>> {
    let mut conns = Vec::new();
    for (session, link) in read_on {
        if !session.tracked || link.near().is_none() {
            return None;
        }
        conns.push(session.conn_id);
    }
    conns.sort_unstable();
    conns.dedup();
    Some(conns)
}
