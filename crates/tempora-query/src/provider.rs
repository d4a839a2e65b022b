//! DataFusion table providers over Tempora's tables.
//!
//! ```text
//! TemporaTable::scan(projection, filters)
//!   ├─ ReadSnapshot: catalog state + memtable rows, taken once
//!   ├─ time bounds and space partitions (`device = 'x'`) from the filters
//!   │     ─► chunks that can hold matching rows (chunk exclusion)
//!   ├─ their Parquet files ─► DataSourceExec(ParquetSource, predicate pushed down)
//!   └─ their memtable rows  ─► DataSourceExec(MemorySourceConfig)
//!            └──────────── UnionExec ───────────┘
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileReaderFactory, ParquetRowSelection,
};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    BinaryExpr, Expr, ExprSchemable, Operator, TableProviderFilterPushDown,
};
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use futures::future::BoxFuture;
use parking_lot::RwLock;
use tempora_catalog::{FileDef, TableDef};
use tempora_common::TemporaError;
use tempora_storage::Engine;

use crate::late_scan::{LateScanExec, LateScans};
use crate::series_runs::Reading;

/// The URL under which the data directory's store is registered in DataFusion.
pub const STORE_URL: &str = "tempora://data";

/// Rows written inside a session's open transaction block and not committed
/// yet: that session's own statements read them, no other session does.
///
/// Kept as a log, so that a savepoint's mark (a length) also undoes the
/// block's DELETEs and UPDATEs of these rows.
#[derive(Debug, Default)]
pub struct TxWrites {
    log: parking_lot::Mutex<Vec<Pending>>,
}

#[derive(Debug)]
enum Pending {
    /// Rows inserted into table `oid`.
    Rows(u32, RecordBatch, tempora_storage::OnConflict),
    /// From here on, table `oid`'s pending rows are these (a DELETE or
    /// UPDATE of them).
    Replace(u32, Vec<(RecordBatch, tempora_storage::OnConflict)>),
}

type TableRows = Vec<(RecordBatch, tempora_storage::OnConflict)>;

impl TxWrites {
    pub fn add(&self, oid: u32, batches: Vec<RecordBatch>, policy: tempora_storage::OnConflict) {
        self.log
            .lock()
            .extend(batches.into_iter().map(|b| Pending::Rows(oid, b, policy)));
    }

    /// Replaces table `oid`'s pending rows (a DELETE or UPDATE of them).
    pub fn replace(&self, oid: u32, rows: TableRows) {
        self.log.lock().push(Pending::Replace(oid, rows));
    }

    /// Every table's pending rows, tables in first-write order.
    fn tables(&self) -> Vec<(u32, TableRows)> {
        let mut out: Vec<(u32, TableRows)> = Vec::new();
        for entry in self.log.lock().iter() {
            let (oid, rows, replace) = match entry {
                Pending::Rows(oid, b, p) => (*oid, vec![(b.clone(), *p)], false),
                Pending::Replace(oid, rows) => (*oid, rows.clone(), true),
            };
            match out.iter_mut().find(|(o, _)| *o == oid) {
                Some((_, v)) if replace => *v = rows,
                Some((_, v)) => v.extend(rows),
                None => out.push((oid, rows)),
            }
        }
        out
    }

    /// Table `oid`'s pending rows, with their conflict policies.
    pub fn pending_for(&self, oid: u32) -> TableRows {
        self.tables()
            .into_iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, rows)| rows)
            .unwrap_or_default()
    }

    /// The pending rows, grouped by table (and conflict policy) in first-write
    /// order, leaving none.
    pub fn take(&self) -> Vec<(u32, Vec<RecordBatch>, tempora_storage::OnConflict)> {
        let tables = self.tables();
        self.log.lock().clear();
        let mut out: Vec<(u32, Vec<RecordBatch>, tempora_storage::OnConflict)> = Vec::new();
        for (oid, rows) in tables {
            for (b, policy) in rows {
                if b.num_rows() == 0 {
                    continue;
                }
                match out.iter_mut().find(|(o, _, p)| *o == oid && *p == policy) {
                    Some((_, v, _)) => v.push(b),
                    None => out.push((oid, vec![b], policy)),
                }
            }
        }
        out
    }

    pub fn clear(&self) {
        self.log.lock().clear();
    }

    /// How many entries the log holds: a savepoint's mark.
    pub fn len(&self) -> usize {
        self.log.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.lock().is_empty()
    }

    /// Forgets what was written after `mark` (ROLLBACK TO SAVEPOINT).
    pub fn truncate(&self, mark: usize) {
        self.log.lock().truncate(mark);
    }

    pub fn rows_for(&self, oid: u32) -> Vec<RecordBatch> {
        self.pending_for(oid).into_iter().map(|(b, _)| b).collect()
    }
}

/// What one table scan read: for EXPLAIN, which reports the chunks a
/// hypertable scan excluded.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanInfo {
    pub table: String,
    pub hypertable: bool,
    pub chunks_total: usize,
    pub chunks_scanned: usize,
    pub files: usize,
    pub memtable_batches: usize,
}

/// The scans planned while recording is on (during an EXPLAIN).
#[derive(Debug, Default)]
pub struct ScanReport {
    recording: std::sync::atomic::AtomicBool,
    scans: parking_lot::Mutex<Vec<ScanInfo>>,
}

