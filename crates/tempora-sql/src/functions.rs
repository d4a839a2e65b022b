//! SQL functions: `CREATE [OR REPLACE] FUNCTION ... LANGUAGE sql`, `DROP
//! FUNCTION`, their calls, and `set_integer_now_func`, which names one.
//!
//! A function is a query of one value kept in the catalog
//! ([`FunctionDef`]). Every call is inlined before a statement is planned,
//! as PostgreSQL inlines simple SQL functions: `f(a, b)` becomes the body's
//! expression with the arguments, cast to the parameters' types, in place
//! of the parameters (`$1` or the parameter's name), and the whole cast to
//! the declared result type. A body that reads tables (or aggregates)
//! becomes the scalar subquery of its first row, which is what PostgreSQL
//! returns for it. Functions of other languages, set-returning functions,
//! OUT parameters and bodies of several statements are 0A000.
//!
//! Overloads may differ in their number of arguments only, so that a call
//! resolves by its arguments' count without their types.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::FunctionRegistry;
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    ArgMode, CaseWhen, CastKind, CreateFunction, CreateFunctionBody, DataType as SqlType,
    DropFunction, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
    FunctionBehavior, FunctionCalledOnNull, FunctionReturnType, GroupByExpr, Ident, ObjectName,
    ObjectNamePart, Query, SelectItem, SetExpr, Statement, Value, Visit, VisitMut, Visitor,
    VisitorMut,
};
use std::sync::Arc;
use tempora_catalog::{CatalogOp, CatalogState, FunctionArgDef, FunctionDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::{ident_name, quote_ident};
use crate::{CommandCall, Notice, Outcome, SqlSession};

/// How deep calls may nest in one another's bodies before Tempora takes
/// the function for recursive (which PostgreSQL would end with 54001 too),
/// and how many calls one statement may inline: each inlined body makes
/// the statement's expressions deeper or larger, and both are bounded so
/// that planning stays within a thread's stack.
const MAX_DEPTH: usize = 12;
const MAX_CALLS: usize = 1000;

fn parse_expr(sql: &str) -> Result<SqlExpr> {
    tempora_common::sql_parser::parse_expr(sql).map_err(|e| crate::parse_error(sql, e))
}

/// The SQL type a type name stands for in a CAST.
fn parse_type(name: &str) -> Result<SqlType> {
    match parse_expr(&format!("CAST(NULL AS {name})"))? {
        SqlExpr::Cast { data_type, .. } => Ok(data_type),
        _ => Err(TemporaError::internal(format!("not a type: {name}"))),
    }
}

fn cast(expr: SqlExpr, data_type: SqlType) -> SqlExpr {
    SqlExpr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(SqlExpr::Nested(Box::new(expr))),
        data_type,
        array: false,
        format: None,
    }
}

/// The one query of a function's body text.
fn parse_body(text: &str) -> Result<Box<Query>> {
    let mut stmts = crate::parse(text)?;
    match stmts.len() {
        1 => {}
        0 => {
            return Err(TemporaError::new(
                SqlState::INVALID_FUNCTION_DEFINITION,
                "function's final statement must be SELECT or INSERT/UPDATE/DELETE/MERGE RETURNING",
            ))
        }
        _ => {
            return Err(TemporaError::not_supported(
                "SQL functions of more than one statement",
            ))
        }
    }
    match stmts.remove(0) {
        Statement::Query(q) => Ok(q),
        _ => Err(TemporaError::not_supported(
            "SQL functions whose body is not a SELECT",
        )),
    }
}

/// `pg_proc.provolatile` of a declared behaviour (VOLATILE by default).
fn volatility(b: Option<&FunctionBehavior>) -> char {
    match b {
        Some(FunctionBehavior::Immutable) => 'i',
        Some(FunctionBehavior::Stable) => 's',
        _ => 'v',
    }
}

/// An object name as its schema (if named) and name, folded as PostgreSQL
/// folds identifiers (`db.schema.name` names the schema too); None for
/// more parts.
fn split_name(name: &ObjectName) -> Option<(Option<String>, String)> {
    let mut parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => ident_name(i),
            other => other.to_string().to_lowercase(),
        })
        .collect();
    let last = parts.pop()?;
    match parts.len() {
        0 => Some((None, last)),
        1 | 2 => Some((parts.pop(), last)),
        _ => None,
    }
}

