//! PostgreSQL's names for unaliased result columns: `count(*)` is `count`,
//! `avg(temperature)` is `avg`, an expression without a name is `?column?`.
//! DataFusion would name them after the whole expression.

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};

/// The column name PostgreSQL gives an unaliased select-list expression, or
/// None when the expression keeps its own (column references).
fn pg_name(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Function(f) => match crate::function_name(&f.name).as_str() {
            // Operators rewritten as calls (calls.rs) keep an operator's name.
            "interval_mul" | "interval_div" => "?column?".into(),
            name => name.to_string(),
        },
        Expr::Nested(inner) => return pg_name(inner).or_else(|| column_of(inner)),
        Expr::Cast {
            expr, data_type, ..
        } => match column_of(expr) {
            Some(c) => c,
            None => match pg_name(expr) {
                Some(n) if n != "?column?" => n,
                _ => cast_type_name(&data_type.to_string()),
            },
        },
        Expr::TypedString(t) => cast_type_name(&t.data_type.to_string()),
        Expr::Case { .. } => "case".into(),
        Expr::AtTimeZone { .. } => "timezone".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Exists { .. } => "exists".into(),
        // A scalar subquery takes its one column's name.
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(sel) => match sel.projection.as_slice() {
                [SelectItem::ExprWithAlias { alias, .. }] => alias.value.clone(),
                [SelectItem::UnnamedExpr(e)] => column_of(e)
                    .or_else(|| pg_name(e))
                    .unwrap_or_else(|| "?column?".into()),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        Expr::Array(_) => "array".into(),
        Expr::Interval(_) => "interval".into(),
        _ => "?column?".into(),
    })
}

fn column_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        _ => None,
    }
}

fn cast_type_name(t: &str) -> String {
    let t = t.to_lowercase();
    let base = t.split('(').next().unwrap_or(&t).trim();
    match base {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "real" | "float4" => "float4",
        "double precision" | "float8" | "float" => "float8",
        "boolean" | "bool" => "bool",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "character varying" | "varchar" => "varchar",
        "decimal" | "numeric" => "numeric",
        other => other,
    }
    .to_string()
}

/// Marks the start of a hidden suffix in a generated column alias.
const HIDDEN: char = '\u{1}';

/// The name a client sees for a result column.
pub fn output_name(name: &str) -> &str {
    name.split(HIDDEN).next().unwrap_or(name)
}

fn name_select(query: &mut Query) {
    let SetExpr::Select(sel) = query.body.as_mut() else {
        return;
    };
    let names: Vec<Option<String>> = sel
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => pg_name(e),
            _ => None,
        })
        .collect();
    let explicit: Vec<String> = sel
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            SelectItem::UnnamedExpr(e) => column_of(e),
            _ => None,
        })
        .collect();
    let mut seq = 0usize;
    for (item, name) in sel.projection.iter_mut().zip(&names) {
        let Some(name) = name else { continue };
        // DataFusion needs unique names; PostgreSQL allows repeats. A repeated
        // name gets a hidden suffix that `output_name` strips from the result.
        let dup = names.iter().filter(|n| n.as_ref() == Some(name)).count() > 1
            || explicit.contains(name);
        if let SelectItem::UnnamedExpr(e) = item {
            let alias = if dup {
                seq += 1;
                format!("{name}{HIDDEN}{seq}")
            } else {
                name.clone()
            };
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', alias),
            };
        }
    }
}