impl ScanReport {
    /// Starts recording, forgetting earlier scans.
    pub fn start(&self) {
        self.scans.lock().clear();
        self.recording
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops recording and returns the scans recorded.
    pub fn finish(&self) -> Vec<ScanInfo> {
        self.recording
            .store(false, std::sync::atomic::Ordering::Relaxed);
        std::mem::take(&mut *self.scans.lock())
    }

    fn record(&self, scan: ScanInfo) {
        if self.recording.load(std::sync::atomic::Ordering::Relaxed) {
            self.scans.lock().push(scan);
        }
    }
}

/// A Tempora table (plain or hyper) as DataFusion sees it.
#[derive(Debug, Clone)]
pub struct TemporaTable {
    engine: Arc<Engine>,
    def: TableDef,
    schema: SchemaRef,
    defaults: HashMap<String, Expr>,
}

impl TemporaTable {
    /// Wraps `def`; column DEFAULTs are planned with `state` when it is still alive.
    pub fn new(engine: Arc<Engine>, def: TableDef, state: &Weak<RwLock<SessionState>>) -> Self {
        let schema = Arc::new(def.arrow_schema());
        let mut defaults = HashMap::new();
        if let Some(state) = state.upgrade() {
            if let Ok(dfschema) = DFSchema::try_from(schema.as_ref().clone()) {
                let state = state.read();
                for c in &def.columns {
                    if let Some(sql) = &c.default {
                        match state.create_logical_expr(sql, &dfschema) {
                            Ok(e) => {
                                defaults.insert(
                                    c.name.clone(),
                                    e.cast_to(&c.ty.arrow_type(), &dfschema)
                                        .unwrap_or_else(|_| Expr::Literal(ScalarValue::Null, None)),
                                );
                            }
                            Err(e) => {
                                tracing::warn!(column = %c.name, error = %e, "unusable DEFAULT")
                            }
                        }
                    }
                }
            }
        }
        Self {
            engine,
            def,
            schema,
            defaults,
        }
    }

    pub fn def(&self) -> &TableDef {
        &self.def
    }
}

/// Inclusive lower / exclusive upper bounds on the time column, in i64 time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeBounds {
    pub lower: Option<i64>,
    pub upper: Option<i64>,
}

impl TimeBounds {
    pub const ALL: TimeBounds = TimeBounds {
        lower: None,
        upper: None,
    };

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.lower.is_none_or(|l| end > l) && self.upper.is_none_or(|u| start < u)
    }

    pub fn file_overlaps(&self, f: &FileDef) -> bool {
        match (f.min_time, f.max_time) {
            (Some(min), Some(max)) => self.overlaps(min, max.saturating_add(1)),
            _ => true,
        }
    }
}

fn literal_time(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => crate::chunks::scalar_units(v),
        _ => None,
    }
}

fn is_time_col(e: &Expr, time_col: &str) -> bool {
    match e {
        Expr::Column(c) => c.name == time_col,
        Expr::Cast(c) => is_time_col(&c.expr, time_col),
        _ => false,
    }
}

/// Raises the lower bound to `v` (rows are at or after it).
fn raise(b: &mut TimeBounds, v: i64) {
    b.lower = Some(b.lower.map_or(v, |l| l.max(v)));
}

/// Lowers the (exclusive) upper bound to `v`.
fn lower(b: &mut TimeBounds, v: i64) {
    b.upper = Some(b.upper.map_or(v, |u| u.min(v)));
}

/// Narrows `b` by one conjunct of the filters.
fn apply_filter(b: &mut TimeBounds, e: &Expr, time_col: &str) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                apply_filter(b, left, time_col);
                apply_filter(b, right, time_col);
                return;
            }
            if *op == Operator::Or {
                // Rows match one side or the other: the hull of both.
                let (mut l, mut r) = (TimeBounds::ALL, TimeBounds::ALL);
                apply_filter(&mut l, left, time_col);
                apply_filter(&mut r, right, time_col);
                if let (Some(a), Some(c)) = (l.lower, r.lower) {
                    raise(b, a.min(c));
                }
                if let (Some(a), Some(c)) = (l.upper, r.upper) {
                    lower(b, a.max(c));
                }
                return;
            }
            let (op, v) = if is_time_col(left, time_col) {
                match literal_time(right) {
                    Some(v) => (*op, v),
                    None => return,
                }
            } else if is_time_col(right, time_col) {
                match (literal_time(left), op.swap()) {
                    (Some(v), Some(op)) => (op, v),
                    _ => return,
                }
            } else {
                return;
            };
            match op {
                Operator::Gt => raise(b, v.saturating_add(1)),
                Operator::GtEq => raise(b, v),
                Operator::Lt => lower(b, v),
                Operator::LtEq => lower(b, v.saturating_add(1)),
                Operator::Eq => {
                    raise(b, v);
                    lower(b, v.saturating_add(1));
                }
                _ => {}
            }
        }
        Expr::Between(between) if !between.negated && is_time_col(&between.expr, time_col) => {
            if let (Some(lo), Some(hi)) = (literal_time(&between.low), literal_time(&between.high))
            {
                raise(b, lo);
                lower(b, hi.saturating_add(1));
            }
        }
        Expr::InList(in_list) if !in_list.negated && is_time_col(&in_list.expr, time_col) => {
            let times: Option<Vec<i64>> = in_list.list.iter().map(literal_time).collect();
            if let Some(times) = times {
                match (times.iter().min(), times.iter().max()) {
                    (Some(lo), Some(hi)) => {
                        raise(b, *lo);
                        lower(b, hi.saturating_add(1));
                    }
                    // `time IN ()` matches nothing.
                    _ => {
                        raise(b, i64::MAX);
                        lower(b, i64::MIN);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Whether `e` is exactly a comparison of the time column with a constant,
/// so that [`time_bounds`] of such filters describes the matching rows exactly.
pub fn is_exact_time_filter(e: &Expr, time_col: &str) -> bool {
    let plain_col = |e: &Expr| matches!(e, Expr::Column(c) if c.name == time_col);
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let comparison = matches!(
                op,
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq | Operator::Eq
            );
            comparison
                && ((plain_col(left) && literal_time(right).is_some())
                    || (plain_col(right) && literal_time(left).is_some()))
        }
        Expr::Between(b) => {
            !b.negated
                && plain_col(&b.expr)
                && literal_time(&b.low).is_some()
                && literal_time(&b.high).is_some()
        }
        _ => false,
    }
}

impl TimeBounds {
    /// Whether every time in [start, end) lies within the bounds.
    pub fn covers(&self, start: i64, end: i64) -> bool {
        self.lower.is_none_or(|l| l <= start) && self.upper.is_none_or(|u| end <= u)
    }
}

/// Time bounds implied by a scan's filters (all of which must hold).
pub fn time_bounds(filters: &[Expr], time_col: &str) -> TimeBounds {
    let mut b = TimeBounds::ALL;
    for f in filters {
        apply_filter(&mut b, f, time_col);
    }
    b
}

/// The partition hashes a scan's rows can have in one space dimension, from
/// its filters: `column = constant`, `column IN (constants)`, and `AND` /
/// `OR` of those (all filters must hold). None: any hash.
pub fn space_hashes(
    filters: &[Expr],
    column: &str,
    ty: &tempora_catalog::PgType,
) -> Option<Vec<i64>> {
    let hash = |v: &ScalarValue| tempora_catalog::partition::scalar_partition_hash(v, ty);
    filters
        .iter()
        .map(|f| pinned(f, column, &hash))
        .fold(None, intersect)
}

fn intersect<T: PartialEq>(a: Option<Vec<T>>, b: Option<Vec<T>>) -> Option<Vec<T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.into_iter().filter(|h| b.contains(h)).collect()),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What `key` makes of the constants filter `e` allows `column` to hold:
/// `column = constant`, `column IN (constants)`, and `AND` / `OR` of those.
/// None: any value (or a constant `key` has nothing for).
fn pinned<T: PartialEq>(
    e: &Expr,
    column: &str,
    key: &impl Fn(&ScalarValue) -> Option<T>,
) -> Option<Vec<T>> {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    let constant = |e: &Expr| match e {
        Expr::Literal(v, _) => key(v),
        _ => None,
    };
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => intersect(pinned(left, column, key), pinned(right, column, key)),
            Operator::Or => {
                let mut both = pinned(left, column, key)?;
                both.extend(pinned(right, column, key)?);
                Some(both)
            }
            Operator::Eq if is_column(left) => Some(vec![constant(right)?]),
            Operator::Eq if is_column(right) => Some(vec![constant(left)?]),
            _ => None,
        },
        Expr::InList(in_list) if !in_list.negated && is_column(&in_list.expr) => {
            in_list.list.iter().map(constant).collect()
        }
        _ => None,
    }
}

