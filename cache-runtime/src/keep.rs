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
/// value is `encoded` bytes long (decompressed): twice that, and a fixed
/// slack. A decoded value is kept only when its estimated size
/// (`held.rs`) fits. Twice, because a struct of short strings takes about
/// twice its JSON in memory (each `String` is a 24-byte header and a heap
/// block of at least 16 bytes): with the bytes alone as the allowance, a
/// typical record was declined and decoded at every hit.
pub(crate) fn allowance(encoded: usize) -> usize {
    const SLACK: usize = 256;
    encoded.saturating_mul(2).saturating_add(SLACK)
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

    /// A record of short strings, as services cache them, is kept: its
    /// estimate fits the allowance of its JSON.
    #[test]
    fn a_record_of_short_strings_fits_its_allowance() {
        struct User {
            id: u64,
            name: String,
            email: String,
            org: String,
            roles: Vec<String>,
            created_at: String,
            active: bool,
            score: f64,
        }
        // What `#[derive(Serialize)]` writes.
        impl serde::Serialize for User {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let mut st = s.serialize_struct("User", 8)?;
                st.serialize_field("id", &self.id)?;
                st.serialize_field("name", &self.name)?;
                st.serialize_field("email", &self.email)?;
                st.serialize_field("org", &self.org)?;
                st.serialize_field("roles", &self.roles)?;
                st.serialize_field("created_at", &self.created_at)?;
                st.serialize_field("active", &self.active)?;
                st.serialize_field("score", &self.score)?;
                st.end()
            }
        }
        let user = User {
            id: 1,
            name: "Ada Lovelace".into(),
            email: "ada.lovelace@example.com".into(),
            org: "analytical-engines".into(),
            roles: vec!["admin".into(), "editor".into(), "billing".into()],
            created_at: "2026-11-27T12:00:00Z".into(),
            active: true,
            score: 98.25,
        };
        let encoded = serde_json::to_vec(&user).unwrap().len();
        assert!(
            crate::held::within(&user, allowance(encoded)).is_some(),
            "{encoded} bytes of JSON, estimated at {:?}",
            crate::held::within(&user, usize::MAX)
        );
    }
}
