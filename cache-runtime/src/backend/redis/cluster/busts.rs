//! Busts on a cluster: each master's share in one pipeline on its bust
//! link, `WAIT` last, all masters at once.

use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use super::slots::{epoch_of_slot, key_slot, SlotRange, MAP_REFRESH};
use super::{bust, Cluster, EPOCH_TTL};
use crate::error::Error;
use crate::names::{Bust, Kind, Namespace};

impl Cluster {
    /// Each master's share of the bust in one pipeline on its bust link,
    /// `WAIT` last; all masters at once. The map is at most a second old,
    /// for the replica counts.
    pub(crate) async fn bust(
        self: &Arc<Self>,
        ns: &Namespace,
        bust: &Bust,
        ttl: Duration,
    ) -> Result<(), Error> {
        let mut map = self.map().await?;
        if map.learned.elapsed() > MAP_REFRESH {
            map = self.refresh(Some(map.learned)).await?;
        }
        let mut shares: Vec<(&SlotRange, Vec<_>)> = Vec::new();
        for (name, kind) in bust.kinds() {
            let range = map.master(key_slot(name.hash_tag()))?;
            match shares.iter_mut().find(|s| s.0.master == range.master) {
                Some(share) => share.1.push((name, kind)),
                None => shares.push((range, vec![(name, kind)])),
            }
        }
        let sends = shares.into_iter().map(|(range, share)| async move {
            let node = self.node(&range.master)?;
            let acks = bust::acks_for(self.acks, range.replicas);
            let ack_timeout = self.ack_timeout;
            let share = &share;
            let replies = node
                .busts
                .run(|s| async move {
                    let names: Vec<String> = share
                        .iter()
                        .map(|(name, kind)| name.version(ns, *kind))
                        .collect();
                    let replies = bust::plain(&names, &s.run, ttl, (acks, ack_timeout), None)
                        .query_async::<Vec<Value>>(&mut s.conn.clone())
                        .await?;
                    super::super::link::ending(&replies)?;
                    Ok(replies)
                })
                .await?;
            bust::check(&replies, acks)
        });
        let done = futures_util::future::join_all(sends).await;
        let failed = done.into_iter().find_map(Result::err);
        match failed {
            None => Ok(()),
            Some(e) => {
                // A failover or a slot move may be why: read the map again.
                self.stale(&map);
                Err(e)
            }
        }
    }
}

impl Cluster {
    /// A new epoch for every slot, each master's share in pipelines of a
    /// bounded number of commands with a `WAIT` at the end of each, all
    /// masters at once.
    pub(crate) async fn bust_everything(self: &Arc<Self>, ns: &Namespace) -> Result<(), Error> {
        let map = self.refresh(None).await?;
        let sends = map.ranges.iter().map(|range| async move {
            let node = self.node(&range.master)?;
            let acks = bust::acks_for(self.acks, range.replicas);
            let names: Vec<String> = (range.first..=range.last)
                .map(|slot| epoch_of_slot(slot).version(ns, Kind::Epoch))
                .collect();
            for chunk in names.chunks(crate::pending::CHUNK) {
                let ack_timeout = self.ack_timeout;
                let replies = node
                    .busts
                    .run(|s| async move {
                        let replies =
                            bust::plain(chunk, &s.run, EPOCH_TTL, (acks, ack_timeout), None)
                                .query_async::<Vec<Value>>(&mut s.conn.clone())
                                .await?;
                        super::super::link::ending(&replies)?;
                        Ok(replies)
                    })
                    .await?;
                bust::check(&replies, acks)?;
            }
            Ok::<_, Error>(())
        });
        let done = futures_util::future::join_all(sends).await;
        match done.into_iter().find_map(Result::err) {
            None => Ok(()),
            Some(e) => {
                self.stale(&map);
                Err(e)
            }
        }
    }
}