/// Whether a Parquet scan should evaluate its filters while decoding, so that
/// the other projected columns are decoded only for the rows that pass (late
/// materialization), rather than decoding every column and filtering after.
///
/// That pays when the rows are few and the columns it skips are dear: it is
/// chosen when a filter names a column other than the time column (time bounds
/// already skip whole pages through the page index) and the projection holds a
/// text column no filter names (decoding strings is what costs; skipping a few
/// numeric columns does not repay evaluating the filters row by row, nor the
/// scattered reads that follow). `SELECT * ... WHERE usage_user > 90 AND
/// hostname IN (...)` decodes late; `max(usage_user) ... WHERE hostname IN
/// (...)` and time-only filters do not.
fn decode_late(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    time_column: Option<&str>,
) -> bool {
    let filtered: HashSet<&str> = filters
        .iter()
        .flat_map(|f| f.column_refs())
        .map(|c| c.name.as_str())
        .collect();
    if filtered.iter().all(|c| Some(*c) == time_column) {
        return false;
    }
    let is_text = |i: usize| {
        let f = schema.field(i);
        matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8)
            && !filtered.contains(f.name().as_str())
    };
    match projection {
        Some(p) => p.iter().any(|&i| is_text(i)),
        None => (0..schema.fields().len()).any(is_text),
    }
}

/// The chunks of `def` a scan with `filters` reads (their ids) and the files
/// it opens: the plain table's files, and those of the chunks whose time
/// range and space partitions the filters allow whose own time range
/// overlaps the filters'.
///
/// `since`, a time from which on the scan needs rows whatever its filters
/// say (see [`crate::newest_series::cutoff`]), narrows the filters' bounds.
fn kept<'a>(
    def: &'a TableDef,
    filters: &[Expr],
    since: Option<i64>,
) -> (Vec<u32>, Vec<&'a FileDef>) {
    let mut bounds = match &def.hypertable {
        Some(h) => time_bounds(filters, &h.time_column),
        None => TimeBounds::ALL,
    };
    if let Some(since) = since {
        bounds.lower = Some(bounds.lower.map_or(since, |l| l.max(since)));
    }
    let mut files: Vec<&FileDef> = def.files.iter().collect();
    // Per space dimension, the hashes the filters allow (None: any).
    let hashes: Vec<Option<Vec<i64>>> = def.hypertable.as_ref().map_or(vec![], |h| {
        h.space_dimensions
            .iter()
            .map(|(name, _)| {
                let ty = &def.column(name)?.ty;
                space_hashes(filters, name, ty)
            })
            .collect()
    });
    let in_partitions = |c: &tempora_catalog::ChunkDef| {
        hashes.iter().enumerate().all(|(d, allowed)| {
            let (start, end) = c.hash_range(d);
            allowed
                .as_ref()
                .is_none_or(|a| a.iter().any(|h| start <= *h && *h < end))
        })
    };
    let mut kept_chunks = Vec::new();
    for c in def.chunks.values() {
        if bounds.overlaps(c.range_start, c.range_end) && in_partitions(c) {
            kept_chunks.push(c.id);
            files.extend(c.files.iter().filter(|f| bounds.file_overlaps(f)));
        }
    }
    (kept_chunks, files)
}

