//! Compression as queries see it: `compress_chunk(chunk)`,
//! `decompress_chunk(chunk)` and `reorder_chunk(chunk[, index])` (functions called per row, as in
//! `SELECT compress_chunk(c) FROM show_chunks('t', older_than => ...) c`),
//! `hypertable_compression_stats(t)`, `chunk_compression_stats(t)` and the
//! settings views of `timescaledb_information`.
//!
//! The work itself is the engine's (`tempora-storage/src/compression.rs`);
//! the functions are async UDFs, so each call runs in the query's own task.
//! Their NOTICEs go to the session's [`SessionNotices`], which the SQL layer
//! sends before the result.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Array, Int64Array, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use parking_lot::Mutex;
use tempora_catalog::{CatalogState, ChunkDef, TableDef, CHUNK_SCHEMA};
use tempora_common::{SqlState, TemporaError};
use tempora_storage::Engine;

use crate::information::{hypertables, int64, strings, table_of, text};

/// A NOTICE or WARNING raised while a statement runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingNotice {
    pub severity: &'static str,
    pub code: SqlState,
    pub message: String,
}

/// Messages functions raise during a statement, sent to the client before
/// its result; a session configuration extension.
#[derive(Debug, Default)]
pub struct SessionNotices(Mutex<Vec<PendingNotice>>);

impl SessionNotices {
    pub fn push(&self, code: SqlState, message: String) {
        self.0.lock().push(PendingNotice {
            severity: "NOTICE",
            code,
            message,
        });
    }

    /// The messages raised since the last call.
    pub fn take(&self) -> Vec<PendingNotice> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// The chunk a `compress_chunk` argument names: `_timescaledb_internal._hyper_H_C_chunk`
/// (the schema may be left out). 42704 for a table that is not a chunk, 42P01
/// for no relation at all.
pub fn chunk_named<'a>(
    state: &'a CatalogState,
    rel: &str,
) -> Result<(&'a TableDef, &'a ChunkDef), TemporaError> {
    let (schema, name) = crate::split_qualified(rel);
    let ids = name
        .strip_prefix("_hyper_")
        .and_then(|s| s.strip_suffix("_chunk"))
        .and_then(|s| s.split_once('_'))
        .and_then(|(h, c)| Some((h.parse::<u32>().ok()?, c.parse::<u32>().ok()?)));
    let found = ids
        .filter(|_| schema == CHUNK_SCHEMA || !rel.contains('.'))
        .and_then(|(h, c)| {
            let table = state.hypertable_by_id(h)?;
            Some((table, table.chunks.get(&c)?))
        });
    match found {
        Some(f) => Ok(f),
        None if state.table(&schema, &name).is_some() || ids.is_some() => Err(TemporaError::new(
            SqlState::UNDEFINED_OBJECT,
            "chunk not found",
        )),
        None => Err(TemporaError::undefined_table(rel)),
    }
}

/// What a [`ChunkCall`] does to its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ChunkOp {
    Compress,
    Decompress,
    Reorder,
}

/// `compress_chunk(chunk, if_not_compressed => true, recompress => false)`,
/// `decompress_chunk(chunk, if_compressed => true)` and
/// `reorder_chunk(chunk, index => NULL, verbose => false)`.
#[derive(Debug)]
struct ChunkCall {
    engine: Arc<Engine>,
    notices: Arc<SessionNotices>,
    op: ChunkOp,
    signature: Signature,
}

impl PartialEq for ChunkCall {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op
    }
}

impl Eq for ChunkCall {}

impl std::hash::Hash for ChunkCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.op.hash(state)
    }
}

impl ScalarUDFImpl for ChunkCall {
    fn name(&self) -> &str {
        match self.op {
            ChunkOp::Compress => "compress_chunk",
            ChunkOp::Decompress => "decompress_chunk",
            ChunkOp::Reorder => "reorder_chunk",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(
            TemporaError::internal(format!("{} runs asynchronously", self.name()))
                .into_datafusion(),
        )
    }
}

/// A boolean argument's value in row `i`; `default` when NULL or absent.
fn flag(args: &[ArrayRef], index: usize, row: usize, default: bool) -> DfResult<bool> {
    let Some(a) = args.get(index) else {
        return Ok(default);
    };
    if a.is_null(row) {
        return Ok(default);
    }
    match a.as_any().downcast_ref::<BooleanArray>() {
        Some(b) => Ok(b.value(row)),
        None => Err(TemporaError::new(
            SqlState::DATATYPE_MISMATCH,
            format!(
                "argument {} must be boolean, not {}",
                index + 1,
                a.data_type()
            ),
        )
        .into_datafusion()),
    }
}

/// The index `reorder_chunk` orders by: the one named (an index or
/// constraint of the chunk's hypertable), else the table's series index
/// ([`TableDef::cluster_index`]).
fn reorder_index(
    table: &TableDef,
    named: Option<&str>,
) -> Result<tempora_catalog::IndexDef, TemporaError> {
    let Some(named) = named else {
        return table.cluster_index().ok_or_else(|| {
            TemporaError::new(
                SqlState::UNDEFINED_OBJECT,
                format!(
                    "there is no previously clustered index for table \"{}\"",
                    table.name
                ),
            )
        });
    };
    let (_, name) = crate::split_qualified(named);
    table
        .all_indexes()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "invalid reorder index").with_hint(
                format!(
                    "The reorder index must be an index on hypertable \"{}\".",
                    table.name
                ),
            )
        })
}

