//! A model of cachette's invalidation protocol, checked exhaustively with
//! Stateright: every interleaving of the actors' steps, within small
//! bounds, against the promise that a read which starts after a write's
//! bust returned never returns an older value.
//!
//! Actors, each step named after the code that takes it:
//! - the database: one register (with batches, a row per element),
//!   written by the writer;
//! - Redis (`backend/redis/`): the entry (a value and the versions its fill
//!   recorded), the key's version and the tag's version, each a random
//!   token scoped by the server process that wrote it; any name can be
//!   lost (evicted, expired); a snapshot can be saved and the server
//!   restarted from it (a new process: a new scope);
//! - cache processes, each with one connection whose server-to-client
//!   stream is a FIFO queue (invalidation messages and replies, in the
//!   order Redis wrote them, delivered with any delay), a near-cache
//!   (`backend/redis/near/`), and readers;
//! - a writer that writes the database, then busts the key or the tag
//!   (`invalidate.rs`: a new version token), and counts as complete once
//!   the bust returned; with `transactions`, it writes inside a database
//!   transaction that other connections do not see until `Commit`, and
//!   its bust is held until the commit (`deferred.rs`).
//!
//! A reader (`read/mod.rs`, `Cache::fetch`):
//! 1. `near_hit`: with a kept lookup, sends an ordering round trip and,
//!    once its reply is in, serves the kept lookup if it is still kept;
//! 2. `lookup`: reads the entry and both versions; a valid entry (recorded
//!    versions equal to the current ones, of this server process) is a
//!    hit, and the lookup is kept unless a message for its names overtook
//!    it (`Reading::keep`);
//! 3. on a miss, `ensure` captures the versions (creating missing ones),
//!    then the body reads the database, then `fill` stores the value with
//!    the captured versions;
//! 4. a second reader of the same process that misses while a fill of the
//!    key is under way follows it (`flight.rs`) and then reads the cache
//!    again.
//!
//! With `Protocol::with_batches`, batch reads (`read/batch.rs`,
//! `Cache::fetch_batch`): two elements, each with its own entry, key
//! version and row, both carrying the tag; the writer writes either row,
//! then busts that element's key or the tag. A batch reader:
//! 1. `lookup_many`: reads the entry and versions of every element it has
//!    not read yet, in one step; a valid entry is a hit (a `Slot`);
//! 2. an element that missed while another reader of the process has a
//!    fill of it under way is followed (per element); while it follows
//!    any, the batch leads none, and once every flight it follows ended it
//!    looks those elements up again (a single-key reader that misses while
//!    the batch leads its element follows the batch the same way);
//! 3. otherwise it leads every element that missed: `capture` of each
//!    one's versions (one step), then the body once (one step reading
//!    every such element's row), then `fill_one` of each under the
//!    versions captured for that element (one step), whose reply ends its
//!    flights.
//!
//! The near-cache keeps and serves element 0's single-key lookups only; a
//! batch reads its elements from Redis here.
//!
//! With `Protocol::leases` (`lease.rs`), lease reads (`near/lease.rs`):
//! time in ticks, a confirmation per connection, the namespace's lease in
//! Redis, busts that wait it out, and reconnects.
//!
//! The weakened protocols (`Weakening`) are the mistakes the design
//! avoids; the checks in `tests/` assert each one yields a counterexample.
//! What is not modelled, and why, is in RELIABILITY.md ("The model").

use std::collections::VecDeque;

use stateright::{Model, Property};

mod lease;
pub use lease::{Leases, Reconnects};

/// Which names a message or a lookup concerns: element `e`'s entry and
/// key version (element 0 unless batches are modelled), and the tag every
/// element carries.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Name {
    Entry(u8),
    Key(u8),
    Tag,
}

/// The most elements (two with batches, one otherwise).
pub const ELEMENTS: usize = 2;

/// Element `e`'s names: what a lookup of it reads.
fn names(e: usize) -> [Name; 3] {
    [Name::Entry(e as u8), Name::Key(e as u8), Name::Tag]
}

/// A version: a token, and the server process that wrote it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Token {
    pub token: u8,
    pub scope: u8,
}

/// A stored entry: the value and the versions its fill captured.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Entry {
    pub value: u8,
    pub versions: [Token; 2],
}

/// What Redis holds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Default)]
pub struct Redis {
    /// Each element's entry and key version (element 1's only with
    /// batches).
    pub entries: [Option<Entry>; ELEMENTS],
    pub keys: [Option<Token>; ELEMENTS],
    pub tag: Option<Token>,
    /// The key's stampede lock (`lock` strategy), and which reader holds
    /// it.
    pub lock: Option<(u8, u8)>,
    /// With leases, the namespace's lease in ticks (`names::lease_name`: a
    /// string, read 32 bytes at a time).
    pub ns: Option<u8>,
    /// With leases, the tick the namespace's lease was created at (its
    /// birth, on the server's clock: `Read::of` takes it from the set's
    /// remaining lifetime); `None` while it is missing, and for the set
    /// there at the start, created long before (settled).
    pub born: Option<u8>,
}

impl Redis {
    fn version(&self, name: Name) -> Option<Token> {
        match name {
            Name::Key(e) => self.keys[e as usize],
            Name::Tag => self.tag,
            Name::Entry(_) => None,
        }
    }

    /// Element `e`'s entry and versions, as a lookup reads them.
    fn lookup(&self, e: usize) -> Lookup {
        Lookup {
            entry: self.entries[e],
            versions: [self.keys[e], self.tag],
        }
    }
}

/// A lookup: the entry and the versions, as read together.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Lookup {
    pub entry: Option<Entry>,
    pub versions: [Option<Token>; 2],
}

impl Lookup {
    /// `entry::check`: a hit if the entry recorded exactly the current
    /// versions, written by this server process.
    fn value(&self, scope: u8, weak: Weakening) -> Option<u8> {
        let entry = self.entry?;
        let [Some(k), Some(t)] = self.versions else {
            return None;
        };
        let scoped =
            weak == Weakening::RestartKeepsEntries || (k.scope == scope && t.scope == scope);
        (scoped && entry.versions == [k, t]).then_some(entry.value)
    }
}

/// A message on a connection's server-to-client stream.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Msg {
    /// An invalidation message (`CLIENT TRACKING`).
    Push(Name),
    /// The reply to reader `r`'s command.
    Reply(u8, Reply),
    /// The reply to the ordering round trip (`PING`) of batch `b`, which
    /// every reader that joined the batch waits for.
    Ordered(u8),
    /// With leases, the reply to the ordering round trip of batch `batch`
    /// (a `GETRANGE` of the namespace's lease, `near/tracking.rs`): the tick
    /// it was sent at and the lease the process knew then (`Lease::now_us`,
    /// taken before it was queued), and the namespace's lease Redis held
    /// when it ran it.
    Leased {
        batch: u8,
        sent: u8,
        lease: u8,
        ns: Option<u8>,
    },
    /// An invalidation message for the namespace's lease (`apply` in
    /// `near/tracking.rs`: `Lease::forget`).
    LeaseChanged,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Reply {
    Lookup(Lookup),
    /// `ensure`: the versions, created where missing.
    Captured([Token; 2]),
    Filled,
    /// A batch's lookup (`Backend::lookup_many`, one pipeline): each
    /// element's entry and versions, read together.
    Lookups([Lookup; ELEMENTS]),
    /// A batch's captures (`capture` of each element to fetch, sent
    /// together): each such element's versions, created where missing.
    CapturedEach([Option<[Token; 2]>; ELEMENTS]),
}

