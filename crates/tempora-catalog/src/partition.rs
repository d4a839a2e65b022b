//! Space partitioning: which hash partition a row of a hypertable with space
//! dimensions (`by_hash`, `add_dimension(..., number_partitions => N)`)
//! belongs to, exactly as TimescaleDB places it, so that a row lands in the
//! chunk TimescaleDB would put it in.
//!
//! A row's coordinate in a space dimension is its value's partition hash:
//! the value hashed with PostgreSQL's hash function for the column's type
//! (`hashint4`, `hashint8`, `hashtext`, ...), its sign bit cleared
//! (TimescaleDB's `get_partition_hash`). NULL is coordinate 0. The
//! dimension's N partitions split [0, 2^31 - 1) into N equal slices, the
//! first open below and the last open above (TimescaleDB's dimension slices).
//!
//! PostgreSQL's hash functions all end in `hash_any` (Bob Jenkins' lookup3
//! hash, as PostgreSQL adapted it) or its one-word form `hash_uint32`, both
//! written here from the algorithm's description.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use tempora_common::{Result, TemporaError};

use crate::PgType;

/// The lowest and highest coordinates a dimension slice can start or end at
/// (the first hash slice starts at the one, the last ends at the other).
pub const SLICE_MIN: i64 = i64::MIN;
pub const SLICE_MAX: i64 = i64::MAX;

/// Partition hashes lie in [0, HASH_MAX]; the slices divide this range.
const HASH_MAX: i64 = i32::MAX as i64;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01), which
/// PostgreSQL's timestamps count from.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The lookup3 state initialiser PostgreSQL uses (the golden ratio, plus a
/// constant of its own).
const INIT: u32 = 0x9e37_79b9u32.wrapping_add(3_923_095);

/// lookup3's `mix`: reversibly scrambles the three state words.
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// lookup3's `final`: mixes the state into `c`, the result.
fn finish(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    c
}

/// Little-endian word of up to four bytes.
fn word(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .enumerate()
        .fold(0u32, |w, (i, b)| w | (*b as u32) << (8 * i))
}

