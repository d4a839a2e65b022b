//! PostgreSQL query shapes DataFusion does not plan, rewritten into shapes
//! it does. The generic emulation's rules come first; Tempora's follow for
//! what the catalog queries of psql, drivers and BI tools use:
//!
//! - `ARRAY(SELECT e FROM ...)` becomes `(SELECT array_agg(e) FROM ...)`,
//!   empty rather than NULL when no row matches;
//! - a scalar subquery reading only `pg_catalog` takes its value through
//!   `first_value`, which DataFusion decorrelates (catalog lookups find at
//!   most one row by construction; user queries are left as they are, so a
//!   subquery returning several rows is never silently cut to one);
//! - `x::regclass` and `x::regtype` of a column, where the value is shown
//!   (a select item, or cast on to text), print the name as PostgreSQL does.

use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock};

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr, FunctionArguments, GroupByExpr, ObjectNamePart, Query,
    SelectItem, SetExpr, Statement, TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion_pg_catalog::sql::rules::{
    CurrentUserVariableToSessionUserFunctionCall, FixArrayLiteral, FixVersionColumnName,
    PrependUnqualifiedPgTableName, ResolveUnqualifiedIdentifier, RewritePgCatalogOperator,
    RewriteRegCastToSubquery, SqlStatementRewriteRule, StripCallableQualifier, StripCollate,
};

/// `x = ANY (array)` and `x <> ALL (array)` as array membership
/// (`array_contains`), an array given as a `'{a,b}'` literal read as text
/// elements (the catalog columns clients compare that way). A subquery on the
/// right stays a set comparison, which DataFusion plans with PostgreSQL's
/// NULL rules (and subqueries.rs leaves alone).
struct ArrayAnyAll;

impl VisitorMut for ArrayAnyAll {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let (left, right, negated) = match expr {
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => (left, right, false),
            Expr::AllOp {
                left,
                compare_op: BinaryOperator::NotEq,
                right,
            } => (left, right, true),
            _ => return ControlFlow::Continue(()),
        };
        if matches!(right.as_ref(), Expr::Subquery(_)) {
            return ControlFlow::Continue(());
        }
        let array = match right.as_ref() {
            Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(text),
                ..
            }) if text.trim().starts_with('{') && text.trim().ends_with('}') => {
                let items: Vec<String> = text
                    .trim()
                    .trim_matches(['{', '}'])
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("'{}'", s.replace('\'', "''")))
                    .collect();
                format!("ARRAY[{}]", items.join(", "))
            }
            other => other.to_string(),
        };
        let not = if negated { "NOT " } else { "" };
        if let Some(e) = parse_expr(&format!("{not}array_contains({array}, {left})")) {
            *expr = e;
        }
        ControlFlow::Continue(())
    }
}

/// The emulation's rules, in its order, but for the one replacing every
/// correlated subquery in a select list by NULL (a wrong answer where
/// PostgreSQL gives a value): Tempora plans those it can instead; and for
/// the one aliasing `oid` in `SELECT oid, *` as `__alias_oid`, which
/// naming.rs does with a name the client does not see.
static RULES: LazyLock<Vec<Arc<dyn SqlStatementRewriteRule>>> = LazyLock::new(|| {
    vec![
        Arc::new(ResolveUnqualifiedIdentifier),
        Arc::new(PrependUnqualifiedPgTableName),
        Arc::new(StripCallableQualifier),
        Arc::new(FixArrayLiteral),
        Arc::new(CurrentUserVariableToSessionUserFunctionCall),
        Arc::new(StripCollate),
        Arc::new(RewritePgCatalogOperator),
        Arc::new(RewriteRegCastToSubquery::new()),
        Arc::new(FixVersionColumnName),
    ]
});

/// Rewrites one statement.
pub(crate) fn rewrite(stmt: Statement) -> Statement {
    let mut stmt = stmt;
    let _ = stmt.visit(&mut EmptyCatalogQueries);
    let _ = stmt.visit(&mut RegLookups);
    let _ = stmt.visit(&mut UserKeyword);
    let _ = stmt.visit(&mut ArrayFunctions);
    let _ = stmt.visit(&mut ArrayAnyAll);
    for rule in RULES.iter() {
        stmt = rule.rewrite(stmt);
    }
    let _ = stmt.visit(&mut CatalogArrayLiterals);
    let _ = stmt.visit(&mut CatalogSubqueries);
    stmt
}

/// The rewrites that change how a select item reads, run once result
/// columns have their PostgreSQL names (naming.rs names `ARRAY(...)`
/// `array` and `x::regclass` after `x`): `ARRAY(SELECT ...)`, and
/// `x::regclass` / `x::regtype` shown by name.
pub(crate) fn after_naming(stmt: &mut Statement) {
    let _ = stmt.visit(&mut ArraySubqueries);
    let _ = stmt.visit(&mut DisplayCasts);
}

