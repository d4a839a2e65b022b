//! Correlated scalar subqueries the planner cannot run as written.
//!
//! DataFusion turns a correlated scalar subquery into a join only when the
//! subquery aggregates, and only when each of its correlated predicates
//! refers to columns of both sides. Catalog queries (SQLAlchemy's column
//! reflection, for one) write `(SELECT pg_get_expr(...) FROM pg_attrdef
//! WHERE adrelid = attrelid AND adnum = attnum AND attribute.atthasdef)`:
//! no aggregate, and a predicate on the outer row alone. Such a subquery
//! is rewritten here, before planning:
//!
//! - its value becomes `tempora_subquery_check((SELECT
//!   tempora_subquery_value(value) ...))`: an aggregate of the value and
//!   its number of rows, which the planner joins, and a check that keeps
//!   PostgreSQL's meaning where an outer row uses it (NULL for no row, 21000
//!   for more than one);
//! - the predicates on the outer row alone move out of it, as
//!   `CASE WHEN <those> THEN (<subquery>) END` (with no row the subquery is
//!   NULL either way).
//!
//! Which names are the subquery's own is read from its FROM list (table
//! names and aliases); a predicate with an unqualified column stays inside.
//! It runs after `pg_compat.rs`, whose catalog lookups already take their
//! one value through `first_value` (and split psql's collation lookups),
//! so it takes the rest.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, GroupByExpr, Query, SelectItem, SetExpr, Statement, TableFactor,
    Visit, VisitMut, Visitor, VisitorMut,
};
use tempora_query::aggregates::{SUBQUERY_CHECK, SUBQUERY_VALUE};

use crate::pg_compat::parse_expr;

/// Aggregates whose presence means the subquery already yields one row.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "first",
    "last",
    "histogram",
    "first_value",
    "last_value",
    "stddev",
    "variance",
    SUBQUERY_VALUE,
];

