//! Plans of queries a session sends again with other constants.
//!
//! Dashboards and monitoring send the same query over and over, each time
//! with another time range or another series: `... WHERE hostname IN
//! ('host_7') AND time >= '2016-01-01 14:03' AND time < '2016-01-01 15:03'
//! ...`. Parsing, rewriting, planning and optimizing such a statement costs
//! more than running it when it reads a few thousand rows. The first time a
//! session sends a query of a given shape, the constants it compares columns
//! with (`column op constant`, `column IN (constants)`, `column BETWEEN
//! constant AND constant`) become parameters, and the query is planned and
//! optimized once with them as `$n`, typed by their columns. The next query
//! of the same shape only reads its constants as those types, with
//! PostgreSQL's input rules, and binds them to the optimized plan.
//!
//! Only plans that cannot depend on anything else are kept: every table they
//! read is a Tempora table (whose scan reads the current files and rows when
//! the plan runs), every function in them is immutable (an optimized plan has
//! `now()` folded), and no name of their result holds a parameter. A plan is
//! reused only while the catalog and the session's settings are those it was
//! made under, and never inside a transaction block that changed the catalog.
//! A constant that its type cannot read (`int_column = 1.5`) sends the
//! statement down the ordinary path, which answers as it always does.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, Statement, Value, ValueWithSpan, Visit, VisitMut, Visitor,
    VisitorMut,
};
use tempora_copy::zone::PgTimeZone;
use tempora_query::late_scan::{self, LateScanExec, ParamSlots};
use tempora_query::provider::TemporaTable;

use crate::{explain, Kind, ParsedStatement, Prepared, SqlSession};

/// Shapes kept per session; past it the cache starts again empty.
const CAPACITY: usize = 256;

/// A session's plans, by the text of their shape.
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Statements of Parse messages (planned, not optimized), by their text
    /// and the parameter types the client declared.
    parsed: Mutex<HashMap<ParsedKey, (Stamp, Prepared)>>,
}

/// A Parse message's text and declared parameter type oids.
type ParsedKey = (String, Vec<u32>);

#[derive(Debug, Clone)]
struct Entry {
    made_under: Stamp,
    /// None: a shape that is planned the ordinary way.
    plan: Option<CachedPlan>,
}

/// What a plan depends on besides its text: the catalog's version and
/// the session's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    catalog: u64,
    settings: u64,
}

#[derive(Debug, Clone)]
struct CachedPlan {
    shape: Arc<ShapePlan>,
    schema: SchemaRef,
    /// Whether the statement may ask for its newest time buckets
    /// (`tempora_query::newest_buckets`), which runs it differently.
    newest_buckets: bool,
}

/// A shape's optimized plan, and the physical plan of it that runs with any
/// constants (`tempora_query::late_scan`), made the first time the shape
/// reads few rows.
#[derive(Debug)]
pub(crate) struct ShapePlan {
    /// Optimized, with `$n` where the constants were.
    plan: LogicalPlan,
    types: Vec<DataType>,
    physical: Mutex<Made>,
}

#[derive(Debug, Clone)]
enum Made {
    NotYet,
    /// Being made, or it cannot be (a plan whose operators keep state
    /// between executions).
    No,
    Yes(Arc<Template>),
}

#[derive(Debug)]
struct Template {
    plan: Arc<dyn ExecutionPlan>,
    slots: Arc<ParamSlots>,
    /// Whether an execution is using `slots`.
    busy: AtomicBool,
}

/// A statement's way to its shape's physical plan: the shape and the
/// statement's constants.
#[derive(Debug, Clone)]
pub struct Reuse {
    shape: Arc<ShapePlan>,
    values: Vec<ScalarValue>,
}

