//! Statements that read few rows are planned on one partition.
//!
//! DataFusion plans every query for `target_partitions` threads: it splits
//! the scan round-robin, hashes rows between the two phases of an aggregate
//! and merges the partitions at the end. For a statement that reads one
//! series for an hour (a few thousand rows) that machinery costs more than
//! the rows do, in planning (the distribution rules) and in execution
//! (tasks, channels, the second aggregation phase). [`TemporaQueryPlanner`]
//! plans a statement whose every scan is of a Tempora table and reads few
//! rows, by [`TemporaTable::estimated_rows`], with one partition.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

use crate::provider::TemporaTable;

/// The most rows a statement's scans may read, together, for it to be
/// planned on one partition: about a millisecond of decoding.
pub const SMALL_SCAN_ROWS: u64 = 128 * 1024;

/// DataFusion's physical planner, with one partition for statements that
/// read few rows.
#[derive(Debug, Default)]
pub struct TemporaQueryPlanner;

#[async_trait]
impl QueryPlanner for TemporaQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::default();
        if let Some(state) = session.as_any().downcast_ref::<SessionState>() {
            if state.config().target_partitions() > 1 && reads_few_rows(plan) {
                let mut one = state.clone();
                one.config_mut().options_mut().execution.target_partitions = 1;
                return planner.create_physical_plan(plan, &one).await;
            }
        }
        planner.create_physical_plan(plan, session).await
    }
}

/// `plan` planned on one partition with every Tempora table scanned by a
/// [`crate::late_scan::LateScanExec`], which finds what to read when it runs:
/// a plan that can run again (see `crate::late_scan`).
pub async fn plan_late(
    plan: &LogicalPlan,
    state: &SessionState,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let mut late = state.clone();
    let config = late.config_mut();
    config.options_mut().execution.target_partitions = 1;
    config.set_extension(Arc::new(crate::late_scan::LateScans));
    DefaultPhysicalPlanner::default()
        .create_physical_plan(plan, &late)
        .await
}

/// Whether every scan of `plan` (subqueries included) is of a Tempora table
/// and all of them together read at most [`SMALL_SCAN_ROWS`] rows.
pub fn reads_few_rows(plan: &LogicalPlan) -> bool {
    let mut rows: u64 = 0;
    let mut scans = 0;
    let mut known = true;
    let walked = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let table = source_as_provider(&scan.source).ok().and_then(|p| {
                p.downcast_ref::<TemporaTable>()
                    .map(|t| t.estimated_rows(&scan.filters))
            });
            match table {
                Some(n) => {
                    scans += 1;
                    rows = rows.saturating_add(n);
                }
                None => known = false,
            }
            if !known || rows > SMALL_SCAN_ROWS {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    walked.is_ok() && known && scans > 0 && rows <= SMALL_SCAN_ROWS
}