/// The schema a new function goes to: the one named, or the first of the
/// search path that exists.
fn creation_schema(session: &SqlSession, name: &ObjectName) -> Result<(String, String)> {
    let state = session.engine().catalog().snapshot();
    match split_name(name) {
        Some((None, n)) => {
            let schema = session
                .search_path()
                .into_iter()
                .find(|s| state.schema_exists(s))
                .ok_or_else(|| {
                    TemporaError::new(
                        SqlState::INVALID_SCHEMA_NAME,
                        "no schema has been selected to create in",
                    )
                })?;
            Ok((schema, n))
        }
        Some((Some(s), n)) => {
            if !state.schema_exists(&s) {
                return Err(crate::ddl::no_schema(&s));
            }
            Ok((s, n))
        }
        None => Err(TemporaError::syntax(format!(
            "improper qualified name (too many dotted names): {name}"
        ))),
    }
}

/// Whether a value of type `actual` can be returned as `declared`, as
/// PostgreSQL's assignment casts allow.
fn returnable(actual: &DataType, declared: &DataType) -> bool {
    use tempora_query::pg_types::pg_type_name;
    let numeric = |t: &DataType| t.is_numeric();
    let temporal = |t: &DataType| {
        matches!(
            t,
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        )
    };
    actual == declared
        || *actual == DataType::Null
        || pg_type_name(actual) == pg_type_name(declared)
        || pg_type_name(declared) == "text"
        || (numeric(actual) && numeric(declared))
        || (temporal(actual) && temporal(declared))
}

/// A VARIADIC parameter, which the parser reads as a plain one: 0A000
/// rather than a function its calls would not reach.
pub(crate) fn reject_variadic(sql: &str) -> Result<()> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let variadic = crate::located_tokens(sql).is_some_and(|tokens| {
        tokens
            .iter()
            .any(|(t, _)| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("variadic")))
    });
    if variadic {
        return Err(TemporaError::not_supported("VARIADIC function parameters"));
    }
    Ok(())
}