/// An execution's hold on a kept physical plan; released when dropped.
#[derive(Debug)]
pub(crate) struct Lease(Arc<Template>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// A constant taken out of a statement, as written.
#[derive(Debug, Clone, PartialEq)]
enum Constant {
    Number(String),
    Text(String),
}

impl SqlSession {
    /// The query `stmt` (the only statement of `sql`), planned from a plan of
    /// its shape this session made before, its constants bound to it; None
    /// where it is to be planned the ordinary way.
    pub async fn prepare_cached(&self, sql: &str, stmt: &ParsedStatement) -> Option<Prepared> {
        let ParsedStatement::Sql { stmt, .. } = stmt else {
            return None;
        };
        if !matches!(stmt.as_ref(), Statement::Query(_)) || !self.tx_catalog.is_empty() {
            return None;
        }
        let mut shape = stmt.as_ref().clone();
        let constants = parameterize(&mut shape)?;
        let key = shape.to_string();
        let stamp = self.plan_stamp();
        let known = self
            .plan_cache
            .entries
            .lock()
            .ok()?
            .get(&key)
            .filter(|e| e.made_under == stamp)
            .cloned();
        let reused = known.is_some();
        let entry = match known {
            Some(entry) => entry,
            None => {
                let entry = Entry {
                    made_under: stamp,
                    plan: self.plan_shape(&key, shape, constants.len()).await,
                };
                let mut entries = self.plan_cache.entries.lock().ok()?;
                if entries.len() >= CAPACITY {
                    entries.clear();
                }
                entries.insert(key, entry.clone());
                entry
            }
        };
        let cached = entry.plan?;
        let zone = self.time_zone();
        let values = constants
            .iter()
            .zip(&cached.shape.types)
            .map(|(c, t)| read_constant(c, t, &zone).map(Into::into))
            .collect::<Option<Vec<_>>>()?;
        // A value the plan does not take sends the statement the ordinary way.
        let plan = cached
            .shape
            .plan
            .clone()
            .with_param_values(ParamValues::List(values.clone()))
            .ok()?;
        let reuse = Some(Reuse {
            shape: cached.shape,
            values: values.into_iter().map(|v| v.value).collect(),
        });
        if reused {
            tracing::debug!(shape = %shape_of(sql), "query plan reused");
        }
        Some(Prepared {
            sql: sql.to_string(),
            kind: Kind::Optimized {
                plan: Box::new(plan),
                newest_buckets: cached.newest_buckets,
                reuse,
            },
            param_types: vec![],
            result_schema: Some(cached.schema),
            definitions: self.engine.catalog().definitions(),
        })
    }

    /// A Parse message's statement this session planned before with the same
    /// text and declared parameter types (`declared`, their type oids), if
    /// nothing it depends on changed since. Drivers send the same statement
    /// to be parsed again for every execution.
    pub fn parsed_before(&self, sql: &str, declared: &[u32]) -> Option<Prepared> {
        if !self.tx_catalog.is_empty() {
            return None;
        }
        let stamp = self.plan_stamp();
        let parsed = self.plan_cache.parsed.lock().ok()?;
        let (made_under, prepared) = parsed.get(&(sql.to_string(), declared.to_vec()))?;
        if *made_under != stamp {
            return None;
        }
        tracing::debug!(statement = %shape_of(sql), "parsed statement reused");
        Some(prepared.clone())
    }

    /// Keeps a Parse message's statement for [`SqlSession::parsed_before`]
    /// when its plan may be run again: a query reading Tempora tables only.
    /// `stamp` is [`SqlSession::plan_stamp`] as it was before the statement
    /// was planned.
    pub fn keep_parsed(&self, sql: &str, declared: &[u32], prepared: &Prepared, stamp: Stamp) {
        let Kind::Query(plan) = &prepared.kind else {
            return;
        };
        if !self.tx_catalog.is_empty()
            || explain::explain_kind(plan).is_some()
            || crate::chunk_rewriting_call(plan).is_some()
            || !reads_tempora_tables_only(plan)
        {
            return;
        }
        let Ok(mut parsed) = self.plan_cache.parsed.lock() else {
            return;
        };
        if parsed.len() >= CAPACITY {
            parsed.clear();
        }
        parsed.insert(
            (sql.to_string(), declared.to_vec()),
            (stamp, prepared.clone()),
        );
    }

    /// What the session's plans depend on now.
    pub fn plan_stamp(&self) -> Stamp {
        Stamp {
            catalog: self.engine.catalog().snapshot().version,
            settings: self.settings.generation(),
        }
    }

    /// Plans and optimizes a statement whose constants are `$1..$n`, or None
    /// if its plan is not one to keep.
    async fn plan_shape(&self, key: &str, shape: Statement, n: usize) -> Option<CachedPlan> {
        let prepared = self.prepare_statement(key, shape).await.ok()?;
        let Kind::Query(plan) = prepared.kind else {
            return None;
        };
        if explain::explain_kind(&plan).is_some() || crate::chunk_rewriting_call(&plan).is_some() {
            return None;
        }
        let types = prepared
            .param_types
            .into_iter()
            .collect::<Option<Vec<DataType>>>()?;
        let schema = prepared.result_schema?;
        if types.len() != n
            || !reusable(&plan)
            || schema.fields().iter().any(|f| f.name().contains('$'))
        {
            return None;
        }
        let newest_buckets = tempora_query::newest_buckets::candidate(&plan);
        let plan = self.df_state().optimize(&plan).ok()?;
        Some(CachedPlan {
            shape: Arc::new(ShapePlan {
                plan,
                types,
                physical: Mutex::new(Made::NotYet),
            }),
            schema,
            newest_buckets,
        })
    }

    /// The kept physical plan of `reuse`'s shape with the statement's
    /// constants set, for a statement (`plan`, bound) that reads few rows;
    /// None while another execution holds it, or where the ordinary way is
    /// to be taken.
    pub(crate) async fn kept_physical(
        &self,
        plan: &LogicalPlan,
        reuse: &Reuse,
    ) -> Option<(Arc<dyn ExecutionPlan>, Lease)> {
        if !tempora_query::small_scans::reads_few_rows(plan) {
            return None;
        }
        let made = {
            let mut state = reuse.shape.physical.lock().ok()?;
            let made = state.clone();
            if matches!(made, Made::NotYet) {
                *state = Made::No;
            }
            made
        };
        let template = match made {
            Made::Yes(t) => t,
            Made::No => return None,
            Made::NotYet => {
                let t = Arc::new(self.make_template(&reuse.shape).await?);
                *reuse.shape.physical.lock().ok()? = Made::Yes(t.clone());
                t
            }
        };
        if template
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let lease = Lease(template.clone());
        template.slots.set(reuse.values.clone());
        // Fresh operators (and metrics) around the same expressions.
        let plan = reset_plan_states(template.plan.clone()).ok()?;
        tracing::debug!("kept physical plan run");
        Some((plan, lease))
    }

    async fn make_template(&self, shape: &ShapePlan) -> Option<Template> {
        let slots = Arc::new(ParamSlots::default());
        let made = match late_scan::with_params(shape.plan.clone(), &shape.types, &slots) {
            Ok(plan) => tempora_query::small_scans::plan_late(&plan, &self.df_state()).await,
            Err(e) => Err(e),
        };
        let plan = match made {
            Ok(plan) => plan,
            Err(e) => {
                tracing::debug!(error = %e, "physical plan not kept");
                return None;
            }
        };
        if !runs_again(&plan) {
            tracing::debug!("physical plan not kept: it keeps state between runs");
            return None;
        }
        Some(Template {
            plan,
            slots,
            busy: AtomicBool::new(false),
        })
    }
}

/// Whether a physical plan made by `plan_late` can run again with other
/// constants: its leaves find their rows when they run (or have none), and
/// no operator feeds another a filter it learns as it runs.
fn runs_again(plan: &Arc<dyn ExecutionPlan>) -> bool {
    use datafusion::common::tree_node::TreeNode as _;
    let mut ok = true;
    let mut scans = 0;
    let _ = plan.apply(|node| {
        if !node.dynamic_expressions_produced().is_empty() {
            ok = false;
        }
        if node.children().is_empty() {
            if node.downcast_ref::<LateScanExec>().is_some() {
                scans += 1;
            } else if node.downcast_ref::<EmptyExec>().is_none()
                && node.downcast_ref::<PlaceholderRowExec>().is_none()
            {
                ok = false;
            }
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok && scans > 0
}

/// Replaces the constants `stmt` compares columns with by `$1..$n`, in the
/// order they appear, and returns them; None if `stmt` has parameters of
/// its own.
fn parameterize(stmt: &mut Statement) -> Option<Vec<Constant>> {
    struct HasParameters;
    impl Visitor for HasParameters {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &SqlExpr) -> ControlFlow<()> {
            match e {
                SqlExpr::Value(ValueWithSpan {
                    value: Value::Placeholder(_),
                    ..
                }) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    if Visit::visit(&*stmt, &mut HasParameters).is_break() {
        return None;
    }
    struct Constants(Vec<Constant>);
    impl Constants {
        fn take(&mut self, e: &mut SqlExpr) {
            let SqlExpr::Value(v) = e else {
                return;
            };
            let constant = match &v.value {
                Value::Number(n, false) => Constant::Number(n.to_string()),
                Value::SingleQuotedString(s) => Constant::Text(s.clone()),
                _ => return,
            };
            self.0.push(constant);
            v.value = Value::Placeholder(format!("${}", self.0.len()));
        }
    }
    impl VisitorMut for Constants {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<()> {
            match e {
                SqlExpr::BinaryOp { left, op, right } if comparison(op) => {
                    if is_column(left) {
                        self.take(right);
                    } else if is_column(right) {
                        self.take(left);
                    }
                }
                SqlExpr::InList { expr, list, .. } if is_column(expr) => {
                    list.iter_mut().for_each(|e| self.take(e));
                }
                SqlExpr::Between {
                    expr, low, high, ..
                } if is_column(expr) => {
                    self.take(low);
                    self.take(high);
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut constants = Constants(Vec::new());
    let _ = stmt.visit(&mut constants);
    Some(constants.0)
}

/// The start of a statement's text, for the log.
fn shape_of(sql: &str) -> &str {
    let end = sql.char_indices().nth(80).map_or(sql.len(), |(i, _)| i);
    &sql[..end]
}

fn comparison(op: &BinaryOperator) -> bool {
    use BinaryOperator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq)
}

fn is_column(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))
}

/// Whether an optimized `plan` may be run again later: it reads Tempora
/// tables only and calls immutable functions only.
fn reusable(plan: &LogicalPlan) -> bool {
    reads_tempora_tables_only(plan) && immutable(plan)
}

/// Whether every table `plan` reads is a Tempora table, whose scan finds
/// the files and rows to read when the plan runs (the catalog relations
/// take a snapshot when they are planned).
fn reads_tempora_tables_only(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            ok &= source_as_provider(&scan.source)
                .ok()
                .is_some_and(|p| p.downcast_ref::<TemporaTable>().is_some());
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// Whether every function `plan` calls is immutable: an optimized plan has
/// the others (`now()`) folded to their value.
fn immutable(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    ok &= f.func.signature().volatility == Volatility::Immutable;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// A constant as the type of the column it was compared with, read as the
/// statement would read it; None where the ordinary plan would compare
/// otherwise (`int_column = 1.5` compares as numbers with a fraction) or the
/// text is not valid input (the ordinary path raises the error).
fn read_constant(c: &Constant, ty: &DataType, zone: &PgTimeZone) -> Option<ScalarValue> {
    Some(match (c, ty) {
        (Constant::Number(n), DataType::Int16) => ScalarValue::Int16(Some(n.parse().ok()?)),
        (Constant::Number(n), DataType::Int32) => ScalarValue::Int32(Some(n.parse().ok()?)),
        (Constant::Number(n), DataType::Int64) => ScalarValue::Int64(Some(n.parse().ok()?)),
        (Constant::Number(n), DataType::Float64) => ScalarValue::Float64(Some(n.parse().ok()?)),
        (Constant::Text(s), DataType::Utf8) => ScalarValue::Utf8(Some(s.clone())),
        (Constant::Text(s), DataType::Utf8View) => ScalarValue::Utf8View(Some(s.clone())),
        (Constant::Text(s), DataType::LargeUtf8) => ScalarValue::LargeUtf8(Some(s.clone())),
        (Constant::Text(s), DataType::Timestamp(..) | DataType::Date32) => {
            tempora_query::pg_literals::text_literal(s, ty, zone).ok()??
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> (String, Option<Vec<Constant>>) {
        let mut stmt = crate::parse(sql).unwrap().remove(0);
        let constants = parameterize(&mut stmt);
        (stmt.to_string(), constants)
    }

    #[test]
    fn constants_compared_with_columns_become_parameters() {
        let (text, constants) = shape(
            "SELECT time_bucket('60 seconds', time) AS m, max(v) FROM cpu \
             WHERE hostname IN ('host_1', 'host_2') AND time >= '2016-01-01' \
             AND 90.5 < v AND n BETWEEN 1 AND 5 GROUP BY m ORDER BY m LIMIT 5",
        );
        assert_eq!(
            text,
            "SELECT time_bucket('60 seconds', time) AS m, max(v) FROM cpu \
             WHERE hostname IN ($1, $2) AND time >= $3 \
             AND $4 < v AND n BETWEEN $5 AND $6 GROUP BY m ORDER BY m LIMIT 5"
        );
        use Constant::*;
        assert_eq!(
            constants.unwrap(),
            vec![
                Text("host_1".into()),
                Text("host_2".into()),
                Text("2016-01-01".into()),
                Number("90.5".into()),
                Number("1".into()),
                Number("5".into()),
            ]
        );
    }

    #[test]
    fn other_constants_stay() {
        // Function arguments, negative numbers, typed strings, NULL, booleans
        // and comparisons of expressions are part of the shape.
        let sql = "SELECT * FROM t WHERE a > -5 AND b = TIMESTAMP '2024-01-01' \
                   AND c IS NULL AND d = true AND e + 1 > 2 AND f = now()";
        let (text, constants) = shape(sql);
        assert_eq!(text, sql);
        assert_eq!(constants.unwrap(), vec![]);
        // A statement with parameters of its own is left alone.
        assert!(shape("SELECT * FROM t WHERE a = $1 AND b = 2").1.is_none());
    }

    #[test]
    fn constants_are_read_as_their_columns_types() {
        let utc = PgTimeZone::of_setting("UTC");
        let n = |s: &str| Constant::Number(s.into());
        let t = |s: &str| Constant::Text(s.into());
        assert_eq!(
            read_constant(&n("7"), &DataType::Int32, &utc),
            Some(ScalarValue::Int32(Some(7)))
        );
        assert_eq!(
            read_constant(&n("90"), &DataType::Float64, &utc),
            Some(ScalarValue::Float64(Some(90.0)))
        );
        let tz = DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        );
        assert_eq!(
            read_constant(&t("2016-01-01 00:00:01 +0000"), &tz, &utc),
            Some(ScalarValue::TimestampMicrosecond(
                Some(1_451_606_401_000_000),
                Some("UTC".into())
            ))
        );
        // What the ordinary plan compares otherwise, or rejects.
        assert_eq!(read_constant(&n("1.5"), &DataType::Int32, &utc), None);
        assert_eq!(
            read_constant(&n("3000000000"), &DataType::Int32, &utc),
            None
        );
        assert_eq!(read_constant(&n("1"), &DataType::Float32, &utc), None);
        assert_eq!(read_constant(&n("5"), &DataType::Utf8, &utc), None);
        assert_eq!(read_constant(&t("5"), &DataType::Int64, &utc), None);
        assert_eq!(read_constant(&t("not a time"), &tz, &utc), None);
    }
}