/// Integer literals of a query (outside LIMIT/OFFSET and positional GROUP BY /
/// ORDER BY) are `integer` (int4) when they fit, as in PostgreSQL; DataFusion
/// would make them bigint and clients decoding int4 fail.
fn int4_literals(query: &mut Query) {
    use datafusion::sql::sqlparser::ast::{CastKind, DataType, Value, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct Int4;
    impl VisitorMut for Int4 {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e {
                if let Value::Number(n, false) = &v.value {
                    if n.parse::<i32>().is_ok() {
                        *e = Expr::Cast {
                            kind: CastKind::DoubleColon,
                            expr: Box::new(e.clone()),
                            data_type: DataType::Int(None),
                            format: None,
                            array: false,
                        };
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    // LIMIT/OFFSET keep DataFusion's bigint; positions in GROUP BY 1 /
    // ORDER BY 1 stay positions.
    let limit = query.limit_clause.take();
    let order = query.order_by.take();
    let group = match query.body.as_mut() {
        SetExpr::Select(sel) => Some(std::mem::replace(
            &mut sel.group_by,
            datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(vec![], vec![]),
        )),
        _ => None,
    };
    let _ = query.body.visit(&mut Int4);
    // Window frame offsets (`ROWS BETWEEN 1 PRECEDING ...`) must stay plain
    // literals for DataFusion.
    let _ = query.body.visit(&mut FrameOffsets);
    // Subqueries and CTEs have positions too.
    let _ = query.body.visit(&mut NestedPositions);
    if let (SetExpr::Select(sel), Some(g)) = (query.body.as_mut(), group) {
        sel.group_by = g;
    }
    query.order_by = order;
    query.limit_clause = limit;
}

/// Undoes [`int4_literals`]' casts where a nested query's integers are
/// positions or counts: GROUP BY 1, ORDER BY 1, LIMIT and OFFSET.
struct NestedPositions;

fn uncast(e: &mut Expr) {
    if let Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
        expr,
        data_type: datafusion::sql::sqlparser::ast::DataType::Int(None),
        ..
    } = e
    {
        if matches!(expr.as_ref(), Expr::Value(_)) {
            let inner = std::mem::replace(
                expr.as_mut(),
                Expr::Value(datafusion::sql::sqlparser::ast::Value::Null.into()),
            );
            *e = inner;
        }
    }
}

impl datafusion::sql::sqlparser::ast::VisitorMut for NestedPositions {
    type Break = ();
    fn post_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, LimitClause, OrderByKind};
        if let SetExpr::Select(sel) = q.body.as_mut() {
            if let GroupByExpr::Expressions(exprs, _) = &mut sel.group_by {
                exprs.iter_mut().for_each(uncast);
            }
        }
        if let Some(order) = &mut q.order_by {
            if let OrderByKind::Expressions(exprs) = &mut order.kind {
                exprs.iter_mut().for_each(|o| uncast(&mut o.expr));
            }
        }
        match &mut q.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, .. }) => {
                if let Some(l) = limit {
                    uncast(l);
                }
                if let Some(o) = offset {
                    uncast(&mut o.value);
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                uncast(offset);
                uncast(limit);
            }
            None => {}
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Undoes [`int4_literals`]' casts on window frame offsets.
struct FrameOffsets;

impl datafusion::sql::sqlparser::ast::VisitorMut for FrameOffsets {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{WindowFrameBound, WindowType};
        if let Expr::Function(f) = e {
            if let Some(WindowType::WindowSpec(spec)) = &mut f.over {
                if let Some(frame) = &mut spec.window_frame {
                    let bounds =
                        std::iter::once(&mut frame.start_bound).chain(frame.end_bound.as_mut());
                    for b in bounds {
                        if let WindowFrameBound::Preceding(Some(x))
                        | WindowFrameBound::Following(Some(x)) = b
                        {
                            if let Expr::Cast { expr, .. } = x.as_mut() {
                                let inner = std::mem::replace(
                                    expr.as_mut(),
                                    Expr::Value(
                                        datafusion::sql::sqlparser::ast::Value::Null.into(),
                                    ),
                                );
                                **x = inner;
                            }
                        }
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Names the result columns of a top-level query as PostgreSQL does.
pub fn apply(stmt: &mut Statement) {
    if let Statement::Query(q) = stmt {
        name_select(q);
        int4_literals(q);
    }
}

/// The rows of `INSERT ... SELECT` need unique column names too (`SELECT
/// t, 1, 1`); their names are not shown.
pub fn apply_to_insert_source(stmt: &mut Statement) {
    if let Statement::Insert(i) = stmt {
        if let Some(q) = i.source.as_mut() {
            name_select(q);
        }
    }
}
