//! Scans of a few series' runs answered from the series cache
//! (`tempora_storage::series_cache`).
//!
//! A scan whose filters pin the table's series column reads, of each file
//! sorted by that column, the runs of the pinned values
//! (`provider::scanned_file`). When every run is short (a page or two) and
//! the scan reads few rows, [`SeriesRuns`] looks the runs' columns up in the
//! cache: when every one is there the scan is a [`SeriesCacheExec`] over
//! those arrays, and no file is opened. Otherwise, when the runs were asked
//! for before, the Parquet scan runs under a [`SeriesCacheFillExec`],
//! without the filters (the runs are read whole, so that they can be kept),
//! and the runs it read are kept for the next statement; runs asked for the
//! first time are read as without the cache. The `FilterExec` above the
//! scan applies the filters either way: neither node takes filters pushed
//! down to it.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Statistics;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::execution::{RecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{Stream, StreamExt};
use tempora_common::TemporaError;

use crate::late_scan::{one_after_another, one_partition, only_partition_zero};
use tempora_storage::series_cache::{Lookup, RunKey, SeriesCache};

/// The runs one file is read for: each as its position among the file's
/// series values and its row count, in the file's order.
#[derive(Debug, Clone)]
pub(crate) struct FileRuns {
    pub path: String,
    pub runs: Vec<(u32, u64)>,
}

/// How a scan reads its runs ([`SeriesRuns::reading`]).
pub(crate) enum Reading {
    /// From the cache: this plan.
    Cached(Arc<dyn ExecutionPlan>),
    /// Whole, under [`SeriesRuns::filling`], to keep them.
    Fill,
    /// As a scan without the cache does.
    Ordinary,
}

/// The runs a scan reads, in the order the Parquet scan returns them.
#[derive(Debug)]
pub(crate) struct SeriesRuns {
    pub cache: Arc<SeriesCache>,
    pub engine: u64,
    /// The scan's output: the projected columns.
    pub schema: SchemaRef,
    /// `ColumnDef::id` of each of `schema`'s columns.
    pub columns: Vec<u32>,
    pub files: Vec<FileRuns>,
}

impl SeriesRuns {
    fn rows(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| f.runs.iter().map(|(_, n)| n))
            .sum()
    }

    fn run_count(&self) -> usize {
        self.files.iter().map(|f| f.runs.len()).sum()
    }

    /// A node reading these runs, as EXPLAIN shows it.
    fn describe(&self, node: &str, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{node}: files={}, runs={}, rows={}",
            self.files.len(),
            self.run_count(),
            self.rows()
        )
    }

    /// The rows of a node reading these runs.
    fn statistics(&self) -> Arc<Statistics> {
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(self.rows() as usize);
        Arc::new(stats)
    }

    /// Every run and column, file by file, run by run, column by column,
    /// with each run's row count.
    fn keys(&self) -> Vec<(RunKey, u64)> {
        self.files
            .iter()
            .flat_map(|f| {
                f.runs.iter().flat_map(move |&(run, rows)| {
                    self.columns.iter().map(move |&column| {
                        (
                            RunKey {
                                engine: self.engine,
                                path: f.path.clone(),
                                run,
                                column,
                            },
                            rows,
                        )
                    })
                })
            })
            .collect()
    }

    /// How to read the runs: from the cache, when it holds every run's
    /// every column at the scan's types; otherwise whole, to keep them, or
    /// the ordinary way ([`Lookup`]).
    pub fn reading(self: &Arc<Self>) -> Reading {
        let keyed = self.keys();
        let keys: Vec<RunKey> = keyed.iter().map(|(k, _)| k.clone()).collect();
        let arrays = match self.cache.lookup(&keys) {
            Lookup::Hit(arrays) => arrays,
            Lookup::Fill => return Reading::Fill,
            Lookup::Pass => return Reading::Ordinary,
        };
        let width = self.columns.len();
        let mut batches = Vec::with_capacity(self.run_count());
        for (run, (columns, (_, rows))) in arrays
            .chunks(width)
            .zip(keyed.iter().step_by(width))
            .enumerate()
        {
            // A column whose type changed since (ALTER TABLE) is read again.
            let fits = columns
                .iter()
                .zip(self.schema.fields())
                .all(|(a, f)| a.data_type() == f.data_type() && a.len() as u64 == *rows);
            let batch = fits
                .then(|| RecordBatch::try_new(self.schema.clone(), columns.to_vec()).ok())
                .flatten();
            match batch {
                Some(b) => batches.push(b),
                None => {
                    tracing::debug!(run, "cached series run does not fit the scan");
                    return Reading::Fill;
                }
            }
        }
        Reading::Cached(Arc::new(SeriesCacheExec::new(self.clone(), batches)))
    }

    /// `scan` (the Parquet scan of the runs, whole, on one partition) under
    /// a node that keeps what it reads.
    pub fn filling(self: &Arc<Self>, scan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        Arc::new(SeriesCacheFillExec {
            properties: one_partition(self.schema.clone()),
            runs: self.clone(),
            input: scan,
        })
    }

    /// Keeps the runs of `batches`, the whole output of the Parquet scan.
    fn keep(&self, batches: &[RecordBatch]) {
        let all = match concat_batches(&self.schema, batches) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "series runs not kept");
                return;
            }
        };
        if all.num_rows() as u64 != self.rows() {
            // Not the runs the scan was planned for: keep nothing.
            tracing::debug!(
                read = all.num_rows(),
                planned = self.rows(),
                "series runs not kept"
            );
            return;
        }
        let mut entries: Vec<(RunKey, ArrayRef)> = Vec::new();
        let mut offset = 0usize;
        for (key, rows) in self.keys().into_iter().step_by(self.columns.len().max(1)) {
            let rows = rows as usize;
            for (i, &column) in self.columns.iter().enumerate() {
                entries.push((
                    RunKey {
                        column,
                        ..key.clone()
                    },
                    all.column(i).slice(offset, rows),
                ));
            }
            offset += rows;
        }
        self.cache.insert(entries);
    }
}

