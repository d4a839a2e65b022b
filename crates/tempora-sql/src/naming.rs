//! PostgreSQL's names for unaliased result columns: `count(*)` is `count`,
//! `avg(temperature)` is `avg`, an expression without a name is `?column?`.
//! DataFusion would name them after the whole expression.

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};

/// The column name PostgreSQL gives an unaliased select-list expression, or
/// None when the expression keeps its own (column references).
fn pg_name(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Function(f) => crate::function_name(&f.name),
        Expr::Nested(inner) => return pg_name(inner).or_else(|| Some(column_of(inner)?)),
        Expr::Cast {
            expr, data_type, ..
        } => match column_of(expr) {
            Some(c) => c,
            None => match pg_name(expr) {
                Some(n) if n != "?column?" => n,
                _ => cast_type_name(&data_type.to_string()),
            },
        },
        Expr::Case { .. } => "case".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Exists { .. } => "exists".into(),
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
    for (item, name) in sel.projection.iter_mut().zip(&names) {
        let Some(name) = name else { continue };
        // Two columns with one name would be ambiguous to DataFusion: keep its names then.
        let dup = names.iter().filter(|n| n.as_ref() == Some(name)).count() > 1
            || explicit.contains(name);
        if dup {
            continue;
        }
        if let SelectItem::UnnamedExpr(e) = item {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::with_quote('"', name.clone()),
            };
        }
    }
}

/// Names the result columns of a top-level query as PostgreSQL does.
pub fn apply(stmt: &mut Statement) {
    if let Statement::Query(q) = stmt {
        name_select(q);
    }
}
