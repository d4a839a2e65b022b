//! Expressions put in the shape DataFusion plans them as PostgreSQL would:
//! named arguments of TimescaleDB's chunk functions and of `time_bucket` in
//! their positions; untyped literals of `generate_series` typed like the
//! argument beside them (`generate_series('2024-01-01'::timestamptz,
//! '2024-01-02', INTERVAL '1 hour')`, where PostgreSQL resolves `unknown`);
//! quoted literals typed like the written types beside them (a VALUES
//! column, a UNION column, `coalesce`'s arguments, ARRAY elements, CASE
//! results);
//! `timestamp[tz]` casts and literals at PostgreSQL's microsecond
//! precision; and `AT TIME ZONE` as the `timezone` function.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use tempora_common::{Result, SqlState, TemporaError};
use tempora_copy::zone::PgTimeZone;

/// Rewrites every call of the statement that needs it, in FROM and in expressions.
pub(crate) fn normalize(stmt: &mut Statement, time_zone: &PgTimeZone) -> Result<()> {
    let mut normalizer = Normalizer {
        time_zone: time_zone.clone(),
        nextval_calls: 0,
    };
    match stmt.visit(&mut normalizer) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// The session's time zone reads zone-less `timestamptz` arguments.
struct Normalizer {
    time_zone: PgTimeZone,
    /// `nextval` calls seen: each gets its ordinal as a hidden second
    /// argument, so that two calls of one sequence in a statement are two
    /// expressions (DataFusion computes identical async calls once).
    nextval_calls: u32,
}

/// Whether an expression is an interval by its syntax (a literal, a cast,
/// or an interval product already rewritten).
fn is_interval(e: &SqlExpr) -> bool {
    match e {
        SqlExpr::Interval(_) => true,
        SqlExpr::Cast { data_type, .. } => matches!(data_type, DataType::Interval { .. }),
        SqlExpr::TypedString(t) => matches!(t.data_type, DataType::Interval { .. }),
        SqlExpr::Nested(inner) => is_interval(inner),
        SqlExpr::Function(f) => {
            let name = crate::function_name(&f.name);
            name == "interval_mul" || name == "interval_div"
        }
        _ => false,
    }
}

/// `interval * n`, `n * interval`, `interval / n` as `interval_mul` /
/// `interval_div` calls, which DataFusion's operators lack.
fn interval_product(e: &mut SqlExpr) {
    let SqlExpr::BinaryOp { left, op, right } = e else {
        return;
    };
    let (function, interval, factor) = match op {
        BinaryOperator::Multiply if is_interval(left) && !is_interval(right) => {
            ("interval_mul", left, right)
        }
        BinaryOperator::Multiply if is_interval(right) && !is_interval(left) => {
            ("interval_mul", right, left)
        }
        BinaryOperator::Divide if is_interval(left) && !is_interval(right) => {
            ("interval_div", left, right)
        }
        _ => return,
    };
    let sql = format!("{function}({interval}, {factor})");
    if let Ok(parsed) = tempora_common::sql_parser::parse_expr(&sql) {
        *e = parsed;
    }
}

impl VisitorMut for Normalizer {
    type Break = TemporaError;

    fn post_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<TemporaError> {
        interval_product(expr);
        at_time_zone(expr);
        flatten_coalesce(expr);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(
        &mut self,
        query: &mut datafusion::sql::sqlparser::ast::Query,
    ) -> ControlFlow<TemporaError> {
        if let datafusion::sql::sqlparser::ast::SetExpr::Values(values) = query.body.as_mut() {
            type_values_columns(values);
        }
        type_set_operation_columns(query.body.as_mut());
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<TemporaError> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
        {
            let function = crate::function_name(name);
            if let Err(e) = call(&function, &mut args.args, &self.time_zone) {
                return ControlFlow::Break(e);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<TemporaError> {
        type_quoted_in_expr(expr);
        match expr {
            SqlExpr::Cast { data_type, .. } => microsecond_timestamps(data_type),
            SqlExpr::TypedString(t) => microsecond_timestamps(&mut t.data_type),
            SqlExpr::Interval(_) => {
                if let Err(e) = interval_literal(expr) {
                    return ControlFlow::Break(e);
                }
            }
            _ => {}
        }
        if let SqlExpr::Function(f) = expr {
            let function = crate::function_name(&f.name);
            if let FunctionArguments::List(list) = &mut f.args {
                if let Err(e) = call(&function, &mut list.args, &self.time_zone) {
                    return ControlFlow::Break(e);
                }
                if function == "nextval" && list.args.len() == 1 {
                    self.nextval_calls += 1;
                    list.args
                        .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(
                            Value::Number(self.nextval_calls.to_string(), false).into(),
                        ))));
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// `coalesce(coalesce(a, b), c)` as `coalesce(a, b, c)`, which is the same
/// value, reached in the same order. DataFusion rewrites `coalesce(x, y)`
/// as `CASE WHEN x IS NOT NULL THEN x ELSE y END`, which copies `x`: nested
/// twenty deep, the plan held a million copies and took seconds to build.
/// An inner call with an untyped literal stays, since PostgreSQL types it
/// within the inner call.
fn flatten_coalesce(expr: &mut SqlExpr) {
    fn plain_args(e: &SqlExpr) -> Option<&Vec<FunctionArg>> {
        let SqlExpr::Function(f) = e else {
            return None;
        };
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        let plain = crate::function_name(&f.name) == "coalesce"
            && f.filter.is_none()
            && f.over.is_none()
            && f.within_group.is_empty()
            && list.duplicate_treatment.is_none()
            && list.clauses.is_empty()
            && list.args.iter().all(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => !matches!(
                    e,
                    SqlExpr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))
                ),
                _ => false,
            });
        plain.then_some(&list.args)
    }
    fn unnested(mut e: &SqlExpr) -> &SqlExpr {
        while let SqlExpr::Nested(inner) = e {
            e = inner;
        }
        e
    }
    let Some(args) = plain_args(expr) else {
        return;
    };
    fn nested(a: &FunctionArg) -> Option<&Vec<FunctionArg>> {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => plain_args(unnested(e)),
            _ => None,
        }
    }
    if !args.iter().any(|a| nested(a).is_some()) {
        return;
    }
    let flat: Vec<FunctionArg> = args
        .iter()
        .flat_map(|a| nested(a).cloned().unwrap_or_else(|| vec![a.clone()]))
        .collect();
    if let SqlExpr::Function(f) = expr {
        if let FunctionArguments::List(list) = &mut f.args {
            list.args = flat;
        }
    }
}

/// `value AT TIME ZONE zone` as PostgreSQL's `timezone(zone, value)`
/// (tempora-query/at_time_zone.rs); DataFusion would make it a cast to a
/// timestamptz in a zone Arrow reads, whatever the value's type.
fn at_time_zone(expr: &mut SqlExpr) {
    use datafusion::sql::sqlparser::ast::{Function, FunctionArgumentList, Ident, ObjectName};
    let SqlExpr::AtTimeZone {
        timestamp,
        time_zone,
    } = expr
    else {
        return;
    };
    let arg = |e: &SqlExpr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e.clone()));
    *expr = SqlExpr::Function(Function {
        name: ObjectName::from(vec![Ident::new("timezone")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![arg(time_zone), arg(timestamp)],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
}

/// `INTERVAL '<text>'` without fields as `CAST('<text>' AS interval)`, read
/// with PostgreSQL's interval input by the analyzer (tempora-query's
/// pg_literals.rs); DataFusion would read the text itself, without
/// `04:05:06`, `@ ... ago` or ISO 8601. Bad text fails here with
/// PostgreSQL's error. `INTERVAL '1' DAY` and the like stay DataFusion's.
fn interval_literal(expr: &mut SqlExpr) -> Result<()> {
    let SqlExpr::Interval(iv) = expr else {
        return Ok(());
    };
    let plain = iv.leading_field.is_none()
        && iv.leading_precision.is_none()
        && iv.last_field.is_none()
        && iv.fractional_seconds_precision.is_none();
    let text = match iv.value.as_ref() {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(t) => t.clone(),
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    if !plain {
        return Ok(());
    }
    tempora_copy::interval::parse_interval(&text)?;
    *expr = SqlExpr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
        expr: iv.value.clone(),
        data_type: DataType::Interval {
            fields: None,
            precision: None,
        },
        array: false,
        format: None,
    };
    Ok(())
}

/// `timestamp` / `timestamptz` without a precision mean microseconds, as in
/// PostgreSQL (and as Tempora stores them); DataFusion would read
/// nanoseconds, which end in 2262 and have no room for `infinity`.
fn microsecond_timestamps(t: &mut DataType) {
    if let DataType::Timestamp(precision @ None, _) = t {
        *precision = Some(6);
    }
}

/// Timestamp arguments of `generate_series` read with PostgreSQL's input
/// rules (`'2024-01-01 23:00'`, zone names, the session's time zone) and
/// written back in ISO form: DataFusion evaluates these casts while it plans
/// the call, before Tempora's literal rule (tempora-query/pg_literals.rs) runs.
fn pg_timestamp_args(args: &mut [FunctionArg], time_zone: &PgTimeZone) -> Result<()> {
    use datafusion::sql::sqlparser::ast::TimezoneInfo;
    for a in args.iter_mut() {
        // `'...'::timestamptz` and `timestamptz '...'`.
        let (data_type, value) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Cast {
                expr, data_type, ..
            })) => match expr.as_mut() {
                SqlExpr::Value(v) => (&*data_type, &mut v.value),
                _ => continue,
            },
            FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::TypedString(t))) => {
                (&t.data_type, &mut t.value.value)
            }
            _ => continue,
        };
        let DataType::Timestamp(_, zone) = data_type else {
            continue;
        };
        let Value::SingleQuotedString(text) = value else {
            continue;
        };
        let with_tz = matches!(zone, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone);
        let micros = tempora_query::pg_literals::parse_timestamp(text, with_tz, time_zone)?;
        if micros == i64::MAX || micros == i64::MIN {
            continue; // infinity: DataFusion's series refuses it as it is
        }
        let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
            continue;
        };
        *text = if with_tz {
            t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
        } else {
            t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
        };
    }
    Ok(())
}