/// Rewrites the correlated scalar subqueries of `stmt` (innermost first).
/// The subquery of `x op ANY|ALL (...)` is a set, not a scalar: it is left
/// as it is (the subqueries inside it are still rewritten).
pub fn rewrite(stmt: &mut Statement) {
    struct Scalars {
        /// The set comparisons' subqueries met on the way down.
        sets: Vec<*const Query>,
    }
    impl VisitorMut for Scalars {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = expr {
                if let Expr::Subquery(q) = right.as_ref() {
                    self.sets.push(q.as_ref() as *const Query);
                }
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Subquery(query) = expr {
                if self.sets.contains(&(query.as_ref() as *const Query)) {
                    return ControlFlow::Continue(());
                }
                if let Some(new) = rewritten(query) {
                    *expr = new;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Scalars { sets: Vec::new() });
}

/// The names a subquery's FROM list gives its rows.
fn own_names(from: &[datafusion::sql::sqlparser::ast::TableWithJoins]) -> HashSet<String> {
    let mut names = HashSet::new();
    let factors = from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    for factor in factors {
        match factor {
            TableFactor::Table {
                alias: Some(alias), ..
            } => {
                names.insert(folded(&alias.name));
            }
            TableFactor::Table { name, .. } => {
                if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                    names.insert(folded(last));
                }
            }
            other => {
                if let Some(alias) = table_factor_alias(other) {
                    names.insert(alias);
                }
            }
        }
    }
    names
}

fn table_factor_alias(factor: &TableFactor) -> Option<String> {
    match factor {
        TableFactor::Derived { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. } => alias.as_ref().map(|a| folded(&a.name)),
        _ => None,
    }
}

fn folded(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// What the columns of an expression (outside nested subqueries) refer to.
#[derive(Default)]
struct References {
    depth: usize,
    /// Qualified columns of the subquery's own rows.
    own: usize,
    /// Qualified columns of an outer row.
    outer: usize,
    /// Unqualified columns, nested subqueries.
    unknown: usize,
}

struct Collect<'a> {
    own_names: &'a HashSet<String>,
    refs: References,
}

impl Visitor for Collect<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.refs.depth += 1;
        self.refs.unknown += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.refs.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.refs.depth > 0 {
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Identifier(_) => self.refs.unknown += 1,
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                if self.own_names.contains(&folded(&parts[parts.len() - 2])) {
                    self.refs.own += 1;
                } else {
                    self.refs.outer += 1;
                }
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                let name = name.rsplit('.').next().unwrap_or_default();
                if AGGREGATES.contains(&name) {
                    // An aggregate: the subquery yields one row already.
                    self.refs.unknown += 1_000_000;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn references(expr: &Expr, own_names: &HashSet<String>) -> References {
    let mut c = Collect {
        own_names,
        refs: References::default(),
    };
    let _ = expr.visit(&mut c);
    c.refs
}

fn and_all(exprs: &[Expr]) -> Option<String> {
    (!exprs.is_empty()).then(|| {
        exprs
            .iter()
            .map(|e| format!("({e})"))
            .collect::<Vec<_>>()
            .join(" AND ")
    })
}

/// The expression a correlated, non-aggregating scalar subquery becomes;
/// None for any other subquery.
fn rewritten(query: &Query) -> Option<Expr> {
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && !select.from.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.projection.len() == 1;
    if !plain {
        return None;
    }
    let own = own_names(&select.from);
    let (value, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    let value_refs = references(value, &own);
    if value_refs.unknown >= 1_000_000 {
        return None;
    }
    let mut predicates = vec![];
    if let Some(selection) = &select.selection {
        crate::pg_compat::conjuncts(selection.clone(), &mut predicates);
    }
    let mut outer_only = vec![];
    let mut inner = vec![];
    let mut correlated = value_refs.outer > 0;
    for p in predicates {
        let r = references(&p, &own);
        correlated |= r.outer > 0;
        if r.outer > 0 && r.own == 0 && r.unknown == 0 {
            outer_only.push(p);
        } else {
            inner.push(p);
        }
    }
    if !correlated {
        return None;
    }
    // A value that reads the outer row too (`json_build_object(...,
    // a.attidentity = 'a', ..., s.seqstart)`): the subquery yields its own
    // columns the value reads, and the value is computed outside.
    let (aggregated, outside) = if value_refs.outer > 0 {
        if value_refs.unknown > 0 {
            return None;
        }
        let columns = own_columns(value, &own);
        let fields: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(k, c)| format!("'c{k}', {c}"))
            .collect();
        (
            parse_expr(&format!("named_struct({})", fields.join(", ")))?,
            Some(columns),
        )
    } else {
        (value.clone(), None)
    };
    let mut select = select.clone();
    select.projection = vec![match alias {
        Some(alias) => SelectItem::ExprWithAlias {
            expr: call(&aggregated)?,
            alias: alias.clone(),
        },
        None => SelectItem::UnnamedExpr(call(&aggregated)?),
    }];
    select.selection = match and_all(&inner) {
        Some(text) => Some(parse_expr(&text)?),
        None => None,
    };
    let mut query = query.clone();
    query.body = Box::new(SetExpr::Select(select));
    let subquery = format!("{SUBQUERY_CHECK}({})", Expr::Subquery(Box::new(query)));
    let result = match outside {
        None => subquery,
        Some(columns) => {
            // NULL when no row matches, as the subquery would be.
            let mut value = value.clone();
            let _ = visit_expressions_mut(&mut value, |e: &mut Expr| {
                if let Some(k) = columns.iter().position(|c| c == &e.to_string()) {
                    if let Some(field) = parse_expr(&format!("get_field({subquery}, 'c{k}')")) {
                        *e = field;
                    }
                }
                ControlFlow::<()>::Continue(())
            });
            format!("CASE WHEN {subquery} IS NOT NULL THEN {value} END")
        }
    };
    match and_all(&outer_only) {
        Some(condition) => parse_expr(&format!("CASE WHEN {condition} THEN {result} END")),
        None => parse_expr(&result),
    }
}

/// The subquery's own columns an expression reads, as SQL text, each once.
fn own_columns(expr: &Expr, own: &HashSet<String>) -> Vec<String> {
    let mut columns: Vec<String> = vec![];
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e: &Expr| {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() >= 2 && own.contains(&folded(&parts[parts.len() - 2])) {
                let text = e.to_string();
                if !columns.contains(&text) {
                    columns.push(text);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    columns
}

fn call(value: &Expr) -> Option<Expr> {
    parse_expr(&format!("{SUBQUERY_VALUE}({value})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewrite_sql(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn outer_only_predicates_move_out_and_the_value_is_aggregated() {
        let got = rewrite_sql(
            "SELECT h.name, (SELECT r.value FROM readings AS r \
             WHERE r.host = h.id AND r.kind = h.kind AND h.active) AS v FROM hosts AS h",
        );
        assert_eq!(
            got,
            "SELECT h.name, CASE WHEN (h.active) THEN tempora_subquery_check((SELECT \
             tempora_subquery_value(r.value) FROM readings AS r \
             WHERE (r.host = h.id) AND (r.kind = h.kind))) END AS v FROM hosts AS h"
        );
    }

    #[test]
    fn a_value_reading_the_outer_row_is_computed_outside() {
        let got = rewrite_sql(
            "SELECT (SELECT json_build_object('always', a.attidentity = 'a', 'start', s.seqstart) \
             FROM pg_catalog.pg_sequence AS s WHERE s.seqrelid = a.attrelid) \
             FROM pg_catalog.pg_attribute AS a",
        );
        assert!(
            got.contains("tempora_subquery_value(named_struct('c0', s.seqstart))"),
            "{got}"
        );
        assert!(
            got.contains("'start', get_field(tempora_subquery_check("),
            "{got}"
        );
        assert!(got.contains("'always', a.attidentity = 'a'"), "{got}");
    }

    #[test]
    fn table_names_qualify_as_sqlalchemy_writes_them() {
        let got = rewrite_sql(
            "SELECT (SELECT public.readings.value FROM public.readings \
             WHERE public.readings.host = public.hosts.id) FROM public.hosts",
        );
        assert!(
            got.contains("tempora_subquery_value(public.readings.value)"),
            "{got}"
        );
        assert!(!got.contains("CASE"), "{got}");
    }

    #[test]
    fn other_subqueries_are_left_alone() {
        for sql in [
            // uncorrelated
            "SELECT (SELECT x FROM t WHERE t.y = 1) FROM u",
            // aggregating
            "SELECT (SELECT max(t.x) FROM t WHERE t.y = u.y) FROM u",
            // limited
            "SELECT (SELECT t.x FROM t WHERE t.y = u.y LIMIT 1) FROM u",
            // no FROM
            "SELECT (SELECT u.y) FROM u",
            // a catalog lookup as pg_compat.rs rewrote it
            "SELECT (SELECT first_value(d.adbin) FROM pg_catalog.pg_attrdef d \
             WHERE d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a",
        ] {
            let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
            let before = stmt.to_string();
            rewrite(&mut stmt);
            assert_eq!(stmt.to_string(), before, "{sql}");
        }
    }
}
