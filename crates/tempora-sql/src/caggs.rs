//! Continuous aggregates: `CREATE MATERIALIZED VIEW v WITH
//! (timescaledb.continuous) AS SELECT time_bucket(...) ... GROUP BY ...`,
//! `CALL refresh_continuous_aggregate`, `ALTER MATERIALIZED VIEW v SET
//! (timescaledb.materialized_only = ...)` and `DROP MATERIALIZED VIEW`.
//!
//! ```text
//! CREATE ─► the query checked as TimescaleDB checks it, planned for its
//!           columns; one commit: the materialization hypertable
//!           (_timescaledb_internal._materialized_hypertable_N, chunks 10x
//!           the raw ones) and the view (ViewDef.continuous)
//! writes ─► every commit that adds or removes rows of a raw hypertable
//!           (flush, COPY, DELETE/UPDATE, upsert, TRUNCATE; not merges,
//!           compression or drop_chunks) logs CatalogOp::Invalidate with the
//!           files' time range; each aggregate keeps the part below its
//!           invalidation threshold (above it nothing was materialized)
//! refresh(window) ─► flush (so every written row is in a logged file)
//!           ─► commit: threshold moved to the window's end, the range it
//!              passes over logged as invalid
//!           ─► invalid ranges inside the window, widened to whole buckets,
//!              cut into batches about one materialization chunk wide
//!           ─► per batch: the query over its ranges; the materialization's
//!              rows in them replaced by its result, the ranges taken off the
//!              log and the watermark moved, in one commit (a crash leaves
//!              each bucket old or new, and what is left in the log)
//! ```
//! Reading the view: tempora_query::caggs::read_sql.

use std::collections::BTreeSet;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, ObjectName,
    SelectItem, SetExpr, Statement, TableFactor, Value, Visit, Visitor,
};
use datafusion::sql::sqlparser::tokenizer::Token;
use tempora_catalog::{
    CatalogOp, CatalogState, ColumnDef, ContinuousAgg, HypertableDef, JobSpan, PgType, TableDef,
    ViewDef, CHUNK_SCHEMA,
};
use tempora_common::{Result, SqlState, TemporaError};
use tempora_query::caggs::{qualified, ranged_query, raw_time_type, time_literal};

use crate::ddl::{ident_name, object_name};
use crate::{Notice, Outcome, SqlSession};

/// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [(cols)] WITH (options) AS
/// query [WITH [NO] DATA]`, read from its tokens (the SQL parser does not
/// take dotted option names).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateCagg {
    name: ObjectName,
    if_not_exists: bool,
    columns: Vec<String>,
    options: Vec<crate::compression::TableOption>,
    /// The query as written.
    query: String,
    with_data: bool,
}

fn word(t: Option<&Token>) -> Option<String> {
    match t? {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
        _ => None,
    }
}

/// Reads a `CREATE MATERIALIZED VIEW ... WITH (...)` statement; None for
/// any other text.
pub fn parse_create(sql: &str) -> Option<Result<CreateCagg>> {
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("materialized") || !lower.contains("continuous") {
        return None;
    }
    let tokens: Vec<(Token, usize)> = crate::located_tokens(sql)?
        .into_iter()
        .filter(|(t, _)| !matches!(t, Token::Whitespace(_)))
        .collect();
    let plain: Vec<Token> = tokens.iter().map(|(t, _)| t.clone()).collect();
    let mut i = 0;
    let expect = |w: &str, i: &mut usize| {
        let ok = word(plain.get(*i)).as_deref() == Some(w);
        if ok {
            *i += 1;
        }
        ok
    };
    if !expect("create", &mut i) || !expect("materialized", &mut i) || !expect("view", &mut i) {
        return None;
    }
    let mut if_not_exists = false;
    if expect("if", &mut i) {
        if !expect("not", &mut i) || !expect("exists", &mut i) {
            return None;
        }
        if_not_exists = true;
    }
    // The name: identifiers joined by dots.
    let name_start = i;
    loop {
        match plain.get(i)? {
            Token::Word(_) => i += 1,
            _ => return None,
        }
        if plain.get(i) == Some(&Token::Period) {
            i += 1;
        } else {
            break;
        }
    }
    let name_text: String = plain[name_start..i].iter().map(|t| t.to_string()).collect();
    let mut columns = Vec::new();
    if plain.get(i) == Some(&Token::LParen) {
        i += 1;
        loop {
            match plain.get(i)? {
                Token::Word(w) => columns.push(if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                }),
                _ => return None,
            }
            i += 1;
            match plain.get(i)? {
                Token::Comma => i += 1,
                Token::RParen => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    if !expect("with", &mut i) {
        return None;
    }
    let (options, used) = crate::compression::option_list(&plain[i..])?;
    i += used;
    if !options.iter().any(|(n, _)| is_continuous_option(n)) {
        return None;
    }
    if !expect("as", &mut i) {
        return None;
    }
    let query_start = tokens.get(i)?.1;
    // The end: a trailing `;`, then `WITH [NO] DATA`.
    let mut end = tokens.len();
    while end > i && plain[end - 1] == Token::SemiColon {
        end -= 1;
    }
    let mut with_data = true;
    let tail: Vec<Option<String>> = (end.saturating_sub(3)..end)
        .map(|k| word(plain.get(k)))
        .collect();
    if end >= i + 3 && tail == [Some("with".into()), Some("no".into()), Some("data".into())] {
        with_data = false;
        end -= 3;
    } else if end >= i + 2 && tail[1..] == [Some("with".into()), Some("data".into())] {
        end -= 2;
    }
    let query_end = tokens.get(end).map_or(sql.len(), |(_, at)| *at);
    let query = sql[query_start..query_end].trim().to_string();
    let name = match crate::parse(&format!("SELECT 1 FROM {name_text}")) {
        Ok(mut stmts) => match stmts.pop() {
            Some(Statement::Query(q)) => match *q.body {
                SetExpr::Select(s) => match s.from.first().map(|f| &f.relation) {
                    Some(TableFactor::Table { name, .. }) => name.clone(),
                    _ => return None,
                },
                _ => return None,
            },
            _ => return None,
        },
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(CreateCagg {
        name,
        if_not_exists,
        columns,
        options,
        query,
        with_data,
    }))
}

fn is_continuous_option(name: &str) -> bool {
    matches!(name, "timescaledb.continuous" | "tsdb.continuous")
}

/// TimescaleDB's error for a query it cannot maintain as a continuous aggregate.
fn invalid_query(detail: impl Into<String>) -> TemporaError {
    TemporaError::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        "invalid continuous aggregate query",
    )
    .with_detail(detail.into())
}

/// Functions whose value changes between calls: a continuous aggregate
/// cannot materialize them.
const VOLATILE: &[&str] = &[
    "now",
    "random",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "nextval",
    "currval",
    "setval",
    "gen_random_uuid",
    "uuid",
];

/// TimescaleDB's error for a relation setup it cannot maintain.
fn invalid_view(detail: &str) -> TemporaError {
    TemporaError::new(
        SqlState::FEATURE_NOT_SUPPORTED,
        "invalid continuous aggregate view",
    )
    .with_detail(detail)
}

/// A relation of the query's FROM: its name, and what the query calls it.
struct Relation {
    name: ObjectName,
    alias: Option<String>,
}

/// A FROM item (a table, possibly aliased); TimescaleDB's errors otherwise.
fn relation(factor: &TableFactor, subqueries: &str) -> Result<Relation> {
    match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => Ok(Relation {
            name: name.clone(),
            alias: alias.as_ref().map(|a| ident_name(&a.name)),
        }),
        TableFactor::Derived { .. } => Err(invalid_view(
            "Sub-queries are not supported in FROM clause.",
        )),
        _ => Err(invalid_query(subqueries)),
    }
}