impl TemporaTable {
    /// About how many rows a scan with `filters` decodes: the rows of the
    /// files it opens and of the rows not yet flushed. Where the filters pin
    /// the column the files are clustered by to a few values, each file is
    /// read a page or two per value (whether the reader then decodes every
    /// row of those pages or only the series' own, [`series_runs`], fetching
    /// and decoding the pages is what costs); a file that records holding
    /// none of the pinned series is not opened. Files written before the
    /// table's series index existed are not clustered, and the catalog does
    /// not tell them apart: such a scan is underestimated, which costs it
    /// the parallel plan, never its answer.
    pub fn estimated_rows(&self, filters: &[Expr]) -> u64 {
        let snapshot = self.engine.read_snapshot();
        let Some(def) = snapshot.catalog.table_by_oid(self.def.oid) else {
            return 0;
        };
        let (kept_chunks, files) = kept(def, filters, None);
        let per_file = pinned_cluster_values(def, filters).map_or(u64::MAX, |n| {
            (n as u64).saturating_mul(2 * tempora_storage::parquet_io::CLUSTERED_PAGE_ROWS as u64)
        });
        let series = pinned_series(def, filters);
        let in_files: u64 = files
            .iter()
            .map(|f| match series.as_ref().and_then(|s| series_runs(f, s)) {
                Some(runs) if runs.is_empty() => 0,
                _ => f.rows.min(per_file),
            })
            .sum();
        let unflushed: u64 = snapshot
            .memtable_rows(def.oid)
            .iter()
            .filter(|(chunk, _)| chunk.is_none_or(|c| kept_chunks.contains(&c)))
            .flat_map(|(_, b)| b)
            .map(|b| b.num_rows() as u64)
            .sum();
        in_files.saturating_add(unflushed)
    }
}

/// Whether `filters` hold one column the table's files are sorted by first
/// (its series index's leading column, or its compression's first segmentby
/// column) to constants, as [`pinned`] reads them (a short `IN` list is an
/// `OR` by then). Each file then holds those rows in a few pages.
fn pins_cluster_column(def: &TableDef, filters: &[Expr]) -> bool {
    pinned_cluster_values(def, filters).is_some()
}

/// How many values [`pins_cluster_column`]'s filters pin that column to
/// (the fewest, when several filters pin it).
fn pinned_cluster_values(def: &TableDef, filters: &[Expr]) -> Option<usize> {
    let mut leading: Vec<String> = def.cluster_key().into_iter().take(1).collect();
    if let Some(c) = def.compression.as_ref().and_then(|c| c.segmentby.first()) {
        leading.push(c.clone());
    }
    leading
        .iter()
        .flat_map(|column| {
            filters
                .iter()
                .filter_map(|f| pinned(f, column, &|v: &ScalarValue| Some(v.clone())))
                .map(|values| values.len())
        })
        .min()
}

/// The values `filters` pin the table's series column
/// ([`TableDef::series_column`]) to, as [`pinned`] reads them (every filter
/// holds), with the column's id; None when they do not pin it to text
/// constants.
fn pinned_series(def: &TableDef, filters: &[Expr]) -> Option<(u32, Vec<String>)> {
    let column = def.series_column()?;
    let text = |v: &ScalarValue| match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    };
    let values = filters
        .iter()
        .map(|f| pinned(f, &column.name, &text))
        .fold(None, intersect)?;
    Some((column.id, values))
}

/// The runs of `file` a scan whose filters pin the series column to
/// `series` ([`pinned_series`]) needs: each pinned value's position among
/// the file's values and its rows, when the file records where its values
/// are ([`tempora_catalog::FileSeries::runs_of`]); empty when it holds none
/// of them. None: all of its rows.
fn series_runs(
    file: &FileDef,
    series: &(u32, Vec<String>),
) -> Option<Vec<(usize, std::ops::Range<u64>)>> {
    let (column, wanted) = series;
    let recorded = file.series.as_ref().filter(|s| s.column == *column)?;
    // A file's counts cover its rows: anything else is not trusted.
    if recorded.counts.iter().sum::<u64>() != file.rows {
        return None;
    }
    recorded.runs_of(wanted.iter().map(String::as_str))
}

/// Whether `e` holds exactly for the rows whose series column
/// ([`TableDef::series_column`]) is one of a few constants, or parameters of
/// a kept plan: `column = c`, `column IN (c, ...)`, and `OR`s of those. A
/// scan answers such filters itself ([`TemporaTable::plan_files`]): the
/// runs of those series are all a file that records them is read for.
fn pins_series_exactly(def: &TableDef, e: &Expr) -> bool {
    def.series_column()
        .is_some_and(|column| pins_exactly(e, &column.name))
}

fn pins_exactly(e: &Expr, column: &str) -> bool {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    let constant = |e: &Expr| matches!(e, Expr::Literal(..) | Expr::Placeholder(_));
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Or => pins_exactly(left, column) && pins_exactly(right, column),
            Operator::Eq => {
                (is_column(left) && constant(right)) || (is_column(right) && constant(left))
            }
            _ => false,
        },
        Expr::InList(in_list) => {
            !in_list.negated && is_column(&in_list.expr) && in_list.list.iter().all(constant)
        }
        _ => false,
    }
}

/// A file a scan reads.
struct ScannedFile {
    file: PartitionedFile,
    /// The rows it reads.
    rows: u64,
    /// Read through a row selection whose every run spans at most two
    /// pages ([`NARROW_RUN_ROWS`]): row group statistics could leave out
    /// little of it.
    narrow: bool,
    /// The series runs it reads, as the series cache names them: each
    /// run's position among the file's series values and its row count.
    /// Empty when it is read whole.
    runs: Vec<(u32, u64)>,
}

/// The longest run of a series a row selection is counted narrow for.
const NARROW_RUN_ROWS: u64 = 2 * tempora_storage::parquet_io::CLUSTERED_PAGE_ROWS as u64;

