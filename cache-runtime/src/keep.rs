//! Decoded values kept beside their bytes, for types that are `Clone`: a
//! hit of an entry kept in memory (the embedded backend, the near-cache)
//! then clones the value instead of decoding it again.
//!
//! Whether a value type is `Clone` is known only where it is concrete: the
//! attribute's expansion picks a [`Keeper`] there, by auto-ref selection
//! (as `mode.rs` picks a mode), and hands it to the read path.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use crate::mode::Stores;

/// The decoded value of one stored entry, set by the first hit that
/// decodes it. It lives exactly as long as the bytes it was decoded from.
pub(crate) type Decoded = OnceLock<Kept>;

/// What a memory budget counts for the decoded value of an entry whose
/// value is `encoded` bytes long (decompressed): that, and a fixed slack. A
/// decoded value is kept only when its estimated size (`held.rs`) fits.
pub(crate) fn allowance(encoded: usize) -> usize {
    const SLACK: usize = 256;
    encoded.saturating_add(SLACK)
}

/// A slot for a new stored entry.
pub(crate) fn slot() -> Arc<Decoded> {
    Arc::new(OnceLock::new())
}

/// How values of type `V` are kept decoded, if they can be.
pub struct Keeper<V> {
    store: Option<Store<V>>,
    take: Option<Take<V>>,
}

/// A value, kept.
type Kept = Box<dyn Any + Send + Sync>;

/// Keeps a copy of a value.
type Store<V> = fn(&V) -> Kept;

/// Clones a kept value out, if it is a `V`.
type Take<V> = fn(&(dyn Any + Send + Sync)) -> Option<V>;

impl<V> Clone for Keeper<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Keeper<V> {}

impl<V> Keeper<V> {
    /// Values are always decoded.
    pub const fn none() -> Self {
        Keeper {
            store: None,
            take: None,
        }
    }

    /// The value kept in `slot`, if any.
    pub(crate) fn take(&self, slot: &Decoded) -> Option<V> {
        (self.take?)(slot.get()?.as_ref())
    }

    /// Keeps `value`, decoded from `encoded` bytes, in `slot` (unless
    /// another hit did first), if it holds no more memory than the budget
    /// counted for it ([`allowance`]); else marks the slot so that later
    /// hits decode without asking again.
    pub(crate) fn store(&self, slot: &Decoded, value: &V, encoded: usize)
    where
        V: serde::Serialize,
    {
        let Some(store) = self.store else {
            return;
        };
        if slot.get().is_some() {
            return;
        }
        let kept = match crate::held::within(value, allowance(encoded)) {
            Some(_) => store(value),
            None => Box::new(Declined),
        };
        let _ = slot.set(kept);
    }
}

/// A slot whose value was too large in memory to keep: no value is taken
/// from it.
struct Declined;

fn store<V: Clone + Send + Sync + 'static>(value: &V) -> Kept {
    Box::new(value.clone())
}

fn take<V: Clone + 'static>(kept: &(dyn Any + Send + Sync)) -> Option<V> {
    kept.downcast_ref::<V>().cloned()
}

/// Selects the keeper of the value type `V`; see the module docs.
pub struct KeepProbe<V>(PhantomData<fn() -> V>);

/// The probe for the value type that the mode `M` stores for a return
/// type `R`.
pub fn keep_probe<M: Stores<R>, R>(_: &M) -> KeepProbe<M::Stored> {
    KeepProbe(PhantomData)
}

/// A value type that is `Clone`: kept decoded.
pub trait KeepClone<V> {
    /// The keeper.
    fn __cachette_keeper(&self) -> Keeper<V>;
}

impl<V: Clone + Send + Sync + 'static> KeepClone<V> for &KeepProbe<V> {
    fn __cachette_keeper(&self) -> Keeper<V> {
        Keeper {
            store: Some(store::<V>),
            take: Some(take::<V>),
        }
    }
}

/// Any other value type: decoded at every hit.
pub trait KeepDecoding<V> {
    /// The keeper.
    fn __cachette_keeper(&self) -> Keeper<V>;
}

impl<V> KeepDecoding<V> for KeepProbe<V> {
    fn __cachette_keeper(&self) -> Keeper<V> {
        Keeper::none()
    }
}

#[cfg(test)]
#[allow(clippy::needless_borrow)] // the autoref is how the selection works
mod tests {
    use super::*;
    use crate::mode::{PlainMode, ResultMode};

    /// Stored, but not `Clone`.
    type NotClone = std::sync::Mutex<u8>;

    #[test]
    fn clone_values_are_kept_and_others_decoded() {
        let keeper = (&&keep_probe::<_, Result<String, ()>>(&ResultMode)).__cachette_keeper();
        let kept = slot();
        assert_eq!(keeper.take(&kept), None);
        keeper.store(&kept, &"ada".to_string(), 5);
        assert_eq!(keeper.take(&kept).as_deref(), Some("ada"));

        let keeper = (&&keep_probe::<_, NotClone>(&PlainMode)).__cachette_keeper();
        let kept = slot();
        keeper.store(&kept, &std::sync::Mutex::new(1), 1);
        assert!(kept.get().is_none());
        assert!(keeper.take(&kept).is_none());
    }

    #[test]
    fn a_value_larger_in_memory_than_counted_is_not_kept() {
        let keeper =
            (&&keep_probe::<_, Option<Vec<String>>>(&crate::mode::OptionMode)).__cachette_keeper();
        let short: Vec<String> = (0..10_000).map(|i| format!("{:02}", i % 100)).collect();
        // Three bytes each encoded (postcard), 56 in memory.
        let kept = slot();
        keeper.store(&kept, &short, 30_000);
        assert!(keeper.take(&kept).is_none());
        let kept = slot();
        keeper.store(&kept, &short, 600_000);
        assert_eq!(keeper.take(&kept), Some(short));
    }
}