/// Checks the query's shape against what continuous aggregates take; returns
/// the relations it reads (INNER and LEFT joins) and the warnings
/// TimescaleDB gives.
fn check_shape(stmt: &Statement) -> Result<(Vec<Relation>, Vec<Notice>)> {
    let Statement::Query(q) = stmt else {
        return Err(invalid_query("Only SELECT queries are supported."));
    };
    let subqueries =
        "CTEs, subqueries and set-returning functions are not supported by continuous aggregates.";
    if q.with.is_some() {
        return Err(invalid_query(subqueries));
    }
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return Err(invalid_query(
            "LIMIT and LIMIT OFFSET are not supported in queries defining continuous aggregates.",
        )
        .with_hint(
            "Use LIMIT and LIMIT OFFSET in SELECTS from the continuous aggregate view instead.",
        ));
    }
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(invalid_query(
            "UNION, EXCEPT & INTERSECT are not supported by continuous aggregates",
        ));
    };
    if select.distinct.is_some() {
        return Err(invalid_query(
            "DISTINCT / DISTINCT ON queries are not supported by continuous aggregates.",
        ));
    }
    let Some(from) = select.from.first() else {
        return Err(TemporaError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "invalid continuous aggregate query",
        )
        .with_hint("FROM clause missing in the query"));
    };
    if select.from.len() > 1 {
        return Err(TemporaError::not_supported(
            "continuous aggregates over a list of relations (use JOIN ... ON)",
        ));
    }
    let mut relations = vec![relation(&from.relation, subqueries)?];
    for j in &from.joins {
        use datafusion::sql::sqlparser::ast::JoinOperator as J;
        if !matches!(
            j.join_operator,
            J::Join(_) | J::Inner(_) | J::Left(_) | J::LeftOuter(_)
        ) {
            return Err(invalid_view(
                "only INNER or LEFT joins are supported in continuous aggregates",
            ));
        }
        relations.push(relation(&j.relation, subqueries)?);
    }
    if matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty()) {
        return Err(TemporaError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "invalid continuous aggregate query",
        )
        .with_hint(
            "Include at least one aggregate function and a GROUP BY clause with time bucket.",
        ));
    }
    // Window functions anywhere; functions whose value changes between
    // calls in the select list and GROUP BY (TimescaleDB warns).
    struct Functions {
        window: bool,
        volatile: bool,
    }
    impl Visitor for Functions {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &SqlExpr) -> std::ops::ControlFlow<()> {
            if let SqlExpr::Function(f) = e {
                self.window |= f.over.is_some();
                self.volatile |= VOLATILE.contains(&crate::function_name(&f.name).as_str());
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut all = Functions {
        window: false,
        volatile: false,
    };
    let _ = stmt.visit(&mut all);
    if all.window {
        return Err(invalid_query("Window function support not enabled.").with_hint(
            "Enable experimental window function support by setting timescaledb.enable_cagg_window_functions.",
        ));
    }
    let mut listed = Functions {
        window: false,
        volatile: false,
    };
    let _ = select.projection.visit(&mut listed);
    let _ = select.group_by.visit(&mut listed);
    let mut warnings = Vec::new();
    if listed.volatile {
        warnings.push(Notice::warning(
            SqlState::WARNING,
            "using non-immutable functions in continuous aggregate view may lead to inconsistent results on rematerialization",
        ));
    }
    Ok((relations, warnings))
}

/// The `time_bucket(...)` call of the select list over `time_column`, the
/// output position it is at, and its arguments.
fn find_bucket<'a>(
    stmt: &'a Statement,
    time_column: &str,
) -> Result<(usize, &'a SqlExpr, Vec<&'a FunctionArg>)> {
    let Statement::Query(q) = stmt else {
        return Err(TemporaError::internal("not a query"));
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(TemporaError::internal("not a SELECT"));
    };
    let mut found = None;
    for (pos, item) in select.projection.iter().enumerate() {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        let SqlExpr::Function(f) = expr else { continue };
        if crate::function_name(&f.name) != "time_bucket" {
            continue;
        }
        let FunctionArguments::List(list) = &f.args else {
            continue;
        };
        let args: Vec<&FunctionArg> = list.args.iter().collect();
        let ts = args.iter().enumerate().find_map(|(k, a)| match a {
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } if name.value.eq_ignore_ascii_case("ts") => Some(e),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if k == 1 => Some(e),
            _ => None,
        });
        let on_time = match ts {
            Some(SqlExpr::Identifier(i)) => ident_name(i) == time_column,
            Some(SqlExpr::CompoundIdentifier(parts)) => {
                parts.last().is_some_and(|i| ident_name(i) == time_column)
            }
            _ => false,
        };
        if !on_time {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "time bucket function must reference the primary hypertable dimension column",
            ));
        }
        if found.is_some() {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "continuous aggregate view cannot contain multiple time bucket functions",
            ));
        }
        found = Some((pos, expr, args));
    }
    found.ok_or_else(|| {
        TemporaError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            "continuous aggregate view must include a valid time bucket function",
        )
    })
}

/// The time_bucket call with its time argument the bare column (`cr.time`
/// becomes `"time"`), to be evaluated on a value alone.
fn bare_bucket(call: &SqlExpr, time_column: &str) -> String {
    let mut call = call.clone();
    if let SqlExpr::Function(f) = &mut call {
        if let FunctionArguments::List(list) = &mut f.args {
            for (k, a) in list.args.iter_mut().enumerate() {
                let e = match a {
                    FunctionArg::Named {
                        name,
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } if name.value.eq_ignore_ascii_case("ts") => e,
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if k == 1 => e,
                    _ => continue,
                };
                let mut ident = datafusion::sql::sqlparser::ast::Ident::new(time_column);
                ident.quote_style = Some('"');
                *e = SqlExpr::Identifier(ident);
            }
        }
    }
    call.to_string()
}

