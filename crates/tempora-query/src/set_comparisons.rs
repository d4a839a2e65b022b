//! `x op ANY (subquery)` and `x op ALL (subquery)` over the table the outer
//! query reads.
//!
//! DataFusion rewrites a set comparison into `EXISTS` subqueries that
//! compare the outer value with the subquery's column, and decorrelation
//! then renames the subquery's qualifier: when both sides read the same
//! table (`SELECT x FROM q WHERE x > ALL (SELECT x FROM q WHERE x < 3)`),
//! `outer_ref(q.x) > q.x` becomes `sq.x > sq.x` and the outer value is lost
//! (every row or none). This analyzer rule gives each set comparison's
//! subquery a name of its own first, so the comparison reads
//! `outer_ref(q.x) > __set_cmp_1.x`.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::AnalyzerRule;

const PREFIX: &str = "__set_cmp_";

/// The analyzer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct SetComparisonNames;

impl AnalyzerRule for SetComparisonNames {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut n = 0;
        plan.transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::SetComparison(mut sc)
                        if !matches!(sc.subquery.subquery.as_ref(),
                            LogicalPlan::SubqueryAlias(a) if a.alias.table().starts_with(PREFIX)) =>
                    {
                        n += 1;
                        let inner = Arc::unwrap_or_clone(sc.subquery.subquery);
                        sc.subquery.subquery = Arc::new(
                            LogicalPlanBuilder::from(inner)
                                .alias(format!("{PREFIX}{n}"))?
                                .build()?,
                        );
                        Ok(Transformed::yes(Expr::SetComparison(sc)))
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "set_comparison_names"
    }
}