impl ChunkCall {
    /// One call: the chunk's name, or None (decompressing an uncompressed
    /// chunk; reordering, which returns void).
    async fn call_one(&self, rel: &str, args: &[ArrayRef], row: usize) -> DfResult<Option<String>> {
        let state = self.engine.catalog().snapshot();
        let (table, chunk) = chunk_named(&state, rel).map_err(TemporaError::into_datafusion)?;
        let hypertable_id = table.hypertable.as_ref().map_or(0, |h| h.id);
        let short = chunk.name(hypertable_id);
        let qualified = format!("{CHUNK_SCHEMA}.{short}");
        if self.op == ChunkOp::Reorder {
            let named = match args.get(1) {
                Some(a) if !a.is_null(row) => {
                    let text = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                    text.as_any()
                        .downcast_ref::<StringArray>()
                        .map(|t| t.value(row).to_string())
                }
                _ => None,
            };
            let index =
                reorder_index(table, named.as_deref()).map_err(TemporaError::into_datafusion)?;
            flag(args, 2, row, false)?;
            self.engine
                .reorder_chunk(table.oid, chunk.id, &index)
                .await
                .map_err(TemporaError::into_datafusion)?;
            return Ok(Some(String::new()));
        }
        if self.op == ChunkOp::Compress {
            let if_not_compressed = flag(args, 1, row, true)?;
            let recompress = flag(args, 2, row, false)?;
            let compressed = self
                .engine
                .compress_chunk(table.oid, chunk.id)
                .await
                .map_err(TemporaError::into_datafusion)?;
            if !compressed && !recompress {
                let message = format!("chunk \"{short}\" is already converted to columnstore");
                if !if_not_compressed {
                    return Err(
                        TemporaError::new(SqlState::DUPLICATE_OBJECT, message).into_datafusion()
                    );
                }
                self.notices.push(SqlState::DUPLICATE_OBJECT, message);
            }
            Ok(Some(qualified))
        } else {
            let if_compressed = flag(args, 1, row, true)?;
            let done = self
                .engine
                .decompress_chunk(table.oid, chunk.id)
                .await
                .map_err(TemporaError::into_datafusion)?;
            if done {
                return Ok(Some(qualified));
            }
            let message = format!("chunk \"{short}\" is not converted to columnstore");
            if !if_compressed {
                return Err(
                    TemporaError::new(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, message)
                        .into_datafusion(),
                );
            }
            self.notices
                .push(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, message);
            Ok(None)
        }
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for ChunkCall {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let rels = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let rels = rels
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| TemporaError::internal("chunk argument").into_datafusion())?;
        let mut out: Vec<Option<String>> = Vec::with_capacity(rows);
        for row in 0..rows {
            if rels.is_null(row) {
                out.push(None);
                continue;
            }
            out.push(self.call_one(rels.value(row), &arrays, row).await?);
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// The session's `compress_chunk`, `decompress_chunk` and `reorder_chunk`.
pub fn chunk_functions(engine: &Arc<Engine>, notices: &Arc<SessionNotices>) -> Vec<ScalarUDF> {
    [ChunkOp::Compress, ChunkOp::Decompress, ChunkOp::Reorder]
        .into_iter()
        .map(|op| {
            AsyncScalarUDF::new(Arc::new(ChunkCall {
                engine: engine.clone(),
                notices: notices.clone(),
                op,
                signature: Signature::variadic_any(Volatility::Volatile),
            }))
            .into_scalar_udf()
        })
        .collect()
}

/// `hypertable_compression_stats(t)` (one row) and `chunk_compression_stats(t)`
/// (a row per chunk); no rows for a table without compression enabled.
#[derive(Debug)]
pub struct CompressionStats {
    pub engine: Arc<Engine>,
    pub chunks: bool,
}

const BYTE_COLUMNS: [&str; 8] = [
    "before_compression_table_bytes",
    "before_compression_index_bytes",
    "before_compression_toast_bytes",
    "before_compression_total_bytes",
    "after_compression_table_bytes",
    "after_compression_index_bytes",
    "after_compression_toast_bytes",
    "after_compression_total_bytes",
];

/// Bytes before and after of a compressed chunk: those recorded when it was
/// compressed, and those of its compressed files now.
fn chunk_bytes(c: &ChunkDef) -> Option<(i64, i64)> {
    let stats = c.compression.as_ref()?;
    let after: u64 = c
        .files
        .iter()
        .filter(|f| f.compressed)
        .map(|f| f.bytes)
        .sum();
    Some((stats.before_bytes as i64, after as i64))
}

/// The eight byte columns from (before, after) pairs: table and total bytes,
/// no index or toast bytes.
fn byte_columns(values: &[Option<(i64, i64)>]) -> Vec<ArrayRef> {
    let col = |f: fn(&(i64, i64)) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter(
            values.iter().map(|v| v.as_ref().map(f)),
        ))
    };
    let zero =
        || -> ArrayRef { Arc::new(Int64Array::from_iter(values.iter().map(|v| v.map(|_| 0)))) };
    vec![
        col(|v| v.0),
        zero(),
        zero(),
        col(|v| v.0),
        col(|v| v.1),
        zero(),
        zero(),
        col(|v| v.1),
    ]
}

impl TableFunctionImpl for CompressionStats {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let mut fields = Vec::new();
        if self.chunks {
            fields.extend([
                text("chunk_schema"),
                text("chunk_name"),
                text("compression_status"),
            ]);
        } else {
            fields.extend([int64("total_chunks"), int64("number_compressed_chunks")]);
        }
        fields.extend(BYTE_COLUMNS.iter().map(|n| int64(n)));
        fields.push(text("node_name"));
        let schema = Arc::new(Schema::new(fields));
        let state = self.engine.catalog().snapshot();
        let table = match crate::information::relation_arg(&args)? {
            Some(rel) => Some(
                crate::information::relation(&state, &rel)
                    .map_err(TemporaError::into_datafusion)?,
            ),
            None => None,
        }
        .filter(|t| t.is_hypertable() && t.compression.is_some());
        let chunks: Vec<&ChunkDef> = table
            .map(|t| t.chunks.values().collect())
            .unwrap_or_default();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let values: Vec<Option<(i64, i64)>>;
        let rows;
        if self.chunks {
            let h = table
                .and_then(|t| t.hypertable.as_ref())
                .map_or(0, |h| h.id);
            let names: Vec<String> = chunks.iter().map(|c| c.name(h)).collect();
            columns.push(strings(chunks.iter().map(|_| Some(CHUNK_SCHEMA))));
            columns.push(strings(names.iter().map(|n| Some(n.as_str()))));
            columns.push(strings(chunks.iter().map(|c| {
                Some(if c.compression.is_some() {
                    "Compressed"
                } else {
                    "Uncompressed"
                })
            })));
            values = chunks.iter().map(|c| chunk_bytes(c)).collect();
            rows = chunks.len();
        } else {
            rows = usize::from(table.is_some());
            let compressed: Vec<(i64, i64)> =
                chunks.iter().filter_map(|c| chunk_bytes(c)).collect();
            columns.push(Arc::new(Int64Array::from(vec![chunks.len() as i64; rows])));
            columns.push(Arc::new(Int64Array::from(vec![
                compressed.len() as i64;
                rows
            ])));
            let sum = (!compressed.is_empty()).then(|| {
                compressed
                    .iter()
                    .fold((0, 0), |acc, (b, a)| (acc.0 + b, acc.1 + a))
            });
            values = vec![sum; rows];
        }
        columns.extend(byte_columns(&values));
        columns.push(strings((0..rows).map(|_| None)));
        table_of(schema, columns)
    }
}