/// A PostgreSQL type for a column of the query's result.
pub(crate) fn column_type(
    dt: &datafusion::arrow::datatypes::DataType,
    name: &str,
    what: &str,
) -> Result<PgType> {
    use datafusion::arrow::datatypes::DataType as D;
    Ok(match dt {
        D::Boolean => PgType::Bool,
        D::Int16 => PgType::Int2,
        D::Int32 => PgType::Int4,
        D::Int64 => PgType::Int8,
        D::Float32 => PgType::Float4,
        D::Float64 => PgType::Float8,
        D::Decimal128(p, s) => PgType::Numeric {
            precision: *p,
            scale: *s,
        },
        D::Utf8 | D::Utf8View | D::LargeUtf8 => PgType::Text,
        // Stored at PostgreSQL's microseconds whatever the query computes in.
        D::Timestamp(_, Some(_)) => PgType::Timestamptz,
        D::Timestamp(_, None) => PgType::Timestamp,
        D::Date32 => PgType::Date,
        D::Binary | D::LargeBinary | D::BinaryView => PgType::Bytea,
        other => {
            return Err(TemporaError::not_supported(format!(
                "{what} column \"{name}\" of type {other}"
            )))
        }
    })
}

/// A bucket width from the value of time_bucket's first argument.
fn bucket_width(v: &ScalarValue) -> Result<JobSpan> {
    let width =
        match v {
            ScalarValue::Int16(Some(w)) => JobSpan::Integer(*w as i64),
            ScalarValue::Int32(Some(w)) => JobSpan::Integer(*w as i64),
            ScalarValue::Int64(Some(w)) => JobSpan::Integer(*w),
            other => match crate::jobs::interval_parts(other) {
                Some((months, days, micros)) => JobSpan::Interval {
                    months,
                    days,
                    micros,
                },
                None => return Err(TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "only immutable expressions allowed in time bucket function",
                )
                .with_hint(
                    "Use an immutable expression as first argument to the time bucket function.",
                )),
            },
        };
    if let JobSpan::Interval {
        months,
        days,
        micros,
    } = width
    {
        if months != 0 && (days != 0 || micros != 0) {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "invalid interval specified",
            )
            .with_hint(
                "Use either months or days and hours, but not months, days and hours together",
            ));
        }
    }
    let positive = match width {
        JobSpan::Integer(w) => w > 0,
        JobSpan::Interval {
            months,
            days,
            micros,
        } => months >= 0 && days >= 0 && micros >= 0 && (months, days, micros) != (0, 0, 0),
    };
    if !positive {
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "invalid interval specified",
        )
        .with_hint("Use a positive interval."));
    }
    Ok(width)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A fixed width in the time column's units (None: months).
fn fixed_width(w: JobSpan) -> Option<i64> {
    match w {
        JobSpan::Integer(w) => Some(w),
        JobSpan::Interval {
            months: 0,
            days,
            micros,
        } => Some(days as i64 * MICROS_PER_DAY + micros),
        JobSpan::Interval { .. } => None,
    }
}

/// Why buckets of width `child` are not made of whole buckets of `parent`
/// (TimescaleDB's wording), None when they are. A month counts as 30 days.
fn width_mismatch(child: JobSpan, parent: JobSpan) -> Option<&'static str> {
    let (c, p) = (child.approx_length(), parent.approx_length());
    if c < p {
        Some("greater or equal than")
    } else if p <= 0 || c % p != 0 {
        Some("multiple of")
    } else {
        None
    }
}

/// A bucket width as PostgreSQL prints it (`1 day`, `01:00:00`, `5`).
fn width_text(w: JobSpan) -> String {
    match w {
        JobSpan::Integer(w) => w.to_string(),
        JobSpan::Interval {
            months,
            days,
            micros,
        } => {
            let mut out = String::new();
            tempora_copy::text::write_interval(months, days, micros, &mut out);
            out
        }
    }
}