/// How a scan reads one of its files: whole, or only the rows of the
/// series its filters pin ([`series_runs`]), through a row selection the
/// Parquet reader reads only their pages (and rows) for. None: the file
/// holds none of those rows.
fn scanned_file(
    engine: &Engine,
    f: &FileDef,
    series: Option<&(u32, Vec<String>)>,
) -> Option<ScannedFile> {
    match series.and_then(|s| series_runs(f, s)) {
        None => Some(ScannedFile {
            file: partitioned_file(engine, f),
            rows: f.rows,
            narrow: false,
            runs: Vec::new(),
        }),
        Some(runs) if runs.is_empty() => None,
        Some(runs) => {
            let rows = runs.iter().map(|(_, r)| r.end - r.start).sum();
            let narrow = runs.iter().all(|(_, r)| r.end - r.start <= NARROW_RUN_ROWS);
            let selection = RowSelection::from_consecutive_ranges(
                runs.iter().map(|(_, r)| r.start as usize..r.end as usize),
                f.rows as usize,
            );
            Some(ScannedFile {
                file: partitioned_file(engine, f)
                    .with_extension(ParquetRowSelection::new(selection)),
                rows,
                narrow,
                runs: runs
                    .into_iter()
                    .map(|(i, r)| (i as u32, r.end - r.start))
                    .collect(),
            })
        }
    }
}

/// Opens Parquet files through the runtime's metadata cache, always asking
/// for the page index along with the footer.
///
/// DataFusion's opener first asks for the footer alone and loads the page
/// index afterwards when its predicate can use it; that second load goes to
/// the file, is decoded again and is never cached, so every statement that
/// prunes pages paid for it again (about a tenth of a one-host query's
/// time). Asked for up front, the cached entry holds both and the opener
/// finds the index already there.
#[derive(Debug)]
struct IndexedReaderFactory(CachedParquetFileReaderFactory);

impl ParquetFileReaderFactory for IndexedReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> DfResult<Box<dyn AsyncFileReader + Send>> {
        let inner = self.0.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(IndexedReader(inner)))
    }
}

struct IndexedReader(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for IndexedReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<bytes::Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<bytes::Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        Box::pin(async move { self.0.get_metadata(Some(&options)).await })
    }
}

/// `e`, a filter of a scan, over `schema`'s columns.
fn physical_expr(e: Expr, schema: &SchemaRef) -> DfResult<Arc<dyn PhysicalExpr>> {
    // The scan's filters name the table; the schema here does not.
    let e = datafusion::logical_expr::expr_rewriter::unnormalize_col(e);
    let schema = DFSchema::try_from(schema.as_ref().clone())?;
    let props = datafusion::logical_expr::execution_props::ExecutionProps::new();
    let planning =
        datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default();
    datafusion::physical_expr::create_physical_expr(&e, &schema, &props, &planning)
}

/// The file as a scan reads it, with its Arrow schema when the engine has
/// decoded it already (`tempora_storage::metadata_warm`).
fn partitioned_file(engine: &Engine, f: &FileDef) -> PartitionedFile {
    let file = PartitionedFile::from(tempora_storage::metadata_warm::object_meta(f));
    match engine.file_schema(&f.path) {
        Some(schema) => file.with_arrow_schema(schema),
        None => file,
    }
}

impl TemporaTable {
    /// Where a scan marked with [`crate::newest_series::newest_per_series`]
    /// may start: see [`crate::newest_series::cutoff`]; `unflushed` is the
    /// table's rows not yet in files, by chunk. None when the marker is not
    /// over the table's series and time columns.
    fn newest_series_cutoff(
        &self,
        def: &TableDef,
        marker: &Expr,
        unflushed: &std::collections::BTreeMap<Option<u32>, Vec<RecordBatch>>,
    ) -> Option<i64> {
        let (series, time) = crate::newest_series::marker_columns(marker)?;
        let column = def.series_column().filter(|c| c.name == series)?;
        if def.hypertable.as_ref()?.time_column != time {
            return None;
        }
        let mut chunks = HashSet::new();
        for (chunk, batches) in unflushed {
            if batches.iter().any(|b| b.num_rows() > 0) {
                chunks.insert((*chunk)?);
            }
        }
        crate::newest_series::cutoff(def, column.id, &chunks)
    }

    /// A marked scan that reads only the series and time columns needs no
    /// file's rows: one row per series a file records, at its newest time in
    /// that file, gives the same grouped `max(time)`. Returns the files still
    /// to read (those that record nothing) and those rows.
    fn newest_rows<'a>(
        &self,
        def: &TableDef,
        marker: &Expr,
        projection: Option<&Vec<usize>>,
        files: Vec<&'a FileDef>,
    ) -> DfResult<(Vec<&'a FileDef>, Option<RecordBatch>)> {
        let Some((series, time)) = crate::newest_series::marker_columns(marker) else {
            return Ok((files, None));
        };
        let Some(column) = def.series_column().filter(|c| c.name == series) else {
            return Ok((files, None));
        };
        let only_series_and_time = projection.is_some_and(|p| {
            p.iter().all(|&i| {
                let name = self.schema.field(i).name();
                name == series || name == time
            })
        });
        let (Some(series_index), Some(time_index), true) = (
            self.schema.index_of(series).ok(),
            self.schema.index_of(time).ok(),
            only_series_and_time,
        ) else {
            return Ok((files, None));
        };
        let (recorded, unrecorded): (Vec<&FileDef>, Vec<&FileDef>) =
            files.into_iter().partition(|f| {
                f.series
                    .as_ref()
                    .is_some_and(|s| s.column == column.id && s.newest.len() == s.values.len())
            });
        let pairs: Vec<(Option<&str>, i64)> = recorded
            .iter()
            .filter_map(|f| f.series.as_ref())
            .flat_map(|s| {
                s.values
                    .iter()
                    .map(Option::as_deref)
                    .zip(s.newest.iter().copied())
            })
            .collect();
        let times: Vec<i64> = pairs.iter().map(|(_, t)| *t).collect();
        let Some(time_array) =
            crate::newest_series::time_array(self.schema.field(time_index).data_type(), times)
        else {
            return Ok((recorded.into_iter().chain(unrecorded).collect(), None));
        };
        if pairs.is_empty() {
            return Ok((unrecorded, None));
        }
        let series_array: datafusion::arrow::array::ArrayRef = Arc::new(
            datafusion::arrow::array::StringArray::from_iter(pairs.iter().map(|(v, _)| *v)),
        );
        let columns = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match i {
                i if i == series_index => series_array.clone(),
                i if i == time_index => time_array.clone(),
                _ => datafusion::arrow::array::new_null_array(f.data_type(), pairs.len()),
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok((unrecorded, Some(batch)))
    }
}

