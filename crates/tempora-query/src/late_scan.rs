//! Physical plans that run again with other constants.
//!
//! A session's plan cache (tempora-sql/src/plan_cache.rs) keeps a query's
//! optimized logical plan with its constants as `$n`. Planning that plan
//! physically again for every execution costs more than running it when the
//! query reads one series for an hour: DataFusion's physical planner and
//! optimizer rules walk and rebuild the plan a dozen times. For such queries
//! the cache also keeps one physical plan, made so that it can run with any
//! constants:
//!
//! - every `$n` is a call of a [`Param`] function, which reads the value of
//!   the current execution from the plan's [`ParamSlots`];
//! - every scan of a Tempora table is a [`LateScanExec`]: it finds the chunks,
//!   files, series rows and unflushed rows to read when it runs, with the
//!   constants of that execution in its filters, as `TemporaTable::scan`
//!   does when a statement is planned.
//!
//! Only one execution at a time may use a plan's slots; the cache hands a
//! plan to one execution and plans others the ordinary way meanwhile.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{
    Boundedness, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PhysicalExpr, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use parking_lot::RwLock;
use tempora_common::TemporaError;

use crate::provider::{FileScan, TemporaTable};

/// The values of a plan's `$n` for the execution running it.
#[derive(Debug, Default)]
pub struct ParamSlots(RwLock<Vec<ScalarValue>>);

impl ParamSlots {
    /// Sets the values the next execution reads.
    pub fn set(&self, values: Vec<ScalarValue>) {
        *self.0.write() = values;
    }

    fn get(&self, index: usize) -> DfResult<ScalarValue> {
        self.0.read().get(index).cloned().ok_or_else(|| {
            TemporaError::internal(format!("no value for parameter ${}", index + 1))
                .into_datafusion()
        })
    }
}

/// `$n` of a kept plan: the value of the execution running it.
#[derive(Debug)]
pub struct Param {
    name: String,
    index: usize,
    data_type: DataType,
    signature: Signature,
    slots: Arc<ParamSlots>,
}

impl PartialEq for Param {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
            && self.data_type == other.data_type
            && Arc::ptr_eq(&self.slots, &other.slots)
    }
}

impl Eq for Param {}

impl Hash for Param {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state);
        self.data_type.hash(state);
    }
}

impl ScalarUDFImpl for Param {
    fn name(&self) -> &str {
        &self.name
    }

    /// As the `$n` it stands for, so that the names of the plan's columns
    /// (`count(*) FILTER (WHERE x > $1)`) stay those the plan was made with.
    fn display_name(&self, _args: &[Expr]) -> DfResult<String> {
        Ok(self.name.clone())
    }

    fn schema_name(&self, _args: &[Expr]) -> DfResult<String> {
        Ok(self.name.clone())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.data_type.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.slots.get(self.index).map(ColumnarValue::Scalar)
    }
}

/// `plan` (optimized, with `$1..$n` of `types`) with every `$n` reading its
/// value from `slots`.
pub fn with_params(
    plan: LogicalPlan,
    types: &[DataType],
    slots: &Arc<ParamSlots>,
) -> DfResult<LogicalPlan> {
    let calls: Vec<Arc<ScalarUDF>> = types
        .iter()
        .enumerate()
        .map(|(index, t)| {
            Arc::new(ScalarUDF::new_from_impl(Param {
                name: format!("${}", index + 1),
                index,
                data_type: t.clone(),
                signature: Signature::nullary(Volatility::Stable),
                slots: slots.clone(),
            }))
        })
        .collect();
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::Placeholder(p) => {
                    let call =
                        p.id.strip_prefix('$')
                            .and_then(|n| n.parse::<usize>().ok())
                            .and_then(|n| n.checked_sub(1))
                            .and_then(|i| calls.get(i))
                            .ok_or_else(|| {
                                TemporaError::internal(format!("unknown parameter {}", p.id))
                                    .into_datafusion()
                            })?;
                    Ok(Transformed::yes(Expr::ScalarFunction(
                        ScalarFunction::new_udf(call.clone(), vec![]),
                    )))
                }
                e => Ok(Transformed::no(e)),
            })
        })
    })
    .map(|t| t.data)
}

/// `expr` with every [`Param`] call replaced by its current value.
fn resolved(expr: &Expr) -> DfResult<Expr> {
    expr.clone()
        .transform_up(|e| match &e {
            Expr::ScalarFunction(f) => match f.func.inner().downcast_ref::<Param>() {
                Some(p) => Ok(Transformed::yes(Expr::Literal(p.slots.get(p.index)?, None))),
                None => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}

/// Set on a session config to have Tempora tables planned as
/// [`LateScanExec`]s.
#[derive(Debug, Default)]
pub struct LateScans;

/// A scan of a Tempora table that finds what to read when it runs.
#[derive(Debug)]
pub struct LateScanExec {
    table: Arc<TemporaTable>,
    projection: Option<Vec<usize>>,
    filters: Vec<Expr>,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl LateScanExec {
    pub(crate) fn new(
        table: Arc<TemporaTable>,
        projection: Option<Vec<usize>>,
        filters: Vec<Expr>,
        limit: Option<usize>,
    ) -> DfResult<Self> {
        let full = datafusion::catalog::TableProvider::schema(table.as_ref());
        let schema: SchemaRef = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        Ok(Self {
            table,
            projection,
            filters,
            limit,
            properties: one_partition(schema),
        })
    }
}

impl DisplayAs for LateScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let filters: Vec<String> = self.filters.iter().map(ToString::to_string).collect();
        write!(
            f,
            "LateScanExec: table={}, filters=[{}]",
            self.table.def().name,
            filters.join(", ")
        )
    }
}

impl ExecutionPlan for LateScanExec {
    fn name(&self) -> &str {
        "LateScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        only_partition_zero("LateScanExec", partition)?;
        let filters = self
            .filters
            .iter()
            .map(resolved)
            .collect::<DfResult<Vec<_>>>()?;
        let plan = self.table.plan_files(
            context.session_config(),
            &context.runtime_env(),
            &FileScan {
                projection: self.projection.as_ref(),
                filters: &filters,
                limit: self.limit,
                target_partitions: 1,
                predicate: true,
            },
        )?;
        // Files and unflushed rows: one after the other.
        one_after_another(&plan, context)
    }
}

/// The properties of a node with one output partition, emitting as it
/// reads.
pub(crate) fn one_partition(schema: SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// The error for a partition other than 0 of a one-partition node.
pub(crate) fn only_partition_zero(node: &str, partition: usize) -> DfResult<()> {
    if partition == 0 {
        return Ok(());
    }
    Err(
        TemporaError::internal(format!("{node} has one partition, not {partition}"))
            .into_datafusion(),
    )
}

/// Every partition of `plan`, read one after the other, in order.
pub(crate) fn one_after_another(
    plan: &Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
) -> DfResult<SendableRecordBatchStream> {
    let n = plan.output_partitioning().partition_count();
    if n == 1 {
        return plan.execute(0, context);
    }
    let streams = (0..n)
        .map(|i| plan.execute(i, context.clone()))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        plan.schema(),
        futures::stream::iter(streams).flatten(),
    )))
}