impl CreateCagg {
    pub(crate) async fn execute(&self, session: &mut SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        if session.tx != crate::TxState::Idle {
            if self.with_data {
                return Err(TemporaError::new(
                    SqlState::ACTIVE_SQL_TRANSACTION,
                    "CREATE MATERIALIZED VIEW ... WITH DATA cannot run inside a transaction block",
                ));
            }
            session.reject_write_in_block("CREATE MATERIALIZED VIEW")?;
        }
        let mut materialized_only = true;
        if self
            .options
            .iter()
            .any(|(n, _)| !n.starts_with("timescaledb.") && !n.starts_with("tsdb."))
        {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "unsupported combination of storage parameters",
            )
            .with_detail("A continuous aggregate does not support standard storage parameters.")
            .with_hint("Use only parameters with the \"timescaledb.\" prefix when creating a continuous aggregate."));
        }
        for (name, value) in &self.options {
            let short = name
                .strip_prefix("timescaledb.")
                .or_else(|| name.strip_prefix("tsdb."))
                .unwrap_or(name);
            match short {
                "compress" | "columnstore" | "enable_columnstore" => {
                    return Err(TemporaError::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        "cannot enable compression while creating a continuous aggregate",
                    )
                    .with_hint("Use ALTER MATERIALIZED VIEW to enable compression."))
                }
                "continuous" => {
                    if !crate::compression::boolean(name, value.as_deref())? {
                        return Err(TemporaError::not_supported(
                            "CREATE MATERIALIZED VIEW without timescaledb.continuous",
                        ));
                    }
                }
                "materialized_only" => {
                    materialized_only = crate::compression::boolean(name, value.as_deref())?
                }
                "create_group_indexes" | "finalized" => {
                    crate::compression::boolean(name, value.as_deref())?;
                }
                _ => {
                    return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("unrecognized parameter \"{name}\""),
                    )
                    .with_hint("Valid timescaledb parameters are: continuous, create_group_indexes, materialized_only, columnstore, finalized, chunk_interval, segmentby, orderby, compress_chunk_interval, invalidate_using"))
                }
            }
        }
        let (schema, name) = object_name(&self.name)?;
        let engine = session.engine().clone();
        let state = engine.catalog().snapshot();
        if !state.schema_exists(&schema) {
            return Err(crate::ddl::no_schema(&schema));
        }
        if state.relation_exists(&schema, &name) {
            if self.if_not_exists {
                return Ok((
                    Outcome::Command("CREATE MATERIALIZED VIEW".into()),
                    vec![Notice::info(
                        SqlState::DUPLICATE_TABLE,
                        format!("continuous aggregate \"{name}\" already exists, skipping"),
                    )],
                ));
            }
            return Err(already_exists(&name));
        }
        let mut stmts = crate::parse(&self.query)?;
        if stmts.len() != 1 {
            return Err(invalid_query("The query must be one SELECT."));
        }
        let mut stmt = stmts.remove(0);
        // SQL functions it calls are inlined now; it depends on them.
        let functions = crate::functions::inline(session, &mut stmt)?;
        // A query without GROUP BY that aggregates beside a bare column is
        // no query at all: PostgreSQL's 42803 comes before TimescaleDB's
        // checks.
        let ungrouped = matches!(&stmt, Statement::Query(q) if matches!(q.body.as_ref(),
            SetExpr::Select(sel) if matches!(&sel.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())));
        if ungrouped {
            let sql = crate::rewrite_query(stmt.clone()).to_string();
            if let Err(e) = session.plan_sql(&sql).await {
                if e.code == SqlState::GROUPING_ERROR {
                    return Err(e);
                }
            }
        }
        let (relations, mut notices) = check_shape(&stmt)?;
        // ORDER BY orders nothing in a materialization.
        if let Statement::Query(q) = &mut stmt {
            q.order_by = None;
        }
        // As every statement is planned (time_bucket's named arguments in place, ...).
        crate::calls::normalize(&mut stmt, &session.time_zone())?;
        // One hypertable (or aggregate, whose materialization is read);
        // the others of a join are plain tables.
        let mut found = None;
        let mut plain = Vec::new();
        for (k, r) in relations.iter().enumerate() {
            let (rs, rn) = object_name(&r.name)?;
            match (state.table(&rs, &rn), state.view(&rs, &rn)) {
                (Some(t), _) if t.is_hypertable() => {
                    if found.is_some() {
                        return Err(invalid_view(
                            "Only one hypertable is allowed in continuous aggregate view.",
                        ));
                    }
                    found = Some((k, t, None));
                }
                (Some(t), _) => plain.push(t.oid),
                (None, Some(v)) => match &v.continuous {
                    Some(c) => {
                        if found.is_some() {
                            return Err(invalid_view(
                                "Only one hypertable is allowed in continuous aggregate view.",
                            ));
                        }
                        let mat = state.table_by_oid(c.mat_oid).ok_or_else(|| {
                            TemporaError::internal("continuous aggregate without materialization")
                        })?;
                        found = Some((k, mat, Some((v, c))));
                    }
                    None => {
                        return Err(TemporaError::not_supported(
                            "continuous aggregates joining views",
                        ))
                    }
                },
                (None, None) => return Err(TemporaError::undefined_table(&rn)),
            }
        }
        let Some((raw_at, raw, parent)) = found else {
            return Err(invalid_view(
                "At least one hypertable should be used in the view definition.",
            ));
        };
        // How the query names the hypertable, to qualify the time column
        // next to joined tables.
        let time_relation = (relations.len() > 1).then(|| {
            relations[raw_at].alias.clone().unwrap_or_else(|| {
                object_name(&relations[raw_at].name)
                    .map(|(_, n)| n)
                    .unwrap_or_default()
            })
        });
        let Some(h) = &raw.hypertable else {
            return Err(invalid_view(
                "At least one hypertable should be used in the view definition.",
            ));
        };
        let time_column = h.time_column.clone();
        // Integer time is "now" only through the table's integer_now function.
        let integer_time = raw
            .column(&time_column)
            .is_some_and(|c| !c.ty.is_temporal());
        if parent.is_none() && integer_time && h.integer_now_func.is_none() {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("custom time function required on hypertable \"{}\"", raw.name),
            )
            .with_detail("An integer-based hypertable requires a custom time function to support continuous aggregates.")
            .with_hint("Set a custom time function on the hypertable."));
        }
        let (bucket_pos, bucket_call, bucket_args) = find_bucket(&stmt, &time_column)?;
        let width_arg = match bucket_args.first() {
            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => e.clone(),
            Some(FunctionArg::Named {
                arg: FunctionArgExpr::Expr(e),
                ..
            }) => e.clone(),
            _ => return Err(invalid_query("time_bucket needs a bucket width.")),
        };
        let mut width_value = session.eval_constant(&width_arg).await?;
        if matches!(width_value, ScalarValue::Utf8(_) | ScalarValue::Utf8View(_)) {
            // An untyped literal ('1 hour') is an interval, as time_bucket reads it.
            width_value = session
                .eval_sql(&format!("CAST({width_arg} AS INTERVAL)"))
                .await?;
        }
        let width = bucket_width(&width_value)?;
        if let Some((pv, pc)) = parent {
            if let Some(relation) = width_mismatch(width, pc.bucket_width) {
                return Err(TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "cannot create continuous aggregate with incompatible bucket width",
                )
                .with_detail(format!(
                    "Time bucket width of \"{schema}.{name}\" [{}] should be {relation} the time bucket width of \"{}.{}\" [{}].",
                    width_text(width),
                    pv.schema,
                    pv.name,
                    width_text(pc.bucket_width)
                )));
            }
        }
        let bucket_expr = bare_bucket(bucket_call, &time_column);
        // Read the materialization of a parent aggregate, by its own name.
        if parent.is_some() {
            replace_relation(&mut stmt, raw_at, &qualified(&raw.schema, &raw.name))?;
        }
        let stmt = crate::rewrite_query(stmt);
        let mut query = stmt.to_string();
        let plan = session.plan_sql(&query).await?;
        let fields: Vec<_> = plan.schema().fields().iter().cloned().collect();
        if self.columns.len() > fields.len() {
            return Err(TemporaError::new(
                SqlState::SYNTAX_ERROR,
                "too many column names were specified",
            ));
        }
        let names: Vec<String> = self
            .columns
            .iter()
            .cloned()
            .chain(
                fields
                    .iter()
                    .skip(self.columns.len())
                    .map(|f| f.name().clone()),
            )
            .collect();
        let mut seen = BTreeSet::new();
        for n in &names {
            if !seen.insert(n.clone()) {
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_COLUMN,
                    format!("column \"{n}\" specified more than once"),
                ));
            }
        }
        if !self.columns.is_empty() {
            let cols: Vec<String> = names.iter().map(|c| crate::ddl::quote_ident(c)).collect();
            query = format!(
                "SELECT * FROM ({query}) AS {}({})",
                crate::ddl::quote_ident(&name),
                cols.join(", ")
            );
        }
        let bucket_column = names[bucket_pos].clone();
        let mut columns = Vec::new();
        for (k, (f, n)) in fields.iter().zip(&names).enumerate() {
            let mut c = ColumnDef::new(
                k as u32 + 1,
                n.clone(),
                column_type(f.data_type(), n, "continuous aggregate")?,
            );
            c.not_null = k == bucket_pos;
            columns.push(c);
        }
        let raw_oid = raw.oid;
        let chunk_interval = h.chunk_interval.saturating_mul(10);
        let depends_on: Vec<u32> = std::iter::once(match parent {
            Some((v, _)) => v.oid,
            None => raw_oid,
        })
        .chain(plain)
        .chain(functions)
        .collect();
        let view_oid = engine
            .catalog()
            .commit(|state| {
                if state.relation_exists(&schema, &name) {
                    return Err(already_exists(&name));
                }
                let view_oid = state.next_oid;
                let mat_oid = view_oid + 1;
                let hyper_id = state.next_hypertable_id;
                let mat = TableDef {
                    oid: mat_oid,
                    schema: CHUNK_SCHEMA.to_string(),
                    name: format!("_materialized_hypertable_{hyper_id}"),
                    columns: columns.clone(),
                    ..Default::default()
                };
                let cagg = ContinuousAgg {
                    mat_oid,
                    raw_oid,
                    parent: parent.map(|(v, _)| v.oid),
                    query: query.clone(),
                    time_column: time_column.clone(),
                    time_relation: time_relation.clone(),
                    bucket_column: bucket_column.clone(),
                    bucket_expr: bucket_expr.clone(),
                    bucket_width: width,
                    materialized_only,
                    threshold: None,
                    watermark: None,
                    invalidations: Vec::new(),
                };
                Ok(vec![
                    CatalogOp::CreateTable(mat),
                    CatalogOp::MakeHypertable {
                        oid: mat_oid,
                        def: HypertableDef {
                            id: hyper_id,
                            time_column: bucket_column.clone(),
                            chunk_interval,
                            space_dimensions: vec![],
                            dimension_ids: vec![],
                            integer_now_func: None,
                        },
                    },
                    CatalogOp::PutView(ViewDef {
                        oid: view_oid,
                        schema: schema.clone(),
                        name: name.clone(),
                        sql: query.clone(),
                        definition: self.query.clone(),
                        depends_on: depends_on.clone(),
                        continuous: Some(cagg),
                        materialized: None,
                        comment: None,
                    }),
                ])
            })
            .await?
            .view(&schema, &name)
            .map(|v| v.oid)
            .ok_or_else(|| TemporaError::internal("continuous aggregate not created"))?;
        if self.with_data {
            refresh(session, view_oid, None, None, &mut notices, true).await?;
        }
        Ok((Outcome::Command("CREATE MATERIALIZED VIEW".into()), notices))
    }
}