#[async_trait]
impl TableProvider for TemporaTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if crate::newest_series::marker_columns(f).is_some() {
                    // Applied by leaving chunks out; keeps every row read.
                    TableProviderFilterPushDown::Exact
                } else if pins_series_exactly(&self.def, f) {
                    // Read through the series' runs, or filtered by the scan
                    // itself where it cannot be (`plan_files`).
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if state.config().get_extension::<LateScans>().is_some() {
            return Ok(Arc::new(LateScanExec::new(
                Arc::new(self.clone()),
                projection.cloned(),
                filters.to_vec(),
                limit,
            )?));
        }
        self.plan_files(
            state.config(),
            state.runtime_env(),
            &FileScan {
                projection,
                filters,
                limit,
                target_partitions: state.config().target_partitions().max(1),
                predicate: false,
            },
        )
    }
}

/// What [`TemporaTable::plan_files`] reads.
pub(crate) struct FileScan<'a> {
    pub projection: Option<&'a Vec<usize>>,
    pub filters: &'a [Expr],
    pub limit: Option<usize>,
    pub target_partitions: usize,
    /// Whether the Parquet source takes `filters` as its predicate itself
    /// (no physical optimizer runs on the plan to hand them over).
    pub predicate: bool,
}

impl TemporaTable {
    /// `filters` together, as a physical expression over the table's columns.
    fn physical_predicate(
        &self,
        filters: &[Expr],
    ) -> DfResult<Option<Arc<dyn datafusion::physical_plan::PhysicalExpr>>> {
        let Some(all) = datafusion::logical_expr::utils::conjunction(filters.iter().cloned())
        else {
            return Ok(None);
        };
        // Pruning only: the FilterExec above the scan applies the filters.
        // One the source cannot take (a subquery) leaves it to that.
        match physical_expr(all, &self.schema) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                tracing::debug!(error = %e, "scan filters not given to the Parquet source");
                Ok(None)
            }
        }
    }

    /// What an input [`Self::answer_exactly`] filters with `exact` reads:
    /// `projection`, with the table's series column when it lacks it and
    /// `exact` is not empty.
    fn answered_projection(
        &self,
        projection: Option<&Vec<usize>>,
        exact: &[&Expr],
    ) -> Option<Vec<usize>> {
        let column = self
            .def
            .series_column()
            .and_then(|c| self.def.column_index(&c.name))
            .filter(|_| !exact.is_empty());
        projection.map(|p| {
            let mut p = p.clone();
            if let Some(i) = column.filter(|i| !p.contains(i)) {
                p.push(i);
            }
            p
        })
    }

    /// The rows of `input` (read with [`Self::answered_projection`] of
    /// `exact`) that
    /// the series filters `exact` allow, with `projection`'s columns: for
    /// rows the scan cannot tell are of the pinned series (unflushed rows,
    /// files that do not record their series), as the scan answers those
    /// filters itself ([`pins_series_exactly`]). `limit` counts the rows
    /// kept.
    fn answer_exactly(
        &self,
        input: Arc<dyn ExecutionPlan>,
        exact: &[&Expr],
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(all) =
            datafusion::logical_expr::utils::conjunction(exact.iter().copied().cloned())
        else {
            return Ok(input);
        };
        let predicate = physical_expr(all, &input.schema())?;
        let width = projection.map_or(self.schema.fields().len(), Vec::len);
        let keep = (input.schema().fields().len() != width).then(|| (0..width).collect());
        Ok(Arc::new(
            FilterExecBuilder::new(predicate, input)
                .apply_projection(keep)?
                .with_fetch(limit)
                .build()?,
        ))
    }

    /// The series runs of `scanned` (every file read through its runs) as
    /// the series cache keeps them, for a scan projecting `projection`;
    /// None when the cache is off or the scan reads no column.
    fn cacheable_runs(
        &self,
        projection: Option<&Vec<usize>>,
        scanned: &[ScannedFile],
    ) -> Option<Arc<crate::series_runs::SeriesRuns>> {
        let cache = self.engine.series_cache();
        if !cache.enabled() || scanned.iter().any(|f| f.runs.is_empty()) {
            return None;
        }
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        if indices.is_empty() {
            return None;
        }
        let columns = indices
            .iter()
            .map(|&i| self.def.columns.get(i).map(|c| c.id))
            .collect::<Option<Vec<u32>>>()?;
        Some(Arc::new(crate::series_runs::SeriesRuns {
            cache: cache.clone(),
            engine: self.engine.instance(),
            schema: Arc::new(self.schema.project(&indices).ok()?),
            columns,
            files: scanned
                .iter()
                .map(|f| crate::series_runs::FileRuns {
                    path: f.file.object_meta.location.to_string(),
                    runs: f.runs.clone(),
                })
                .collect(),
        }))
    }

    /// The scan of the files and unflushed rows `scan.filters` can match, as
    /// the catalog and memtables hold them now.
    pub(crate) fn plan_files(
        &self,
        config: &datafusion::prelude::SessionConfig,
        runtime: &Arc<datafusion::execution::runtime_env::RuntimeEnv>,
        scan: &FileScan<'_>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let FileScan {
            projection,
            filters,
            limit,
            target_partitions,
            predicate,
        } = *scan;
        let snapshot = self.engine.read_snapshot();
        let def = snapshot
            .catalog
            .table_by_oid(self.def.oid)
            .ok_or_else(|| TemporaError::undefined_table(&self.def.name).into_datafusion())?;
        let (newest_series, filters): (Vec<&Expr>, Vec<&Expr>) = filters
            .iter()
            .partition(|f| crate::newest_series::marker_columns(f).is_some());
        let filters: Vec<Expr> = filters.into_iter().cloned().collect();
        let filters = filters.as_slice();
        let mem = snapshot.memtable_rows(def.oid);
        let tx_rows = config
            .get_extension::<TxWrites>()
            .map(|tx| tx.rows_for(def.oid))
            .unwrap_or_default();
        // The session's uncommitted rows may be in any chunk: no cut then.
        let since = newest_series
            .first()
            .filter(|_| tx_rows.is_empty())
            .and_then(|f| self.newest_series_cutoff(def, f, &mem));
        if let Some(cut) = since {
            tracing::debug!(table = %def.name, cut, "newest per series: older chunks left out");
        }
        let (kept_chunks, kept_files) = kept(def, filters, since);
        let (kept_files, newest_rows) = match newest_series.first() {
            Some(marker) if filters.is_empty() => {
                self.newest_rows(def, marker, projection, kept_files)?
            }
            _ => (kept_files, None),
        };
        // Files that record where each series' rows are read only the
        // pinned series' rows, and are left out when they hold none.
        let series = pinned_series(def, filters);
        let scanned: Vec<ScannedFile> = kept_files
            .iter()
            .filter_map(|f| scanned_file(&self.engine, f, series.as_ref()))
            .collect();
        // Filters on the series column are the scan's to answer
        // (`supports_filters_pushdown`), in whatever form the optimizer left
        // them. Files read through the pinned series' runs hold only their
        // rows; the filters those runs do not answer, and every filter on
        // the series for unflushed rows, are applied here (`answer_exactly`).
        let on_series: Vec<&Expr> = self
            .def
            .series_column()
            .map(|c| {
                filters
                    .iter()
                    .filter(|f| f.column_refs().iter().all(|r| r.name == c.name))
                    .collect()
            })
            .unwrap_or_default();
        let all_by_runs = series.as_ref().map(|(id, _)| *id)
            == self.def.series_column().map(|c| c.id)
            && scanned.iter().all(|f| !f.runs.is_empty());
        let by_runs = |f: &Expr| all_by_runs && pins_series_exactly(&self.def, f);
        let on_files: Vec<&Expr> = on_series.iter().copied().filter(|f| !by_runs(f)).collect();
        let answer_files = !on_files.is_empty();
        // What the Parquet source evaluates: testing the rows of the runs
        // against their own series would only decode that column again.
        let source_filters: Vec<Expr> = filters.iter().filter(|f| !by_runs(f)).cloned().collect();
        let narrow = !scanned.is_empty() && scanned.iter().all(|f| f.narrow);
        // The catalog counts every file's rows: the planner's estimate of
        // the scan (a small table joined to a large one is the hash join's
        // build side).
        let file_rows: u64 = scanned.iter().map(|f| f.rows).sum();
        // A few short runs of a few series: answered from the series cache,
        // or read whole and kept there (crate::series_runs).
        // Not when filters on the series are left for the scan to apply.
        let runs = (narrow
            && limit.is_none()
            && !answer_files
            && file_rows <= crate::small_scans::SMALL_SCAN_ROWS)
            .then(|| self.cacheable_runs(projection, &scanned))
            .flatten();
        let files: Vec<PartitionedFile> = scanned.into_iter().map(|f| f.file).collect();
        let mut mem_batches: Vec<_> = mem
            .into_iter()
            .filter(|(chunk, _)| chunk.is_none_or(|c| kept_chunks.contains(&c)))
            .flat_map(|(_, b)| b)
            .collect();
        mem_batches.extend(tx_rows);
        // Memtables hold the current layout; rows a transaction wrote before
        // an ALTER TABLE in another session may not.
        let mut mem_batches = mem_batches
            .iter()
            .map(|b| tempora_storage::columns::conform(def, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(TemporaError::into_datafusion)?;
        let info = ScanInfo {
            table: def.name.clone(),
            hypertable: def.is_hypertable(),
            chunks_total: def.chunks.len(),
            chunks_scanned: kept_chunks.len(),
            files: files.len(),
            memtable_batches: mem_batches.len(),
        };
        tracing::debug!(?info, "scan");
        if let Some(report) = config.get_extension::<ScanReport>() {
            report.record(info);
        }
        // After the report: these rows stand for files, not unflushed rows.
        mem_batches.extend(newest_rows);

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        // Runs asked for the first time are read as without the cache.
        let (runs, cached) = match runs.as_ref().map(|r| r.reading()) {
            Some(Reading::Cached(plan)) => (None, Some(plan)),
            Some(Reading::Fill) => (runs, None),
            Some(Reading::Ordinary) | None => (None, None),
        };
        if let Some(cached) = cached {
            inputs.push(cached);
        } else if !files.is_empty() {
            // Runs to keep are read in the files' order, on one partition.
            let partitions = if runs.is_some() { 1 } else { target_partitions };
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); partitions.min(files.len())];
            for (i, f) in files.into_iter().enumerate() {
                let n = groups.len();
                groups[i % n].push(f);
            }
            // Footers and page indexes come from the runtime's metadata cache
            // (shared by every session, see `Engine::runtime`, and filled
            // ahead by `tempora_storage::metadata_warm`) instead of being
            // read and decoded again by every statement.
            let metadata_cache = runtime.cache_manager.get_file_metadata_cache();
            let mut source = ParquetSource::new(self.schema.clone())
                .with_parquet_file_reader_factory(Arc::new(IndexedReaderFactory(
                    CachedParquetFileReaderFactory::new(
                        self.engine.store().clone(),
                        metadata_cache,
                    ),
                )))
                // Only compressed files carry bloom filters, on their segmentby
                // columns (tempora_storage::parquet_io), by which their rows are
                // sorted: row group and page statistics exclude what the filters
                // would. Probing cost 0.1-0.6 ms per query without them and
                // 2.5 ms with them on the TSBS data (`bloom_filter_eval_time`
                // in EXPLAIN ANALYZE), for no row group excluded.
                .with_bloom_filter_on_read(false);
            if narrow {
                // Every file reads a page or two per series: evaluating the
                // filters against row group statistics (per file, per
                // statement) would cost more than the rows it could leave
                // out. The page index stays on: with it off the reader
                // fetches whole column chunks for the selection.
                let mut options = source.table_parquet_options().clone();
                options.global.pruning = false;
                source = source.with_table_parquet_options(options);
            }
            let time_column = def.hypertable.as_ref().map(|h| h.time_column.as_str());
            // Runs to keep are read whole: no filters reach that scan.
            let predicate = predicate && runs.is_none();
            if runs.is_none() && decode_late(&self.schema, projection, &source_filters, time_column)
            {
                source = source
                    .with_pushdown_filters(true)
                    .with_reorder_filters(true);
            }
            // The filters reach the Parquet source through the FilterExec the
            // planner keeps above this scan (they are Inexact): the physical
            // optimizer's filter pushdown hands them over for row group, page
            // and, with late decoding, row pruning. Setting them here as well
            // would evaluate every condition twice, unless no optimizer will.
            if predicate {
                if let Some(p) = self.physical_predicate(&source_filters)? {
                    source = source.with_predicate(p);
                }
            }
            // Files written before an ALTER TABLE are read by column id.
            let adapter = tempora_storage::columns::ColumnAdapterFactory::new(def)
                .map_err(TemporaError::into_datafusion)?;
            // A scan that pins the column the files are clustered by reads a
            // few pages of each file: split into byte ranges, every range
            // would open the file and prune it again to find nothing. Keep
            // files whole there (the scan's partitions still share files).
            let whole_files = pins_cluster_column(def, filters).then(|| {
                datafusion::physical_plan::Partitioning::UnknownPartitioning(groups.len())
            });
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
                    .with_expr_adapter(Some(Arc::new(adapter)))
                    .with_output_partitioning(whole_files)
                    .with_file_groups(groups.into_iter().map(Into::into).collect())
                    .with_projection_indices(self.answered_projection(projection, &on_files))?
                    // Counted after the series filters, when they are applied above.
                    .with_limit(limit.filter(|_| !answer_files))
                    .with_statistics(datafusion::common::Statistics {
                        num_rows: datafusion::common::stats::Precision::Inexact(file_rows as usize),
                        total_byte_size: datafusion::common::stats::Precision::Absent,
                        column_statistics: datafusion::common::Statistics::unknown_column(
                            &self.schema,
                        ),
                    })
                    .build();
            let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
            inputs.push(match &runs {
                Some(runs) => runs.filling(scan),
                None if answer_files => self.answer_exactly(scan, &on_files, projection, limit)?,
                None => scan,
            });
        }
        if !mem_batches.is_empty() {
            let rows = MemorySourceConfig::try_new_exec(
                &[mem_batches],
                self.schema.clone(),
                self.answered_projection(projection, &on_series),
            )?;
            inputs.push(self.answer_exactly(rows, &on_series, projection, None)?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn bounds_from_range_filters() {
        let ts = |v: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let f = vec![col("time").gt_eq(ts(100)), col("time").lt(ts(200))];
        let b = time_bounds(&f, "time");
        assert_eq!(
            b,
            TimeBounds {
                lower: Some(100),
                upper: Some(200)
            }
        );
        assert!(b.overlaps(150, 300));
        assert!(!b.overlaps(200, 300));
        assert!(!b.overlaps(0, 100));
        let other = vec![col("device").eq(lit("a"))];
        assert_eq!(time_bounds(&other, "time"), TimeBounds::ALL);

        // IN: from the earliest to just after the latest.
        let f = vec![col("time").in_list(vec![ts(300), ts(100), ts(200)], false)];
        assert_eq!(
            time_bounds(&f, "time"),
            TimeBounds {
                lower: Some(100),
                upper: Some(301)
            }
        );
        assert_eq!(
            time_bounds(&[col("time").in_list(vec![ts(1)], true)], "time"),
            TimeBounds::ALL
        );
        // OR: the hull of both sides; unbounded when one side is.
        let f = vec![col("time")
            .lt(ts(100))
            .and(col("time").gt_eq(ts(50)))
            .or(col("time").gt_eq(ts(500)).and(col("time").lt(ts(600))))];
        assert_eq!(
            time_bounds(&f, "time"),
            TimeBounds {
                lower: Some(50),
                upper: Some(600)
            }
        );
        let f = vec![col("time").lt(ts(100)).or(col("device").eq(lit("a")))];
        assert_eq!(time_bounds(&f, "time"), TimeBounds::ALL);
    }

    #[test]
    fn late_decoding_when_filters_skip_text_columns() {
        use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("host", DataType::Utf8, true),
            Field::new("region", DataType::Utf8, true),
            Field::new("usage", DataType::Float64, true),
        ]));
        let all = None;
        let time = col("time").gt(lit(ScalarValue::TimestampMicrosecond(
            Some(0),
            Some("UTC".into()),
        )));
        let usage = col("usage").gt(lit(90.0));
        let host = col("host").eq(lit("h1"));
        // A value filter and text columns it does not name: late.
        assert!(decode_late(
            &schema,
            all,
            &[usage.clone(), time.clone()],
            Some("time")
        ));
        assert!(decode_late(
            &schema,
            all,
            std::slice::from_ref(&host),
            Some("time")
        ));
        // Time bounds alone, or no filter: the page index does the work.
        assert!(!decode_late(
            &schema,
            all,
            std::slice::from_ref(&time),
            Some("time")
        ));
        assert!(!decode_late(&schema, all, &[], Some("time")));
        // Only numeric columns besides the filtered ones: not worth it.
        let p = vec![0, 1, 3];
        assert!(!decode_late(
            &schema,
            Some(&p),
            &[host.clone(), time],
            Some("time")
        ));
        // A plain table has no time column to leave out.
        assert!(decode_late(&schema, Some(&p), &[usage], None));
    }
}