/// The type kept as marked text (json, jsonb, uuid) a SQL type names, if any.
fn text_kept_type(t: &DataType) -> Option<&'static str> {
    match t {
        DataType::JSON => Some("json"),
        DataType::JSONB => Some("jsonb"),
        DataType::Uuid => Some("uuid"),
        DataType::Custom(name, args) if args.is_empty() => {
            match crate::function_name(name).as_str() {
                "json" => Some("json"),
                "jsonb" => Some("jsonb"),
                "uuid" => Some("uuid"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The computed values of a VALUES list (not its constants, parameters or
/// names) as `tempora_plain(value)`: rows must agree on their columns'
/// metadata, which a json or uuid value beside a NULL would not. An INSERT
/// stores them as its columns' types all the same.
pub(crate) fn plain_values(stmt: &mut Statement) {
    struct Rows;
    impl VisitorMut for Rows {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            let SetExpr::Values(values) = q.body.as_mut() else {
                return ControlFlow::Continue(());
            };
            if values.rows.len() < 2 {
                return ControlFlow::Continue(());
            }
            for row in values.rows.iter_mut() {
                for e in row.iter_mut() {
                    let plain = matches!(
                        e,
                        Expr::Value(_)
                            | Expr::Identifier(_)
                            | Expr::CompoundIdentifier(_)
                            | Expr::UnaryOp { .. }
                    ) || matches!(e, Expr::Cast { data_type, .. } if text_kept_type(data_type).is_none())
                        || matches!(e, Expr::TypedString(t) if text_kept_type(&t.data_type).is_none());
                    if !plain {
                        if let Some(wrapped) = parse_expr(&format!("tempora_plain({e})")) {
                            *e = wrapped;
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Rows);
}

/// `x::jsonb`, `CAST(x AS json)`, `JSONB '...'` and `x::uuid` become calls
/// of the types' input functions (tempora-query's `jsonb` module), which check
/// and normalize the text and mark the result with its type. Run on every
/// statement DataFusion plans, after result columns have their names.
pub(crate) fn json_casts(stmt: &mut Statement) {
    struct Casts;
    impl VisitorMut for Casts {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some(e) = json_agg(expr) {
                *expr = e;
                return ControlFlow::Continue(());
            }
            let call = match expr {
                Expr::Cast {
                    expr: inner,
                    data_type,
                    ..
                } => text_kept_type(data_type).map(|f| (f, inner.as_ref().clone())),
                Expr::TypedString(t) => {
                    text_kept_type(&t.data_type).map(|f| (f, Expr::Value(t.value.clone())))
                }
                _ => None,
            };
            if let Some((f, arg)) = call {
                if let Some(e) = parse_expr(&format!("{f}({arg})")) {
                    *expr = e;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Casts);
}

/// Literals with a fraction or an exponent are numeric, as in PostgreSQL
/// (DataFusion's `parse_float_as_decimal`), but a decimal holds 38 digits
/// and exponents within its scale: `1.5e300` or a 40-digit literal is read
/// as double precision instead. Run after result columns have their names.
pub(crate) fn wide_numbers(stmt: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{CastKind, Value};
    struct Wide;
    impl VisitorMut for Wide {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let Expr::Value(v) = expr else {
                return ControlFlow::Continue(());
            };
            let Value::Number(text, _) = &v.value else {
                return ControlFlow::Continue(());
            };
            let (mantissa, exponent) = match text.find(['e', 'E']) {
                Some(i) => (&text[..i], text[i + 1..].parse::<i64>().unwrap_or(i64::MAX)),
                None => (text.as_str(), 0),
            };
            let digits = mantissa
                .trim_start_matches(['0', '.'])
                .bytes()
                .filter(u8::is_ascii_digit)
                .count();
            if exponent.abs() > 30 || digits > 38 {
                let text = Value::SingleQuotedString(text.clone());
                *expr = Expr::Cast {
                    kind: CastKind::DoubleColon,
                    expr: Box::new(Expr::value(text)),
                    data_type: DataType::DoublePrecision,
                    array: false,
                    format: None,
                };
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Wide);
}

/// `generate_series(...)` called in a select list returns a row per value
/// in PostgreSQL; DataFusion's scalar `generate_series` returns one array.
/// Such calls are unnested: `SELECT generate_series(1, 3)` gives three rows.
/// (In FROM it is the table function and stays as it is.)
pub(crate) fn set_returning_calls(stmt: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr};
    fn is_call(e: &Expr, name: &str) -> bool {
        matches!(e, Expr::Function(f) if crate::function_name(&f.name) == name)
    }
    fn only_arg(e: &Expr) -> Option<&Expr> {
        let Expr::Function(f) = e else {
            return None;
        };
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => Some(arg),
            _ => None,
        }
    }
    struct Calls;
    impl VisitorMut for Calls {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if is_call(expr, "generate_series") {
                if let Some(e) = parse_expr(&format!("unnest({expr})")) {
                    *expr = e;
                }
            } else if is_call(expr, "unnest") {
                // A call the query unnests itself was unnested just above.
                if let Some(inner) = only_arg(expr)
                    .filter(|a| is_call(a, "unnest"))
                    .and_then(only_arg)
                    .filter(|a| is_call(a, "generate_series"))
                {
                    *expr = parse_expr(&format!("unnest({inner})")).unwrap_or(expr.clone());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Calls);
}

/// `json_agg(x ...)` / `jsonb_agg(x ...)` as `json[b]_agg_finish(array_agg(
/// to_json(x) ...))`: the group's values as JSON (each as `to_json` writes
/// it), gathered in the aggregate's order, then written as one array.
fn json_agg(expr: &Expr) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, Ident, ObjectName};
    let Expr::Function(f) = expr else {
        return None;
    };
    let finish = match crate::function_name(&f.name).as_str() {
        "json_agg" => "json_agg_finish",
        "jsonb_agg" => "jsonb_agg_finish",
        _ => return None,
    };
    if f.over.is_some() {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() else {
        return None;
    };
    let mut inner = f.clone();
    inner.name = ObjectName::from(vec![Ident::new("array_agg")]);
    let mut args = list.clone();
    args.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(parse_expr(
        &format!("to_json({arg})"),
    )?))];
    inner.args = FunctionArguments::List(args);
    parse_expr(&format!("{finish}({})", Expr::Function(inner)))
}

/// One SQL expression, parsed as PostgreSQL writes it.
pub(crate) fn parse_expr(sql: &str) -> Option<Expr> {
    tempora_common::sql_parser::parse_expr(sql).ok()
}

fn grouped(sel: &datafusion::sql::sqlparser::ast::Select) -> bool {
    !matches!(&sel.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
}

/// The one projected expression of a plain SELECT.
fn only_item(q: &Query) -> Option<&Expr> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    match sel.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => Some(e),
        _ => None,
    }
}

/// A plain function in FROM (`FROM string_to_array(x, ',') s`) is, in
/// PostgreSQL, a one-row relation whose column takes the alias's name:
/// `(SELECT f(...) AS s) AS s`. Table functions (`is_table_function`) stay.
pub(crate) fn scalar_functions_in_from(
    stmt: &mut Statement,
    is_table_function: impl Fn(&str) -> bool,
) {
    struct Rewrite<F: Fn(&str) -> bool>(F);
    impl<F: Fn(&str) -> bool> VisitorMut for Rewrite<F> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
            let TableFactor::Table {
                name,
                args: Some(args),
                alias,
                ..
            } = t
            else {
                return ControlFlow::Continue(());
            };
            let function = crate::function_name(name);
            if (self.0)(&function) || function == "unnest" {
                return ControlFlow::Continue(());
            }
            let relation = alias
                .as_ref()
                .map_or_else(|| function.clone(), |a| a.name.value.clone());
            let column = alias
                .as_ref()
                .and_then(|a| a.columns.first())
                .map_or_else(|| relation.clone(), |c| c.name.value.clone());
            let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
            let sql = format!(
                "SELECT * FROM (SELECT {name}({args}) AS {}) AS {}",
                quote(&column),
                quote(&relation),
                args = args
                    .args
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            if let Ok(mut stmts) = tempora_common::sql_parser::parse_statements(&sql) {
                if let Some(Statement::Query(q)) = stmts.pop() {
                    if let SetExpr::Select(sel) = *q.body {
                        if let Some(from) = sel.from.into_iter().next() {
                            *t = from.relation;
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Rewrite(is_table_function));
}

/// `ARRAY(SELECT e FROM ... [ORDER BY ...])` → `coalesce((SELECT
/// array_agg(e ORDER BY ...) FROM ...), <empty array>)`.
struct ArraySubqueries;

impl ArraySubqueries {
    fn replacement(q: &Query) -> Option<Expr> {
        let item = only_item(q)?;
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return None;
        };
        if grouped(sel) || q.limit_clause.is_some() {
            return None;
        }
        // Unnesting a column of the outer row: the one shape psql uses is
        // over pg_class.reloptions, which Tempora's relations never set, so
        // the array is empty.
        if let [from] = sel.from.as_slice() {
            if let TableFactor::Table {
                args: Some(args), ..
            } = &from.relation
            {
                if args
                    .args
                    .iter()
                    .any(|a| a.to_string().ends_with("reloptions"))
                {
                    return parse_expr("CAST(make_array() AS TEXT[])");
                }
                return None;
            }
        }
        // ORDER BY positions and names refer to the one item.
        let order: Vec<String> = q
            .order_by
            .as_ref()
            .map(|o| match &o.kind {
                datafusion::sql::sqlparser::ast::OrderByKind::Expressions(es) => es
                    .iter()
                    .map(|e| {
                        let key = match &e.expr {
                            Expr::Value(ValueWithSpan {
                                value: Value::Number(n, _),
                                ..
                            }) if n == "1" => item.to_string(),
                            other => other.to_string(),
                        };
                        format!("{key} {}", e.options)
                    })
                    .collect(),
                _ => vec![],
            })
            .unwrap_or_default();
        let order = if order.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", order.join(", "))
        };
        let mut agg = q.clone();
        agg.order_by = None;
        if let SetExpr::Select(sel) = agg.body.as_mut() {
            sel.projection = vec![SelectItem::UnnamedExpr(parse_expr(&format!(
                "array_agg({item}{order})"
            ))?)];
        }
        parse_expr(&format!("coalesce(({agg}), make_array())"))
    }
}

impl VisitorMut for ArraySubqueries {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else {
            return ControlFlow::Continue(());
        };
        if crate::function_name(&f.name) != "array" {
            return ControlFlow::Continue(());
        }
        if let FunctionArguments::Subquery(q) = &f.args {
            if let Some(e) = Self::replacement(q) {
                *expr = e;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Names of objects read as oids:
/// - `'t'::regclass` (and regtype, regnamespace, regproc) → `regclass(CAST('t'
///   AS regclass), 't')`: the emulation's rule turns the cast into a catalog
///   lookup, and the `regclass` function gives PostgreSQL's error when it
///   finds nothing (and names the column as PostgreSQL does);
/// - `to_regclass(name)` (and the others) → `to_regclass(CAST(name AS
///   regclass))`: the same lookup, NULL when it finds nothing.
struct RegLookups;

const OID_ALIASES: &[&str] = &["regclass", "regtype", "regnamespace", "regproc"];

impl VisitorMut for RegLookups {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if matches!(
                inner.as_ref(),
                Expr::Value(ValueWithSpan {
                    value: Value::SingleQuotedString(_),
                    ..
                })
            ) =>
            {
                let Some(alias) = alias_type(data_type) else {
                    return ControlFlow::Continue(());
                };
                let text = inner.to_string();
                let digits = text.trim_matches('\'');
                // A number is the oid itself, as PostgreSQL reads it.
                let lookup = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    digits.to_string()
                } else {
                    lookup(alias, &text)
                };
                if let Some(e) = parse_expr(&format!("{alias}({lookup}, {inner})")) {
                    *expr = e;
                }
            }
            // A computed name (`pg_get_serial_sequence(...)::regclass`):
            // looked up when the statement runs.
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if alias_type(data_type) == Some("regclass")
                && (matches!(inner.as_ref(), Expr::Function(_))
                    || matches!(inner.as_ref(), Expr::Cast { data_type, .. } if is_text(data_type))) =>
            {
                if let Some(e) = parse_expr(&format!("regclass(regclassin({inner}), {inner})")) {
                    *expr = e;
                }
            }
            Expr::Function(f) => {
                let name = crate::function_name(&f.name);
                let Some(alias) = name
                    .strip_prefix("to_")
                    .filter(|n| OID_ALIASES.contains(n))
                    .map(str::to_string)
                else {
                    return ControlFlow::Continue(());
                };
                if let FunctionArguments::List(list) = &f.args {
                    if let [arg] = list.args.as_slice() {
                        let lookup = lookup(&alias, &arg.to_string());
                        if let Some(e) = parse_expr(&format!("to_{alias}({lookup})")) {
                            *expr = e;
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `pg_index`'s `int2vector` and `oidvector` columns (kept as their text,
/// `1 2`) read as arrays by `unnest`, and `generate_subscripts(a, dim)` as the `unnest` of
/// its subscripts (0-based for an `int2vector`, as in PostgreSQL), which
/// set-returning functions of the same select list go along with.
struct ArrayFunctions;

/// `pg_index` columns of type `int2vector` and `oidvector`, with the array
/// type each reads as.
const VECTORS: &[(&str, &str)] = &[
    ("indkey", "SMALLINT[]"),
    ("indoption", "SMALLINT[]"),
    ("indclass", "INT[]"),
    ("indcollation", "INT[]"),
];

impl ArrayFunctions {
    fn replacement(f: &datafusion::sql::sqlparser::ast::Function) -> Option<Expr> {
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        let args: Vec<String> = list.args.iter().map(ToString::to_string).collect();
        let vector_type = |arg: &str| {
            let column = arg.rsplit('.').next().unwrap_or(arg).to_ascii_lowercase();
            VECTORS
                .iter()
                .find(|(c, _)| *c == column)
                .map(|(_, array)| *array)
        };
        let vector = |arg: &str| vector_type(arg).is_some();
        match (crate::function_name(&f.name).as_str(), args.as_slice()) {
            ("unnest", [arg]) if vector(arg) => parse_expr(&format!(
                "unnest(CAST(string_to_array({arg}, ' ') AS {}))",
                vector_type(arg)?
            )),
            // The emulation keeps `pg_proc.proacl` as text (`{...}` or NULL).
            ("array_to_string", [arg, rest @ ..])
                if arg.to_ascii_lowercase().ends_with("proacl") =>
            {
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                parse_expr(&format!(
                    "array_to_string(string_to_array(btrim({arg}, '{{}}'), ','), {})",
                    rest.join(", ")
                ))
            }
            ("generate_subscripts", [arg, dim]) => {
                // An int2vector has one dimension, numbered from 0.
                let (first, length) = if vector(arg) {
                    ("0", format!("cardinality(string_to_array({arg}, ' '))"))
                } else {
                    ("1", format!("array_length({arg}, {dim})"))
                };
                parse_expr(&format!(
                    "unnest(CAST(range(CAST({first} AS BIGINT), \
                     CAST({first} AS BIGINT) + CAST({length} AS BIGINT)) AS INT[]))"
                ))
            }
            _ => None,
        }
    }
}

impl VisitorMut for ArrayFunctions {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            if let Some(e) = Self::replacement(f) {
                *expr = e;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Unquoted `user` and `current_role` are PostgreSQL's reserved words for
/// `current_user`, never columns.
struct UserKeyword;

impl VisitorMut for UserKeyword {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let keyword = |name: &str| name == "user" || name == "current_role";
        let bare_user = match expr {
            Expr::Identifier(i) => {
                i.quote_style.is_none() && keyword(&i.value.to_ascii_lowercase())
            }
            // The parser reads it as a call without parentheses.
            Expr::Function(f) => {
                matches!(f.args, FunctionArguments::None) && keyword(&crate::function_name(&f.name))
            }
            _ => false,
        };
        if bare_user {
            if let Some(e) = parse_expr("current_user") {
                *expr = e;
            }
        }
        ControlFlow::Continue(())
    }
}

/// The oid a name (SQL text of a string or parameter) stands for as an
/// `alias`. A relation's bare name is found where PostgreSQL finds it:
/// pg_catalog first, then the search path (`pg_table_is_visible`); other
/// kinds go to the emulation's cast rule.
fn lookup(alias: &str, name: &str) -> String {
    if alias != "regclass" {
        return format!("CAST({name} AS {alias})");
    }
    let parts = format!("parse_ident({name})");
    format!(
        "(SELECT first_value(c.oid) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
         WHERE c.relname = {parts}[CAST(array_length({parts}, 1) AS BIGINT)] \
         AND CASE array_length({parts}, 1) WHEN 1 THEN pg_table_is_visible(c.oid) \
         WHEN 2 THEN n.nspname = {parts}[1] ELSE false END)"
    )
}

/// The oid alias type a cast names (`regclass`, `pg_catalog.regtype`, ...).
fn alias_type(t: &DataType) -> Option<&'static str> {
    let name = match t {
        DataType::Regclass => "regclass".to_string(),
        DataType::Custom(name, args) if args.is_empty() => crate::function_name(name),
        _ => return None,
    };
    OID_ALIASES.iter().find(|a| **a == name).copied()
}

/// Whether select items call an aggregate (outside their subqueries).
fn aggregates(items: &[SelectItem]) -> bool {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Calls {
        depth: usize,
        found: bool,
    }
    impl Visitor for Calls {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let name = crate::function_name(&f.name);
                let aggregate = [
                    "count",
                    "sum",
                    "max",
                    "min",
                    "avg",
                    "every",
                    "first_value",
                    tempora_query::aggregates::SUBQUERY_VALUE,
                ]
                .contains(&name.as_str())
                    || name.ends_with("_agg")
                    || name.starts_with("bool_");
                if self.depth == 0 && aggregate {
                    self.found = true;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut calls = Calls {
        depth: 0,
        found: false,
    };
    for item in items {
        let _ = item.visit(&mut calls);
    }
    calls.found
}

/// `pg_catalog` relations that never hold a row in Tempora: it has no row
/// security policies, publications, rewrite rules (views keep their query
/// in Tempora's catalog), extended statistics or triggers.
const NEVER_FILLED: &[&str] = &[
    "pg_policy",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_rewrite",
    "pg_statistic_ext",
    "pg_trigger",
];

/// A query reading a [`NEVER_FILLED`] relation in every branch (as the
/// first relation of FROM, or inner-joined) has no rows, whatever else it
/// computes; it becomes `SELECT NULL AS name, ... WHERE false`, sparing
/// DataFusion shapes it cannot plan (correlated `= ANY(array)` lookups,
/// unnamed NULL columns) that would never run.
struct EmptyCatalogQueries;

impl EmptyCatalogQueries {
    fn is_empty(sel: &datafusion::sql::sqlparser::ast::Select) -> bool {
        use datafusion::sql::sqlparser::ast::JoinOperator;
        let never = |r: &TableFactor| match r {
            TableFactor::Table {
                name, args: None, ..
            } => NEVER_FILLED.contains(&crate::function_name(name).as_str()),
            _ => false,
        };
        if aggregates(&sel.projection) && !grouped(sel) {
            return false;
        }
        sel.from.iter().any(|t| {
            never(&t.relation)
                || t.joins.iter().any(|j| {
                    never(&j.relation)
                        && matches!(
                            j.join_operator,
                            JoinOperator::Join(_)
                                | JoinOperator::Inner(_)
                                | JoinOperator::CrossJoin(_)
                        )
                })
        })
    }

    /// The leaf SELECTs of a body, if every one of them is empty.
    fn empty_leaves(body: &SetExpr) -> Option<Vec<&datafusion::sql::sqlparser::ast::Select>> {
        match body {
            SetExpr::Select(sel) if Self::is_empty(sel) => Some(vec![sel]),
            SetExpr::SetOperation { left, right, .. } => {
                let mut l = Self::empty_leaves(left)?;
                l.extend(Self::empty_leaves(right)?);
                Some(l)
            }
            _ => None,
        }
    }
}

impl VisitorMut for EmptyCatalogQueries {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        let Some(first) = Self::empty_leaves(&q.body).map(|l| l[0]) else {
            return ControlFlow::Continue(());
        };
        let mut names: Vec<String> = Vec::new();
        for item in &first.projection {
            let name = match item {
                SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                SelectItem::UnnamedExpr(Expr::Identifier(i)) => i.value.clone(),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => {
                    p.last().map_or_else(String::new, |i| i.value.clone())
                }
                SelectItem::UnnamedExpr(Expr::Function(f)) => crate::function_name(&f.name),
                _ => String::new(),
            };
            let name = if name.is_empty() {
                "?column?".to_string()
            } else {
                name
            };
            let taken = names
                .iter()
                .filter(|n| n.split('#').next() == Some(&name))
                .count();
            names.push(if taken == 0 {
                name
            } else {
                format!("{name}#{taken}")
            });
        }
        let items: Vec<String> = names
            .iter()
            .map(|n| format!("NULL AS \"{}\"", n.replace('"', "\"\"")))
            .collect();
        let sql = format!("SELECT {} WHERE false", items.join(", "));
        if let Ok(mut stmts) = tempora_common::sql_parser::parse_statements(&sql) {
            if let Some(Statement::Query(empty)) = stmts.pop() {
                q.body = empty.body;
                q.order_by = None;
                q.limit_clause = None;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Whether every relation a query reads is a `pg_catalog` relation.
fn reads_catalog_only(q: &Query) -> bool {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return false;
    };
    let relations = sel
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    let mut any = false;
    for r in relations {
        let TableFactor::Table {
            name, args: None, ..
        } = r
        else {
            return false;
        };
        let catalog = match name.0.as_slice() {
            [ObjectNamePart::Identifier(s), _] => s.value.eq_ignore_ascii_case("pg_catalog"),
            [ObjectNamePart::Identifier(n)] => n.value.to_ascii_lowercase().starts_with("pg_"),
            _ => false,
        };
        if !catalog {
            return false;
        }
        any = true;
    }
    any
}

/// `(SELECT e FROM pg_catalog...)` → `(SELECT first_value(e) FROM ...)`.
///
/// DataFusion decorrelates an aggregated subquery whose outer references
/// are equalities with its own columns. Other conditions on the outer row
/// are taken out of it: one on the outer row alone guards the subquery
/// (`CASE WHEN a.atthasdef THEN (...) END`), and a comparison of an outer
/// value with one of the subquery's becomes a comparison with that value
/// looked up alone (`a.attcollation <> (SELECT first_value(t.typcollation)
/// ...)`): the same, as a catalog lookup finds at most one row.
struct CatalogSubqueries;

/// Which of a subquery's condition's terms stay in it.
enum Term {
    /// On the subquery's rows (or an equality with the outer row).
    Inner,
    /// On the outer row alone.
    Outer,
    /// `outer op inner` (in this order) for another operator than `=`.
    Compare(Box<(Expr, datafusion::sql::sqlparser::ast::BinaryOperator, Expr)>),
}

/// The qualifiers (table aliases) an expression's columns name.
fn qualifiers(e: &Expr) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::{Visit, Visitor};
    struct Names(Vec<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e {
                if parts.len() >= 2 {
                    self.0
                        .push(parts[parts.len() - 2].value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(Vec::new());
    let _ = e.visit(&mut names);
    names.0
}

/// The terms of `e`'s top-level ANDs.
pub(crate) fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { .. }) => {
            conjuncts(*inner, out)
        }
        e => out.push(e),
    }
}

fn classify(e: &Expr, local: &[String]) -> Option<Term> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    let side = |e: &Expr| {
        let q = qualifiers(e);
        (
            !q.is_empty() && q.iter().all(|n| local.contains(n)),
            q.iter().all(|n| !local.contains(n)),
        )
    };
    let refs = qualifiers(e);
    if refs.iter().all(|n| local.contains(n)) {
        return Some(Term::Inner);
    }
    if refs.iter().all(|n| !local.contains(n)) {
        return Some(Term::Outer);
    }
    let Expr::BinaryOp { left, op, right } = e else {
        return None;
    };
    let ((l_in, l_out), (r_in, r_out)) = (side(left), side(right));
    match op {
        BinaryOperator::Eq if (l_in && r_out) || (l_out && r_in) => Some(Term::Inner),
        _ if l_out && r_in => Some(Term::Compare(Box::new((
            *left.clone(),
            op.clone(),
            *right.clone(),
        )))),
        _ if l_in && r_out => Some(Term::Compare(Box::new((
            *right.clone(),
            op.clone(),
            *left.clone(),
        )))),
        _ => None,
    }
}

impl CatalogSubqueries {
    fn replacement(q: &Query) -> Option<Expr> {
        if !reads_catalog_only(q) || q.limit_clause.is_some() {
            return None;
        }
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return None;
        };
        if grouped(sel) || aggregates(&sel.projection) {
            return None;
        }
        let mut local = Vec::new();
        for t in &sel.from {
            for r in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
                if let TableFactor::Table { name, alias, .. } = r {
                    match alias {
                        Some(a) => local.push(a.name.value.to_ascii_lowercase()),
                        None => local.push(crate::function_name(name)),
                    }
                }
            }
        }
        let mut terms = Vec::new();
        if let Some(w) = sel.selection.clone() {
            conjuncts(w, &mut terms);
        }
        let mut kept: Vec<Expr> = Vec::new();
        let mut guards = Vec::new();
        let mut compares = Vec::new();
        for t in terms {
            match classify(&t, &local)? {
                Term::Inner => kept.push(t),
                Term::Outer => guards.push(t.to_string()),
                Term::Compare(c) => compares.push(*c),
            }
        }
        let item_expr = only_item(q)?;
        // A value reading the outer row is left to subqueries.rs.
        if qualifiers(item_expr).iter().any(|n| !local.contains(n)) {
            return None;
        }
        let only_here = |e: &Expr| -> Vec<String> {
            let mut q: Vec<String> = qualifiers(e)
                .into_iter()
                .filter(|n| local.contains(n))
                .collect();
            q.sort();
            q.dedup();
            q
        };
        // Relations listed with commas, each looked up by its own terms
        // (`c.oid = a.attcollation`, `t.oid = a.atttypid`), are looked up
        // apart: one small lookup each instead of one over their product.
        // A missing row still gives NULL, as every relation is read by the
        // value or by a comparison guarding it.
        let separate = sel.from.iter().all(|t| t.joins.is_empty())
            && sel.from.len() == local.len()
            && kept.iter().all(|t| only_here(t).len() == 1)
            && local.iter().all(|l| {
                only_here(item_expr).contains(l)
                    || compares
                        .iter()
                        .any(|(_, _, inner)| only_here(inner).contains(l))
            });
        let lookup = |value: &Expr| {
            let needed = only_here(value);
            let mut from: Vec<String> = sel
                .from
                .iter()
                .zip(&local)
                .filter(|(_, l)| !separate || needed.contains(l))
                .map(|(t, _)| t.to_string())
                .collect();
            if from.is_empty() {
                from = sel.from.iter().map(ToString::to_string).collect();
            }
            let terms: Vec<String> = kept
                .iter()
                .filter(|t| !separate || only_here(t).iter().all(|n| needed.contains(n)))
                .map(ToString::to_string)
                .collect();
            let mut sql = format!("(SELECT first_value({value}) FROM {}", from.join(", "));
            if !terms.is_empty() {
                sql.push_str(&format!(" WHERE {}", terms.join(" AND ")));
            }
            sql.push(')');
            sql
        };
        for (outer, op, inner) in &compares {
            guards.push(format!("{outer} {op} {}", lookup(inner)));
        }
        let value = lookup(item_expr);

        if guards.is_empty() {
            parse_expr(&value)
        } else {
            parse_expr(&format!(
                "CASE WHEN {} THEN {value} END",
                guards.join(" AND ")
            ))
        }
    }
}

impl VisitorMut for CatalogSubqueries {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(q) = expr {
            if let Some(e) = Self::replacement(q) {
                *expr = e;
            }
        }
        ControlFlow::Continue(())
    }
}

/// In a query on `pg_catalog`, `col = '{1,2}'` compares with an array, as
/// PostgreSQL reads the literal for an array column (`pol.polroles = '{0}'`).
struct CatalogArrayLiterals;

impl CatalogArrayLiterals {
    fn array(e: &Expr) -> Option<Expr> {
        let Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) = e
        else {
            return None;
        };
        let inner = s.strip_prefix('{')?.strip_suffix('}')?;
        let items: Vec<String> = inner
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(|i| {
                if i.parse::<i64>().is_ok() {
                    i.to_string()
                } else {
                    format!("'{}'", i.trim_matches('"').replace('\'', "''"))
                }
            })
            .collect();
        parse_expr(&format!("make_array({})", items.join(", ")))
    }
}

impl VisitorMut for CatalogArrayLiterals {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::BinaryOperator;
        struct Comparisons;
        impl VisitorMut for Comparisons {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::BinaryOp { left, op, right } = e {
                    if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
                        for side in [left, right] {
                            if let Some(a) = CatalogArrayLiterals::array(side) {
                                **side = a;
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        if reads_catalog_only(q) {
            if let SetExpr::Select(sel) = q.body.as_mut() {
                let _ = sel.projection.visit(&mut Comparisons);
                let _ = sel.selection.visit(&mut Comparisons);
            }
        }
        ControlFlow::Continue(())
    }
}

/// The display function of an oid alias type, for a cast of a column.
fn display_function(t: &DataType) -> Option<&'static str> {
    match alias_type(t)? {
        "regclass" => Some("regclassout"),
        "regtype" => Some("format_type"),
        _ => None,
    }
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Text | DataType::Varchar(_) => true,
        DataType::Custom(name, args) => args.is_empty() && crate::function_name(name) == "text",
        _ => false,
    }
}

/// `e::regclass` → `regclassout(e)`, `e::regtype` → `format_type(e, NULL)`.
fn display_call(expr: &Expr) -> Option<Expr> {
    // `'t'::regclass` (see RegLookups) prints the name, as PostgreSQL does.
    if let Expr::Function(f) = expr {
        return match crate::function_name(&f.name).as_str() {
            "regclass" => parse_expr(&format!("regclassout({expr})")),
            "regtype" => parse_expr(&format!("format_type({expr}, NULL)")),
            _ => None,
        };
    }
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = expr
    else {
        return None;
    };
    if matches!(inner.as_ref(), Expr::Value(_)) {
        return None;
    }
    match display_function(data_type)? {
        "format_type" => parse_expr(&format!("format_type({inner}, NULL)")),
        f => parse_expr(&format!("{f}({inner})")),
    }
}

struct DisplayCasts;

impl VisitorMut for DisplayCasts {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(sel) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        for item in &mut sel.projection {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                if let Some(call) = display_call(e) {
                    *e = call;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
        {
            if is_text(data_type) {
                if let Some(call) = display_call(inner) {
                    *expr = call;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    fn rewritten(sql: &str) -> String {
        let mut s = tempora_common::sql_parser::parse_statements(sql).unwrap();
        let mut stmt = super::rewrite(s.remove(0));
        super::after_naming(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn array_of_a_subquery_aggregates_it() {
        assert_eq!(
            rewritten(
                "SELECT ARRAY(SELECT b.rolname FROM pg_catalog.pg_roles b \
                 WHERE b.oid = r.oid ORDER BY 1) FROM pg_catalog.pg_roles r"
            ),
            "SELECT coalesce((SELECT array_agg(b.rolname ORDER BY b.rolname) \
             FROM pg_catalog.pg_roles b WHERE b.oid = r.oid), make_array()) \
             FROM pg_catalog.pg_roles r"
        );
        // psql's storage options of a TOAST table Tempora never has.
        assert_eq!(
            rewritten(
                "SELECT c.reloptions || array(select 'toast.' || x \
                 from pg_catalog.unnest(tc.reloptions) x) FROM pg_catalog.pg_class c"
            ),
            "SELECT c.reloptions || CAST(make_array() AS TEXT[]) FROM pg_catalog.pg_class c"
        );
    }

    #[test]
    fn catalog_subqueries_take_their_one_value() {
        assert_eq!(
            rewritten(
                "SELECT (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
                 WHERE d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a"
            ),
            "SELECT (SELECT first_value(d.adbin) FROM pg_catalog.pg_attrdef d \
             WHERE d.adrelid = a.attrelid) FROM pg_catalog.pg_attribute a"
        );
        // psql's column default and collation lookups: the condition on the
        // outer row alone guards the lookup; the collation is compared with
        // its type's, each looked up alone.
        assert_eq!(
            rewritten(
                "SELECT (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
                 WHERE d.adrelid = a.attrelid AND a.atthasdef), \
                 (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t \
                 WHERE c.oid = a.attcollation AND t.oid = a.atttypid \
                 AND a.attcollation <> t.typcollation) FROM pg_catalog.pg_attribute a"
            ),
            "SELECT CASE WHEN a.atthasdef THEN (SELECT first_value(d.adbin) \
             FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) END, \
             CASE WHEN a.attcollation <> (SELECT first_value(t.typcollation) \
             FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) THEN \
             (SELECT first_value(c.collname) FROM pg_catalog.pg_collation c \
             WHERE c.oid = a.attcollation) END \
             FROM pg_catalog.pg_attribute a"
        );
        // A user query keeps PostgreSQL's meaning (several rows are an error).
        let user = "SELECT (SELECT x FROM t WHERE t.a = u.a) FROM u";
        assert_eq!(rewritten(user), user);
    }

    #[test]
    fn shown_oid_aliases_print_names() {
        assert_eq!(
            rewritten("SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c"),
            "SELECT regclassout(c.oid) FROM pg_catalog.pg_class c"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM pg_catalog.pg_class c ORDER BY c.oid::regclass::text"),
            "SELECT 1 FROM pg_catalog.pg_class c ORDER BY regclassout(c.oid)"
        );
        assert_eq!(
            rewritten("SELECT t::regtype AS ty FROM x"),
            "SELECT format_type(t, NULL) AS ty FROM x"
        );
    }
}