fn already_exists(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::DUPLICATE_TABLE,
        format!("continuous aggregate \"{name}\" already exists"),
    )
    .with_hint("Drop or rename the existing continuous aggregate first or use another name.")
}

/// Points the query's relation number `at` (FROM, then its joins) at
/// `table` (a qualified name); it keeps its old name as its alias, so
/// columns qualified by it still resolve.
fn replace_relation(stmt: &mut Statement, at: usize, table: &str) -> Result<()> {
    let Statement::Query(q) = stmt else {
        return Err(TemporaError::internal("not a query"));
    };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return Err(TemporaError::internal("not a SELECT"));
    };
    let from = select
        .from
        .first_mut()
        .ok_or_else(|| TemporaError::internal("no FROM"))?;
    let factor = if at == 0 {
        &mut from.relation
    } else {
        &mut from
            .joins
            .get_mut(at - 1)
            .ok_or_else(|| TemporaError::internal("no such join"))?
            .relation
    };
    let TableFactor::Table { name, alias, .. } = factor else {
        return Err(TemporaError::internal("not a table"));
    };
    let old = name.0.last().map(|p| p.to_string()).unwrap_or_default();
    let as_alias = alias
        .as_ref()
        .map_or_else(|| old.clone(), |a| a.name.to_string());
    let parsed = match crate::parse(&format!("SELECT 1 FROM {table} AS {as_alias}"))?.pop() {
        Some(Statement::Query(q)) => q,
        _ => return Err(TemporaError::internal("relation name does not parse")),
    };
    let SetExpr::Select(mut s) = *parsed.body else {
        return Err(TemporaError::internal("relation name does not parse"));
    };
    let replacement = s
        .from
        .pop()
        .map(|f| f.relation)
        .ok_or_else(|| TemporaError::internal("relation name does not parse"))?;
    *factor = replacement;
    Ok(())
}

/// The continuous aggregate named `rel` (a view name as text).
pub(crate) fn cagg_named<'a>(
    state: &'a CatalogState,
    rel: &str,
) -> Result<(&'a ViewDef, &'a ContinuousAgg)> {
    let (schema, name) = tempora_query::split_qualified(rel);
    match state.view(&schema, &name) {
        Some(v) => match &v.continuous {
            Some(c) => Ok((v, c)),
            None => Err(not_a_cagg(&name)),
        },
        None if state.table(&schema, &name).is_some() => Err(not_a_cagg(&name)),
        None => Err(TemporaError::undefined_table(rel)),
    }
}

fn not_a_cagg(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("relation \"{name}\" is not a continuous aggregate"),
    )
}

/// Evaluates `time_bucket` of the aggregate at `t`: the start of its bucket.
async fn bucket_start(
    session: &SqlSession,
    cagg: &ContinuousAgg,
    ty: &PgType,
    t: i64,
) -> Result<i64> {
    let sql = format!(
        "SELECT {} AS b FROM (SELECT {} AS {}) AS t",
        cagg.bucket_expr,
        time_literal(ty, t),
        crate::ddl::quote_ident(&cagg.time_column)
    );
    let batches = session.query_sql(&sql).await?;
    let v = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| tempora_storage::memtable::column_as_i64(b.column(0)))
        .transpose()?
        .and_then(|v| v.first().copied().flatten());
    v.ok_or_else(|| TemporaError::internal("time_bucket gave no bucket"))
}

/// The end of the bucket starting at `start`: the width added for plain
/// fixed-width buckets; otherwise (months, a time zone, an origin) the
/// bucket of a point well inside the next one, as time_bucket computes it.
async fn bucket_end(
    session: &SqlSession,
    cagg: &ContinuousAgg,
    ty: &PgType,
    start: i64,
) -> Result<i64> {
    let plain = bucket_arity(&cagg.bucket_expr) == 2;
    match (fixed_width(cagg.bucket_width), cagg.bucket_width) {
        (Some(w), JobSpan::Integer(_)) => Ok(start.saturating_add(w)),
        (Some(w), _) if plain => Ok(start.saturating_add(w)),
        (Some(w), _) => {
            let probe = start.saturating_add(w.saturating_mul(3) / 2);
            bucket_start(session, cagg, ty, probe).await
        }
        (None, JobSpan::Interval { months, .. }) => {
            // A month is at least 28 days: the next bucket holds this.
            let probe = tempora_storage::jobs::before(start, -months, -15, 0)?;
            bucket_start(session, cagg, ty, probe).await
        }
        (None, JobSpan::Integer(w)) => Ok(start.saturating_add(w)),
    }
}