/// `CREATE [OR REPLACE] FUNCTION`.
pub(crate) async fn create_function(
    session: &SqlSession,
    cf: &CreateFunction,
) -> Result<(Outcome, Vec<Notice>)> {
    if cf.temporary || cf.or_alter || cf.if_not_exists {
        return Err(TemporaError::syntax(format!(
            "syntax error in CREATE FUNCTION {}",
            cf.name
        )));
    }
    if !cf.set_params.is_empty() {
        return Err(TemporaError::not_supported(
            "CREATE FUNCTION ... SET (settings of a function's own)",
        ));
    }
    let (schema, name) = creation_schema(session, &cf.name)?;
    let language = cf.language.as_ref().map(|l| l.value.to_lowercase());
    let standard_body = matches!(cf.function_body, Some(CreateFunctionBody::Return(_)));
    match language.as_deref() {
        Some("sql") => {}
        None if standard_body => {}
        None => {
            return Err(TemporaError::new(
                SqlState::INVALID_FUNCTION_DEFINITION,
                "no language specified",
            ))
        }
        Some(l @ ("plpgsql" | "c" | "internal")) => {
            return Err(TemporaError::not_supported(format!(
                "CREATE FUNCTION ... LANGUAGE {l} (Tempora runs functions written in SQL)"
            )))
        }
        Some(other) => {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("language \"{other}\" does not exist"),
            ))
        }
    }
    let returns = match &cf.return_type {
        Some(FunctionReturnType::DataType(t)) => t.to_string(),
        Some(FunctionReturnType::SetOf(_)) => {
            return Err(TemporaError::not_supported(
                "functions returning sets (RETURNS SETOF)",
            ))
        }
        None => {
            return Err(TemporaError::new(
                SqlState::INVALID_FUNCTION_DEFINITION,
                "function result type must be specified",
            ))
        }
    };
    let lower = returns.to_lowercase();
    if lower == "void" {
        return Err(TemporaError::not_supported("functions returning void"));
    }
    if matches!(lower.as_str(), "trigger" | "event_trigger") {
        return Err(TemporaError::not_supported("trigger functions"));
    }
    if lower == "record" || lower.starts_with("table") {
        return Err(TemporaError::not_supported(
            "functions returning rows (RETURNS TABLE, record)",
        ));
    }
    // Arguments.
    let mut args: Vec<FunctionArgDef> = Vec::new();
    for a in cf.args.iter().flatten() {
        if matches!(a.mode, Some(ArgMode::Out | ArgMode::InOut)) {
            return Err(TemporaError::not_supported(
                "OUT and INOUT function parameters",
            ));
        }
        let arg_name = a.name.as_ref().map(ident_name);
        if let Some(n) = &arg_name {
            if args.iter().any(|p| p.name.as_deref() == Some(n)) {
                return Err(TemporaError::new(
                    SqlState::INVALID_FUNCTION_DEFINITION,
                    format!("parameter name \"{n}\" used more than once"),
                ));
            }
        }
        if a.default_expr.is_none() && args.iter().any(|p| p.default.is_some()) {
            return Err(TemporaError::new(
                SqlState::INVALID_FUNCTION_DEFINITION,
                "input parameters after one with a default value must also have defaults",
            ));
        }
        args.push(FunctionArgDef {
            name: arg_name,
            type_name: a.data_type.to_string(),
            type_oid: 0,
            default: a.default_expr.as_ref().map(ToString::to_string),
        });
    }
    // The declared types, as the planner reads them.
    let names: Vec<String> = std::iter::once(returns.clone())
        .chain(args.iter().map(|a| a.type_name.clone()))
        .collect();
    let types = planned_types(session, &names).await?;
    let declared = types[0].clone();
    let canonical = |t: &DataType| tempora_query::pg_types::pg_type_name(t).to_string();
    for (a, t) in args.iter_mut().zip(&types[1..]) {
        a.type_name = canonical(t);
        a.type_oid = tempora_query::pg_types::pg_type_oid(t);
    }
    let return_name = canonical(&declared);
    // The body.
    let (source, query) = match &cf.function_body {
        Some(CreateFunctionBody::AsBeforeOptions {
            body,
            link_symbol: None,
        })
        | Some(CreateFunctionBody::AsAfterOptions(body)) => {
            let text = string_literal(body).ok_or_else(|| {
                TemporaError::syntax(format!("syntax error at or near \"{body}\""))
            })?;
            (text.clone(), parse_body(&text)?)
        }
        Some(CreateFunctionBody::Return(expr)) => {
            let text = format!("SELECT {expr}");
            (format!("RETURN {expr}"), parse_body(&text)?)
        }
        Some(_) => {
            return Err(TemporaError::not_supported(
                "function bodies other than AS '...' and RETURN",
            ))
        }
        None => {
            return Err(TemporaError::new(
                SqlState::INVALID_FUNCTION_DEFINITION,
                "no function body specified",
            ))
        }
    };
    let mut def = FunctionDef {
        oid: 0,
        schema: schema.clone(),
        name: name.clone(),
        args,
        returns: return_name.clone(),
        return_oid: tempora_query::pg_types::pg_type_oid(&declared),
        body: query.to_string(),
        source,
        volatility: volatility(cf.behavior.as_ref()),
        strict: matches!(
            cf.called_on_null,
            Some(FunctionCalledOnNull::Strict | FunctionCalledOnNull::ReturnsNullOnNullInput)
        ),
    };
    // The body must plan, with its parameters NULLs of their types, and
    // give one column of a type the declared one takes.
    let state = session.engine().catalog().snapshot();
    let nulls: Vec<SqlExpr> = def
        .args
        .iter()
        .map(|a| {
            Ok(cast(
                SqlExpr::Value(Value::Null.into()),
                parse_type(&a.type_name)?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut probe = Statement::Query(substitute(&def, &state, &session.search_path(), &nulls)?);
    // Other functions it calls must exist now.
    inline(session, &mut probe)?;
    let body_types = result_types(session, &probe.to_string()).await?;
    let mismatch = |detail: String| {
        TemporaError::new(
            SqlState::INVALID_FUNCTION_DEFINITION,
            format!("return type mismatch in function declared to return {return_name}"),
        )
        .with_detail(detail)
    };
    match body_types.as_slice() {
        [t] if returnable(t, &declared) => {}
        [t] => return Err(mismatch(format!("Actual return type is {}.", canonical(t)))),
        _ => {
            return Err(mismatch(
                "Final statement must return exactly one column.".into(),
            ))
        }
    }
    let builtin = {
        let ctx = session.context();
        ctx.udf(&name).is_ok() || ctx.udaf(&name).is_ok() || ctx.udwf(&name).is_ok()
    };
    if builtin {
        return Err(TemporaError::not_supported(format!(
            "CREATE FUNCTION of a name a built-in function has ({name})"
        )));
    }
    let or_replace = cf.or_replace;
    session
        .engine()
        .catalog()
        .commit(|state| {
            let n = def.args.len();
            let same_types = |f: &FunctionDef| {
                f.args.len() == n
                    && f.args
                        .iter()
                        .zip(&def.args)
                        .all(|(a, b)| a.type_oid == b.type_oid)
            };
            let mut oid = state.next_oid;
            for f in state.functions_named(&schema, &name) {
                if same_types(f) {
                    if !or_replace {
                        return Err(TemporaError::new(
                            SqlState::DUPLICATE_FUNCTION,
                            format!("function \"{name}\" already exists with same argument types"),
                        ));
                    }
                    if f.return_oid != def.return_oid {
                        return Err(TemporaError::new(
                            SqlState::INVALID_FUNCTION_DEFINITION,
                            "cannot change return type of existing function",
                        )
                        .with_hint(format!("Use DROP FUNCTION {} first.", f.signature())));
                    }
                    if let Some(v) = state.views.values().find(|v| v.depends_on.contains(&f.oid)) {
                        return Err(TemporaError::not_supported(format!(
                            "CREATE OR REPLACE FUNCTION of a function a view reads (view {}); \
                             drop the view, replace the function, and create the view again",
                            v.name
                        )));
                    }
                    oid = f.oid;
                } else if (0..=n.max(f.args.len())).any(|k| f.takes(k) && def.takes(k)) {
                    return Err(TemporaError::not_supported(format!(
                        "functions overloaded by argument types ({} and {})",
                        f.signature(),
                        def.signature()
                    )));
                }
            }
            def.oid = oid;
            Ok(vec![CatalogOp::PutFunction(def.clone())])
        })
        .await?;
    Ok((Outcome::Command("CREATE FUNCTION".into()), vec![]))
}

/// The text of a string constant (`'...'`, `$$...$$`).
fn string_literal(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s.clone()),
            Value::DollarQuotedString(d) => Some(d.value.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The types of the columns `sql` gives, planned as the session plans
/// queries.
async fn result_types(session: &SqlSession, sql: &str) -> Result<Vec<DataType>> {
    let mut prepared = Box::pin(session.prepare_all(sql)).await?;
    let schema = prepared
        .pop()
        .and_then(|p| p.result_schema)
        .ok_or_else(|| TemporaError::internal(format!("no columns: {sql}")))?;
    Ok(schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect())
}

/// The types the planner reads the SQL type names `names` as, in order.
async fn planned_types(session: &SqlSession, names: &[String]) -> Result<Vec<DataType>> {
    let casts: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, t)| format!("CAST(NULL AS {t}) AS c{i}"))
        .collect();
    result_types(session, &format!("SELECT {}", casts.join(", "))).await
}

/// `DROP FUNCTION [IF EXISTS] name [(types)], ... [CASCADE | RESTRICT]`.
pub(crate) async fn drop_functions(
    session: &SqlSession,
    df: &DropFunction,
) -> Result<(Outcome, Vec<Notice>)> {
    let cascade = matches!(
        df.drop_behavior,
        Some(datafusion::sql::sqlparser::ast::DropBehavior::Cascade)
    );
    let path = session.search_path();
    // Each named function: (schema or None for the search path, name,
    // argument type oids as given, and as written for messages).
    let mut wanted = Vec::new();
    for d in &df.func_desc {
        let (schema, name) = split_name(&d.name)
            .ok_or_else(|| TemporaError::syntax(format!("improper name {}", d.name)))?;
        let types = match &d.args {
            None => None,
            Some(args) if args.is_empty() => Some(vec![]),
            Some(args) => {
                if args.iter().any(|a| matches!(a.mode, Some(ArgMode::Out))) {
                    return Err(TemporaError::not_supported("OUT parameters"));
                }
                let names: Vec<String> = args.iter().map(|a| a.data_type.to_string()).collect();
                Some(planned_types(session, &names).await?)
            }
        };
        wanted.push((schema, name, types));
    }
    let mut notices = Vec::new();
    session
        .engine()
        .catalog()
        .commit(|state| {
            notices.clear();
            let mut dropping: Vec<(u32, String, &str)> = Vec::new();
            for (schema, name, types) in &wanted {
                let schemas: Vec<String> = match schema {
                    Some(s) => vec![s.clone()],
                    None => path.clone(),
                };
                let candidates: Vec<&FunctionDef> = schemas
                    .iter()
                    .flat_map(|s| state.functions_named(s, name))
                    .collect();
                let oids: Option<Vec<u32>> = types.as_ref().map(|ts| {
                    ts.iter()
                        .map(tempora_query::pg_types::pg_type_oid)
                        .collect()
                });
                let named = |ts: &[DataType]| {
                    let names: Vec<&str> = ts
                        .iter()
                        .map(tempora_query::pg_types::pg_type_name)
                        .collect();
                    format!("{name}({})", names.join(", "))
                };
                let found: Vec<&FunctionDef> = match &oids {
                    None => candidates.clone(),
                    Some(oids) => candidates
                        .iter()
                        .copied()
                        .filter(|f| f.args.iter().map(|a| a.type_oid).eq(oids.iter().copied()))
                        .collect(),
                };
                match found.as_slice() {
                    [f] => {
                        if !dropping.iter().any(|(o, _, _)| *o == f.oid) {
                            dropping.push((f.oid, f.signature(), "function"));
                        }
                    }
                    [] => {
                        let shown = match types {
                            Some(ts) => named(ts),
                            None => format!("{name}()"),
                        };
                        if df.if_exists {
                            notices.push(Notice::info(
                                SqlState::SUCCESSFUL_COMPLETION,
                                format!("function {shown} does not exist, skipping"),
                            ));
                        } else if types.is_none() {
                            return Err(TemporaError::new(
                                SqlState::UNDEFINED_FUNCTION,
                                format!("could not find a function named \"{name}\""),
                            ));
                        } else {
                            return Err(TemporaError::new(
                                SqlState::UNDEFINED_FUNCTION,
                                format!("function {shown} does not exist"),
                            ));
                        }
                    }
                    _ => {
                        return Err(TemporaError::new(
                            SqlState::AMBIGUOUS_FUNCTION,
                            format!("function name \"{name}\" is not unique"),
                        )
                        .with_hint(
                            "Specify the argument list to select the function unambiguously.",
                        ))
                    }
                }
            }
            let mut cascaded = Vec::new();
            let views = crate::views::dependent_views(state, &dropping, cascade, &mut cascaded)?;
            let mut ops = Vec::new();
            let mut dropped = Vec::new();
            for oid in views {
                ops.extend(crate::views::drop_view_ops(state, oid, &mut dropped));
            }
            notices.extend(Notice::cascade(&cascaded));
            ops.extend(
                dropping
                    .iter()
                    .map(|(oid, _, _)| CatalogOp::DropFunction { oid: *oid }),
            );
            Ok(ops)
        })
        .await?;
    Ok((Outcome::Command("DROP FUNCTION".into()), notices))
}

/// The function a call names, if it is a SQL function that takes as many
/// arguments as the call gives.
fn resolve<'a>(
    state: &'a CatalogState,
    path: &[String],
    f: &datafusion::sql::sqlparser::ast::Function,
) -> Option<&'a FunctionDef> {
    if state.functions.is_empty() || f.over.is_some() || f.filter.is_some() {
        return None;
    }
    if !f.within_group.is_empty() {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let n = list.args.len();
    let found = |schema: &str, name: &str| state.functions_named(schema, name).find(|d| d.takes(n));
    match split_name(&f.name)? {
        (None, name) => path.iter().find_map(|s| found(s, &name)),
        (Some(schema), name) => found(&schema, &name),
    }
}

/// The call's arguments in the function's parameter order, defaults
/// filled in; None when they do not fit its parameters.
fn bind_args(
    def: &FunctionDef,
    f: &datafusion::sql::sqlparser::ast::Function,
) -> Result<Option<Vec<SqlExpr>>> {
    let FunctionArguments::List(list) = &f.args else {
        return Ok(None);
    };
    let mut slots: Vec<Option<SqlExpr>> = vec![None; def.args.len()];
    let mut next = 0;
    for a in &list.args {
        let (name, expr) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (None, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (Some(ident_name(name)), e),
            FunctionArg::ExprNamed {
                name: SqlExpr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => (Some(ident_name(name)), e),
            _ => return Ok(None),
        };
        let slot = match name {
            None => {
                let i = next;
                next += 1;
                i
            }
            Some(n) => match def.args.iter().position(|p| p.name.as_deref() == Some(&n)) {
                Some(i) => i,
                None => return Ok(None),
            },
        };
        match slots.get_mut(slot) {
            Some(s @ None) => *s = Some(expr.clone()),
            _ => return Ok(None),
        }
    }
    let mut out = Vec::with_capacity(slots.len());
    for (slot, p) in slots.into_iter().zip(&def.args) {
        match (slot, &p.default) {
            (Some(e), _) => out.push(e),
            (None, Some(d)) => out.push(parse_expr(d)?),
            (None, None) => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Column names of the tables a body reads, which win over parameters of
/// the same name there (as in PostgreSQL).
fn body_columns(state: &CatalogState, path: &[String], q: &mut Query) -> BTreeSet<String> {
    struct Relations(Vec<(Option<String>, String)>);
    impl VisitorMut for Relations {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<()> {
            self.0.extend(split_name(name));
            ControlFlow::Continue(())
        }
    }
    let mut found = Relations(Vec::new());
    let _ = VisitMut::visit(q, &mut found);
    let mut columns = BTreeSet::new();
    for (schema, name) in found.0 {
        let table = match schema {
            None => path.iter().find_map(|s| state.table(s, &name)),
            Some(s) => state.table(&s, &name),
        };
        if let Some(t) = table {
            columns.extend(t.columns.iter().map(|c| c.name.clone()));
        }
    }
    columns
}

/// The body's query with the arguments in place of its parameters.
fn substitute(
    def: &FunctionDef,
    state: &CatalogState,
    path: &[String],
    args: &[SqlExpr],
) -> Result<Box<Query>> {
    let mut q = parse_body(&def.body)?;
    let shadowed = body_columns(state, path, &mut q);
    struct Params<'a> {
        def: &'a FunctionDef,
        args: &'a [SqlExpr],
        shadowed: &'a BTreeSet<String>,
    }
    impl Params<'_> {
        fn by_name(&self, name: &str) -> Option<SqlExpr> {
            let i = self
                .def
                .args
                .iter()
                .position(|a| a.name.as_deref() == Some(name))?;
            self.args.get(i).cloned()
        }
    }
    impl VisitorMut for Params<'_> {
        type Break = TemporaError;
        // After the children: an argument put in is not looked into again.
        fn post_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<TemporaError> {
            let arg = match e {
                SqlExpr::Value(v) => match &v.value {
                    // Every `$n` of a body is a parameter of the function:
                    // left in, it would take a value of the calling statement's.
                    Value::Placeholder(p) => match p
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|i| self.args.get(i).cloned())
                    {
                        Some(a) => Some(a),
                        None => {
                            return ControlFlow::Break(TemporaError::new(
                                SqlState::UNDEFINED_PARAMETER,
                                format!("there is no parameter {p}"),
                            ))
                        }
                    },
                    _ => None,
                },
                SqlExpr::Identifier(i) => {
                    let n = ident_name(i);
                    if self.shadowed.contains(&n) {
                        None
                    } else {
                        self.by_name(&n)
                    }
                }
                SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    if ident_name(&parts[0]) == self.def.name {
                        self.by_name(&ident_name(&parts[1]))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some(a) = arg {
                *e = SqlExpr::Nested(Box::new(a));
            }
            ControlFlow::Continue(())
        }
    }
    let typed: Vec<SqlExpr> = args
        .iter()
        .zip(&def.args)
        .map(|(a, p)| Ok(cast(a.clone(), parse_type(&p.type_name)?)))
        .collect::<Result<_>>()?;
    let mut params = Params {
        def,
        args: &typed,
        shadowed: &shadowed,
    };
    if let ControlFlow::Break(e) = VisitMut::visit(&mut *q, &mut params) {
        return Err(e);
    }
    Ok(q)
}

/// The body's one expression, when it is `SELECT expr` alone and calls
/// no aggregate (which would aggregate the caller's rows once inlined).
fn scalar_body(q: &Query, is_aggregate: &dyn Fn(&str) -> bool) -> Option<SqlExpr> {
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return None;
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let plain_group =
        matches!(&s.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !s.from.is_empty()
        || s.selection.is_some()
        || s.having.is_some()
        || s.distinct.is_some()
        || !plain_group
        || s.projection.len() != 1
    {
        return None;
    }
    let expr = match &s.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    struct Calls<'a>(&'a dyn Fn(&str) -> bool);
    impl Visitor for Calls<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &SqlExpr) -> ControlFlow<()> {
            match e {
                SqlExpr::Function(f)
                    if f.over.is_some() || (self.0)(&crate::function_name(&f.name)) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    if Visit::visit(&expr, &mut Calls(is_aggregate)).is_break() {
        return None;
    }
    Some(expr)
}

/// Replaces the calls of SQL functions in `stmt` by their bodies (see the
/// module's documentation); the oids of the functions it inlined.
pub(crate) fn inline(session: &SqlSession, stmt: &mut Statement) -> Result<Vec<u32>> {
    let state = session.engine().catalog().snapshot();
    if state.functions.is_empty() {
        return Ok(vec![]);
    }
    let path = session.search_path();
    let ctx = session.context();
    let is_aggregate = |name: &str| ctx.udaf(name).is_ok();
    let calls = std::cell::Cell::new(0);
    let mut inliner = Inliner {
        state: &state,
        path: &path,
        is_aggregate: &is_aggregate,
        depth: 0,
        calls: &calls,
        used: Vec::new(),
    };
    match VisitMut::visit(stmt, &mut inliner) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(inliner.used),
    }
}

struct Inliner<'a> {
    state: &'a CatalogState,
    path: &'a [String],
    is_aggregate: &'a dyn Fn(&str) -> bool,
    depth: usize,
    /// Calls inlined so far in the statement.
    calls: &'a std::cell::Cell<usize>,
    used: Vec<u32>,
}

impl Inliner<'_> {
    fn expand(
        &mut self,
        def: &FunctionDef,
        f: &datafusion::sql::sqlparser::ast::Function,
    ) -> Result<Option<SqlExpr>> {
        let Some(args) = bind_args(def, f)? else {
            return Ok(None);
        };
        if self.depth >= MAX_DEPTH {
            return Err(TemporaError::new(
                SqlState::STATEMENT_TOO_COMPLEX,
                "stack depth limit exceeded",
            )
            .with_detail(format!(
                "SQL function \"{}\" calls functions {MAX_DEPTH} deep (is it recursive?)",
                def.name
            )));
        }
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() > MAX_CALLS {
            return Err(TemporaError::new(
                SqlState::STATEMENT_TOO_COMPLEX,
                format!("a statement may call SQL functions at most {MAX_CALLS} times"),
            ));
        }
        let q = substitute(def, self.state, self.path, &args)?;
        let body = match scalar_body(&q, self.is_aggregate) {
            Some(e) => e,
            None => {
                let mut q = q;
                if q.limit_clause.is_none() && q.fetch.is_none() {
                    // PostgreSQL returns the first row the query gives.
                    let Statement::Query(one) = crate::parse("SELECT 1 LIMIT 1")?.remove(0) else {
                        return Err(TemporaError::internal("LIMIT 1 did not parse"));
                    };
                    q.limit_clause = one.limit_clause;
                }
                SqlExpr::Subquery(q)
            }
        };
        let mut out = cast(body, parse_type(&def.returns)?);
        if def.strict && !args.is_empty() {
            let condition = args
                .iter()
                .map(|a| SqlExpr::IsNull(Box::new(SqlExpr::Nested(Box::new(a.clone())))))
                .reduce(|l, r| SqlExpr::BinaryOp {
                    left: Box::new(l),
                    op: datafusion::sql::sqlparser::ast::BinaryOperator::Or,
                    right: Box::new(r),
                })
                .expect("arguments");
            out = SqlExpr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen {
                    condition,
                    result: SqlExpr::Value(Value::Null.into()),
                }],
                else_result: Some(Box::new(out)),
            };
        }
        // Functions the body calls.
        let mut inner = Inliner {
            state: self.state,
            path: self.path,
            is_aggregate: self.is_aggregate,
            depth: self.depth + 1,
            calls: self.calls,
            used: Vec::new(),
        };
        if let ControlFlow::Break(e) = VisitMut::visit(&mut out, &mut inner) {
            return Err(e);
        }
        self.used.extend(inner.used);
        if !self.used.contains(&def.oid) {
            self.used.push(def.oid);
        }
        Ok(Some(out))
    }
}