/// DataFusion's `generate_series` takes nanosecond timestamps only: its
/// arguments keep that precision (the visit reaches them after the call),
/// the timestamps inside them too (`'2024-01-01'::timestamptz + INTERVAL
/// '1 day'`).
fn nanosecond_timestamp_args(args: &mut [FunctionArg]) {
    use datafusion::sql::sqlparser::ast::{VisitMut, VisitorMut};
    struct Nanoseconds;
    impl VisitorMut for Nanoseconds {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut SqlExpr) -> std::ops::ControlFlow<()> {
            let data_type = match e {
                SqlExpr::Cast { data_type, .. } => data_type,
                SqlExpr::TypedString(t) => &mut t.data_type,
                _ => return std::ops::ControlFlow::Continue(()),
            };
            if let DataType::Timestamp(precision @ None, _) = data_type {
                *precision = Some(9);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    for a in args.iter_mut() {
        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a {
            let _ = e.visit(&mut Nanoseconds);
        }
    }
}

/// The arguments of a call of `function(params...)` in parameter order,
/// named ones put in their place; None where not given.
pub(crate) fn slots(
    function: &str,
    params: &[&str],
    args: &[FunctionArg],
) -> Result<Vec<Option<SqlExpr>>> {
    let mut slots: Vec<Option<SqlExpr>> = vec![None; params.len()];
    for (i, arg) in args.iter().enumerate() {
        let (name, expr) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (None, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (Some(name.value.to_lowercase()), e),
            FunctionArg::ExprNamed {
                name: SqlExpr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (Some(name.value.to_lowercase()), e),
            other => {
                return Err(TemporaError::new(
                    SqlState::SYNTAX_ERROR,
                    format!("unexpected argument {other} of {function}"),
                ))
            }
        };
        let slot = match &name {
            Some(n) => params.iter().position(|p| p == n).ok_or_else(|| {
                TemporaError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("function {function} has no parameter named \"{n}\""),
                )
            })?,
            None if i < params.len() => i,
            None => {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "function {function} takes at most {} arguments",
                        params.len()
                    ),
                ))
            }
        };
        slots[slot] = Some(expr.clone());
    }
    Ok(slots)
}

