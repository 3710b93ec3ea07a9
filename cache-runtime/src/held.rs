//! An estimate of what a decoded value holds in memory, from its `Serialize`
//! implementation: a value kept decoded beside its entry (`keep.rs`) is
//! counted in a memory budget at its encoded length, so it is kept only
//! when this estimate fits in what was counted. A `Vec<String>` of short
//! strings takes a few bytes each encoded and about 56 in memory; it is
//! decoded at every hit instead.
//!
//! The estimate walks the value as a serializer would, and stops as soon as
//! it passes its limit. It counts each primitive at its size, each string
//! or byte string as a `String` holds it (the 24-byte header and a heap
//! block of at least 16 bytes, plus the allocator's 16), each sequence and
//! map with its header and allocation, each option and enum with a tag.

use serde::ser::{self, Serialize};

/// What an owned string or byte string of `len` bytes takes.
fn owned(len: usize) -> usize {
    24 + len.max(16) + 16
}

/// What a sequence or map takes besides its elements.
const COLLECTION: usize = 24 + 16;

/// What a map takes per entry besides its key and value.
const MAP_ENTRY: usize = 16;

/// What an option's or an enum's tag takes.
const TAG: usize = 8;

/// The estimate for `value`, if it is at most `limit` bytes.
pub(crate) fn within<T: Serialize + ?Sized>(value: &T, limit: usize) -> Option<usize> {
    let mut sizer = Sizer { total: 0, limit };
    value.serialize(&mut sizer).ok()?;
    Some(sizer.total)
}

struct Sizer {
    total: usize,
    limit: usize,
}

/// The walk stopped: past the limit, or the value refused to serialize.
#[derive(Debug)]
struct Over;

impl std::fmt::Display for Over {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("over the limit")
    }
}

impl std::error::Error for Over {}

impl ser::Error for Over {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Over
    }
}

impl Sizer {
    fn add(&mut self, n: usize) -> Result<(), Over> {
        self.total = self.total.saturating_add(n);
        if self.total > self.limit {
            Err(Over)
        } else {
            Ok(())
        }
    }
}

macro_rules! primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Over> {
            self.add(std::mem::size_of::<$ty>())
        })*
    };
}

impl ser::Serializer for &mut Sizer {
    type Ok = ();
    type Error = Over;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    primitives!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char,
    );

    fn serialize_str(self, v: &str) -> Result<(), Over> {
        self.add(owned(v.len()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Over> {
        self.add(owned(v.len()))
    }

    fn serialize_none(self) -> Result<(), Over> {
        self.add(TAG)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Over> {
        self.add(TAG)?;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Over> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Over> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Over> {
        self.add(TAG)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Over> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Over> {
        self.add(TAG)?;
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Over> {
        self.add(COLLECTION)?;
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Over> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Over> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Over> {
        self.add(TAG)?;
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Over> {
        self.add(COLLECTION)?;
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Over> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Over> {
        self.add(TAG)?;
        Ok(self)
    }
}

/// Every compound's elements and fields are counted as they come.
macro_rules! compound {
    ($($trait:ident: $method:ident $(, $key:ty)?);* $(;)?) => {
        $(impl ser::$trait for &mut Sizer {
            type Ok = ();
            type Error = Over;

            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $key,)? value: &T) -> Result<(), Over> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Over> {
                Ok(())
            }
        })*
    };
}

compound!(
    SerializeSeq: serialize_element;
    SerializeTuple: serialize_element;
    SerializeTupleStruct: serialize_field;
    SerializeTupleVariant: serialize_field;
    SerializeStruct: serialize_field, &'static str;
    SerializeStructVariant: serialize_field, &'static str;
);

impl ser::SerializeMap for &mut Sizer {
    type Ok = ();
    type Error = Over;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Over> {
        self.add(MAP_ENTRY)?;
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Over> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Over> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_counted_as_they_are_held() {
        let short: Vec<String> = (0..1000).map(|i| format!("{:02}", i % 100)).collect();
        assert_eq!(within(&short, usize::MAX), Some(COLLECTION + 1000 * 56));
        assert_eq!(within(&short, 10_000), None, "stops past the limit");
        let long = "x".repeat(900_000);
        assert_eq!(within(&long, usize::MAX), Some(900_040));
        assert_eq!(within(&7u64, 8), Some(8));
        assert_eq!(within(&Some(1u8), 100), Some(9));
    }
}