/// `timescaledb_information.compression_settings`: a row per segmentby and
/// per orderby column of each hypertable with compression enabled.
pub(crate) fn compression_settings_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable_schema"),
        text("hypertable_name"),
        text("attname"),
        Field::new("segmentby_column_index", DataType::Int16, true),
        Field::new("orderby_column_index", DataType::Int16, true),
        Field::new("orderby_asc", DataType::Boolean, true),
        Field::new("orderby_nullsfirst", DataType::Boolean, true),
    ]));
    // (table, column, segmentby index, orderby (index, asc, nulls first))
    type Row<'a> = (
        &'a TableDef,
        &'a str,
        Option<i16>,
        Option<(i16, bool, bool)>,
    );
    let mut rows: Vec<Row> = Vec::new();
    for t in hypertables(state) {
        let Some(s) = &t.compression else { continue };
        for (i, c) in s.segmentby.iter().enumerate() {
            rows.push((t, c, Some(i as i16 + 1), None));
        }
        let set = s.orderby.iter().filter(|_| !s.orderby_default);
        for (i, o) in set.enumerate() {
            rows.push((
                t,
                &o.column,
                None,
                Some((i as i16 + 1, o.asc, o.nulls_first)),
            ));
        }
    }
    table_of(
        schema,
        vec![
            strings(rows.iter().map(|r| Some(r.0.schema.as_str()))),
            strings(rows.iter().map(|r| Some(r.0.name.as_str()))),
            strings(rows.iter().map(|r| Some(r.1))),
            Arc::new(Int16Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Int16Array::from_iter(rows.iter().map(|r| r.3.map(|o| o.0)))),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| r.3.map(|o| o.1)),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| r.3.map(|o| o.2)),
            )),
        ],
    )
}