/// A call with named arguments as the positional call the UDF takes: NULL
/// (the parameter's default) where an earlier parameter was not given.
fn positional(function: &str, params: &[&str], args: &mut Vec<FunctionArg>) -> Result<()> {
    let mut slots = slots(function, params, args)?;
    while slots.len() > 1 && slots.last().is_some_and(Option::is_none) {
        slots.pop();
    }
    *args = slots
        .into_iter()
        .map(|s| {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(
                s.unwrap_or_else(|| SqlExpr::Value(Value::Null.into())),
            ))
        })
        .collect();
    Ok(())
}

/// `make_interval`'s arguments in their positions, 0 for those not given
/// (PostgreSQL's defaults).
fn make_interval_args(args: &mut Vec<FunctionArg>) -> Result<()> {
    let params = ["years", "months", "weeks", "days", "hours", "mins", "secs"];
    let slots = slots("make_interval", &params, args)?;
    let given = slots.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    *args = slots
        .into_iter()
        .take(given)
        .map(|s| {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(
                s.unwrap_or_else(|| SqlExpr::Value(Value::Number("0".into(), false).into())),
            ))
        })
        .collect();
    Ok(())
}

fn call(function: &str, args: &mut Vec<FunctionArg>, time_zone: &PgTimeZone) -> Result<()> {
    match function {
        "show_chunks" | "drop_chunks" => crate::chunks::normalize(function, args),
        "compress_chunk" => positional(
            function,
            &["chunk", "if_not_compressed", "recompress"],
            args,
        ),
        "decompress_chunk" => positional(function, &["chunk", "if_compressed"], args),
        "make_interval" => make_interval_args(args),
        "reorder_chunk" => positional(function, &["chunk", "index", "verbose"], args),
        "generate_series" | "range" => {
            type_untyped_like_cast(args);
            pg_timestamp_args(args, time_zone)?;
            nanosecond_timestamp_args(args);
            Ok(())
        }
        "time_bucket" => {
            time_bucket_resolvable(args)?;
            time_bucket_positions(args)
        }
        _ => Ok(()),
    }
}

