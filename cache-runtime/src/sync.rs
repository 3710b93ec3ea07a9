//! Locks that outlive a panic. A thread that panicked while holding one
//! of the library's locks left its state consistent (every critical
//! section here is a few assignments), so a poisoned lock is used as is.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The primitives loom checks (feature `__loom`, in `loom.rs`): the same
/// as std's otherwise.
pub(crate) mod checked {
    #[cfg(feature = "__loom")]
    pub(crate) use loom::sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64},
        Mutex, MutexGuard,
    };
    #[cfg(not(feature = "__loom"))]
    pub(crate) use std::sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64},
        Mutex, MutexGuard,
    };

    /// Locks `mutex`, whether a thread panicked in it or not.
    pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