/// PostgreSQL's `hash_any` (`hash_bytes`) of a byte string, as on a
/// little-endian machine: twelve bytes at a time into the three state
/// words, then the rest, whose bytes for `c` start one byte up (its low
/// byte belongs to the length in lookup3's design), then `final` always.
pub fn hash_bytes(key: &[u8]) -> u32 {
    let init = INIT.wrapping_add(key.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut rest = key;
    while rest.len() >= 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    let n = rest.len();
    a = a.wrapping_add(word(&rest[..n.min(4)]));
    if n > 4 {
        b = b.wrapping_add(word(&rest[4..n.min(8)]));
    }
    if n > 8 {
        c = c.wrapping_add(word(&rest[8..n]) << 8);
    }
    finish(a, b, c)
}

/// PostgreSQL's `hash_uint32`: `hash_any` of one word, shortened.
pub fn hash_u32(k: u32) -> u32 {
    let init = INIT.wrapping_add(4);
    finish(init.wrapping_add(k), init, init)
}

/// PostgreSQL's `hashint8`: the high half folded into the low one (its
/// complement for negative values, so that values equal to an int4 hash
/// alike), then `hash_uint32`.
pub fn hash_i64(v: i64) -> u32 {
    let lo = v as u32;
    let hi = (v >> 32) as u32;
    hash_u32(if v >= 0 { lo ^ hi } else { lo ^ !hi })
}

/// PostgreSQL's `hashfloat8`: zero (either sign) hashes to 0, every NaN as
/// the one canonical NaN, anything else as its eight bytes.
pub fn hash_f64(v: f64) -> u32 {
    if v == 0.0 {
        return 0;
    }
    let v = if v.is_nan() { f64::NAN } else { v };
    hash_bytes(&v.to_le_bytes())
}

/// TimescaleDB's partition hash of a hash value: its sign bit cleared.
fn partition(hash: u32) -> i64 {
    (hash & 0x7fff_ffff) as i64
}

/// Whether a column of this type can be a space dimension.
pub fn hashable(ty: &PgType) -> bool {
    !matches!(ty, PgType::Numeric { .. })
}

/// The partition hash of every value of `arr`, a column of type `ty`
/// (NULL: 0, as TimescaleDB places a NULL).
pub fn partition_hashes(arr: &ArrayRef, ty: &PgType) -> Result<Vec<i64>> {
    let target = ty.arrow_type();
    let arr = if arr.data_type() == &target {
        arr.clone()
    } else {
        datafusion::arrow::compute::cast(arr, &target)
            .map_err(|e| TemporaError::internal(format!("partition hash: {e}")))?
    };
    fn each<A: Array>(a: Option<&A>, f: impl Fn(&A, usize) -> u32) -> Result<Vec<i64>> {
        let a = a.ok_or_else(|| TemporaError::internal("partition hash: unexpected array"))?;
        Ok((0..a.len())
            .map(|i| if a.is_null(i) { 0 } else { partition(f(a, i)) })
            .collect())
    }
    let any = arr.as_any();
    match ty {
        PgType::Bool => each(any.downcast_ref::<BooleanArray>(), |a, i| {
            hash_u32(a.value(i) as u32)
        }),
        PgType::Int2 => each(any.downcast_ref::<Int16Array>(), |a, i| {
            hash_u32(a.value(i) as i32 as u32)
        }),
        PgType::Int4 => each(any.downcast_ref::<Int32Array>(), |a, i| {
            hash_u32(a.value(i) as u32)
        }),
        PgType::Int8 => each(any.downcast_ref::<Int64Array>(), |a, i| {
            hash_i64(a.value(i))
        }),
        PgType::Float4 => each(any.downcast_ref::<Float32Array>(), |a, i| {
            hash_f64(a.value(i) as f64)
        }),
        PgType::Float8 => each(any.downcast_ref::<Float64Array>(), |a, i| {
            hash_f64(a.value(i))
        }),
        PgType::Text | PgType::Varchar(_) => each(any.downcast_ref::<StringArray>(), |a, i| {
            hash_bytes(a.value(i).as_bytes())
        }),
        PgType::Bytea => each(any.downcast_ref::<BinaryArray>(), |a, i| {
            hash_bytes(a.value(i))
        }),
        PgType::Date => each(any.downcast_ref::<Date32Array>(), |a, i| {
            hash_u32(a.value(i).wrapping_sub(PG_EPOCH_DAYS) as u32)
        }),
        PgType::Timestamp | PgType::Timestamptz => {
            each(any.downcast_ref::<TimestampMicrosecondArray>(), |a, i| {
                hash_i64(a.value(i).wrapping_sub(PG_EPOCH_MICROS))
            })
        }
        PgType::Numeric { .. } => Err(TemporaError::not_supported(
            "space partitioning on a numeric column",
        )),
        PgType::Json | PgType::Jsonb | PgType::Uuid => Err(TemporaError::not_supported(
            "space partitioning on a json, jsonb or uuid column",
        )),
    }
}

/// The partition hash of a constant compared with a column of type `ty`,
/// when the constant is of the column's own type (a query's `device = 'x'`
/// after planning); None when it is not, or is NULL.
pub fn scalar_partition_hash(v: &ScalarValue, ty: &PgType) -> Option<i64> {
    if v.is_null() || !hashable(ty) {
        return None;
    }
    let target = ty.arrow_type();
    let same = match (&v.data_type(), &target) {
        (DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8, DataType::Utf8) => true,
        (DataType::Binary | DataType::BinaryView | DataType::LargeBinary, DataType::Binary) => true,
        (a, b) => a == b,
    };
    if !same {
        return None;
    }
    let arr: ArrayRef = v.to_array().ok()?;
    let arr = if arr.data_type() == &target {
        arr
    } else {
        Arc::new(datafusion::arrow::compute::cast(&arr, &target).ok()?)
    };
    partition_hashes(&arr, ty).ok()?.first().copied()
}

/// The slice of a dimension of `partitions` partitions holding `hash`:
/// [start, end), the first starting at [`SLICE_MIN`], the last (which also
/// takes what the integer division leaves over) ending at [`SLICE_MAX`].
pub fn hash_slice(hash: i64, partitions: u16) -> (i64, i64) {
    let n = partitions.max(1) as i64;
    let width = HASH_MAX / n;
    let last_start = width * (n - 1);
    let (start, end) = if hash >= last_start {
        (last_start, SLICE_MAX)
    } else {
        let start = hash / width * width;
        (start, start + width)
    };
    (if start == 0 { SLICE_MIN } else { start }, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(arr: ArrayRef, ty: PgType) -> i64 {
        partition_hashes(&arr, &ty).unwrap()[0]
    }

    /// TimescaleDB's `get_partition_hash` of these values.
    #[test]
    fn partition_hashes_match_timescaledb() {
        assert_eq!(
            hash_of(Arc::new(Int32Array::from(vec![1])), PgType::Int4),
            242423622
        );
        assert_eq!(
            hash_of(Arc::new(Int64Array::from(vec![1])), PgType::Int8),
            242423622
        );
        assert_eq!(
            hash_of(Arc::new(Int16Array::from(vec![1])), PgType::Int2),
            242423622
        );
        assert_eq!(
            hash_of(Arc::new(BooleanArray::from(vec![true])), PgType::Bool),
            242423622
        );
        assert_eq!(
            hash_of(Arc::new(Float64Array::from(vec![1.0])), PgType::Float8),
            376496956
        );
        assert_eq!(
            hash_of(Arc::new(Float32Array::from(vec![1.0])), PgType::Float4),
            376496956
        );
        let text = |s: &str| hash_of(Arc::new(StringArray::from(vec![s])), PgType::Text);
        assert_eq!(text("c"), 1903644986);
        assert_eq!(text("test"), 1771415073);
        assert_eq!(text("1"), 1516350201);
        assert_eq!(text("187"), 1161071810);
        // Three whole 12-byte blocks.
        assert_eq!(text("4b6a5eec-b344-11e7-abc4-cec278b6b50a"), 934882099);
        assert_eq!(
            hash_of(
                Arc::new(BinaryArray::from(vec![b"c".as_ref()])),
                PgType::Bytea
            ),
            1903644986
        );
        // 2017-03-22 09:18:23 and 2017-03-22.
        assert_eq!(
            hash_of(
                Arc::new(TimestampMicrosecondArray::from(vec![1_490_174_303_000_000])),
                PgType::Timestamp
            ),
            307315039
        );
        assert_eq!(
            hash_of(Arc::new(Date32Array::from(vec![17247])), PgType::Date),
            693590295
        );
        // NULL is coordinate 0.
        assert_eq!(
            hash_of(Arc::new(Int32Array::from(vec![None])), PgType::Int4),
            0
        );
    }

    #[test]
    fn slices_split_the_hash_range_evenly() {
        // Four partitions of [0, 2^31 - 1).
        let w = 2147483647 / 4;
        assert_eq!(hash_slice(0, 4), (SLICE_MIN, w));
        assert_eq!(hash_slice(w - 1, 4), (SLICE_MIN, w));
        assert_eq!(hash_slice(w, 4), (w, 2 * w));
        assert_eq!(hash_slice(3 * w, 4), (3 * w, SLICE_MAX));
        assert_eq!(hash_slice(i32::MAX as i64, 4), (3 * w, SLICE_MAX));
        assert_eq!(hash_slice(12345, 1), (SLICE_MIN, SLICE_MAX));
    }

    #[test]
    fn scalar_hash_needs_the_column_type() {
        let text = ScalarValue::Utf8View(Some("test".into()));
        assert_eq!(
            scalar_partition_hash(&text, &PgType::Text),
            Some(1771415073)
        );
        assert_eq!(
            scalar_partition_hash(&ScalarValue::Int32(Some(1)), &PgType::Int4),
            Some(242423622)
        );
        // An int8 constant against an int4 column: the planner compares
        // them as int8, and no exclusion is drawn from it.
        assert_eq!(
            scalar_partition_hash(&ScalarValue::Int64(Some(1)), &PgType::Int4),
            None
        );
        assert_eq!(
            scalar_partition_hash(&ScalarValue::Int32(None), &PgType::Int4),
            None
        );
    }
}