/// A scan of series runs the cache held.
#[derive(Debug)]
pub struct SeriesCacheExec {
    runs: Arc<SeriesRuns>,
    batches: Vec<RecordBatch>,
    properties: Arc<PlanProperties>,
}

impl SeriesCacheExec {
    fn new(runs: Arc<SeriesRuns>, batches: Vec<RecordBatch>) -> Self {
        Self {
            properties: one_partition(runs.schema.clone()),
            runs,
            batches,
        }
    }
}

impl DisplayAs for SeriesCacheExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.runs.describe("SeriesCacheExec", f)
    }
}

impl ExecutionPlan for SeriesCacheExec {
    fn name(&self) -> &str {
        "SeriesCacheExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        only_partition_zero("SeriesCacheExec", partition)?;
        let batches: Vec<DfResult<RecordBatch>> = self.batches.iter().cloned().map(Ok).collect();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.runs.schema.clone(),
            futures::stream::iter(batches),
        )))
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        Ok(self.runs.statistics())
    }
}

/// The Parquet scan of series runs, keeping the runs it read in the cache.
#[derive(Debug)]
pub struct SeriesCacheFillExec {
    runs: Arc<SeriesRuns>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for SeriesCacheFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.runs.describe("SeriesCacheFillExec", f)
    }
}

impl ExecutionPlan for SeriesCacheFillExec {
    fn name(&self) -> &str {
        "SeriesCacheFillExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(Self {
                runs: self.runs.clone(),
                input,
                properties: self.properties.clone(),
            })),
            _ => {
                Err(TemporaError::internal("SeriesCacheFillExec takes one input").into_datafusion())
            }
        }
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        only_partition_zero("SeriesCacheFillExec", partition)?;
        let n = self.input.output_partitioning().partition_count();
        // The runs are told apart by their order: they are kept only when
        // the scan planned for them feeds this node directly, on one
        // partition. Otherwise every partition is read, one after another.
        let direct = n == 1 && self.input.downcast_ref::<DataSourceExec>().is_some();
        let input = one_after_another(&self.input, context)?;
        if !direct {
            tracing::debug!(input = self.input.name(), "series runs not kept");
            return Ok(input);
        }
        Ok(Box::pin(Filling {
            input,
            runs: self.runs.clone(),
            read: Vec::new(),
            failed: false,
        }))
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        Ok(self.runs.statistics())
    }
}

/// Passes the scan's batches on, and keeps the runs once it has read every
/// one (not when it failed or was dropped early).
struct Filling {
    input: SendableRecordBatchStream,
    runs: Arc<SeriesRuns>,
    read: Vec<RecordBatch>,
    failed: bool,
}

impl Stream for Filling {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.input.poll_next_unpin(cx);
        match &next {
            Poll::Ready(Some(Ok(batch))) => {
                let batch = batch.clone();
                self.read.push(batch);
            }
            Poll::Ready(Some(Err(_))) => self.failed = true,
            Poll::Ready(None) if !self.failed => {
                let read = std::mem::take(&mut self.read);
                if !read.is_empty() {
                    self.runs.keep(&read);
                }
                self.failed = true; // kept once
            }
            _ => {}
        }
        next
    }
}

impl RecordBatchStream for Filling {
    fn schema(&self) -> SchemaRef {
        self.runs.schema.clone()
    }
}