/// The number of arguments of the bucket call (2: width and time only).
fn bucket_arity(expr: &str) -> usize {
    let parsed = tempora_common::sql_parser::parse_expr(expr);
    match parsed {
        Ok(SqlExpr::Function(f)) => match f.args {
            FunctionArguments::List(l) => l.args.len(),
            _ => 0,
        },
        _ => 0,
    }
}

/// Merges overlapping or touching ranges.
fn merge(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Refreshes the aggregate over `[start, end)` (None: unbounded), rounded
/// inward to whole buckets: re-materializes the invalidated buckets in it.
pub(crate) async fn refresh(
    session: &SqlSession,
    view_oid: u32,
    start: Option<i64>,
    end: Option<i64>,
    notices: &mut Vec<Notice>,
    creating: bool,
) -> Result<()> {
    let engine = session.engine().clone();
    let _one_at_a_time = engine.refresh_lock().lock().await;
    let state = engine.catalog().snapshot();
    let view = state
        .views
        .get(&view_oid)
        .ok_or_else(|| TemporaError::internal("continuous aggregate dropped"))?;
    let cagg = view
        .continuous
        .clone()
        .ok_or_else(|| not_a_cagg(&view.name))?;
    let name = view.name.clone();
    let ty = raw_time_type(&state, &cagg)?;
    // Inward to whole buckets.
    let lo = match start {
        Some(s) => {
            let b = bucket_start(session, &cagg, &ty, s).await?;
            if b == s {
                b
            } else {
                bucket_end(session, &cagg, &ty, b).await?
            }
        }
        None => i64::MIN,
    };
    let hi = match end {
        Some(e) => Some(bucket_start(session, &cagg, &ty, e).await?),
        None => None,
    };
    if hi.is_some_and(|hi| lo >= hi) {
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "refresh window too small",
        )
        .with_detail("The refresh window must cover at least one bucket of data.")
        .with_hint(
            "Align the refresh window with the bucket time zone or use at least two buckets.",
        ));
    }
    // Every row written so far in a file, so its change is logged.
    engine.flush().await?;
    let flushed = engine.catalog().snapshot();
    let raw = flushed
        .table_by_oid(cagg.raw_oid)
        .ok_or_else(|| TemporaError::internal("continuous aggregate lost its hypertable"))?;
    // An open end stops after the last bucket holding rows (the files'
    // statistics: every row is in one).
    let latest = raw
        .all_files()
        .filter(|f| f.rows > 0)
        .filter_map(|f| f.max_time)
        .max();
    let hi = match hi {
        Some(hi) => Some(hi),
        None => match latest {
            Some(max) => {
                let last = bucket_start(session, &cagg, &ty, max).await?;
                Some(bucket_end(session, &cagg, &ty, last).await?)
            }
            None => cagg.threshold,
        },
    };
    let Some(hi) = hi.filter(|hi| lo < *hi) else {
        notices.push(up_to_date(&name));
        return Ok(());
    };
    // Move the threshold first: rows written from here on below it are logged.
    let state = engine
        .catalog()
        .commit(|state| {
            let Some(v) = state.views.get(&view_oid) else {
                return Err(TemporaError::internal("continuous aggregate dropped"));
            };
            let mut v = v.clone();
            let Some(c) = v.continuous.as_mut() else {
                return Ok(vec![]);
            };
            let old = c.threshold.unwrap_or(i64::MIN);
            if hi <= old {
                return Ok(vec![]);
            }
            c.invalidations.push((old, hi));
            c.threshold = Some(hi);
            Ok(vec![CatalogOp::PutView(v)])
        })
        .await?;
    let cagg = state
        .views
        .get(&view_oid)
        .and_then(|v| v.continuous.clone())
        .ok_or_else(|| TemporaError::internal("continuous aggregate dropped"))?;
    // The log's ranges inside the window, widened to whole buckets.
    let logged = cagg.invalidations.clone();
    let inside = logged
        .iter()
        .map(|&(s, e)| (s.max(lo), e.min(hi)))
        .filter(|(s, e)| s < e)
        .collect();
    let mut wanted = Vec::new();
    for (s, e) in merge(inside) {
        let s = if s == i64::MIN {
            s
        } else {
            bucket_start(session, &cagg, &ty, s).await?
        };
        let last = bucket_start(session, &cagg, &ty, e - 1).await?;
        let e = bucket_end(session, &cagg, &ty, last).await?;
        wanted.push((s.max(lo), e.min(hi)));
    }
    let ranges = merge(wanted);
    if ranges.is_empty() {
        notices.push(up_to_date(&name));
        return Ok(());
    }
    if creating {
        notices.push(Notice::info(
            SqlState::SUCCESSFUL_COMPLETION,
            format!("refreshing continuous aggregate \"{name}\""),
        ));
    }
    let mat = state
        .table_by_oid(cagg.mat_oid)
        .ok_or_else(|| TemporaError::internal("continuous aggregate lost its materialization"))?;
    // Batches of at most one materialization chunk's width each (memory
    // holds one batch's buckets), each its own commit: a crash between two
    // leaves the rest in the log for the next refresh.
    let step = mat
        .hypertable
        .as_ref()
        .map_or(i64::MAX, |h| h.chunk_interval.max(1));
    let first = flushed
        .table_by_oid(cagg.raw_oid)
        .into_iter()
        .chain(flushed.table_by_oid(cagg.mat_oid))
        .flat_map(|t| t.all_files())
        .filter(|f| f.rows > 0)
        .filter_map(|f| f.min_time)
        .min();
    let mut pieces = Vec::new();
    for (from, e) in ranges {
        let mut s = from;
        if s == i64::MIN {
            // Nothing stored starts before the first row: cut from there.
            match first {
                Some(t) if t < e => s = bucket_start(session, &cagg, &ty, t).await?.max(s),
                _ => {
                    pieces.push((s, e));
                    continue;
                }
            }
        }
        let begin = pieces.len();
        while s < e {
            let mut cut = bucket_start(session, &cagg, &ty, s.saturating_add(step)).await?;
            if cut <= s {
                cut = bucket_end(session, &cagg, &ty, s).await?;
            }
            pieces.push((s, cut.min(e)));
            s = cut;
        }
        // The first piece still covers everything before, so that the
        // whole logged range leaves the log.
        if let Some(p) = pieces.get_mut(begin) {
            p.0 = from;
        }
    }
    let mut batches: Vec<Vec<(i64, i64)>> = Vec::new();
    for p in pieces {
        match batches.last_mut() {
            Some(b) if p.1.saturating_sub(b[0].0) <= step => b.push(p),
            _ => batches.push(vec![p]),
        }
    }
    let (mut rows_written, count) = (0usize, batches.len());
    for (k, batch) in batches.into_iter().enumerate() {
        rows_written += materialize_batch(session, view_oid, &cagg, &ty, batch).await?;
        if count > 1 {
            tracing::info!(aggregate = %name, batch = k + 1, of = count, "refreshing continuous aggregate");
        }
    }
    tracing::info!(aggregate = %name, rows = rows_written, batches = count, "refreshed continuous aggregate");
    Ok(())
}