impl VisitorMut for Inliner<'_> {
    type Break = TemporaError;

    /// `SELECT f(...)` names its column after the function, as PostgreSQL does.
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<TemporaError> {
        if let SetExpr::Select(s) = q.body.as_mut() {
            for item in s.projection.iter_mut() {
                if let SelectItem::UnnamedExpr(SqlExpr::Function(f)) = item {
                    if let Some(def) = resolve(self.state, self.path, f) {
                        let alias = Ident::with_quote('"', def.name.clone());
                        let expr = SqlExpr::Function(f.clone());
                        *item = SelectItem::ExprWithAlias { expr, alias };
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<TemporaError> {
        let SqlExpr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let Some(def) = resolve(self.state, self.path, f).cloned() else {
            return ControlFlow::Continue(());
        };
        match self.expand(&def, f) {
            Ok(Some(new)) => *e = new,
            Ok(None) => {}
            Err(err) => return ControlFlow::Break(err),
        }
        ControlFlow::Continue(())
    }
}

/// `set_integer_now_func(hypertable, integer_now_func, replace_if_exists)`.
#[derive(Debug, Clone)]
pub struct SetIntegerNowFunc {
    args: Vec<(Option<String>, SqlExpr)>,
}

impl SetIntegerNowFunc {
    pub(crate) fn from_call(call: CommandCall) -> Self {
        Self { args: call.args }
    }

    pub fn result_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "set_integer_now_func",
            DataType::Utf8,
            true,
        )]))
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let mut relation = None;
        let mut func = None;
        let mut replace = false;
        for (i, (name, expr)) in self.args.iter().enumerate() {
            let key = name.as_deref().unwrap_or(match i {
                0 => "hypertable",
                1 => "integer_now_func",
                _ => "replace_if_exists",
            });
            let v = session.eval_constant(expr).await?;
            let text = match &v {
                ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
                    s.clone()
                }
                _ => None,
            };
            match key {
                "hypertable" => relation = text,
                "integer_now_func" => func = text,
                "replace_if_exists" => {
                    replace = match v {
                        ScalarValue::Boolean(b) => b.unwrap_or(false),
                        _ => {
                            return Err(TemporaError::new(
                                SqlState::DATATYPE_MISMATCH,
                                "replace_if_exists must be a boolean",
                            ))
                        }
                    }
                }
                other => {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!("set_integer_now_func has no argument \"{other}\""),
                    ))
                }
            }
        }
        // STRICT: NULL arguments give NULL and change nothing.
        let (Some(rel), Some(func)) = (relation, func) else {
            return Ok(Self::done());
        };
        let state = session.engine().catalog().snapshot();
        let (table, time_type) = tempora_query::hypertable_named(&state, &rel)?;
        // A built-in function (`now`) exists but never returns an integer
        // time of the table's own.
        let found = match function_named(session, &state, &func) {
            Ok(f) => Some(f),
            Err(_) if session.context().udf(&func.to_lowercase()).is_ok() => None,
            Err(e) => return Err(e),
        };
        let h = table.hypertable.as_ref().expect("hypertable");
        if h.integer_now_func.is_some() && !replace {
            return Err(TemporaError::new(
                SqlState::DUPLICATE_OBJECT,
                format!(
                    "custom time function already set for hypertable \"{}\"",
                    table.name
                ),
            ));
        }
        if time_type.is_temporal() {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "custom time function not supported",
            )
            .with_hint(
                "A custom time function can only be set for hypertables that have integer time dimensions.",
            ));
        }
        let invalid = |hint: &str| {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid custom time function",
            )
            .with_hint(hint.to_string())
        };
        let Some((schema, name)) = found else {
            return Err(invalid(
                "The return type of the custom time function must be the same as the type of the time column of the hypertable.",
            ));
        };
        let candidates: Vec<&FunctionDef> = state.functions_named(&schema, &name).collect();
        let def = match candidates.as_slice() {
            [d] => *d,
            _ => {
                return Err(TemporaError::new(
                    SqlState::AMBIGUOUS_FUNCTION,
                    format!("more than one function named \"{name}\""),
                ))
            }
        };
        if !def.args.is_empty() || def.volatility == 'v' {
            return Err(invalid(
                "A custom time function must take no arguments and be STABLE.",
            ));
        }
        if def.return_oid != time_type.oid() {
            return Err(invalid(
                "The return type of the custom time function must be the same as the type of the time column of the hypertable.",
            ));
        }
        let oid = table.oid;
        let func = Some((schema, name));
        session
            .engine()
            .catalog()
            .commit(|_| {
                Ok(vec![CatalogOp::SetIntegerNowFunc {
                    oid,
                    func: func.clone(),
                }])
            })
            .await?;
        Ok(Self::done())
    }

    fn done() -> (Outcome, Vec<Notice>) {
        let batch = RecordBatch::try_new(
            Self::result_schema(),
            vec![Arc::new(StringArray::from(vec![None::<&str>]))],
        )
        .expect("one null column");
        (
            Outcome::Rows {
                schema: Self::result_schema(),
                batches: vec![batch],
                tag: "SELECT".into(),
            },
            vec![],
        )
    }
}