/// PostgreSQL's 42725 for `time_bucket('1 hour', '2024-01-01')`: with the
/// width and the time both untyped (a quoted literal or NULL), no argument
/// picks one of the overloads (intervals with every time type, integers), so
/// PostgreSQL refuses to guess; Tempora would read the time as a timestamptz.
/// So it does with an interval width and an untyped time
/// (`time_bucket(INTERVAL '1 hour', '2024-01-01')`). A typed time (`time`,
/// `'...'::date`) or an integer width resolves as PostgreSQL resolves it.
fn time_bucket_resolvable(args: &[FunctionArg]) -> Result<()> {
    let unknown = |a: &FunctionArg| {
        matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v)))
            if matches!(v.value, Value::SingleQuotedString(_) | Value::Null))
    };
    // An interval width with an untyped time fits the interval overloads
    // of every time type alike.
    let interval_width = args.len() == 2
        && unknown(&args[1])
        && matches!(&args[0], FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
            if written_type(e).is_some_and(|t| matches!(t, DataType::Interval { .. })));
    let types = if interval_width {
        "interval, unknown".to_string()
    } else if args.len() >= 2 && args.iter().all(unknown) {
        vec!["unknown"; args.len()].join(", ")
    } else {
        return Ok(());
    };
    Err(TemporaError::new(
        SqlState::AMBIGUOUS_FUNCTION,
        format!("function time_bucket({types}) is not unique"),
    )
    .with_hint(
        "Could not choose a best candidate function. You might need to add explicit type casts.",
    ))
}

/// A quoted literal, whose type PostgreSQL leaves `unknown` until its
/// context gives it one.
fn is_quoted(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Value(v) if matches!(
        v.value,
        Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_) | Value::DollarQuotedString(_)
    ))
}

/// The type an expression's syntax gives it: a cast's, a typed literal's
/// (`timestamptz '...'`), an interval literal's.
fn written_type(e: &SqlExpr) -> Option<DataType> {
    match e {
        SqlExpr::Cast { data_type, .. } => Some(data_type.clone()),
        SqlExpr::TypedString(t) => Some(t.data_type.clone()),
        SqlExpr::Interval(_) => Some(DataType::Interval {
            fields: None,
            precision: None,
        }),
        SqlExpr::Value(v) if matches!(v.value, Value::Boolean(_)) => Some(DataType::Boolean),
        SqlExpr::Nested(inner) => written_type(inner),
        _ => None,
    }
}

/// `e::data_type`.
fn cast_to(e: &mut SqlExpr, data_type: DataType) {
    *e = SqlExpr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
        expr: Box::new(e.clone()),
        data_type,
        array: false,
        format: None,
    };
}