/// Materializes the buckets of `ranges` (sorted, disjoint, bucket-aligned)
/// in one commit that also takes them off the log; returns the rows written.
async fn materialize_batch(
    session: &SqlSession,
    view_oid: u32,
    cagg: &ContinuousAgg,
    ty: &PgType,
    ranges: Vec<(i64, i64)>,
) -> Result<usize> {
    let engine = session.engine();
    // The log as it is before the query reads: entries logged after it stay.
    let logged = engine
        .catalog()
        .snapshot()
        .views
        .get(&view_oid)
        .and_then(|v| v.continuous.as_ref())
        .map(|c| c.invalidations.clone())
        .ok_or_else(|| TemporaError::internal("continuous aggregate dropped"))?;
    let open = |(s, e): (i64, i64)| ((s != i64::MIN).then_some(s), (e != i64::MAX).then_some(e));
    let sql = ranged_query(
        cagg,
        ty,
        &ranges.iter().copied().map(open).collect::<Vec<_>>(),
    )?;
    let rows = session.query_sql(&sql).await?;
    let state = engine.catalog().snapshot();
    let mat = state
        .table_by_oid(cagg.mat_oid)
        .ok_or_else(|| TemporaError::internal("continuous aggregate lost its materialization"))?;
    let rows = to_table_layout(mat, rows)?;
    let mut max_bucket: Option<i64> = None;
    let bucket_idx = mat
        .column_index(&cagg.bucket_column)
        .ok_or_else(|| TemporaError::internal("materialization without its bucket"))?;
    for b in &rows {
        for v in tempora_storage::memtable::column_as_i64(b.column(bucket_idx))?
            .into_iter()
            .flatten()
        {
            max_bucket = Some(max_bucket.map_or(v, |m: i64| m.max(v)));
        }
    }
    let watermark = match max_bucket {
        Some(b) => Some(bucket_end(session, cagg, ty, b).await?),
        None => None,
    };
    let n: usize = rows.iter().map(|b| b.num_rows()).sum();
    engine
        .materialize(cagg.mat_oid, &ranges, rows, |state| {
            let Some(v) = state.views.get(&view_oid) else {
                return Err(TemporaError::internal("continuous aggregate dropped"));
            };
            let mut v = v.clone();
            let Some(c) = v.continuous.as_mut() else {
                return Ok(vec![]);
            };
            // Entries logged meanwhile stay; the ones read lose what was done.
            let mut read = logged.clone();
            let mut kept = Vec::new();
            for entry in std::mem::take(&mut c.invalidations) {
                match read.iter().position(|r| *r == entry) {
                    Some(k) => {
                        read.swap_remove(k);
                        kept.extend(subtract(entry, &ranges));
                    }
                    None => kept.push(entry),
                }
            }
            c.invalidations = merge(kept);
            if let Some(w) = watermark {
                c.watermark = Some(c.watermark.map_or(w, |old| old.max(w)));
            }
            Ok(vec![CatalogOp::PutView(v)])
        })
        .await?;
    Ok(n)
}

fn up_to_date(name: &str) -> Notice {
    Notice::info(
        SqlState::SUCCESSFUL_COMPLETION,
        format!("continuous aggregate \"{name}\" is already up-to-date"),
    )
}

/// `range` without the parts covered by `done` (sorted, disjoint).
fn subtract(range: (i64, i64), done: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = range.0;
    for &(s, e) in done {
        if e <= start || s >= range.1 {
            continue;
        }
        if s > start {
            out.push((start, s));
        }
        start = start.max(e);
    }
    if start < range.1 {
        out.push((start, range.1));
    }
    out
}

/// The query's batches as rows of the materialization (its names, types and
/// column ids).
fn to_table_layout(table: &TableDef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let schema = std::sync::Arc::new(table.arrow_schema());
    batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| crate::insert::conform(b.columns(), &schema))
        .collect()
}

/// `CALL refresh_continuous_aggregate(cagg, window_start, window_end)`.
#[derive(Debug, Clone)]
pub struct RefreshCall {
    args: Vec<SqlExpr>,
}

/// The arguments of `CALL refresh_continuous_aggregate(...)`; None for other statements.
pub(crate) fn refresh_call(stmt: &Statement) -> Option<RefreshCall> {
    let Statement::Call(f) = stmt else {
        return None;
    };
    if crate::function_name(&f.name) != "refresh_continuous_aggregate" {
        return None;
    }
    let FunctionArguments::List(l) = &f.args else {
        return Some(RefreshCall { args: vec![] });
    };
    let mut args = vec![SqlExpr::Value(Value::Null.into()); 3];
    let mut count = 0;
    for (k, a) in l.args.iter().enumerate() {
        let (slot, e) = match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (k, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => match name.value.to_lowercase().as_str() {
                "continuous_aggregate" => (0, e),
                "window_start" => (1, e),
                "window_end" => (2, e),
                // force, options: accepted, nothing to change.
                _ => continue,
            },
            _ => continue,
        };
        if slot < 3 {
            args[slot] = e.clone();
            count = count.max(slot + 1);
        }
    }
    args.truncate(count.max(if l.args.len() >= 3 { 3 } else { count }));
    Some(RefreshCall { args })
}