/// Segmentby and orderby as text (None for none).
pub type SettingsText = (Option<String>, Option<String>);

/// A table's settings (`for_chunk`: as its chunks were compressed) as
/// TimescaleDB's `hypertable_compression_settings` prints them: segmentby
/// columns and orderby items joined by commas, the orderby columns quoted
/// as identifiers (`"time" DESC`), the segmentby columns as they are.
pub fn settings_text(t: &TableDef, for_chunk: bool) -> SettingsText {
    let Some(s) = &t.compression else {
        return (None, None);
    };
    let segmentby = (!s.segmentby.is_empty()).then(|| s.segmentby.join(","));
    // A default order is the chunks' (worked out when they are compressed).
    let shown = for_chunk || !s.orderby_default;
    let orderby = (shown && !s.orderby.is_empty()).then(|| {
        s.orderby
            .iter()
            .map(|o| {
                let mut item = tempora_catalog::quote_identifier(&o.column);
                if !o.asc {
                    item.push_str(" DESC");
                }
                // NULLS FIRST is the default of DESC, NULLS LAST that of ASC.
                if o.nulls_first == o.asc {
                    item.push_str(if o.nulls_first {
                        " NULLS FIRST"
                    } else {
                        " NULLS LAST"
                    });
                }
                item
            })
            .collect::<Vec<_>>()
            .join(",")
    });
    (segmentby, orderby)
}

/// `timescaledb_information.hypertable_compression_settings`.
pub(crate) fn hypertable_compression_settings_view(
    state: &CatalogState,
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable"),
        text("segmentby"),
        text("orderby"),
        text("compress_interval_length"),
    ]));
    let ts: Vec<&TableDef> = hypertables(state)
        .into_iter()
        .filter(|t| t.compression.is_some())
        .collect();
    let settings: Vec<SettingsText> = ts.iter().map(|t| settings_text(t, false)).collect();
    let names: Vec<String> = ts.iter().map(|t| relation_text(t)).collect();
    table_of(
        schema,
        vec![
            strings(names.iter().map(|n| Some(n.as_str()))),
            strings(settings.iter().map(|s| s.0.as_deref())),
            strings(settings.iter().map(|s| s.1.as_deref())),
            strings(ts.iter().map(|_| None)),
        ],
    )
}

/// `timescaledb_information.chunk_compression_settings`: the settings of each
/// compressed chunk (those of its hypertable: settings changed later apply
/// when a chunk is compressed again).
pub(crate) fn chunk_compression_settings_view(
    state: &CatalogState,
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable"),
        text("chunk"),
        text("segmentby"),
        text("orderby"),
    ]));
    let mut rows: Vec<(String, String, SettingsText)> = Vec::new();
    for t in hypertables(state) {
        let Some(h) = &t.hypertable else { continue };
        for c in t.chunks.values().filter(|c| c.compression.is_some()) {
            rows.push((
                relation_text(t),
                format!("{CHUNK_SCHEMA}.{}", c.name(h.id)),
                settings_text(t, true),
            ));
        }
    }
    table_of(
        schema,
        vec![
            strings(rows.iter().map(|r| Some(r.0.as_str()))),
            strings(rows.iter().map(|r| Some(r.1.as_str()))),
            strings(rows.iter().map(|r| r.2 .0.as_deref())),
            strings(rows.iter().map(|r| r.2 .1.as_deref())),
        ],
    )
}

/// A table's name as a regclass prints it (schema-qualified outside `public`).
fn relation_text(t: &TableDef) -> String {
    if t.schema == crate::PUBLIC {
        t.name.clone()
    } else {
        format!("{}.{}", t.schema, t.name)
    }
}