/// Casts quoted literals among the first two arguments to the type of the
/// other when that one is cast to a date/time type (`'...'::timestamptz` or
/// `timestamptz '...'`).
fn type_untyped_like_cast(args: &mut [FunctionArg]) {
    let expr = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
        _ => None,
    };
    let temporal = |t: &DataType| {
        let t = t.to_string().to_lowercase();
        t.starts_with("timestamp") || t == "date"
    };
    let temporal_cast = args
        .iter()
        .take(2)
        .filter_map(expr)
        .find_map(|e| written_type(&e).filter(temporal));
    let Some(data_type) = temporal_cast else {
        return;
    };
    // The step of a series of times is an interval, as PostgreSQL infers it.
    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = args.get_mut(2) {
        if is_quoted(e) {
            cast_to(
                e,
                DataType::Interval {
                    fields: None,
                    precision: None,
                },
            );
        }
    }
    for a in args.iter_mut().take(2) {
        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a {
            if is_quoted(e) {
                cast_to(e, data_type.clone());
            }
        }
    }
}

/// Values resolved together (a VALUES column, `coalesce`'s arguments, an
/// ARRAY's elements, a CASE's results) whose expressions other than quoted
/// literals and NULLs all have one written type
/// (`coalesce(NULL::interval, '3 hours')`): the quoted literals take that
/// type, as PostgreSQL resolves them; DataFusion refused the mix of text
/// and the type. With any other expression, or two written types, the
/// planner decides.
fn type_quoted_like_others(exprs: &mut [&mut SqlExpr]) {
    let is_null = |e: &SqlExpr| matches!(e, SqlExpr::Value(v) if matches!(v.value, Value::Null));
    if !exprs.iter().any(|e| is_quoted(e)) {
        return;
    }
    let mut types = exprs
        .iter()
        .filter(|e| !is_quoted(e) && !is_null(e))
        .map(|e| written_type(e));
    let Some(Some(first)) = types.next() else {
        return;
    };
    if !types.all(|t| t.as_ref() == Some(&first)) {
        return;
    }
    for e in exprs.iter_mut().filter(|e| is_quoted(e)) {
        cast_to(e, first.clone());
    }
}

/// Each column of a VALUES list, by [`type_quoted_like_others`]
/// (`('2024-01-01'::date), ('2024-01-02')`).
fn type_values_columns(values: &mut datafusion::sql::sqlparser::ast::Values) {
    let width = values.rows.first().map_or(0, |r| r.len());
    for column in 0..width {
        let mut cells: Vec<&mut SqlExpr> = values
            .rows
            .iter_mut()
            .filter_map(|r| r.get_mut(column))
            .collect();
        type_quoted_like_others(&mut cells);
    }
}

/// The selects whose rows a UNION, INTERSECT or EXCEPT combines, when every
/// branch is a plain select.
fn set_operation_selects(
    body: &mut datafusion::sql::sqlparser::ast::SetExpr,
) -> Option<Vec<&mut datafusion::sql::sqlparser::ast::Select>> {
    use datafusion::sql::sqlparser::ast::SetExpr;
    match body {
        SetExpr::Select(select) => Some(vec![select.as_mut()]),
        SetExpr::SetOperation { left, right, .. } => {
            let mut selects = set_operation_selects(left)?;
            selects.extend(set_operation_selects(right)?);
            Some(selects)
        }
        _ => None,
    }
}

/// Each column of a set operation's branches, by [`type_quoted_like_others`]
/// (`SELECT interval '1 day' UNION SELECT '25 hours'`).
fn type_set_operation_columns(body: &mut datafusion::sql::sqlparser::ast::SetExpr) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    if !matches!(body, SetExpr::SetOperation { .. }) {
        return;
    }
    let Some(mut selects) = set_operation_selects(body) else {
        return;
    };
    let width = selects.first().map_or(0, |s| s.projection.len());
    if selects.iter().any(|s| s.projection.len() != width) {
        return;
    }
    let branches = selects.len();
    for column in 0..width {
        let mut cells: Vec<&mut SqlExpr> = Vec::with_capacity(branches);
        for select in selects.iter_mut() {
            match &mut select.projection[column] {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    cells.push(e)
                }
                _ => break,
            }
        }
        if cells.len() == branches {
            type_quoted_like_others(&mut cells);
        }
    }
}