/// Where a reader is.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Phase {
    /// Not started (it reads once).
    Ready,
    /// Waiting for the reply to ordering batch `b`, holding the kept
    /// lookup.
    Ordering(Lookup, u8),
    /// Waiting for its lookup; `overtaken`: a message for its names came
    /// while it was in flight.
    LookingUp {
        overtaken: bool,
    },
    /// Its lookup's reply is in; the caller keeps it (or not) and checks
    /// it in a later step (`Reading::keep` runs on the caller's task,
    /// after the read loop may have applied messages behind the reply).
    Replied(Lookup, bool),
    Capturing,
    /// The body runs: it has the captured versions, if any yet.
    Body(Option<[Token; 2]>),
    /// The body read this value from the database; the fill is next.
    Read(u8, Option<[Token; 2]>),
    Filling(u8),
    /// Following another reader's flight of the same process.
    Following(u8),
    /// Another reader holds the key's lock (`lock` strategy).
    WaitingForLock,
    Done(u8),
    /// A batch's lookup replied; the caller checks each element it asked
    /// for (`fetch_batch`) in a later step.
    BatchReplied([Lookup; ELEMENTS]),
    /// A batch follows other readers' flights of its `Following`
    /// elements, leading none of its own meanwhile.
    BatchFollowing,
    /// A batch's body runs, with the versions captured for each element
    /// to fetch (none yet, with `BatchCapturesAfterBody`).
    BatchBody([Option<[Token; 2]>; ELEMENTS]),
    /// The body read the database (its values are in the slots); the
    /// fills are next.
    BatchRead([Option<[Token; 2]>; ELEMENTS]),
    /// The fills were sent; their reply ends the call (and its flights).
    BatchFilling,
    /// The batch returned what its slots hold.
    BatchDone,
}

/// What a reader reads: one element (`Cache::fetch`), or, a batch, both
/// (`Cache::fetch_batch`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Reads {
    One(u8),
    Batch,
}

/// Where one element of a batch stands (`read/batch.rs`, its `State`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Slot {
    /// To look up (again, after following a flight).
    Unread,
    /// Served from the cache.
    Served(u8),
    /// Following reader `r`'s flight of the element.
    Following(u8),
    /// To fetch: the batch leads its flight once it leads at all.
    Miss,
    /// Fetched: the body read this value.
    Fetched(u8),
}