/// The function a `regproc` text names (`f`, `schema.f`): PostgreSQL's
/// error when there is none.
fn function_named(
    session: &SqlSession,
    state: &CatalogState,
    text: &str,
) -> Result<(String, String)> {
    let (schema, name) = tempora_query::split_qualified(text);
    let qualified = text.contains('.');
    let found = if qualified {
        state
            .functions_named(&schema, &name)
            .next()
            .map(|f| (f.schema.clone(), f.name.clone()))
    } else {
        session.search_path().iter().find_map(|s| {
            state
                .functions_named(s, &name)
                .next()
                .map(|f| (f.schema.clone(), f.name.clone()))
        })
    };
    found.ok_or_else(|| {
        TemporaError::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("function \"{text}\" does not exist"),
        )
    })
}

/// The current time of an integer hypertable, by its integer_now function.
pub(crate) async fn integer_now(session: &mut SqlSession, func: &(String, String)) -> Result<i64> {
    let sql = format!("SELECT {}.{}()", quote_ident(&func.0), quote_ident(&func.1));
    let prepared = Box::pin(session.prepare_all(&sql)).await?;
    let p = prepared
        .first()
        .ok_or_else(|| TemporaError::internal("no statement"))?;
    let (outcome, _) = Box::pin(session.execute(p, None)).await?;
    let Outcome::Rows { batches, .. } = outcome else {
        return Err(TemporaError::internal("integer_now function gave no rows"));
    };
    let value = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| ScalarValue::try_from_array(b.column(0), 0))
        .transpose()
        .map_err(TemporaError::from_datafusion)?;
    let now = match value {
        Some(ScalarValue::Int16(Some(v))) => Some(i64::from(v)),
        Some(ScalarValue::Int32(Some(v))) => Some(i64::from(v)),
        Some(ScalarValue::Int64(Some(v))) => Some(v),
        _ => None,
    };
    now.ok_or_else(|| {
        TemporaError::new(
            SqlState::NULL_VALUE_NOT_ALLOWED,
            format!("integer_now function {}.{}() returned NULL", func.0, func.1),
        )
    })
}