/// The expressions PostgreSQL resolves to one type, by
/// [`type_quoted_like_others`]: `coalesce`, `greatest`, `least` and
/// `nullif` arguments, ARRAY elements, a CASE's operand with its WHEN
/// values and its results among themselves.
fn type_quoted_in_expr(expr: &mut SqlExpr) {
    match expr {
        SqlExpr::Function(f)
            if matches!(
                crate::function_name(&f.name).as_str(),
                "coalesce" | "greatest" | "least" | "nullif"
            ) =>
        {
            if let FunctionArguments::List(list) = &mut f.args {
                let mut args: Vec<&mut SqlExpr> = list
                    .args
                    .iter_mut()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect();
                type_quoted_like_others(&mut args);
            }
        }
        SqlExpr::Array(array) => {
            let mut elements: Vec<&mut SqlExpr> = array.elem.iter_mut().collect();
            type_quoted_like_others(&mut elements);
        }
        SqlExpr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(operand) = operand {
                let mut compared: Vec<&mut SqlExpr> = vec![operand.as_mut()];
                compared.extend(conditions.iter_mut().map(|w| &mut w.condition));
                type_quoted_like_others(&mut compared);
            }
            let mut results: Vec<&mut SqlExpr> =
                conditions.iter_mut().map(|w| &mut w.result).collect();
            if let Some(e) = else_result {
                results.push(e.as_mut());
            }
            type_quoted_like_others(&mut results);
        }
        _ => {}
    }
}

/// `time_bucket(w, ts, "offset" => o)`, `origin => ...`, `timezone => ...`,
/// and `bucket_width => w`, `ts => t` for the first two:
/// TimescaleDB's overloads are `(w, ts, offset)`, `(w, ts, origin)` and
/// `(w, ts, timezone, origin, offset)`; the UDF tells offset from origin by type.
fn time_bucket_positions(args: &mut Vec<FunctionArg>) -> Result<()> {
    let mut positional = Vec::new();
    let (mut offset, mut origin, mut timezone) = (None, None, None);
    let (mut width, mut ts) = (None, None);
    for a in args.iter() {
        let named = match a {
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Some((name.value.to_lowercase(), e)),
            FunctionArg::ExprNamed {
                name: SqlExpr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Some((name.value.to_lowercase(), e)),
            _ => None,
        };
        match named {
            Some((name, e)) => match name.as_str() {
                "offset" => offset = Some(e.clone()),
                "origin" => origin = Some(e.clone()),
                "timezone" => timezone = Some(e.clone()),
                "bucket_width" => width = Some(e.clone()),
                "ts" => ts = Some(e.clone()),
                other => {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("function time_bucket has no parameter named \"{other}\""),
                    ))
                }
            },
            None => positional.push(a.clone()),
        }
    }
    let arg = |e: SqlExpr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
    // Named arguments follow the positional ones, as PostgreSQL requires:
    // bucket_width and ts by name fill the places no positional one took.
    for (place, (name, value)) in [("bucket_width", width), ("ts", ts)]
        .into_iter()
        .enumerate()
    {
        let Some(value) = value else { continue };
        if positional.len() != place {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("function time_bucket: argument \"{name}\" is given twice or out of order"),
            ));
        }
        positional.push(arg(value));
    }
    if offset.is_none() && origin.is_none() && timezone.is_none() {
        *args = positional;
        return Ok(());
    }
    let null = || SqlExpr::Value(Value::Null.into());
    // A named origin given as an untyped literal is a timestamp, not the
    // time zone text a third positional argument would be read as.
    let origin = origin.map(|o| match &o {
        SqlExpr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)) => SqlExpr::Cast {
            kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
            expr: Box::new(o),
            data_type: datafusion::sql::sqlparser::ast::DataType::Timestamp(
                None,
                datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone,
            ),
            array: false,
            format: None,
        },
        _ => o,
    });
    match (timezone, origin, offset) {
        (None, Some(x), None) | (None, None, Some(x)) => positional.push(arg(x)),
        (None, Some(_), Some(_)) => {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "function time_bucket takes origin and offset together only with a timezone",
            ))
        }
        (Some(tz), origin, offset) => {
            if positional.len() != 2 {
                return Err(TemporaError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    "function time_bucket takes a timezone after bucket_width and ts",
                ));
            }
            positional.push(arg(tz));
            match (origin, offset) {
                (origin, Some(off)) => {
                    positional.push(arg(origin.unwrap_or_else(null)));
                    positional.push(arg(off));
                }
                (Some(o), None) => positional.push(arg(o)),
                (None, None) => {}
            }
        }
        (None, None, None) => {}
    }
    *args = positional;
    Ok(())
}