impl RefreshCall {
    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        if session.tx != crate::TxState::Idle {
            return Err(TemporaError::new(
                SqlState::ACTIVE_SQL_TRANSACTION,
                "refresh_continuous_aggregate() cannot run inside a transaction block",
            ));
        }
        if self.args.len() < 3 {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "procedure refresh_continuous_aggregate(...) does not exist",
            )
            .with_hint("No procedure matches the given name and argument types. You might need to add explicit type casts."));
        }
        let rel = match session.eval_constant(&self.args[0]).await? {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => s,
            _ => {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "invalid continuous aggregate",
                ))
            }
        };
        let state = session.engine().catalog().snapshot();
        let (view, cagg) = cagg_named(&state, &rel)?;
        let ty = raw_time_type(&state, cagg)?;
        let start = window_bound(session, &self.args[1], &ty).await?;
        let end = window_bound(session, &self.args[2], &ty).await?;
        let mut notices = Vec::new();
        refresh(session, view.oid, start, end, &mut notices, false).await?;
        Ok((Outcome::Command("CALL".into()), notices))
    }
}

/// A window bound in the time column's units (None for NULL).
async fn window_bound(session: &SqlSession, expr: &SqlExpr, ty: &PgType) -> Result<Option<i64>> {
    let v = session.eval_constant(expr).await?;
    if v.is_null() {
        return Ok(None);
    }
    let tz = session.time_zone();
    // A text bound is read as the column's type; otherwise the value must be
    // of its kind (a time for a time column, an integer for an integer one).
    let integer = matches!(
        v,
        ScalarValue::Int16(_) | ScalarValue::Int32(_) | ScalarValue::Int64(_)
    );
    let units = match &v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) if ty.is_temporal() => Some(
            tempora_query::pg_literals::parse_timestamp(s, *ty == PgType::Timestamptz, &tz)?,
        ),
        _ if integer != ty.is_temporal() => tempora_query::chunks::scalar_units(&v),
        _ => None,
    };
    units.map(Some).ok_or_else(|| {
        TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!(
                "invalid time argument type \"{}\"",
                tempora_query::pg_types::pg_type_name(&v.data_type())
            ),
        )
        .with_hint(format!(
            "Try casting the argument to \"{}\".",
            ty.sql_name()
        ))
    })
}

/// `ALTER MATERIALIZED VIEW v SET (timescaledb.materialized_only = ..., timescaledb.compress ...)`.
pub(crate) async fn alter_view(
    session: &SqlSession,
    options: &crate::compression::TableOptions,
) -> Result<(Outcome, Vec<Notice>)> {
    let tag = || Outcome::Command("ALTER MATERIALIZED VIEW".into());
    let state = session.engine().catalog().snapshot();
    let (view, cagg) = match cagg_named(&state, &options.table) {
        Ok(found) => found,
        Err(e) if options.if_exists && e.code == SqlState::UNDEFINED_TABLE => {
            return Ok((tag(), vec![]));
        }
        Err(e) => return Err(e),
    };
    let mut materialized_only = None;
    let mut compression = Vec::new();
    for (name, value) in &options.options {
        let short = name
            .strip_prefix("timescaledb.")
            .or_else(|| name.strip_prefix("tsdb."))
            .unwrap_or(name);
        match short {
            "materialized_only" => {
                materialized_only = Some(if options.reset {
                    true
                } else {
                    crate::compression::boolean(name, value.as_deref())?
                })
            }
            "compress"
            | "enable_columnstore"
            | "compress_segmentby"
            | "segmentby"
            | "compress_orderby"
            | "orderby"
            | "compress_chunk_time_interval" => compression.push((name.clone(), value.clone())),
            _ => {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("unrecognized parameter \"{name}\""),
                ))
            }
        }
    }
    let mut notices = Vec::new();
    if !compression.is_empty() {
        // Compression settings belong to the materialization hypertable.
        let mat = state.table_by_oid(cagg.mat_oid).ok_or_else(|| {
            TemporaError::internal("continuous aggregate lost its materialization")
        })?;
        let inner = crate::compression::TableOptions {
            view: false,
            if_exists: false,
            table: qualified(&mat.schema, &mat.name),
            reset: options.reset,
            options: compression,
        };
        let (_, more) = Box::pin(inner.execute(session)).await?;
        notices.extend(more);
    }
    if let Some(m) = materialized_only {
        let oid = view.oid;
        session
            .engine()
            .catalog()
            .commit(|state| {
                let Some(v) = state.views.get(&oid) else {
                    return Err(TemporaError::internal("continuous aggregate dropped"));
                };
                let mut v = v.clone();
                if let Some(c) = v.continuous.as_mut() {
                    c.materialized_only = m;
                }
                Ok(vec![CatalogOp::PutView(v)])
            })
            .await?;
    }
    Ok((tag(), notices))
}

/// The chunks of the materializations of the aggregates `dropping` (view
/// oids first) that a drop takes with them, as [`Notice::cascade`] names
/// them.
pub(crate) fn cascaded_chunks(
    state: &CatalogState,
    dropping: &[(u32, String, &str)],
) -> Vec<String> {
    let mut chunks = Vec::new();
    for (oid, _, _) in dropping {
        if let Some(mat) = state
            .views
            .get(oid)
            .and_then(|v| v.continuous.as_ref())
            .and_then(|c| state.table_by_oid(c.mat_oid))
        {
            chunks.extend(chunk_tables(mat));
        }
    }
    chunks
}

/// `table`'s chunks as [`Notice::cascade`] names them.
pub(crate) fn chunk_tables(table: &TableDef) -> impl Iterator<Item = String> + '_ {
    let h = table.hypertable.as_ref().map_or(0, |h| h.id);
    table
        .chunks
        .values()
        .map(move |c| format!("table {CHUNK_SCHEMA}.{}", c.name(h)))
}

/// Runs refresh policies for the scheduler: each run in a session of its own.
pub struct Refresher {
    /// Weak: the engine holds its runner.
    engine: std::sync::Weak<tempora_storage::Engine>,
}

impl Refresher {
    pub fn new(engine: &std::sync::Arc<tempora_storage::Engine>) -> Self {
        Self {
            engine: std::sync::Arc::downgrade(engine),
        }
    }
}

impl tempora_storage::jobs::JobRunner for Refresher {
    fn refresh(
        &self,
        view_oid: u32,
        start: Option<i64>,
        end: Option<i64>,
    ) -> futures::future::BoxFuture<'static, Result<()>> {
        let engine = self.engine.upgrade();
        Box::pin(async move {
            let engine = engine.ok_or_else(|| TemporaError::internal("the database is closed"))?;
            let session = SqlSession::new(engine)?;
            refresh(&session, view_oid, start, end, &mut Vec::new(), false).await
        })
    }

    fn integer_now(
        &self,
        func: (String, String),
    ) -> futures::future::BoxFuture<'static, Result<i64>> {
        let engine = self.engine.upgrade();
        Box::pin(async move {
            let engine = engine.ok_or_else(|| TemporaError::internal("the database is closed"))?;
            let mut session = SqlSession::new(engine)?;
            crate::functions::integer_now(&mut session, &func).await
        })
    }
}
