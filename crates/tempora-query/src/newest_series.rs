//! Each series' newest time without reading every chunk.
//!
//! [`crate::last_point::LastPointJoin`] answers `SELECT DISTINCT ON (series)
//! ... ORDER BY series, time DESC` from each series' newest time, a grouped
//! `max(time)`. That aggregate needs only the chunks that hold some series'
//! newest row: going from the newest chunk back, once every series of the
//! older chunks has rows in the chunks already taken, the older ones cannot
//! change any maximum. Files record their series column's distinct values
//! ([`tempora_catalog::FileDef::series`]), so the cut is found from the
//! catalog alone, when the scan is planned.
//!
//! The rule marks the aggregate's input with [`newest_per_series`], a filter
//! that keeps every row (so wherever DataFusion evaluates it, the answer is
//! the same) and that the table's scan takes as its own
//! ([`TemporaTable`](crate::provider::TemporaTable) reports it `Exact`): the
//! scan then leaves out the chunks before [`cutoff`]. Files record each
//! value's newest time as well: where the scan reads only the series and time
//! columns, a recorded file is not read at all, one row per series at its
//! newest time in the file standing for its rows (`TemporaTable::newest_rows`;
//! the grouped `max` over them is the same).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Int16Array, Int32Array, Int64Array,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_catalog::TableDef;

/// The marker's name.
pub const NAME: &str = "tempora_newest_per_series";

/// How many cut points [`cutoff`] tries, newest first: it costs a pass over
/// the older chunks' series per try.
const TRIES: usize = 8;

#[derive(Debug, PartialEq, Eq, Hash)]
struct NewestPerSeries {
    signature: Signature,
}

impl ScalarUDFImpl for NewestPerSeries {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
            true;
            args.number_rows
        ]))))
    }
}

/// `tempora_newest_per_series(series, time)`: true for every row; see the
/// module documentation.
pub fn newest_per_series_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(NewestPerSeries {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// The marker over `series` and `time`.
pub fn newest_per_series(series: Expr, time: Expr) -> Expr {
    Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
        Arc::new(newest_per_series_udf()),
        vec![series, time],
    ))
}

/// The series and time column names of a marker filter.
pub fn marker_columns(e: &Expr) -> Option<(&str, &str)> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    if f.name() != NAME {
        return None;
    }
    match f.args.as_slice() {
        [Expr::Column(series), Expr::Column(time)] => Some((&series.name, &time.name)),
        _ => None,
    }
}

/// The start of the newest chunk boundary before which every chunk's series
/// also have rows in the chunks from it on, so that a scan from there finds
/// every series' newest time; None when no chunk can be left out.
///
/// `series` is the column the files record ([`TableDef::series_column`]);
/// `unflushed` the chunks holding rows not yet in files, whose series are
/// not known (they are never left out, and count for nothing as newer rows).
pub fn cutoff(def: &TableDef, series: u32, unflushed: &HashSet<u32>) -> Option<i64> {
    let known = |c: &tempora_catalog::ChunkDef| {
        !unflushed.contains(&c.id)
            && c.files
                .iter()
                .all(|f| f.series.as_ref().is_some_and(|s| s.column == series))
    };
    // A chunk whose series are unknown must be read: no cut at or after
    // its start.
    let limit = def
        .chunks
        .values()
        .filter(|c| !known(c))
        .map(|c| c.range_start)
        .min()
        .unwrap_or(i64::MAX);
    let mut starts: Vec<i64> = def
        .chunks
        .values()
        .map(|c| c.range_start)
        .filter(|&s| s <= limit)
        .collect();
    starts.sort_unstable_by(|a, b| b.cmp(a));
    starts.dedup();
    for &cut in starts.iter().take(TRIES) {
        // A cut through a chunk's range would read part of it.
        if def
            .chunks
            .values()
            .any(|c| c.range_start < cut && c.range_end > cut)
        {
            continue;
        }
        let older: Vec<_> = def.chunks.values().filter(|c| c.range_end <= cut).collect();
        if older.is_empty() {
            continue;
        }
        let newer: HashSet<&Option<String>> = def
            .chunks
            .values()
            .filter(|c| c.range_start >= cut)
            .flat_map(|c| &c.files)
            .filter_map(|f| f.series.as_ref().filter(|s| s.column == series))
            .flat_map(|s| s.values.iter())
            .collect();
        let covered = older
            .iter()
            .flat_map(|c| &c.files)
            .filter_map(|f| f.series.as_ref())
            .flat_map(|s| s.values.iter())
            .all(|v| newer.contains(v));
        if covered {
            return Some(cut);
        }
    }
    None
}