impl Slot {
    fn value(self) -> Option<u8> {
        match self {
            Slot::Served(v) | Slot::Fetched(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Reader {
    pub reads: Reads,
    pub phase: Phase,
    /// Per element, the newest value whose write had completed when the
    /// read started.
    pub must_see: [u8; ELEMENTS],
    /// A batch's elements (unused by a single-key reader).
    pub slots: [Slot; ELEMENTS],
}

impl Reader {
    /// The element a single-key reader reads.
    fn element(&self) -> usize {
        match self.reads {
            Reads::One(e) => e as usize,
            Reads::Batch => 0,
        }
    }
}

/// A connection (`link/session.rs`, a `Session`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, Default)]
pub struct Conn {
    /// Its server-to-client stream.
    pub stream: VecDeque<Msg>,
    /// Names Redis tracks for it.
    pub tracked: Vec<Name>,
    /// Redis tracks the namespace's lease for it (its round trips read it).
    pub tracks_lease: bool,
    /// The ordering batch callers may still join (not sent yet;
    /// `near/tracking.rs`, `Tracking::join_or_open`).
    pub open: Option<u8>,
    /// With leases, its confirmation (`Session::confirmation`): the tick
    /// taken before the latest ordering round trip whose reply arrived was
    /// queued, and the lease the process knew then.
    pub confirmed: Option<(u8, u8)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Process {
    /// Its current connection.
    pub conn: Conn,
    /// After a reconnect whose old connection lingers: the old one, still
    /// delivering and tracked (a caller may still hold its session).
    pub old: Option<Box<Conn>>,
    /// The near-cache: the kept lookup of the key.
    pub near: Option<Lookup>,
    /// The kept lookup was read on the old connection: no hit on the
    /// current one serves it (`kept.conns != [session.conn_id]`).
    pub near_old: bool,
    /// The next ordering batch's number (`near/tracking.rs`).
    pub next_batch: u8,
    /// With leases, the namespace's lease as the process last learned it
    /// (`Lease::namespace`; 0: none known).
    pub known: u8,
    pub reconnects: u8,
    /// The tick of its latest refresh (`Tracking::refresh`).
    pub refreshed_at: Option<u8>,
    /// A bust of this process that Redis did not take, kept for retry
    /// (`pending/`): whether it is of the tag, and the write it is for.
    pub pending: Option<(bool, u8)>,
    pub readers: Vec<Reader>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Writer {
    Ready,
    /// Wrote the database; the bust is next.
    Wrote(u8),
    /// Wrote inside a database transaction that has not committed: other
    /// connections still read the old value.
    Open(u8),
    /// With `BustBeforeCommit`: busted, the transaction still open.
    BustedOpen(u8),
    /// With leases: Redis acknowledged the bust of this value; the bust
    /// returns at this tick (`Backend::leases_passed`).
    Waiting(u8, u8),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct State {
    /// Each element's row (element 1's only with batches).
    pub db: [u8; ELEMENTS],
    /// The element whose row the writer's current write is of.
    pub row: u8,
    pub failed_busts: u8,
    /// Per element, the newest value whose write (and bust) returned.
    pub complete: [u8; ELEMENTS],
    pub redis: Redis,
    pub snapshot: Option<Redis>,
    pub scope: u8,
    pub next_token: u8,
    pub processes: Vec<Process>,
    pub writer: Writer,
    pub writes: u8,
    pub losses: u8,
    pub restarts: u8,
    /// A read returned a value older than a write completed before it
    /// started.
    pub stale: bool,
    /// A read was served from process memory (the check reaches it).
    pub near_served: bool,
    /// The newest write whose invalidating call returned in the writer's
    /// process, delivered or kept: what its later reads must see.
    pub returned: u8,
    /// A retried bust on its way to Redis, already cleared from the
    /// pending set (only with `ClearPendingBeforeBust`).
    pub retrying: Option<(bool, u8)>,
    /// With leases: the time, in ticks.
    pub now: u8,
    /// The namespace's lease was raised (`RaiseLease`), or lost.
    pub raised: bool,
    pub lease_lost: bool,
    /// The namespace's lease was created again by a process outside the
    /// check (`RecreateLease`).
    pub recreated: bool,
    /// The largest namespace lease a bust of the writer's process read
    /// settled (`Lease::largest_seen`; from before the check began with
    /// `Leases::seen_at_start`).
    pub largest_seen: u8,
    /// A read was served under a lease.
    pub lease_served: bool,
    /// A read that started after a write completed found a lookup kept
    /// from its connection and a confirmation (the case lease reads must
    /// get right; the check reaches it).
    pub lease_tested: bool,
    /// With batches: a batch was served an element from the cache.
    pub batch_hit: bool,
    /// With batches: a batch followed a single-key reader's flight.
    pub batch_followed: bool,
    /// With batches: a single-key reader followed a batch's flight.
    pub batch_led: bool,
}

/// The protocol as built, or with one of the mistakes it avoids.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Weakening {
    None,
    /// `ensure` after the body's database read (the stale-set race).
    CaptureAfterRead,
    /// The near-cache serves without an ordering round trip.
    NearWithoutOrdering,
    /// A follower takes its leader's value instead of reading again.
    FollowerTakesLeadersValue,
    /// Versions are not scoped by server process: a restart from a
    /// snapshot brings back entries that validate.
    RestartKeepsEntries,
    /// A bust deletes the entry instead of writing a new version.
    BustDeletes,
    /// A caller joins an ordering round trip already sent before it
    /// arrived.
    JoinSentOrdering,
    /// A process serves what a bust it could not deliver names.
    ServeWhilePending,
    /// A lookup overtaken by a message is kept anyway.
    KeepOvertaken,
    /// The retry clears the kept bust before Redis took it.
    ClearPendingBeforeBust,
    /// A write inside a transaction busts before the commit (the bust is
    /// not deferred to the end of the transaction).
    BustBeforeCommit,
    /// Leases: the bust returns at its acknowledgement.
    WriterDoesNotWait,
    /// Leases: the bust waits the lease `W` but not the margin (it returns
    /// at `a + W`, where a confirmation taken in the acknowledgement's
    /// tick still counts).
    WriterWaitsLessThanTheLease,
    /// Leases: the bust waits the writer's own lease, not the larger
    /// namespace's.
    WriterWaitsItsOwnLease,
    /// Leases: a hit uses a confirmation up to twice its lease old.
    StaleConfirmation,
    /// Leases: a confirmation is the tick its reply arrived, not the tick
    /// before its round trip was queued.
    ConfirmationTakenAfterQueuing,
    /// Leases: a hit uses the newest confirmation of any of its process's
    /// connections (the old one's, after a reconnect).
    OtherConnectionsConfirmation,
    /// Leases: a new connection keeps the old one's confirmation, the same
    /// one (an `Arc` handed on), which the old connection still renews.
    ConfirmationKeptAcrossReconnect,
    /// Leases: a new connection starts with a copy of the old one's
    /// confirmation (harmless: see `tests/check.rs`).
    ConfirmationCopiedAcrossReconnect,
    /// Leases: a reader uses its own lease even when larger than the
    /// namespace's (or when it knows none).
    ReaderUsesItsOwnLargerLease,
    /// Leases: a raised namespace lease applies at once, to confirmations
    /// queued before it was learned too.
    RaisedLeaseAdoptedAtOnce,
    /// Leases: a bust of a process that knows leases are in use takes a
    /// missing namespace lease for none, and waits only its own and the
    /// largest it has read (the runtime before `Read::Missing` waited
    /// `MAX_LEASE`).
    MissingLeaseWaitsNothing,
    /// Leases: a bust that reads a young namespace lease (created again
    /// within `YOUNG`) trusts it, and waits only what it read.
    YoungLeaseTrusted,
    /// Batches: the versions are captured after the body ran (the
    /// stale-set race, for every element at once).
    BatchCapturesAfterBody,
    /// Batches: only what the elements share is captured before the body
    /// (the tag's version, once for the call); each element's entry is
    /// stored under it and under its key's version as it stands at the
    /// store (not per element).
    BatchStoresUnderTheTagsVersions,
    /// Batches: every element is stored under the versions captured for
    /// the first element fetched (its key's and the tag's). Harmless to
    /// I1: the other elements' entries record a key version that is not
    /// theirs, so they never validate (see `tests/check.rs`).
    BatchStoresUnderOneElementsVersions,
    /// Batches: a single-key reader that followed a batch's flight of its
    /// element takes the value the batch's body read for it instead of
    /// reading again.
    FollowerTakesBatchsValue,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Action {
    /// Reader `r` of process `p` starts: `near_hit` (with leases, served at
    /// once under a confirmation: `near/hit.rs`, `on_one`), else `lookup`
    /// (a batch: `lookup_many`).
    Start { p: u8, r: u8 },
    /// The next message of process `p`'s stream is applied or delivered.
    Deliver { p: u8 },
    /// The body of reader `r` of process `p` reads the database (a
    /// batch's: every element it fetches, in one step).
    ReadDb { p: u8, r: u8 },
    /// Its fill (with the weakening, its `ensure` first); a batch's: every
    /// element it fetched, each under its own captured versions.
    Fill { p: u8, r: u8 },
    /// Process `p` closes its open ordering batch and sends its `PING`
    /// (with a lease, the `GETRANGE` of the namespace's lease, the tick and
    /// the lease known taken first: `Tracking::send`).
    SendOrdering { p: u8 },
    /// The writer's bust fails (Redis unreachable) and is kept.
    BustFails { tag: bool },
    /// The kept bust is delivered (`pending::retry`) and returns.
    Retry,
    /// With `ClearPendingBeforeBust`: the retried bust reaches Redis.
    RetryLands,
    /// The caller keeps its lookup (unless overtaken) and checks it.
    Keep { p: u8, r: u8 },
    /// A reader waiting for the lock finds it free and reads again.
    LockFreed { p: u8, r: u8 },
    /// A reader stops waiting for the lock (`lock_wait`) and fills.
    LockWaitEnds { p: u8, r: u8 },
    /// The lock's TTL ends (its holder may still be filling).
    LockExpires,
    /// A follower reads again once its leader's flight ended (a batch:
    /// once every flight it follows ended, it looks those elements up
    /// again).
    FollowerWakes { p: u8, r: u8 },
    /// The writer writes the database.
    Write,
    /// With batches: the writer writes element `e`'s row.
    WriteRow { e: u8 },
    /// The writer's bust of the key (or the tag) runs and returns.
    Bust { tag: bool },
    /// The writer's transaction commits.
    Commit,
    /// Redis loses a name (eviction, expiry).
    Lose(Name),
    /// Redis saves a snapshot (`BGSAVE`).
    Save,
    /// Redis restarts from its snapshot: connections are lost.
    Restart,
    /// Leases: one tick passes.
    Tick,
    /// Leases: the next message of process `p`'s old connection.
    DeliverOld { p: u8 },
    /// Leases: the batch left open on process `p`'s old connection is sent
    /// on it (its sending task held the old session).
    SendOrderingOld { p: u8 },
    /// Leases: process `p` opens an ordering round trip nobody waits for,
    /// to renew its confirmation (`Tracking::refresh`, which a lease hit
    /// starts).
    Refresh { p: u8 },
    /// Leases: process `p` gets a new connection (`Link::broken`, then a
    /// new `Session` with no confirmation).
    Reconnect { p: u8 },
    /// Leases: the writer's bust returns, its wait after the
    /// acknowledgement over (`Backend::leases_passed`).
    BustReturns,
    /// Leases: the namespace's lease raised to a process's larger one (a
    /// `SET … KEEPTTL`; its birth stays).
    RaiseLease,
    /// Leases: Redis loses the namespace's lease (evicted, flushed,
    /// expired), its birth with it.
    LoseLease,
    /// Leases: a process outside the check whose round trip found the
    /// namespace's lease missing creates it again with its own lease
    /// (`Lease::after_read`).
    RecreateLease,
}

/// The model: its bounds and the protocol it runs.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// Readers per process (each reads once).
    pub readers: Vec<u8>,
    pub max_writes: u8,
    pub max_losses: u8,
    /// Restarts from a snapshot (0 or 1).
    pub max_restarts: u8,
    /// Busts that fail and are kept for retry.
    pub max_failed_busts: u8,
    /// Misses take the key's lock (`strategy = "lock"`), which may expire.
    pub locks: bool,
    /// The writer writes inside a database transaction, its busts held
    /// until the commit (`deferred.rs`).
    pub transactions: bool,
    /// Lease reads, and their bounds (`lease.rs`).
    pub leases: Option<Leases>,
    /// Start with the entry filled (value 0, valid) and every process
    /// connected afresh (tracking nothing), instead of an empty Redis.
    pub warm: bool,
    /// With batches: two elements, and what each reader of each process
    /// reads (which then gives the readers per process); `None`: one
    /// element, which every reader reads.
    pub batches: Option<Vec<Vec<Reads>>>,
    pub weakening: Weakening,
}

impl Protocol {
    /// Two processes, one of them with two readers (for flights), and
    /// `writes` writes; no loss, no restart.
    pub fn readers_and_writers(writes: u8, weakening: Weakening) -> Protocol {
        Protocol {
            readers: vec![2, 1],
            max_writes: writes,
            max_losses: 0,
            max_restarts: 0,
            max_failed_busts: 0,
            locks: false,
            transactions: false,
            leases: None,
            warm: false,
            batches: None,
            weakening,
        }
    }

    /// Batch reads (`read/batch.rs`): two elements, each with its own
    /// key version, both carrying the tag. Process 0 runs a batch of both
    /// and a single-key reader of element 0 (whose flights coalesce with
    /// the batch's, either way); the writer's process runs a batch of
    /// both. One write, of either element's row, then a bust of its key or
    /// of the tag.
    pub fn with_batches(weakening: Weakening) -> Protocol {
        let batches = vec![vec![Reads::Batch, Reads::One(0)], vec![Reads::Batch]];
        Protocol {
            readers: batches.iter().map(|r| r.len() as u8).collect(),
            batches: Some(batches),
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// The elements modelled.
    fn elements(&self) -> usize {
        if self.batches.is_some() {
            ELEMENTS
        } else {
            1
        }
    }

    /// Two processes, one with three readers (two of them sharing an
    /// ordering round trip after a third kept the lookup), one write.
    pub fn shared_orderings(weakening: Weakening) -> Protocol {
        Protocol {
            readers: vec![3, 1],
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Two processes (one with two readers), one write, and the `lock`
    /// strategy, whose lock may expire under its holder.
    pub fn with_locks(weakening: Weakening) -> Protocol {
        Protocol {
            locks: true,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Two processes (one with two readers), one write made inside a
    /// database transaction: another connection reads only what has
    /// committed, and the bust is held until the commit (`deferred`).
    pub fn with_transactions(weakening: Weakening) -> Protocol {
        Protocol {
            transactions: true,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }

    /// Two processes (one with two readers), one write, and a lost name, a
    /// restart from a snapshot or a bust that fails and is retried.
    pub fn with_faults(
        losses: u8,
        restarts: u8,
        failed_busts: u8,
        weakening: Weakening,
    ) -> Protocol {
        Protocol {
            max_losses: losses,
            max_restarts: restarts,
            max_failed_busts: failed_busts,
            ..Protocol::readers_and_writers(1, weakening)
        }
    }
}

/// The process the writer runs in (its kept busts are that process's).
const WRITER: usize = 1;

impl State {
    /// `invalidate`: a new version of the key or the tag (or, weakened,
    /// the entry deleted).
    /// Of the key of the element the writer wrote (`row`).
    fn bust(&mut self, tag: bool, weak: Weakening) {
        let e = self.row as usize;
        if weak == Weakening::BustDeletes {
            self.redis.entries[e] = None;
            self.touched(Name::Entry(e as u8));
        } else if tag {
            self.redis.tag = Some(self.token());
            self.touched(Name::Tag);
        } else {
            self.redis.keys[e] = Some(self.token());
            self.touched(Name::Key(e as u8));
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token {
            token: self.next_token,
            scope: self.scope,
        }
    }

    /// Redis changed `name`: every connection tracking it gets a message,
    /// and stops tracking it (Redis's tracking table).
    fn touched(&mut self, name: Name) {
        for process in &mut self.processes {
            let old = process.old.as_deref_mut();
            for conn in std::iter::once(&mut process.conn).chain(old) {
                if let Some(i) = conn.tracked.iter().position(|n| *n == name) {
                    conn.tracked.swap_remove(i);
                    conn.stream.push_back(Msg::Push(name));
                }
            }
        }
    }

    /// Redis tracks element `e`'s names for process `p`'s connection.
    fn track(&mut self, p: usize, e: usize) {
        for name in names(e) {
            if !self.processes[p].conn.tracked.contains(&name) {
                self.processes[p].conn.tracked.push(name);
            }
        }
    }

    /// `lookup`, run by Redis for reader `r` of process `p` (a batch:
    /// `lookup_many`, of the elements it has not read yet).
    fn lookup(&mut self, p: usize, r: usize) {
        let reader = &self.processes[p].readers[r];
        let reply = match reader.reads {
            Reads::One(e) => {
                self.track(p, e as usize);
                Reply::Lookup(self.redis.lookup(e as usize))
            }
            Reads::Batch => {
                let slots = reader.slots;
                for (e, slot) in slots.iter().enumerate() {
                    if *slot == Slot::Unread {
                        self.track(p, e);
                    }
                }
                Reply::Lookups(std::array::from_fn(|e| self.redis.lookup(e)))
            }
        };
        self.processes[p]
            .conn
            .stream
            .push_back(Msg::Reply(r as u8, reply));
        self.processes[p].readers[r].phase = Phase::LookingUp { overtaken: false };
    }

    /// `ensure` of element `e`, run by Redis: versions created where
    /// missing (or written by another server process, which a restart
    /// leaves behind).
    fn ensure(&mut self, e: usize) -> [Token; 2] {
        let scope = self.scope;
        let mut versions = [Token { token: 0, scope: 0 }; 2];
        for (i, name) in [Name::Key(e as u8), Name::Tag].into_iter().enumerate() {
            let current = self.redis.version(name).filter(|t| t.scope == scope);
            let token = match current {
                Some(t) => t,
                None => {
                    let t = self.token();
                    match name {
                        Name::Key(_) => self.redis.keys[e] = Some(t),
                        _ => self.redis.tag = Some(t),
                    }
                    self.touched(name);
                    t
                }
            };
            versions[i] = token;
        }
        versions
    }

    /// The reply to ordering batch `batch` of process `p` arrived: each
    /// reader in it is served its kept lookup if it is still kept.
    fn ordered(&mut self, p: usize, batch: u8, weak: Weakening) {
        for r in 0..self.processes[p].readers.len() {
            let Phase::Ordering(kept, b) = self.processes[p].readers[r].phase else {
                continue;
            };
            if b != batch {
                continue;
            }
            // `Near::still`: the same lookup is kept.
            let still = self.processes[p].near == Some(kept);
            match kept.value(self.scope, weak).filter(|_| still) {
                Some(v) => {
                    self.near_served = true;
                    self.finish(p, r, v);
                }
                None => self.lookup(p, r),
            }
        }
    }

    fn finish(&mut self, p: usize, r: usize, value: u8) {
        let reader = &mut self.processes[p].readers[r];
        if value < reader.must_see[reader.element()] {
            self.stale = true;
        }
        reader.phase = Phase::Done(value);
    }

    /// A batch returns what its slots hold (each checked against what its
    /// element must see).
    fn finish_batch(&mut self, p: usize, r: usize) {
        let reader = &mut self.processes[p].readers[r];
        for (e, slot) in reader.slots.iter().enumerate() {
            if slot.value().is_some_and(|v| v < reader.must_see[e]) {
                self.stale = true;
            }
        }
        reader.phase = Phase::BatchDone;
    }

    /// The reader reads through, the cache unused: the database's values.
    fn read_through(&mut self, p: usize, r: usize) {
        match self.processes[p].readers[r].reads {
            Reads::One(e) => {
                let value = self.db[e as usize];
                self.finish(p, r, value);
            }
            Reads::Batch => {
                let db = self.db;
                for (e, slot) in self.processes[p].readers[r].slots.iter_mut().enumerate() {
                    if !matches!(slot, Slot::Served(_)) {
                        *slot = Slot::Fetched(db[e]);
                    }
                }
                self.finish_batch(p, r);
            }
        }
    }

    /// Whether reader `i` of process `p` has a fill of element `e` under
    /// way (its flight): a single-key reader from its capture to its
    /// fill's reply, a batch from the moment it leads (its capture) to its
    /// fills' reply, for the elements it fetches.
    fn flies(&self, p: usize, i: usize, e: usize) -> bool {
        let x = &self.processes[p].readers[i];
        match x.reads {
            Reads::One(f) => {
                f as usize == e
                    && matches!(
                        x.phase,
                        Phase::Capturing | Phase::Body(_) | Phase::Read(..) | Phase::Filling(_)
                    )
            }
            Reads::Batch => {
                matches!(x.slots[e], Slot::Miss | Slot::Fetched(_))
                    && matches!(
                        x.phase,
                        Phase::Capturing
                            | Phase::BatchBody(_)
                            | Phase::BatchRead(_)
                            | Phase::BatchFilling
                    )
            }
        }
    }

    /// Whether another reader of process `p` has a fill of element `e`
    /// under way (its flight).
    fn leader(&self, p: usize, r: usize, e: usize) -> Option<usize> {
        (0..self.processes[p].readers.len()).find(|&i| i != r && self.flies(p, i, e))
    }

    /// A miss: following a flight of the process already under way, or
    /// `ensure` (run by Redis when it is sent) and then the body; with the
    /// weakening, the body first.
    fn miss(&mut self, p: usize, r: usize, weak: Weakening, locks: bool) {
        let e = self.processes[p].readers[r].element();
        if let Some(leader) = self.leader(p, r, e) {
            if self.processes[p].readers[leader].reads == Reads::Batch {
                self.batch_led = true;
            }
            self.processes[p].readers[r].phase = Phase::Following(leader as u8);
        } else if locks {
            // `lock_or_wait`: `SET NX` of the key's lock, or wait.
            match self.redis.lock {
                None => {
                    self.redis.lock = Some((p as u8, r as u8));
                    self.capture(p, r, weak);
                }
                Some(_) => self.processes[p].readers[r].phase = Phase::WaitingForLock,
            }
        } else {
            self.capture(p, r, weak);
        }
    }

    /// `ensure` (run by Redis when it is sent), then the body; with the
    /// weakening, the body first.
    fn capture(&mut self, p: usize, r: usize, weak: Weakening) {
        if weak == Weakening::CaptureAfterRead {
            self.processes[p].readers[r].phase = Phase::Body(None);
        } else {
            let e = self.processes[p].readers[r].element();
            let versions = self.ensure(e);
            self.processes[p]
                .conn
                .stream
                .push_back(Msg::Reply(r as u8, Reply::Captured(versions)));
            self.processes[p].readers[r].phase = Phase::Capturing;
        }
    }

    /// `fetch_batch`, after a lookup: each element it read is served if
    /// valid, followed if another reader's flight of it is under way, else
    /// to fetch; then it follows, if it follows any (leading none
    /// meanwhile), else leads every element to fetch: captures their
    /// versions, then runs its body; or returns, all served.
    fn batch_checks(&mut self, p: usize, r: usize, lookups: [Lookup; ELEMENTS], weak: Weakening) {
        for (e, lookup) in lookups.iter().enumerate() {
            if self.processes[p].readers[r].slots[e] != Slot::Unread {
                continue;
            }
            let slot = match lookup.value(self.scope, weak) {
                Some(v) => {
                    self.batch_hit = true;
                    Slot::Served(v)
                }
                None => match self.leader(p, r, e) {
                    Some(leader) => {
                        self.batch_followed = true;
                        Slot::Following(leader as u8)
                    }
                    None => Slot::Miss,
                },
            };
            self.processes[p].readers[r].slots[e] = slot;
        }
        self.batch_next(p, r, weak);
    }

    /// A batch whose elements are each served, followed or to fetch.
    fn batch_next(&mut self, p: usize, r: usize, weak: Weakening) {
        let slots = self.processes[p].readers[r].slots;
        if slots.iter().any(|s| matches!(s, Slot::Following(_))) {
            self.processes[p].readers[r].phase = Phase::BatchFollowing;
        } else if slots.contains(&Slot::Miss) {
            self.batch_captures(p, r, weak);
        } else {
            self.finish_batch(p, r);
        }
    }

    /// A batch's captures, run by Redis when they are sent: the versions
    /// of each element it fetches (with the weakening, none: the body
    /// first).
    fn batch_captures(&mut self, p: usize, r: usize, weak: Weakening) {
        if weak == Weakening::BatchCapturesAfterBody {
            self.processes[p].readers[r].phase = Phase::BatchBody([None; ELEMENTS]);
            return;
        }
        let slots = self.processes[p].readers[r].slots;
        let mut captured = [None; ELEMENTS];
        for (e, slot) in slots.iter().enumerate() {
            if *slot == Slot::Miss {
                captured[e] = Some(self.ensure(e));
            }
        }
        self.processes[p]
            .conn
            .stream
            .push_back(Msg::Reply(r as u8, Reply::CapturedEach(captured)));
        self.processes[p].readers[r].phase = Phase::Capturing;
    }

    /// A batch's fills (`fill_one` of each element it fetched): each value
    /// stored under the versions captured for its element, or as the
    /// weakening has it.
    fn batch_fills(
        &mut self,
        p: usize,
        r: usize,
        captured: [Option<[Token; 2]>; ELEMENTS],
        weak: Weakening,
    ) {
        let first = captured.iter().flatten().next().copied();
        let slots = self.processes[p].readers[r].slots;
        for (e, slot) in slots.iter().enumerate() {
            let Slot::Fetched(value) = *slot else {
                continue;
            };
            let versions = match (captured[e], weak) {
                // Captured now, after the body.
                (None, _) => self.ensure(e),
                (Some([_, tag]), Weakening::BatchStoresUnderTheTagsVersions) => {
                    [self.ensure(e)[0], tag]
                }
                (Some(versions), Weakening::BatchStoresUnderOneElementsVersions) => {
                    first.unwrap_or(versions)
                }
                (Some(versions), _) => versions,
            };
            self.redis.entries[e] = Some(Entry { value, versions });
            self.touched(Name::Entry(e as u8));
        }
        self.processes[p]
            .conn
            .stream
            .push_back(Msg::Reply(r as u8, Reply::Filled));
        self.processes[p].readers[r].phase = Phase::BatchFilling;
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut redis = Redis::default();
        let mut next_token = 0;
        if self.warm {
            let key = Token { token: 1, scope: 0 };
            let tag = Token { token: 2, scope: 0 };
            redis.keys[0] = Some(key);
            redis.tag = Some(tag);
            redis.entries[0] = Some(Entry {
                value: 0,
                versions: [key, tag],
            });
            next_token = 2;
        }
        redis.ns = self.leases.as_ref().and_then(|l| l.ns);
        let known = match &self.leases {
            Some(l) if l.known_at_start => l.ns.unwrap_or(0),
            _ => 0,
        };
        let warm = redis.lookup(0);
        let lingering = |p: usize| match &self.leases {
            Some(l) => l.lingering_at_start && l.reconnects == Reconnects::Lingers(p as u8),
            None => false,
        };
        let kept = |p: usize| match &self.leases {
            Some(l) if l.kept_at_start && self.warm && l.own[p] > 0 && self.readers[p] > 0 => {
                Some(warm)
            }
            _ => None,
        };
        let reads = |p: usize, r: usize| match &self.batches {
            Some(batches) => batches[p][r],
            None => Reads::One(0),
        };
        vec![State {
            db: [0; ELEMENTS],
            row: 0,
            failed_busts: 0,
            complete: [0; ELEMENTS],
            redis,
            snapshot: None,
            scope: 0,
            next_token,
            processes: self
                .readers
                .iter()
                .enumerate()
                .map(|(p, n)| Process {
                    conn: Conn {
                        tracked: match kept(p) {
                            Some(_) => names(0).to_vec(),
                            None => Vec::new(),
                        },
                        ..Conn::default()
                    },
                    old: lingering(p).then(|| {
                        Box::new(Conn {
                            open: Some(0),
                            ..Conn::default()
                        })
                    }),
                    near: kept(p),
                    near_old: false,
                    next_batch: lingering(p) as u8,
                    known,
                    reconnects: lingering(p) as u8,
                    refreshed_at: None,
                    pending: None,
                    readers: (0..*n as usize)
                        .map(|r| Reader {
                            reads: reads(p, r),
                            phase: Phase::Ready,
                            must_see: [0; ELEMENTS],
                            slots: [Slot::Unread; ELEMENTS],
                        })
                        .collect(),
                })
                .collect(),
            writer: Writer::Ready,
            writes: 0,
            losses: 0,
            restarts: 0,
            stale: false,
            near_served: false,
            returned: 0,
            retrying: None,
            now: 0,
            raised: false,
            lease_lost: false,
            recreated: false,
            largest_seen: self.leases.as_ref().map_or(0, |l| l.seen_at_start),
            lease_served: false,
            lease_tested: false,
            batch_hit: false,
            batch_followed: false,
            batch_led: false,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for (p, process) in state.processes.iter().enumerate() {
            let p8 = p as u8;
            if !process.conn.stream.is_empty() {
                actions.push(Action::Deliver { p: p8 });
            }
            if process.conn.open.is_some() {
                actions.push(Action::SendOrdering { p: p8 });
            }
            if let Some(old) = &process.old {
                if !old.stream.is_empty() {
                    actions.push(Action::DeliverOld { p: p8 });
                }
                if old.open.is_some() {
                    actions.push(Action::SendOrderingOld { p: p8 });
                }
            }
            if let Some(leases) = &self.leases {
                if leases.refreshes
                    && leases.own[p] > 0
                    && process.near.is_some()
                    && !process.near_old
                    && process.conn.open.is_none()
                    && process.refreshed_at != Some(state.now)
                {
                    actions.push(Action::Refresh { p: p8 });
                }
                let reconnects = match leases.reconnects {
                    Reconnects::Drops(q) | Reconnects::Lingers(q) => q == p8,
                    Reconnects::None => false,
                };
                if reconnects && process.reconnects == 0 {
                    actions.push(Action::Reconnect { p: p8 });
                }
            }
            for (r, reader) in process.readers.iter().enumerate() {
                let r8 = r as u8;
                match reader.phase {
                    Phase::Ready => actions.push(Action::Start { p: p8, r: r8 }),
                    Phase::Body(_) | Phase::BatchBody(_) => {
                        actions.push(Action::ReadDb { p: p8, r: r8 })
                    }
                    Phase::Read(..) | Phase::BatchRead(_) => {
                        actions.push(Action::Fill { p: p8, r: r8 })
                    }
                    Phase::Replied(..) | Phase::BatchReplied(_) => {
                        actions.push(Action::Keep { p: p8, r: r8 })
                    }
                    Phase::WaitingForLock => {
                        if state.redis.lock.is_none() {
                            actions.push(Action::LockFreed { p: p8, r: r8 });
                        }
                        actions.push(Action::LockWaitEnds { p: p8, r: r8 });
                    }
                    Phase::Following(leader)
                        if !state.flies(p, leader as usize, reader.element()) =>
                    {
                        actions.push(Action::FollowerWakes { p: p8, r: r8 });
                    }
                    Phase::BatchFollowing => {
                        // `join_all` of its follows: once every flight ended.
                        let ended = reader.slots.iter().enumerate().all(|(e, slot)| match slot {
                            Slot::Following(leader) => !state.flies(p, *leader as usize, e),
                            _ => true,
                        });
                        if ended {
                            actions.push(Action::FollowerWakes { p: p8, r: r8 });
                        }
                    }
                    _ => {}
                }
            }
        }
        match state.writer {
            Writer::Ready if state.writes < self.max_writes && self.batches.is_some() => {
                for e in 0..self.elements() {
                    actions.push(Action::WriteRow { e: e as u8 });
                }
            }
            Writer::Ready if state.writes < self.max_writes => actions.push(Action::Write),
            Writer::Open(_) => {
                actions.push(Action::Commit);
                if self.weakening == Weakening::BustBeforeCommit {
                    actions.push(Action::Bust { tag: false });
                    actions.push(Action::Bust { tag: true });
                }
            }
            Writer::BustedOpen(_) => actions.push(Action::Commit),
            Writer::Waiting(_, until) if state.now >= until => actions.push(Action::BustReturns),
            Writer::Wrote(_) => {
                actions.push(Action::Bust { tag: false });
                // With leases, key busts only: a tag bust takes the same
                // steps.
                if self.leases.is_none() {
                    actions.push(Action::Bust { tag: true });
                }
                if state.failed_busts < self.max_failed_busts {
                    actions.push(Action::BustFails { tag: false });
                    actions.push(Action::BustFails { tag: true });
                }
            }
            _ => {}
        }
        if state.processes[WRITER].pending.is_some() {
            actions.push(Action::Retry);
        }
        if state.retrying.is_some() {
            actions.push(Action::RetryLands);
        }
        if state.redis.lock.is_some() {
            actions.push(Action::LockExpires);
        }
        if state.losses < self.max_losses {
            for e in 0..self.elements() {
                for name in names(e) {
                    // The tag once.
                    if e == 0 || name != Name::Tag {
                        actions.push(Action::Lose(name));
                    }
                }
            }
        }
        if state.restarts < self.max_restarts {
            if state.snapshot.is_none() {
                actions.push(Action::Save);
            } else {
                actions.push(Action::Restart);
            }
        }
        if let Some(leases) = &self.leases {
            if state.now < leases.max_ticks {
                actions.push(Action::Tick);
            }
            if leases.raise.is_some() && !state.raised {
                actions.push(Action::RaiseLease);
            }
            if leases.lose && !state.lease_lost {
                actions.push(Action::LoseLease);
            }
            if leases.recreate.is_some() && !state.recreated && state.redis.ns.is_none() {
                actions.push(Action::RecreateLease);
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let weak = self.weakening;
        match action {
            Action::Start { p, r } => {
                let (p, r) = (p as usize, r as usize);
                // What the caller must see: every completed write, and in
                // the writer's process the write of a bust it keeps.
                let pending = s.processes[p].pending.map_or(0, |(_, v)| v);
                // (Kept busts are modelled with one element.)
                let returned = if p == WRITER { s.returned } else { 0 };
                let mut must_see = s.complete;
                must_see[0] = must_see[0].max(returned);
                s.processes[p].readers[r].must_see = must_see;
                if pending > 0 && weak != Weakening::ServeWhilePending {
                    // `pending.blocks`: read through.
                    s.read_through(p, r);
                    return Some(s);
                }
                // A lookup kept from an old connection is not served by a
                // hit on the current one. The near-cache keeps element 0's
                // lookup, for its single-key readers (a batch's elements
                // are read from Redis here).
                let near = s.processes[p]
                    .near
                    .filter(|_| !s.processes[p].near_old)
                    .filter(|_| s.processes[p].readers[r].reads == Reads::One(0));
                let process = &s.processes[p];
                let confirmed = process.conn.confirmed.is_some()
                    || process.old.as_ref().is_some_and(|o| o.confirmed.is_some());
                if near.is_some() && confirmed && process.readers[r].must_see[0] > 0 {
                    s.lease_tested = true;
                }
                match near {
                    Some(kept) if weak == Weakening::NearWithoutOrdering => {
                        match kept.value(s.scope, weak) {
                            Some(v) => {
                                s.near_served = true;
                                s.finish(p, r, v);
                            }
                            None => s.lookup(p, r),
                        }
                    }
                    Some(kept) if self.lease_hit(&s, p) => match kept.value(s.scope, weak) {
                        // `near/hit.rs`: served under a lease, at once.
                        Some(v) => {
                            s.near_served = true;
                            s.lease_served = true;
                            s.finish(p, r, v);
                        }
                        None => s.lookup(p, r),
                    },
                    Some(kept) => {
                        // `near_hit`: joins the open ordering batch, or
                        // opens one (`Tracking::order`).
                        let process = &mut s.processes[p];
                        let sent = process.conn.stream.iter().find_map(|m| match m {
                            Msg::Ordered(b) | Msg::Leased { batch: b, .. } => Some(*b),
                            _ => None,
                        });
                        let batch = match (process.conn.open, sent) {
                            (Some(b), _) => b,
                            (None, Some(b)) if weak == Weakening::JoinSentOrdering => b,
                            _ => {
                                let b = process.next_batch;
                                process.next_batch += 1;
                                process.conn.open = Some(b);
                                b
                            }
                        };
                        process.readers[r].phase = Phase::Ordering(kept, batch);
                    }
                    None => s.lookup(p, r),
                }
            }
            Action::Deliver { p } | Action::DeliverOld { p } => {
                let old = matches!(action, Action::DeliverOld { .. });
                let p = p as usize;
                let process = &mut s.processes[p];
                let conn = match process.old.as_deref_mut() {
                    Some(o) if old => o,
                    _ if old => return None,
                    _ => &mut process.conn,
                };
                let msg = conn.stream.pop_front()?;
                match msg {
                    Msg::Push(name) => {
                        // `near::apply`: what read the name is dropped, and
                        // lookups in flight of it are not kept (a batch's
                        // are not kept here anyway).
                        if names(0).contains(&name) {
                            s.processes[p].near = None;
                        }
                        for reader in &mut s.processes[p].readers {
                            let Reads::One(e) = reader.reads else {
                                continue;
                            };
                            if !names(e as usize).contains(&name) {
                                continue;
                            }
                            if let Phase::LookingUp { overtaken } | Phase::Replied(_, overtaken) =
                                &mut reader.phase
                            {
                                *overtaken = true;
                            }
                        }
                    }
                    Msg::Ordered(batch) => s.ordered(p, batch, weak),
                    Msg::Leased {
                        batch,
                        sent,
                        lease,
                        ns,
                    } => {
                        self.learned(&mut s, p, old, sent, lease, ns);
                        s.ordered(p, batch, weak);
                    }
                    // `Lease::forget`: none known until read again.
                    Msg::LeaseChanged => s.processes[p].known = 0,
                    Msg::Reply(r, reply) => {
                        let r = r as usize;
                        let phase = s.processes[p].readers[r].phase;
                        match (phase, reply) {
                            (Phase::LookingUp { overtaken }, Reply::Lookup(lookup)) => {
                                s.processes[p].readers[r].phase = Phase::Replied(lookup, overtaken);
                            }
                            (Phase::LookingUp { .. }, Reply::Lookups(lookups)) => {
                                s.processes[p].readers[r].phase = Phase::BatchReplied(lookups);
                            }
                            (Phase::Capturing, Reply::Captured(versions)) => {
                                s.processes[p].readers[r].phase = Phase::Body(Some(versions));
                            }
                            (Phase::Capturing, Reply::CapturedEach(captured)) => {
                                s.processes[p].readers[r].phase = Phase::BatchBody(captured);
                            }
                            (Phase::BatchFilling, Reply::Filled) => s.finish_batch(p, r),
                            (Phase::Filling(v), Reply::Filled) => {
                                // The lock is released by its holder only.
                                if s.redis.lock == Some((p as u8, r as u8)) {
                                    s.redis.lock = None;
                                }
                                s.finish(p, r, v)
                            }
                            _ => return None,
                        }
                    }
                }
            }
            Action::ReadDb { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let reader = &mut s.processes[p].readers[r];
                match reader.phase {
                    Phase::Body(captured) => {
                        reader.phase = Phase::Read(s.db[reader.element()], captured);
                    }
                    // The body, once, for every element to fetch.
                    Phase::BatchBody(captured) => {
                        for (e, slot) in reader.slots.iter_mut().enumerate() {
                            if *slot == Slot::Miss {
                                *slot = Slot::Fetched(s.db[e]);
                            }
                        }
                        reader.phase = Phase::BatchRead(captured);
                    }
                    _ => return None,
                }
            }
            Action::Fill { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let (value, captured) = match s.processes[p].readers[r].phase {
                    Phase::Read(value, captured) => (value, captured),
                    Phase::BatchRead(captured) => {
                        s.batch_fills(p, r, captured, weak);
                        return Some(s);
                    }
                    _ => return None,
                };
                let e = s.processes[p].readers[r].element();
                let versions = match captured {
                    Some(v) => v,
                    // The weakening captures now, after the read.
                    None => s.ensure(e),
                };
                // `fill`: the value under the versions captured.
                s.redis.entries[e] = Some(Entry { value, versions });
                s.touched(Name::Entry(e as u8));
                s.processes[p]
                    .conn
                    .stream
                    .push_back(Msg::Reply(r as u8, Reply::Filled));
                s.processes[p].readers[r].phase = Phase::Filling(value);
            }
            Action::FollowerWakes { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let takes = weak == Weakening::FollowerTakesLeadersValue;
                match s.processes[p].readers[r].phase {
                    Phase::Following(leader) => {
                        let e = s.processes[p].readers[r].element();
                        let leader = &s.processes[p].readers[leader as usize];
                        match leader.phase {
                            Phase::Done(v) if takes => s.finish(p, r, v),
                            Phase::BatchDone if weak == Weakening::FollowerTakesBatchsValue => {
                                match leader.slots[e].value() {
                                    Some(v) => s.finish(p, r, v),
                                    None => s.lookup(p, r),
                                }
                            }
                            _ => s.lookup(p, r),
                        }
                    }
                    // A batch reads again every element it followed.
                    Phase::BatchFollowing => {
                        let reader = &s.processes[p].readers[r];
                        let mut slots = reader.slots;
                        for slot in &mut slots {
                            if let Slot::Following(leader) = *slot {
                                *slot = match s.processes[p].readers[leader as usize].phase {
                                    Phase::Done(v) if takes => Slot::Served(v),
                                    _ => Slot::Unread,
                                };
                            }
                        }
                        s.processes[p].readers[r].slots = slots;
                        if slots.contains(&Slot::Unread) {
                            s.lookup(p, r);
                        } else {
                            s.batch_next(p, r, weak);
                        }
                    }
                    _ => return None,
                }
            }
            Action::Write | Action::WriteRow { .. } => {
                if let Action::WriteRow { e } = action {
                    s.row = e;
                }
                let row = s.row as usize;
                s.writes += 1;
                if self.transactions {
                    s.writer = Writer::Open(s.db[row] + 1);
                } else {
                    s.db[row] += 1;
                    s.writer = Writer::Wrote(s.db[row]);
                }
            }
            Action::Commit => match s.writer {
                // `deferred`: the held bust is sent once the commit is done.
                Writer::Open(value) => {
                    s.db[s.row as usize] = value;
                    s.writer = Writer::Wrote(value);
                }
                Writer::BustedOpen(value) => {
                    s.db[s.row as usize] = value;
                    s.complete[s.row as usize] = value;
                    s.writer = Writer::Ready;
                }
                _ => return None,
            },
            Action::Bust { tag } => match s.writer {
                Writer::Wrote(value) => {
                    s.bust(tag, weak);
                    match self.bust_returns_at(&mut s) {
                        Some(at) => s.writer = Writer::Waiting(value, at),
                        None => {
                            s.complete[s.row as usize] = value;
                            s.writer = Writer::Ready;
                        }
                    }
                }
                Writer::Open(value) => {
                    s.bust(tag, weak);
                    s.writer = Writer::BustedOpen(value);
                }
                _ => return None,
            },
            Action::BustFails { tag } => {
                let Writer::Wrote(value) = s.writer else {
                    return None;
                };
                s.failed_busts += 1;
                s.returned = value;
                s.processes[WRITER].pending = Some((tag, value));
                s.writer = Writer::Ready;
            }
            Action::Retry => {
                let (tag, value) = s.processes[WRITER].pending.take()?;
                if weak == Weakening::ClearPendingBeforeBust {
                    s.retrying = Some((tag, value));
                    return Some(s);
                }
                s.bust(tag, weak);
                s.complete[0] = s.complete[0].max(value);
            }
            Action::RetryLands => {
                let (tag, value) = s.retrying.take()?;
                s.bust(tag, weak);
                s.complete[0] = s.complete[0].max(value);
            }
            Action::Keep { p, r } => {
                let (p, r) = (p as usize, r as usize);
                let (lookup, overtaken) = match s.processes[p].readers[r].phase {
                    Phase::Replied(lookup, overtaken) => (lookup, overtaken),
                    Phase::BatchReplied(lookups) => {
                        s.batch_checks(p, r, lookups, weak);
                        return Some(s);
                    }
                    _ => return None,
                };
                let element0 = s.processes[p].readers[r].reads == Reads::One(0);
                if lookup.entry.is_some()
                    && element0
                    && (!overtaken || weak == Weakening::KeepOvertaken)
                {
                    // `Reading::keep`.
                    s.processes[p].near = Some(lookup);
                    s.processes[p].near_old = false;
                }
                match lookup.value(s.scope, weak) {
                    Some(v) => s.finish(p, r, v),
                    None => s.miss(p, r, weak, self.locks),
                }
            }
            Action::LockFreed { p, r } => {
                let (p, r) = (p as usize, r as usize);
                if s.processes[p].readers[r].phase != Phase::WaitingForLock {
                    return None;
                }
                s.lookup(p, r);
            }
            Action::LockWaitEnds { p, r } => {
                let (p, r) = (p as usize, r as usize);
                if s.processes[p].readers[r].phase != Phase::WaitingForLock {
                    return None;
                }
                s.capture(p, r, weak);
            }
            Action::LockExpires => s.redis.lock = None,
            Action::SendOrdering { p } | Action::SendOrderingOld { p } => {
                let old = matches!(action, Action::SendOrderingOld { .. });
                let p = p as usize;
                let batch = match s.processes[p].old.as_deref_mut() {
                    Some(o) if old => o.open.take()?,
                    _ if old => return None,
                    _ => s.processes[p].conn.open.take()?,
                };
                let msg = self.ordering(&s, p, batch);
                let process = &mut s.processes[p];
                let conn = match process.old.as_deref_mut() {
                    Some(o) if old => o,
                    _ => &mut process.conn,
                };
                if let Msg::Leased { .. } = msg {
                    conn.tracks_lease = true;
                }
                conn.stream.push_back(msg);
            }
            Action::Refresh { p } => {
                let process = &mut s.processes[p as usize];
                if process.conn.open.is_some() {
                    return None;
                }
                process.conn.open = Some(process.next_batch);
                process.next_batch += 1;
                process.refreshed_at = Some(s.now);
            }
            Action::Reconnect { p } => {
                let linger = matches!(self.leases.as_ref()?.reconnects, Reconnects::Lingers(_));
                self.reconnect(&mut s, p as usize, linger);
            }
            Action::Tick => s.now += 1,
            Action::BustReturns => {
                let Writer::Waiting(value, at) = s.writer else {
                    return None;
                };
                if s.now < at {
                    return None;
                }
                s.complete[s.row as usize] = value;
                s.writer = Writer::Ready;
            }
            Action::RaiseLease => {
                s.raised = true;
                s.add_lease(self.leases.as_ref()?.raise?);
            }
            Action::LoseLease => {
                s.lease_lost = true;
                s.redis.ns = None;
                s.redis.born = None;
                s.lease_touched();
            }
            Action::RecreateLease => {
                s.recreated = true;
                s.create_lease(self.leases.as_ref()?.recreate?);
            }
            Action::Lose(name) => {
                s.losses += 1;
                match name {
                    Name::Entry(e) => s.redis.entries[e as usize] = None,
                    Name::Key(e) => s.redis.keys[e as usize] = None,
                    Name::Tag => s.redis.tag = None,
                }
                s.touched(name);
            }
            Action::Save => s.snapshot = Some(s.redis.clone()),
            Action::Restart => {
                s.restarts += 1;
                s.redis = s.snapshot.take()?;
                s.scope += 1;
                // Every connection is lost: its stream with it, the
                // near-cache is emptied (the disconnection notice), and a
                // caller waiting on it reads through (runs its body).
                for p in 0..s.processes.len() {
                    let process = &mut s.processes[p];
                    process.conn = Conn::default();
                    process.old = None;
                    process.near = None;
                    process.near_old = false;
                    for r in 0..process.readers.len() {
                        // Its connection is gone: what it read is not kept.
                        if let Phase::Replied(_, overtaken) = &mut s.processes[p].readers[r].phase {
                            *overtaken = true;
                        }
                        match s.processes[p].readers[r].phase {
                            Phase::Filling(v) => s.finish(p, r, v),
                            // A batch's slots hold what its body read.
                            Phase::BatchFilling => s.finish_batch(p, r),
                            Phase::Ordering(..) | Phase::LookingUp { .. } | Phase::Capturing => {
                                s.read_through(p, r)
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![Property::always(
            "no read returns a value older than a completed write",
            |_, s: &State| !s.stale,
        )];
        if self.batches.is_none() {
            properties.push(Property::sometimes(
                "a read is served from process memory",
                |_, s: &State| s.near_served,
            ));
        } else {
            // The batch checks reach what they are about.
            properties.push(Property::sometimes(
                "a batch is served an element from the cache",
                |_, s: &State| s.batch_hit,
            ));
            properties.push(Property::sometimes(
                "a batch follows a single-key reader's flight",
                |_, s: &State| s.batch_followed,
            ));
            properties.push(Property::sometimes(
                "a single-key reader follows a batch's flight",
                |_, s: &State| s.batch_led,
            ));
        }
        if self.leases.is_some() {
            properties.push(Property::sometimes(
                "a read is served under a lease",
                |_, s: &State| s.lease_served,
            ));
            properties.push(Property::sometimes(
                "a read that started after a write completed finds a kept lookup and a confirmation",
                |_, s: &State| s.lease_tested,
            ));
        }
        properties
    }
}