/// Times in the catalog's units (microseconds for temporal columns) as an
/// array of the time column's type; None for a type files do not record.
pub fn time_array(ty: &DataType, times: Vec<i64>) -> Option<ArrayRef> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    Some(match ty {
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone_opt(zone.clone()))
        }
        DataType::Date32 => Arc::new(Date32Array::from_iter_values(
            times.into_iter().map(|t| (t / MICROS_PER_DAY) as i32),
        )),
        DataType::Int64 => Arc::new(Int64Array::from(times)),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(
            times.into_iter().map(|t| t as i32),
        )),
        DataType::Int16 => Arc::new(Int16Array::from_iter_values(
            times.into_iter().map(|t| t as i16),
        )),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempora_catalog::{ChunkDef, FileDef, FileSeries};

    fn chunk(id: u32, start: i64, files: Vec<Option<Vec<&str>>>) -> ChunkDef {
        let files = files
            .into_iter()
            .enumerate()
            .map(|(i, series)| FileDef {
                path: format!("{id}/{i}"),
                rows: 1,
                bytes: 1,
                min_time: Some(start),
                max_time: Some(start + 9),
                compressed: false,
                series: series.map(|v| FileSeries {
                    column: 7,
                    newest: Arc::new(vec![start + 9; v.len()]),
                    values: Arc::new(v.into_iter().map(|s| Some(s.to_string())).collect()),
                    counts: Default::default(),
                }),
            })
            .collect();
        ChunkDef {
            id,
            range_start: start,
            range_end: start + 10,
            files,
            ..Default::default()
        }
    }

    fn table(chunks: Vec<ChunkDef>) -> TableDef {
        TableDef {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            chunks: chunks.into_iter().map(|c| (c.id, c)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn older_chunks_whose_series_all_have_newer_rows_are_left_out() {
        let t = table(vec![
            chunk(1, 0, vec![Some(vec!["a", "b", "c"])]),
            chunk(2, 10, vec![Some(vec!["a", "b"])]),
            chunk(3, 20, vec![Some(vec!["b"]), Some(vec!["a"])]),
        ]);
        // "c" is only in chunk 1: chunks 2 and 3 cannot answer alone.
        assert_eq!(cutoff(&t, 7, &HashSet::new()), None);
        let t = table(vec![
            chunk(1, 0, vec![Some(vec!["a", "b"])]),
            chunk(2, 10, vec![Some(vec!["a", "c"])]),
            chunk(3, 20, vec![Some(vec!["c"]), Some(vec!["a"])]),
        ]);
        // "b" has no rows after chunk 1; chunk 2's "c" and "a" are in chunk 3.
        assert_eq!(cutoff(&t, 7, &HashSet::new()), None);
        let t = table(vec![
            chunk(1, 0, vec![Some(vec!["a", "b"])]),
            chunk(2, 10, vec![Some(vec!["b", "c"])]),
            chunk(3, 20, vec![Some(vec!["c"]), Some(vec!["a"])]),
        ]);
        assert_eq!(cutoff(&t, 7, &HashSet::new()), Some(10));
        let t = table(vec![
            chunk(1, 0, vec![Some(vec!["a", "b"])]),
            chunk(2, 10, vec![Some(vec!["b", "a"])]),
            chunk(3, 20, vec![Some(vec!["b"]), Some(vec!["a"])]),
        ]);
        assert_eq!(cutoff(&t, 7, &HashSet::new()), Some(20));
    }

    #[test]
    fn unknown_series_keep_their_chunks() {
        let chunks = || {
            vec![
                chunk(1, 0, vec![Some(vec!["a"])]),
                chunk(2, 10, vec![None]),
                chunk(3, 20, vec![Some(vec!["a"])]),
            ]
        };
        // Chunk 2's file records nothing: it is read, chunk 1 need not be.
        assert_eq!(cutoff(&table(chunks()), 7, &HashSet::new()), Some(10));
        // Unflushed rows in chunk 1: nothing is left out.
        assert_eq!(cutoff(&table(chunks()), 7, &HashSet::from([1])), None);
        // Another column's values say nothing of this one.
        assert_eq!(cutoff(&table(chunks()), 8, &HashSet::new()), None);
        // Unflushed rows of the newest chunk count for nothing as newer rows.
        let t = table(vec![
            chunk(1, 0, vec![Some(vec!["a"])]),
            chunk(2, 10, vec![]),
        ]);
        assert_eq!(cutoff(&t, 7, &HashSet::from([2])), None);
    }
}
