//! Tempora's SQL layer: parses each statement once (sqlparser, PostgreSQL
//! dialect), decides what it is, and runs it against the layers below.
//!
//! ```text
//! SqlSession::prepare(sql) ─► Vec<Prepared>          (parse + plan, once)
//!   Query ......................► DataFusion logical plan
//!   Insert .....................► DataFusion plan of the rows ─► Engine::insert
//!     ON CONFLICT DO UPDATE ....► + plan of SET/WHERE (upsert.rs) ─► Engine::upsert
//!   CreateTable / DropTable ....► catalog commit
//!   TimescaleDB calls ..........► engine commands (create_hypertable, ...)
//!   SET / SHOW / BEGIN ... .....► session state
//! SqlSession::execute(prepared, params) ─► Outcome (rows or a command tag)
//! ```
// Errors carry PostgreSQL's fields (detail, hint, position, context): a
// large Err is the price of one error type across layers, paid only on failure.
#![allow(clippy::result_large_err)]

mod alter;
mod caggs;
mod calls;
mod chunks;
mod comments;
mod compression;
mod copy;
mod copy_options;
mod cursors;
mod databases;
mod ddl;
mod df_state;
mod dml;
mod explain;
mod foreign_keys;
mod functions;
mod gapfill;
mod hypertable;
mod index;
mod insert;
mod jobs;
mod matviews;
mod naming;
mod pg_compat;
mod plan_cache;
mod rewrite;
mod roles;
mod schemas;
mod search_path;
mod sequences;
mod session_cmds;
mod sql_prepare;
mod subqueries;
mod tokens;
mod upsert;
mod views;
mod wildcards;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, SelectItem,
    SetExpr, Statement, TableFactor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::ParserError;
use tempora_common::{Result, SqlState, TemporaError};
use tempora_query::newest_buckets;
use tempora_storage::{DatabaseGuard, Engine};

pub use caggs::Refresher;
pub use copy::CopyIn;
pub use insert::conform;
pub use plan_cache::Stamp;
pub use roles::{bootstrap_superuser, scram_verifier_parts};
pub use session_cmds::{Settings, TxState};
pub use tempora_copy::CopyEncoder;

/// A message sent to the client before a statement's result (NOTICE, WARNING).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub severity: &'static str,
    pub code: SqlState,
    pub message: String,
    pub detail: Option<String>,
}

impl Notice {
    /// A NOTICE (what `DROP ... IF EXISTS` and `IF NOT EXISTS` say when
    /// they skip, and the like).
    pub(crate) fn info(code: SqlState, message: impl Into<String>) -> Notice {
        Notice {
            severity: "NOTICE",
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// A WARNING.
    pub(crate) fn warning(code: SqlState, message: impl Into<String>) -> Notice {
        Notice {
            severity: "WARNING",
            ..Notice::info(code, message)
        }
    }

    /// PostgreSQL's NOTICE for the objects a `DROP ... CASCADE` takes with
    /// it (each as `table s.t`, `view v`, ...): one is named, more are
    /// counted and listed in the detail. None when there are none.
    pub(crate) fn cascade(objects: &[String]) -> Option<Notice> {
        let each = |o: &String| format!("drop cascades to {o}");
        match objects {
            [] => None,
            [one] => Some(Notice::info(SqlState::SUCCESSFUL_COMPLETION, each(one))),
            many => Some(Notice {
                detail: Some(many.iter().map(each).collect::<Vec<_>>().join("\n")),
                ..Notice::info(
                    SqlState::SUCCESSFUL_COMPLETION,
                    format!("drop cascades to {} other objects", many.len()),
                )
            }),
        }
    }
}

/// What a statement produced.
pub enum Outcome {
    /// A result set.
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        /// Completion tag before the row count: `SELECT`, or `INSERT 0` for RETURNING.
        tag: String,
    },
    /// A result set whose rows are computed as they are sent (see
    /// [`SqlSession::execute_streaming`]).
    Stream {
        schema: SchemaRef,
        stream: datafusion::execution::SendableRecordBatchStream,
        /// When `statement_timeout` runs out for the rows still to come.
        deadline: Option<tokio::time::Instant>,
        /// Keeps the files the stream reads until it is done.
        pin: tempora_storage::ReadPin,
    },
    /// A command with its completion tag (`CREATE TABLE`, `INSERT 0 3`).
    Command(String),
    /// BEGIN / COMMIT / ROLLBACK, which change the transaction status.
    Transaction { tag: String, state: TxState },
    /// The query string held no statement.
    Empty,
    /// `COPY ... FROM STDIN`: the client sends data next (format 0 text/CSV,
    /// 1 binary; number of columns).
    CopyIn {
        copy: Box<CopyIn>,
        format: i8,
        columns: usize,
    },
    /// `COPY ... TO STDOUT`: rows to encode and send as CopyData.
    CopyOut {
        stream: datafusion::execution::SendableRecordBatchStream,
        encoder: Box<CopyEncoder>,
        format: i8,
        columns: usize,
        /// Keeps the files the stream reads until it is done.
        pin: tempora_storage::ReadPin,
    },
}

impl Kind {
    /// Whether running the statement only reads, so that stopping it
    /// midway (statement_timeout) leaves nothing half done. Writes run to
    /// the end: the engine applies each as a whole.
    fn only_reads(&self) -> bool {
        match self {
            Kind::Query(plan) => chunk_rewriting_call(plan).is_none(),
            Kind::Optimized { .. } | Kind::Gapfill(_) => true,
            _ => false,
        }
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Rows { schema, tag, .. } => f
                .debug_struct("Rows")
                .field("schema", schema)
                .field("tag", tag)
                .finish(),
            Outcome::Stream { schema, .. } => {
                f.debug_struct("Stream").field("schema", schema).finish()
            }
            Outcome::Command(tag) => f.debug_tuple("Command").field(tag).finish(),
            Outcome::Transaction { tag, state } => f
                .debug_struct("Transaction")
                .field("tag", tag)
                .field("state", state)
                .finish(),
            Outcome::Empty => f.write_str("Empty"),
            Outcome::CopyIn { columns, .. } => {
                f.debug_struct("CopyIn").field("columns", columns).finish()
            }
            Outcome::CopyOut { columns, .. } => {
                f.debug_struct("CopyOut").field("columns", columns).finish()
            }
        }
    }
}

impl std::fmt::Debug for CopyIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CopyIn")
    }
}

/// One parsed (and where possible planned) statement.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    pub kind: Kind,
    /// Types of `$n` parameters, by position (None where unknown).
    pub param_types: Vec<Option<DataType>>,
    /// Columns of the result, for Describe (None: no rows).
    pub result_schema: Option<SchemaRef>,
    /// `Catalog::definitions` when it was planned: after a table, view or
    /// function it may use changed, it is planned again before it runs.
    pub definitions: u64,
}

/// What a statement is.
#[derive(Debug, Clone)]
pub enum Kind {
    Query(Box<LogicalPlan>),
    /// A query planned and optimized already, from a plan of its shape
    /// with its constants as `$n`, bound (tempora-sql/src/plan_cache.rs).
    Optimized {
        plan: Box<LogicalPlan>,
        /// `tempora_query::newest_buckets::candidate` of it as planned.
        newest_buckets: bool,
        /// The way to its shape's kept physical plan.
        reuse: Option<plan_cache::Reuse>,
    },
    Insert(Box<insert::InsertPlan>),
    /// DELETE or UPDATE.
    Rewrite(Box<dml::RewritePlan>),
    Copy(Box<copy::CopyPlan>),
    CreateHypertable(Box<hypertable::CreateHypertable>),
    DropChunks(Box<chunks::DropChunks>),
    /// A query calling time_bucket_gapfill.
    Gapfill(Box<gapfill::GapfillPlan>),
    SetChunkTimeInterval(Box<hypertable::SetChunkTimeInterval>),
    SetIntegerNowFunc(Box<functions::SetIntegerNowFunc>),
    AddDimension(Box<hypertable::AddDimension>),
    SetNumberPartitions(Box<hypertable::SetNumberPartitions>),
    /// A policy or job function (add_retention_policy, alter_job, ...).
    Job(Box<jobs::JobCall>),
    /// CALL run_job(id).
    RunJob(Box<datafusion::sql::sqlparser::ast::Expr>),
    /// CALL convert_to_columnstore(...) and the other columnstore procedures:
    /// the function call they stand for.
    Procedure(Arc<Prepared>),
    Ddl(Box<Statement>),
    Session(Box<Statement>),
    /// CHECKPOINT: every memtable row written to Parquet files now.
    Checkpoint,
    /// ALTER TABLE ... SET (timescaledb.compress, ...).
    TableOptions(Box<compression::TableOptions>),
    /// CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous).
    CreateCagg(Box<caggs::CreateCagg>),
    /// CALL refresh_continuous_aggregate(...).
    Refresh(Box<caggs::RefreshCall>),
    /// CREATE SEQUENCE / ALTER SEQUENCE.
    Sequence(Box<sequences::SequenceCommand>),
    /// REFRESH MATERIALIZED VIEW, CREATE MATERIALIZED VIEW ... WITH [NO] DATA.
    MatView(Box<matviews::MatViewCommand>),
    /// ANALYZE / VACUUM.
    Maintenance(Box<Statement>),
    /// CREATE / DROP / ALTER DATABASE.
    Database(Box<databases::DatabaseCommand>),
    /// SELECT set_config(name, value, is_local).
    SetConfig(Vec<SqlExpr>),
    /// DECLARE / FETCH / CLOSE.
    Cursor(Box<cursors::CursorCommand>),
    /// PREPARE name AS statement.
    SqlPrepare {
        name: String,
        statement: Arc<Prepared>,
        /// The PREPARE command as sent, for `pg_prepared_statements`.
        text: String,
    },
    /// EXECUTE name (args).
    SqlExecute {
        name: String,
        args: Vec<datafusion::sql::sqlparser::ast::Expr>,
    },
    /// DEALLOCATE name (None: ALL).
    Deallocate(Option<String>),
}

/// The SQL state of one connection: its DataFusion session and settings.
pub struct SqlSession {
    engine: Arc<Engine>,
    ctx: SessionContext,
    pub settings: Settings,
    pub tx: TxState,
    /// Rows written in the open transaction block, committed at COMMIT.
    tx_writes: Arc<tempora_query::provider::TxWrites>,
    /// PREPARE'd statements.
    sql_prepared: sql_prepare::SqlPrepared,
    /// Catalog changes of the open block (DDL, and the file changes of its
    /// DELETEs and UPDATEs), published at COMMIT.
    tx_catalog: Arc<tempora_catalog::TxCatalog>,
    /// The files the open block's DELETEs and UPDATEs replaced, held from
    /// compaction until the block ends.
    held_files: Vec<String>,
    /// Savepoints of the open block, oldest first: name, how many written
    /// batches and how many catalog changes preceded it.
    savepoints: Vec<(String, usize, usize)>,
    /// Open cursors (DECLARE).
    cursors: Vec<cursors::Cursor>,
    /// The server's databases (None for a session of one engine alone,
    /// such as a job's).
    cluster: Option<Arc<tempora_storage::Cluster>>,
    /// Keeps the session's database from being dropped.
    _connected: Option<DatabaseGuard>,
    /// Set by [`SqlSession::execute_streaming`] for the statement it runs
    /// (and taken by it, so that statements run within it collect).
    stream_next: bool,
    /// Plans of the shapes of queries this session sent.
    plan_cache: plan_cache::PlanCache,
    /// DataFusion's state, copied from `ctx` once (see [`df_state`]).
    df_state: df_state::DfState,
}

/// Converts a sqlparser error into PostgreSQL's 42601 with a position.
pub fn parse_error(sql: &str, e: ParserError) -> TemporaError {
    let text = match &e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return TemporaError::new(
                SqlState::STATEMENT_TOO_COMPLEX,
                "stack depth limit exceeded",
            )
            .with_hint(
                "The statement nests too deeply or takes too long to parse; \
                 simplify it or split it into several statements.",
            )
        }
    };
    if let Some(err) = reserved_after_from(sql) {
        return err;
    }
    // "... at Line: 1, Column: 8"
    let position = text.rsplit_once("Line: ").and_then(|(_, rest)| {
        let (line, col) = rest.split_once(", Column: ")?;
        let line: usize = line.trim().parse().ok()?;
        let col: usize = col
            .trim()
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()?;
        Some(char_position(sql, line, col))
    });
    let near = position.and_then(|p| {
        let tail: String = sql.chars().skip(p - 1).collect();
        let tok: String = tail
            .split_whitespace()
            .next()?
            .chars()
            .take_while(|c| *c != ';')
            .collect();
        (!tok.is_empty()).then_some(tok)
    });
    let message = match near {
        Some(tok) => format!("syntax error at or near \"{tok}\""),
        None => "syntax error at end of input".to_string(),
    };
    tracing::debug!(%text, "syntax error");
    let mut err = TemporaError::syntax(message);
    if let Some(p) = position {
        err = err.with_position(p);
    }
    err
}

/// PostgreSQL's 1-based character position of a (1-based) line and column.
fn char_position(sql: &str, line: usize, column: usize) -> usize {
    let before: usize = sql
        .lines()
        .take(line.saturating_sub(1))
        .map(|l| l.chars().count() + 1)
        .sum();
    before + column
}

/// A statement of a client's query, with what the SQL parser cannot carry.
#[derive(Debug, Clone)]
pub enum ParsedStatement {
    Sql {
        stmt: Box<Statement>,
        /// A COPY's parenthesized options, read with PostgreSQL's generic
        /// option grammar (see `copy_options`).
        copy_options: Option<copy_options::OptionList>,
    },
    /// `CHECKPOINT`, which the SQL parser does not know.
    Checkpoint,
    /// `ALTER TABLE ... SET (timescaledb.compress, ...)`, whose dotted
    /// option names the SQL parser does not read.
    TableOptions(compression::TableOptions),
    /// `CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous)`.
    CreateCagg(Box<caggs::CreateCagg>),
    /// `CREATE SEQUENCE` / `ALTER SEQUENCE`, options in any order.
    Sequence(Box<sequences::SequenceCommand>),
    /// `REFRESH MATERIALIZED VIEW`, `CREATE MATERIALIZED VIEW ... WITH [NO] DATA`.
    MatView(Box<matviews::MatViewCommand>),
    /// `CREATE DATABASE` / `DROP DATABASE` / `ALTER DATABASE`.
    Database(Box<databases::DatabaseCommand>),
}

impl From<Statement> for ParsedStatement {
    fn from(stmt: Statement) -> Self {
        Self::Sql {
            stmt: Box::new(stmt),
            copy_options: None,
        }
    }
}

/// `VACUUM [ANALYZE] [VERBOSE] [FREEZE] [t]` or `VACUUM (ANALYZE, ...) [t]`
/// as the plain `VACUUM [t]` the parser reads (ANALYZE has nothing to
/// refresh, VERBOSE and FREEZE nothing to change); None for other text.
fn plain_vacuum(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect();
    if !words.first()?.eq_ignore_ascii_case("vacuum") {
        return None;
    }
    let option = |w: &str| {
        let w = w.trim_matches(|c| c == '(' || c == ')' || c == ',');
        ["analyze", "analyse", "verbose", "freeze"]
            .iter()
            .any(|o| w.eq_ignore_ascii_case(o))
            || w.is_empty()
    };
    let rest: Vec<&str> = words[1..]
        .iter()
        .skip_while(|w| option(w))
        .copied()
        .collect();
    if rest.len() + 1 == words.len() {
        return None;
    }
    Some(format!("VACUUM {}", rest.join(" ")))
}

/// Whether a statement's text is `CHECKPOINT`.
fn is_checkpoint(sql: &str) -> bool {
    sql.trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .eq_ignore_ascii_case("checkpoint")
}

/// The statements of a query string as slices of its text, split at
/// top-level semicolons (quotes, comments and dollar quotes respected by the
/// tokenizer); None when it does not tokenize (the parser then reports it).
fn split_statements(sql: &str) -> Option<Vec<&str>> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let mut out = Vec::new();
    let mut begin = 0;
    for (t, at) in located_tokens(sql)? {
        if t == Token::SemiColon {
            out.push(&sql[begin..at]);
            begin = at + 1;
        }
    }
    out.push(&sql[begin.min(sql.len())..]);
    Some(out.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

/// The tokens of `sql` with the byte offset each starts at; None when it
/// does not tokenize (the parser then reports it).
pub(crate) fn located_tokens(
    sql: &str,
) -> Option<Vec<(datafusion::sql::sqlparser::tokenizer::Token, usize)>> {
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    // Byte offset of each line's start; locations are 1-based (line, char).
    let mut line_starts = vec![0usize];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get((line as usize).checked_sub(1)?)?;
        let skip = (column as usize).checked_sub(1)?;
        Some(
            sql[start..]
                .char_indices()
                .nth(skip)
                .map_or(sql.len(), |(i, _)| start + i),
        )
    };
    tokens
        .into_iter()
        .map(|t| Some((t.token, offset(t.span.start.line, t.span.start.column)?)))
        .collect()
}

/// Parses a client's query string into statements: [`parse`], with COPY
/// option lists read as PostgreSQL reads them.
pub fn parse_query(sql: &str) -> Result<Vec<ParsedStatement>> {
    if is_checkpoint(sql) {
        return Ok(vec![ParsedStatement::Checkpoint]);
    }
    if let Some(options) = compression::parse_table_options(sql) {
        return Ok(vec![ParsedStatement::TableOptions(options?)]);
    }
    if let Some(create) = caggs::parse_create(sql) {
        return Ok(vec![ParsedStatement::CreateCagg(Box::new(create?))]);
    }
    if let Some(command) = sequences::parse(sql) {
        return Ok(vec![ParsedStatement::Sequence(Box::new(command?))]);
    }
    if let Some(command) = matviews::parse(sql) {
        return Ok(vec![ParsedStatement::MatView(Box::new(command?))]);
    }
    if let Some(command) = databases::parse(sql) {
        return Ok(vec![ParsedStatement::Database(Box::new(command?))]);
    }
    if let Some(plain) = plain_vacuum(sql) {
        return parse_query(&plain);
    }
    // CHECKPOINT or TimescaleDB table options among other statements: each
    // statement on its own.
    let lower = sql.to_ascii_lowercase();
    if lower.contains("checkpoint")
        || lower.contains("timescaledb.")
        || lower.contains("tsdb.")
        || lower.contains("sequence")
        || lower.contains("materialized")
        || lower.contains("database")
    {
        if let Some(parts) = split_statements(sql) {
            let special = |p: &str| {
                is_checkpoint(p)
                    || compression::parse_table_options(p).is_some()
                    || caggs::parse_create(p).is_some()
                    || sequences::parse(p).is_some()
                    || matviews::parse(p).is_some()
                    || databases::parse(p).is_some()
            };
            if parts.len() > 1 && parts.iter().any(|p| special(p)) {
                let mut out = Vec::new();
                for part in parts {
                    out.extend(parse_query(part)?);
                }
                return Ok(out);
            }
        }
    }
    let Some(extracted) = copy_options::extract(sql)? else {
        return Ok(parse(sql)?.into_iter().map(Into::into).collect());
    };
    let stmts = parse(&extracted.sql)?;
    let copies = stmts
        .iter()
        .filter(|s| matches!(s, Statement::Copy { .. }))
        .count();
    if copies != extracted.options.len() {
        // The text's COPY statements and the parser's disagree: let the
        // parser's reading of the original text decide.
        return Ok(parse(sql)?.into_iter().map(Into::into).collect());
    }
    let mut options = extracted.options.into_iter();
    Ok(stmts
        .into_iter()
        .map(|stmt| {
            let copy_options = match stmt {
                Statement::Copy { .. } => options.next().flatten(),
                _ => None,
            };
            ParsedStatement::Sql {
                stmt: Box::new(stmt),
                copy_options,
            }
        })
        .collect())
}

/// Parses a query string into statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    if let Some((text, creates)) = roles::role_spelling(sql) {
        let mut stmts = tempora_common::sql_parser::parse_statements(&text)
            .map_err(|e| parse_error(&text, e))?;
        roles::apply_user_defaults(&mut stmts, &creates);
        return Ok(stmts);
    }
    let stmts =
        tempora_common::sql_parser::parse_statements(sql).map_err(|e| parse_error(sql, e))?;
    for s in &stmts {
        reject_reserved_table_names(sql, s)?;
        check_depth(s)?;
    }
    Ok(stmts)
}

/// How deep a statement's expressions may nest, and how many set operations
/// (`UNION`, `INTERSECT`, `EXCEPT`) one query body may chain. Planning
/// recurses over both, and its time grows with the square of the depth or
/// worse (the analyzer rules ask each node its type, which walks the nodes
/// under it): a 700-term `1 + 1 + ...` held a worker thread for minutes.
/// Past these limits the statement is refused at once.
const MAX_EXPR_DEPTH: usize = 256;
const MAX_SET_OPERATIONS: usize = 1_000;

/// PostgreSQL's 54001 for a statement nested past [`MAX_EXPR_DEPTH`] or
/// chaining more than [`MAX_SET_OPERATIONS`].
fn check_depth(stmt: &Statement) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Expr, Query, Visit, Visitor};
    use std::ops::ControlFlow;
    struct Depth {
        now: usize,
        deepest: usize,
        set_operations: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now += 1;
            self.deepest = self.deepest.max(self.now);
            if self.now > MAX_EXPR_DEPTH {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            // The chain of set operations under this query, without recursion.
            let mut pending = vec![q.body.as_ref()];
            let mut count = 0;
            while let Some(body) = pending.pop() {
                if let SetExpr::SetOperation { left, right, .. } = body {
                    count += 1;
                    pending.push(left);
                    pending.push(right);
                }
            }
            self.set_operations = self.set_operations.max(count);
            if count > MAX_SET_OPERATIONS {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut depth = Depth {
        now: 0,
        deepest: 0,
        set_operations: 0,
    };
    if stmt.visit(&mut depth).is_continue() {
        return Ok(());
    }
    Err(TemporaError::new(
        SqlState::STATEMENT_TOO_COMPLEX,
        "stack depth limit exceeded",
    )
    .with_hint(format!(
        "Tempora plans expressions nested at most {MAX_EXPR_DEPTH} deep and at most \
         {MAX_SET_OPERATIONS} UNION/INTERSECT/EXCEPT operations in one query."
    )))
}

/// Words PostgreSQL reserves that cannot name a table after FROM.
fn is_reserved(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "where", "group", "order", "limit", "offset", "having", "select", "from", "union",
        "window", "fetch", "into", "on", "join",
    ];
    RESERVED.contains(&word.to_lowercase().as_str())
}

/// PostgreSQL's syntax error for a reserved word at (line, column).
fn reserved_word_error(sql: &str, word: &str, line: u64, column: u64) -> TemporaError {
    TemporaError::syntax(format!("syntax error at or near \"{word}\""))
        .with_position(char_position(sql, line as usize, column as usize))
}

/// `FROM WHERE`, `FROM GROUP`, ...: PostgreSQL reports the reserved word.
fn reserved_after_from(sql: &str) -> Option<TemporaError> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let words: Vec<_> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    for pair in words.windows(2) {
        let (Token::Word(a), Token::Word(b)) = (&pair[0].token, &pair[1].token) else {
            continue;
        };
        if a.keyword == Keyword::FROM && b.quote_style.is_none() && is_reserved(&b.value) {
            let loc = pair[1].span.start;
            return Some(reserved_word_error(sql, &b.value, loc.line, loc.column));
        }
    }
    None
}

/// Words PostgreSQL reserves that sqlparser still accepts as table names
/// (`SELECT * FROM WHERE ...`): reported as PostgreSQL reports them.
fn reject_reserved_table_names(sql: &str, stmt: &Statement) -> Result<()> {
    let Statement::Query(q) = stmt else {
        return Ok(());
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Ok(());
    };
    for t in &sel.from {
        let TableFactor::Table { name, .. } = &t.relation else {
            continue;
        };
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            continue;
        };
        if ident.quote_style.is_none() && is_reserved(&ident.value) {
            let start = ident.span.start;
            return Err(reserved_word_error(
                sql,
                &ident.value,
                start.line,
                start.column,
            ));
        }
    }
    Ok(())
}

/// The name of a function call, lower-cased, without schema.
pub(crate) fn function_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> String {
    name.0
        .last()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.to_lowercase(),
            other => other.to_string().to_lowercase(),
        })
        .unwrap_or_default()
}

/// Positional and named arguments of a call.
pub(crate) fn call_args(args: &FunctionArguments) -> Vec<(Option<String>, SqlExpr)> {
    let FunctionArguments::List(list) = args else {
        return vec![];
    };
    list.args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some((None, e.clone())),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Some((Some(name.value.to_lowercase()), e.clone())),
            FunctionArg::ExprNamed {
                name: SqlExpr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => Some((Some(name.value.to_lowercase()), e.clone())),
            _ => None,
        })
        .collect()
}

/// The one-column result of a command called as `SELECT f(...)` or
/// `SELECT ... FROM f(...) [alias]` (drop_chunks, the job functions): the
/// column, and the caller's query to project it with.
#[derive(Debug, Clone)]
pub(crate) struct CommandOutput {
    column: datafusion::arrow::datatypes::Field,
    select: Option<Statement>,
}

impl CommandOutput {
    /// The alias of `FROM f(...) alias` names the column, and result
    /// columns get PostgreSQL's names.
    pub(crate) fn new(
        column: datafusion::arrow::datatypes::Field,
        select: Option<Statement>,
    ) -> Self {
        let select = select.map(|mut select| {
            if let Statement::Query(q) = &mut select {
                if let SetExpr::Select(sel) = q.body.as_mut() {
                    if let Some(TableFactor::Table {
                        alias: Some(alias), ..
                    }) = sel.from.first_mut().map(|t| &mut t.relation)
                    {
                        if alias.columns.is_empty() {
                            alias.columns = vec![
                                datafusion::sql::sqlparser::ast::TableAliasColumnDef::from_name(
                                    alias.name.value.clone(),
                                ),
                            ];
                        }
                    }
                }
            }
            naming::apply(&mut select);
            select
        });
        Self { column, select }
    }

    fn record_schema(&self) -> SchemaRef {
        Arc::new(datafusion::arrow::datatypes::Schema::new(vec![self
            .column
            .clone()]))
    }

    async fn project(&self, batch: RecordBatch) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        match &self.select {
            None => Ok((batch.schema(), vec![batch])),
            Some(select) => {
                query_rows(
                    self.column.name(),
                    batch.schema(),
                    vec![batch],
                    &select.to_string(),
                )
                .await
            }
        }
    }

    /// Columns of the result, after the caller's projection.
    pub(crate) async fn schema(&self) -> Result<SchemaRef> {
        let empty = RecordBatch::new_empty(self.record_schema());
        Ok(self.project(empty).await?.0)
    }

    /// The result holding `values` (one row per value).
    pub(crate) async fn rows(
        &self,
        values: datafusion::arrow::array::ArrayRef,
        notices: Vec<Notice>,
    ) -> Result<(Outcome, Vec<Notice>)> {
        let batch = RecordBatch::try_new(self.record_schema(), vec![values])
            .map_err(|e| TemporaError::internal(e.to_string()))?;
        let (schema, batches) = self.project(batch).await?;
        Ok((
            Outcome::Rows {
                schema,
                batches,
                tag: "SELECT".into(),
            },
            notices,
        ))
    }
}

/// A TimescaleDB command call found in a SELECT: the function and whether the
/// caller selected its columns (`SELECT * FROM f(...)`) or the record (`SELECT f(...)`).
pub(crate) struct CommandCall {
    pub name: String,
    pub args: Vec<(Option<String>, SqlExpr)>,
    pub expand: bool,
    /// For `SELECT ... FROM f(...)`: the query with the call replaced by a
    /// table named like the function, to project the function's result.
    pub select: Option<Statement>,
}

fn find_command_call(stmt: &Statement) -> Option<CommandCall> {
    let Statement::Query(q) = stmt else {
        return None;
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    if sel.projection.len() == 1 && sel.from.is_empty() {
        match &sel.projection[0] {
            SelectItem::UnnamedExpr(SqlExpr::Function(f)) => {
                return Some(CommandCall {
                    name: function_name(&f.name),
                    args: call_args(&f.args),
                    expand: false,
                    select: None,
                });
            }
            // `SELECT f(...) AS a`: the record, its column named `a`.
            SelectItem::ExprWithAlias {
                expr: SqlExpr::Function(f),
                alias,
            } => {
                let name = function_name(&f.name);
                let select = parse(&format!(
                    "SELECT {} AS {} FROM {}",
                    ddl::quote_ident(&name),
                    ddl::quote_ident(&ddl::ident_name(alias)),
                    ddl::quote_ident(&name)
                ))
                .ok()?
                .pop();
                return Some(CommandCall {
                    name,
                    args: call_args(&f.args),
                    expand: false,
                    select,
                });
            }
            _ => {}
        }
    }
    if sel.from.len() == 1 && sel.from[0].joins.is_empty() {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = &sel.from[0].relation
        {
            let list =
                FunctionArguments::List(datafusion::sql::sqlparser::ast::FunctionArgumentList {
                    duplicate_treatment: None,
                    args: args.args.clone(),
                    clauses: vec![],
                });
            let mut select = stmt.clone();
            if let Statement::Query(q) = &mut select {
                if let SetExpr::Select(sel) = q.body.as_mut() {
                    if let TableFactor::Table { args, .. } = &mut sel.from[0].relation {
                        *args = None;
                    }
                }
            }
            return Some(CommandCall {
                name: function_name(name),
                args: call_args(&list),
                expand: true,
                select: Some(select),
            });
        }
    }
    None
}

impl SqlSession {
    pub fn new(engine: Arc<Engine>) -> Result<Self> {
        Self::with_tx_catalog(engine, Default::default())
    }

    /// A session of `engine` whose transaction block state is `tx_catalog`
    /// (that of the connection it serves, which runs in its scope).
    pub fn with_tx_catalog(
        engine: Arc<Engine>,
        tx_catalog: Arc<tempora_catalog::TxCatalog>,
    ) -> Result<Self> {
        let ctx = tempora_query::session_context_with(engine.clone(), tx_catalog)?;
        let tx_writes = ctx
            .state()
            .config()
            .get_extension::<tempora_query::provider::TxWrites>()
            .ok_or_else(|| TemporaError::internal("session without transaction state"))?;
        let tx_catalog = ctx
            .state()
            .config()
            .get_extension::<tempora_catalog::TxCatalog>()
            .ok_or_else(|| TemporaError::internal("session without transaction state"))?;
        let variables = ctx
            .state()
            .config()
            .get_extension::<tempora_query::variables::SessionVariables>()
            .ok_or_else(|| TemporaError::internal("session without parameters"))?;
        Ok(Self {
            engine,
            ctx,
            settings: Settings::published_to(variables),
            tx: TxState::Idle,
            tx_writes,
            sql_prepared: Default::default(),
            tx_catalog,
            held_files: Vec::new(),
            savepoints: Vec::new(),
            cursors: Vec::new(),
            cluster: None,
            _connected: None,
            stream_next: false,
            plan_cache: Default::default(),
            df_state: Default::default(),
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Makes the session one of `cluster`'s, connected to the database
    /// `guard` holds (its engine is the session's).
    pub fn join(&mut self, cluster: Arc<tempora_storage::Cluster>, guard: DatabaseGuard) {
        self.cluster = Some(cluster);
        self._connected = Some(guard);
    }

    /// The server's databases, for a session that belongs to a server.
    pub fn cluster(&self) -> Option<&Arc<tempora_storage::Cluster>> {
        self.cluster.as_ref()
    }

    /// The name of the session's database (`current_database()`).
    pub fn database(&self) -> &str {
        &self.engine.options().database
    }

    /// The catalog holding the server's roles and databases: the first
    /// database's.
    pub fn shared_catalog(&self) -> &Arc<tempora_catalog::Catalog> {
        self.cluster
            .as_ref()
            .map_or(self.engine.catalog(), |c| c.main().catalog())
    }

    /// Copies changed roles and databases to every database's catalog.
    pub async fn sync_shared(&self) -> Result<()> {
        match &self.cluster {
            Some(c) => c.sync_shared().await,
            None => Ok(()),
        }
    }

    /// The role the session is logged in as (`session_user`).
    pub fn user(&self) -> &str {
        self.settings.get("session_authorization").unwrap_or("")
    }

    /// Makes the session act as `role`, once its login was accepted.
    pub fn log_in(&mut self, role: &tempora_catalog::RoleDef) {
        self.settings.set_fixed("session_authorization", &role.name);
        self.settings
            .set_fixed("is_superuser", if role.superuser { "on" } else { "off" });
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Writes rows of a table: at once and durably outside a transaction
    /// block, or kept for COMMIT inside one (visible to this session meanwhile).
    pub async fn write_rows(&self, oid: u32, batches: Vec<RecordBatch>) -> Result<u64> {
        self.write_rows_with(oid, batches, tempora_storage::OnConflict::Error)
            .await
    }

    /// [`SqlSession::write_rows`] with a policy for rows whose unique key is taken.
    pub async fn write_rows_with(
        &self,
        oid: u32,
        batches: Vec<RecordBatch>,
        policy: tempora_storage::OnConflict,
    ) -> Result<u64> {
        let written = self.write_rows_returning(oid, batches, policy).await?;
        Ok(written.iter().map(|b| b.num_rows() as u64).sum())
    }

    /// [`SqlSession::write_rows_with`], returning the rows written (or kept
    /// for COMMIT): with `Skip`, those whose keys were free.
    pub async fn write_rows_returning(
        &self,
        oid: u32,
        batches: Vec<RecordBatch>,
        policy: tempora_storage::OnConflict,
    ) -> Result<Vec<RecordBatch>> {
        if self.tx == TxState::Idle {
            return Ok(vec![
                self.engine
                    .write_returning(oid, batches, policy, self.sync_commit())
                    .await?,
            ]);
        }
        let state = self.engine.catalog().snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::internal(format!("no table with oid {oid}")))?;
        let mut kept = Vec::with_capacity(batches.len());
        for b in batches {
            self.engine.check_rows(table, &b)?;
            // Keys are checked against stored rows now, and again at COMMIT.
            let b = if table.unique_keys.is_empty() {
                b
            } else {
                self.engine.resolve_conflicts(table, &b, policy).await?
            };
            kept.push(b);
        }
        self.tx_writes.add(oid, kept.clone(), policy);
        Ok(kept)
    }

    /// The rows of table `oid` the open block inserted (and their
    /// conflict policies).
    pub(crate) fn block_rows(&self, oid: u32) -> Vec<(RecordBatch, tempora_storage::OnConflict)> {
        self.tx_writes.pending_for(oid)
    }

    /// Replaces the rows of table `oid` the open block inserted (its DELETE
    /// or UPDATE of them).
    pub(crate) fn replace_block_rows(
        &self,
        oid: u32,
        rows: Vec<(RecordBatch, tempora_storage::OnConflict)>,
    ) {
        self.tx_writes.replace(oid, rows);
    }

    /// Whether this session's commits wait for the WAL sync
    /// (`SET synchronous_commit`).
    fn sync_commit(&self) -> tempora_storage::SyncCommit {
        match self.settings.get("synchronous_commit") {
            Some("off") => tempora_storage::SyncCommit::Off,
            _ => tempora_storage::SyncCommit::On,
        }
    }

    /// The catalog changes of this session's transaction blocks: the
    /// connection runs in its scope ([`tempora_catalog::TxCatalog::scope`]).
    pub fn tx_catalog(&self) -> Arc<tempora_catalog::TxCatalog> {
        self.tx_catalog.clone()
    }

    /// Whether a transaction block is open.
    pub(crate) fn in_block(&self) -> bool {
        self.tx != TxState::Idle
    }

    /// Before a DDL statement (or, with `files`, a DELETE or UPDATE):
    /// inside a block, keeps its catalog changes for COMMIT until the guard
    /// is dropped; refuses statements a block cannot hold (`allowed`
    /// false), and any when the connection does not run in the block's scope.
    fn capture_in_block(
        &self,
        what: &str,
        allowed: bool,
        files: bool,
    ) -> Result<Option<tempora_catalog::transaction::CaptureGuard>> {
        if !self.in_block() {
            return Ok(None);
        }
        if !allowed || !self.tx_catalog.in_scope() {
            self.reject_write_in_block(what)?;
        }
        Ok(Some(if files {
            self.tx_catalog.capture_data()
        } else {
            self.tx_catalog.capture()
        }))
    }

    /// After a DROP: forgets the dropped tables' rows and retires their
    /// files, at once or, inside a block, when COMMIT publishes the drop.
    pub(crate) fn drop_tables(&self, dropped: Vec<(u32, Vec<String>)>) {
        if !self.in_block() {
            self.engine.drop_tables(dropped);
        }
    }

    /// COMMIT: makes the block's catalog changes, then its writes, durable.
    pub(crate) async fn commit_writes(&self) -> Result<()> {
        let writes = self.tx_writes.take();
        if let Err(e) = self.engine.commit_transaction(&self.tx_catalog).await {
            // The block ends either way: nothing of it stays for the next.
            let written = self.tx_catalog.clear();
            self.engine.gc().retire(0, written);
            return Err(e);
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.engine
            .write_with(writes, self.sync_commit())
            .await
            .map(|_| ())
    }

    /// ROLLBACK: forgets the block's writes.
    pub(crate) fn discard_writes(&mut self) {
        self.tx_writes.clear();
        // Files the block's DELETEs and UPDATEs wrote are nobody's now.
        let written = self.tx_catalog.clear();
        self.engine.gc().retire(0, written);
        self.savepoints.clear();
    }

    /// SAVEPOINT name: marks the writes and catalog changes so far.
    pub(crate) fn savepoint(&mut self, name: &str) {
        self.savepoints.push((
            name.to_string(),
            self.tx_writes.len(),
            self.tx_catalog.mark(),
        ));
    }

    /// The newest savepoint called `name`, by position.
    fn find_savepoint(&self, name: &str) -> Result<usize> {
        self.savepoints
            .iter()
            .rposition(|(n, _, _)| n == name)
            .ok_or_else(|| {
                TemporaError::new(
                    SqlState::S_E_INVALID_SPECIFICATION,
                    format!("savepoint \"{name}\" does not exist"),
                )
            })
    }

    /// RELEASE SAVEPOINT name: forgets it and the savepoints after it,
    /// keeping the writes.
    pub(crate) fn release_savepoint(&mut self, name: &str) -> Result<()> {
        let at = self.find_savepoint(name)?;
        self.savepoints.truncate(at);
        Ok(())
    }

    /// ROLLBACK TO SAVEPOINT name: forgets the writes made since it (and the
    /// savepoints after it); the savepoint stays.
    pub(crate) fn rollback_to_savepoint(&mut self, name: &str) -> Result<()> {
        let at = self.find_savepoint(name)?;
        self.tx_writes.truncate(self.savepoints[at].1);
        let written = self.tx_catalog.rollback_to(self.savepoints[at].2);
        self.engine.gc().retire(0, written);
        self.savepoints.truncate(at + 1);
        Ok(())
    }

    /// Parses `sql` and plans every statement in it.
    pub async fn prepare_all(&self, sql: &str) -> Result<Vec<Prepared>> {
        let mut out = Vec::new();
        for stmt in parse_query(sql)? {
            out.push(self.prepare_statement(sql, stmt).await?);
        }
        Ok(out)
    }

    /// Plans one parsed statement.
    pub async fn prepare_statement(
        &self,
        sql: &str,
        stmt: impl Into<ParsedStatement>,
    ) -> Result<Prepared> {
        let definitions = self.engine.catalog().definitions();
        let prepared = |kind, param_types, result_schema| Prepared {
            sql: sql.to_string(),
            kind,
            param_types,
            result_schema,
            definitions,
        };
        let (mut stmt, copy_options) = match stmt.into() {
            ParsedStatement::Sql { stmt, copy_options } => (*stmt, copy_options),
            ParsedStatement::Checkpoint => return Ok(prepared(Kind::Checkpoint, vec![], None)),
            ParsedStatement::TableOptions(o) => {
                return Ok(prepared(Kind::TableOptions(Box::new(o)), vec![], None))
            }
            ParsedStatement::CreateCagg(c) => {
                return Ok(prepared(Kind::CreateCagg(c), vec![], None))
            }
            ParsedStatement::Sequence(c) => return Ok(prepared(Kind::Sequence(c), vec![], None)),
            ParsedStatement::MatView(c) => return Ok(prepared(Kind::MatView(c), vec![], None)),
            ParsedStatement::Database(c) => return Ok(prepared(Kind::Database(c), vec![], None)),
        };
        if matches!(stmt, Statement::CreateFunction(_)) {
            functions::reject_variadic(sql)?;
        }
        if !matches!(
            stmt,
            Statement::CreateFunction(_) | Statement::CreateView(_)
        ) {
            // A view inlines the calls of its query itself, to depend on
            // the functions it calls.
            functions::inline(self, &mut stmt)?;
        }
        let path = self.search_path();
        search_path::resolve(&mut stmt, &self.engine.catalog().snapshot(), &path);
        if !matches!(stmt, Statement::Query(_) | Statement::Explain { .. }) {
            // Queries get it in `rewrite_query`, once named.
            subqueries::rewrite(&mut stmt);
        }
        if let Some(select) = compression::columnstore_procedure(&stmt)? {
            // A procedure: runs as the function call it stands for, answers CALL.
            let inner = Box::pin(self.prepare_statement(&select.to_string(), select)).await?;
            return Ok(prepared(Kind::Procedure(Arc::new(inner)), vec![], None));
        }
        calls::normalize(&mut stmt, &self.time_zone())?;
        if let Some(call) = find_command_call(&stmt) {
            if let Some(what) = unsupported_timescaledb_call(&call.name) {
                return Err(TemporaError::not_supported(what));
            }
            if call.name == "set_chunk_time_interval" && !call.expand {
                let cmd = hypertable::SetChunkTimeInterval::from_call(call);
                return Ok(prepared(
                    Kind::SetChunkTimeInterval(Box::new(cmd)),
                    vec![],
                    Some(hypertable::SetChunkTimeInterval::result_schema()),
                ));
            }
            if call.name == "set_integer_now_func" && !call.expand {
                let cmd = functions::SetIntegerNowFunc::from_call(call);
                return Ok(prepared(
                    Kind::SetIntegerNowFunc(Box::new(cmd)),
                    vec![],
                    Some(functions::SetIntegerNowFunc::result_schema()),
                ));
            }
            if call.name == "set_number_partitions" && !call.expand {
                let cmd = hypertable::SetNumberPartitions::from_call(call);
                return Ok(prepared(
                    Kind::SetNumberPartitions(Box::new(cmd)),
                    vec![],
                    Some(hypertable::SetNumberPartitions::result_schema()),
                ));
            }
            if call.name == "add_dimension" {
                let cmd = hypertable::AddDimension::from_call(self, call).await?;
                let schema = cmd.result_schema().await?;
                return Ok(prepared(
                    Kind::AddDimension(Box::new(cmd)),
                    vec![],
                    Some(schema),
                ));
            }
            if call.name == "set_config" && !call.expand {
                let args: Vec<SqlExpr> = call.args.into_iter().map(|(_, e)| e).collect();
                if args.len() != 3 {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        "function set_config takes (text, text, boolean)",
                    ));
                }
                let schema = session_cmds::set_config_schema();
                return Ok(prepared(Kind::SetConfig(args), vec![], Some(schema)));
            }
            if jobs::is_job_function(&call.name) {
                let cmd = jobs::JobCall::from_call(call);
                let schema = cmd.result_schema().await?;
                return Ok(prepared(Kind::Job(Box::new(cmd)), vec![], Some(schema)));
            }
            if call.name == "drop_chunks" {
                let cmd = chunks::DropChunks::from_call(call);
                let schema = cmd.result_schema().await?;
                return Ok(prepared(
                    Kind::DropChunks(Box::new(cmd)),
                    vec![],
                    Some(schema),
                ));
            }
            if call.name == "create_hypertable" {
                let cmd = hypertable::CreateHypertable::from_call(self, call).await?;
                let schema = cmd.result_schema().await?;
                return Ok(prepared(
                    Kind::CreateHypertable(Box::new(cmd)),
                    vec![],
                    Some(schema),
                ));
            }
        }
        match stmt {
            Statement::Prepare {
                name,
                data_types,
                mut statement,
            } => {
                let types: Vec<_> = data_types.into_iter().map(Some).collect();
                sql_prepare::cast_parameters(&mut statement, &types);
                let text = statement.to_string();
                let inner = Box::pin(self.prepare_statement(&text, *statement)).await?;
                return Ok(prepared(
                    Kind::SqlPrepare {
                        name: ddl::ident_name(&name),
                        statement: Arc::new(inner),
                        text: sql.trim().to_string(),
                    },
                    vec![],
                    None,
                ));
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                ..
            } => {
                let name = function_name(&name);
                let schema = self
                    .sql_prepared
                    .get(&name)
                    .ok()
                    .and_then(|p| p.result_schema.clone());
                return Ok(prepared(
                    Kind::SqlExecute {
                        name,
                        args: parameters,
                    },
                    vec![],
                    schema,
                ));
            }
            Statement::Deallocate { name, .. } => {
                let name = ddl::ident_name(&name);
                let name = (!name.eq_ignore_ascii_case("all")).then_some(name);
                return Ok(prepared(Kind::Deallocate(name), vec![], None));
            }
            other => match self.prepare_cursor(sql, other).await? {
                Ok(cursor) => return Ok(cursor),
                Err(other) => stmt = other,
            },
        }
        if let Some(call) = caggs::refresh_call(&stmt) {
            return Ok(prepared(Kind::Refresh(Box::new(call)), vec![], None));
        }
        if let Some(id) = jobs::run_job_id(&stmt) {
            return Ok(prepared(Kind::RunJob(Box::new(id.clone())), vec![], None));
        }
        match &stmt {
            Statement::Query(_) | Statement::Explain { .. } => {
                let mut stmt = stmt;
                let ctx = &self.ctx;
                pg_compat::scalar_functions_in_from(&mut stmt, |name| {
                    ctx.table_function(name).is_ok()
                });
                // `FROM f(...)` of a SQL function is now a call in a subquery.
                functions::inline(self, &mut stmt)?;
                wildcards::expand_repeated(self, &mut stmt).await?;
                naming::ambiguous_order_by(&stmt)?;
                let stmt = rewrite_query(stmt);
                if matches!(stmt, Statement::Query(_)) && gapfill::uses_gapfill(&stmt) {
                    let plan = gapfill::GapfillPlan::plan(self, &stmt).await?;
                    let params = plan.param_types()?;
                    let schema = plan.schema();
                    return Ok(prepared(
                        Kind::Gapfill(Box::new(plan)),
                        params,
                        Some(schema),
                    ));
                }
                let plan = self.plan(stmt).await?;
                let params = param_types(&plan)?;
                let schema = match explain::explain_kind(&plan) {
                    Some(_) => explain::schema(),
                    None => with_computed_types(
                        &output_schema(plan.schema().as_arrow()),
                        &Arc::new(self.analyzed_schema(&plan).as_arrow().clone()),
                    ),
                };
                Ok(prepared(Kind::Query(Box::new(plan)), params, Some(schema)))
            }
            Statement::Insert(_) => {
                let plan = insert::InsertPlan::plan(self, &stmt).await?;
                let params = plan.param_types()?;
                let schema = plan.returning_schema();
                Ok(prepared(Kind::Insert(Box::new(plan)), params, schema))
            }
            Statement::Copy { .. } => {
                let plan = copy::CopyPlan::plan(self, &stmt, copy_options.as_deref()).await?;
                Ok(prepared(Kind::Copy(Box::new(plan)), vec![], None))
            }
            Statement::Delete(_) | Statement::Update(_) => {
                let plan = dml::RewritePlan::plan(self, &stmt).await?;
                let params = plan.param_types()?;
                let schema = plan.returning_schema();
                Ok(prepared(Kind::Rewrite(Box::new(plan)), params, schema))
            }
            Statement::Analyze(_) | Statement::Vacuum(_) => Ok(prepared(
                Kind::Maintenance(Box::new(stmt.clone())),
                vec![],
                None,
            )),
            s if session_cmds::is_session_statement(s) => {
                let schema = session_cmds::result_schema(s);
                Ok(prepared(Kind::Session(Box::new(stmt)), vec![], schema))
            }
            s if ddl::is_ddl(s) => Ok(prepared(Kind::Ddl(Box::new(stmt)), vec![], None)),
            other => Err(unsupported_statement(other)),
        }
    }

    /// The schemas of the session's `search_path`, in order.
    pub(crate) fn search_path(&self) -> Vec<String> {
        tempora_query::variables::parse_search_path(
            self.settings.get("search_path").unwrap_or("public"),
            self.user(),
        )
    }

    /// Parses and plans one statement given as text.
    pub(crate) async fn plan_sql(&self, sql: &str) -> Result<LogicalPlan> {
        let mut stmts = parse(sql)?;
        if stmts.len() != 1 {
            return Err(TemporaError::internal(format!("not one statement: {sql}")));
        }
        self.plan(stmts.remove(0)).await
    }

    /// Runs one query given as text and returns its rows.
    pub(crate) async fn query_sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let plan = self.plan_sql(sql).await?;
        self.run_plan(plan).await
    }

    /// Runs a planned query and returns its rows.
    pub(crate) async fn run_plan(&self, plan: LogicalPlan) -> Result<Vec<RecordBatch>> {
        self.ctx
            .execute_logical_plan(plan)
            .await
            .map_err(TemporaError::from_datafusion)?
            .collect()
            .await
            .map_err(TemporaError::from_datafusion)
    }

    /// The columns `plan` gives once analyzed: Tempora's analyzer rules may
    /// change a column's type (`real / integer` computes in double
    /// precision), and Describe must announce the type the rows will carry
    /// (see [`with_computed_types`]). A plan the analyzer cannot take yet (a
    /// parameter whose type only a Bind gives) keeps the planner's types.
    fn analyzed_schema(&self, plan: &LogicalPlan) -> datafusion::common::DFSchemaRef {
        let state = self.df_state();
        match state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
        {
            Ok(analyzed) if analyzed.schema().fields().len() == plan.schema().fields().len() => {
                analyzed.schema().clone()
            }
            // Casts of json values to text still announce text.
            _ => datafusion::optimizer::AnalyzerRule::analyze(
                &tempora_query::jsonb::JsonCasts,
                plan.clone(),
                state.config_options(),
            )
            .ok()
            .filter(|p| p.schema().fields().len() == plan.schema().fields().len())
            .map_or_else(|| plan.schema().clone(), |p| p.schema().clone()),
        }
    }

    /// Plans a statement with DataFusion.
    pub(crate) async fn plan(&self, mut stmt: Statement) -> Result<LogicalPlan> {
        pg_compat::set_returning_calls(&mut stmt);
        pg_compat::plain_values(&mut stmt);
        pg_compat::json_casts(&mut stmt);
        pg_compat::wide_numbers(&mut stmt);
        self.df_state()
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await
            .map_err(TemporaError::from_datafusion)
    }

    /// [`SqlSession::execute`], but a query's rows may come as
    /// [`Outcome::Stream`], computed while the caller sends them, instead
    /// of all held first. The caller must run the stream to its end (or
    /// drop it) before the session's next statement, and, when it fails,
    /// call [`SqlSession::statement_failed`].
    pub async fn execute_streaming(
        &mut self,
        p: &Prepared,
        params: Option<ParamValues>,
    ) -> Result<(Outcome, Vec<Notice>)> {
        self.stream_next = true;
        let result = self.execute(p, params).await;
        self.stream_next = false;
        result
    }

    /// A statement failed: as in PostgreSQL, an error inside a block aborts
    /// it (also when a streamed query fails after its first rows).
    pub fn statement_failed(&mut self) {
        if self.tx == TxState::InBlock {
            self.tx = TxState::Failed;
        }
    }

    /// Starts a query whose rows are read as a stream, with the pin that
    /// keeps its files on disk until the stream is done. The pin is taken
    /// before the plan lists its files, as a read pin must be.
    async fn start_stream(
        &self,
        plan: LogicalPlan,
    ) -> Result<(
        datafusion::execution::SendableRecordBatchStream,
        tempora_storage::ReadPin,
    )> {
        let optimized = self
            .df_state()
            .optimize(&plan)
            .map_err(TemporaError::from_datafusion)?;
        self.start_optimized_stream(&optimized).await
    }

    /// [`SqlSession::start_optimized_stream`] with the kept physical plan
    /// of the statement's shape where it can be used.
    async fn start_kept_stream(
        &self,
        plan: &LogicalPlan,
        reuse: Option<&plan_cache::Reuse>,
    ) -> Result<(
        datafusion::execution::SendableRecordBatchStream,
        tempora_storage::ReadPin,
    )> {
        let kept = match reuse {
            Some(reuse) => self.kept_physical(plan, reuse).await,
            None => None,
        };
        let Some((physical, lease)) = kept else {
            return self.start_optimized_stream(plan).await;
        };
        // A kept plan lists its files when it runs: after the pin.
        let pin = self.engine.pin();
        let stream = datafusion::physical_plan::execute_stream(physical, self.task_ctx())
            .map_err(TemporaError::from_datafusion)?;
        // The plan is this stream's until the stream is dropped.
        let schema = stream.schema();
        let held = futures::StreamExt::map(stream, move |batch| {
            let _held = &lease;
            batch
        });
        let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, held);
        Ok((Box::pin(stream), pin))
    }

    /// [`SqlSession::collect_optimized`] with the kept physical plan of the
    /// statement's shape where it can be used.
    async fn collect_kept(
        &self,
        plan: LogicalPlan,
        reuse: &plan_cache::Reuse,
    ) -> Result<Vec<RecordBatch>> {
        let Some((physical, _lease)) = self.kept_physical(&plan, reuse).await else {
            return self.collect_optimized(plan).await;
        };
        datafusion::physical_plan::collect(physical, self.task_ctx())
            .await
            .map_err(TemporaError::from_datafusion)
    }

    /// [`SqlSession::start_stream`] of a plan optimized already.
    async fn start_optimized_stream(
        &self,
        plan: &LogicalPlan,
    ) -> Result<(
        datafusion::execution::SendableRecordBatchStream,
        tempora_storage::ReadPin,
    )> {
        let pin = self.engine.pin();
        let physical = self.physical_plan(plan).await?;
        let stream = datafusion::physical_plan::execute_stream(physical, self.task_ctx())
            .map_err(TemporaError::from_datafusion)?;
        Ok((stream, pin))
    }

    /// Runs a prepared statement with its parameters.
    pub async fn execute(
        &mut self,
        p: &Prepared,
        params: Option<ParamValues>,
    ) -> Result<(Outcome, Vec<Notice>)> {
        if self.tx == TxState::Failed
            && !matches!(p.kind, Kind::Session(ref s) if session_cmds::ends_transaction(s))
        {
            return Err(TemporaError::new(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        if self.tx == TxState::InBlock
            && self.tx_catalog.conflicted()
            && !matches!(p.kind, Kind::Session(ref s) if session_cmds::ends_transaction(s))
        {
            self.tx = TxState::Failed;
            return Err(TemporaError::new(
                SqlState::T_R_SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
            )
            .with_detail(
                "Another session rewrote or dropped rows or relations this transaction changed.",
            ));
        }
        // Files this statement may read stay on disk until it is done.
        let _pin = self.engine.pin();
        let limit = self.statement_timeout().filter(|_| p.kind.only_reads());
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(
                deadline,
                self.execute_inner(p, params, Some(deadline)),
            )
            .await
            {
                Ok(r) => r,
                // Dropping a read stops its DataFusion tasks.
                Err(_) => Err(statement_timeout_error()),
            },
            None => self.execute_inner(p, params, None).await,
        };
        if result.is_err() {
            self.statement_failed();
        }
        self.hold_rewritten_files();
        result
    }

    /// Keeps compaction off the files the open block replaced (and lets it
    /// at them again once the block ends).
    fn hold_rewritten_files(&mut self) {
        let now = if self.in_block() {
            self.tx_catalog.removed_files()
        } else {
            Vec::new()
        };
        if now != self.held_files {
            self.engine.release_files(&self.held_files);
            self.engine.hold_files(&now);
            self.held_files = now;
        }
    }

    /// Shows the PREPAREd statements to `pg_prepared_statements`.
    fn publish_prepared(&self) {
        if let Some(p) = self.extension::<tempora_query::variables::SessionPrepared>() {
            p.publish(self.sql_prepared.rows());
        }
    }

    /// `statement_timeout`, when set (0 is none).
    fn statement_timeout(&self) -> Option<std::time::Duration> {
        let ms = session_cmds::duration_ms(self.settings.get("statement_timeout")?)?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    /// Runs a query to the end. A statement asking for the newest (or
    /// oldest) few time buckets of a hypertable runs first over a window of
    /// its newest rows (`tempora_query::newest_buckets`).
    async fn collect_query(&self, plan: LogicalPlan) -> Result<Vec<RecordBatch>> {
        if !newest_buckets::candidate(&plan) {
            let df = self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(TemporaError::from_datafusion)?;
            return df.collect().await.map_err(TemporaError::from_datafusion);
        }
        let optimized = self
            .df_state()
            .optimize(&plan)
            .map_err(TemporaError::from_datafusion)?;
        self.collect_optimized(optimized).await
    }

    /// [`SqlSession::collect_query`] of a plan optimized already.
    async fn collect_optimized(&self, optimized: LogicalPlan) -> Result<Vec<RecordBatch>> {
        if let Some(shape) = newest_buckets::NewestBuckets::find(&optimized) {
            let mut attempt = 0;
            while let Some(narrowed) = shape
                .narrowed(&optimized, attempt)
                .map_err(TemporaError::from_datafusion)?
            {
                let batches = self.run_optimized(&narrowed).await?;
                if batches.iter().map(RecordBatch::num_rows).sum::<usize>() >= shape.rows {
                    return Ok(batches);
                }
                tracing::debug!(attempt, "newest buckets: window too narrow, widening");
                attempt += 1;
            }
        }
        self.run_optimized(&optimized).await
    }

    /// The physical plan of an optimized plan.
    async fn physical_plan(
        &self,
        plan: &LogicalPlan,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let state = self.df_state();
        state
            .query_planner()
            .create_physical_plan(plan, state.as_ref())
            .await
            .map_err(TemporaError::from_datafusion)
    }

    /// Plans an optimized plan physically and collects its rows.
    async fn run_optimized(&self, plan: &LogicalPlan) -> Result<Vec<RecordBatch>> {
        let physical = self.physical_plan(plan).await?;
        datafusion::physical_plan::collect(physical, self.task_ctx())
            .await
            .map_err(TemporaError::from_datafusion)
    }

    async fn execute_inner(
        &mut self,
        p: &Prepared,
        params: Option<ParamValues>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(Outcome, Vec<Notice>)> {
        // Only the statement the caller runs streams; statements it runs
        // in turn (EXECUTE, functions) hand their rows back whole.
        let stream = std::mem::take(&mut self.stream_next);
        // A table, view or function changed since it was planned: planned
        // again (PostgreSQL's prepared statements are analysed again).
        if p.definitions != self.engine.catalog().definitions()
            && matches!(
                p.kind,
                Kind::Query(_)
                    | Kind::Optimized { .. }
                    | Kind::Insert(_)
                    | Kind::Rewrite(_)
                    | Kind::Gapfill(_)
            )
        {
            if let Some(again) = self.prepare_again(p).await? {
                self.stream_next = stream;
                return Box::pin(self.execute_inner(&again, params, deadline)).await;
            }
        }
        match &p.kind {
            Kind::Query(plan) if explain::explain_kind(plan).is_some() => {
                let verbose = explain::explain_kind(plan).unwrap_or(false);
                let plan = bind(plan.as_ref().clone(), params)?;
                let (plan, note) = explain::with_first_window(&self.df_state(), plan)?;
                let report = self
                    .extension::<tempora_query::provider::ScanReport>()
                    .ok_or_else(|| TemporaError::internal("session without scan report"))?;
                report.start();
                let result =
                    async { self.ctx.execute_logical_plan(plan).await?.collect().await }.await;
                let scans = report.finish();
                let batches = result.map_err(TemporaError::from_datafusion)?;
                Ok((
                    Outcome::Rows {
                        schema: explain::schema(),
                        batches: vec![explain::render(&batches, verbose, &scans, note)?],
                        tag: "EXPLAIN".into(),
                    },
                    vec![],
                ))
            }
            Kind::Query(plan) => {
                let plan_calls = chunk_rewriting_call(plan);
                if let Some(f) = plan_calls {
                    self.reject_write_in_block(f)?;
                }
                let plan = bind(plan.as_ref().clone(), params)?;
                if let Some(f) = plan_calls {
                    // The optimizer drops expressions whose value nothing
                    // uses, calls with effects included: refuse rather than
                    // silently not compress.
                    let optimized = self
                        .df_state()
                        .optimize(&plan)
                        .map_err(TemporaError::from_datafusion)?;
                    if chunk_rewriting_call(&optimized).is_none() {
                        return Err(TemporaError::not_supported(format!(
                            "{f} in a query that does not use its result"
                        ))
                        .with_hint(format!(
                            "Select its result, as in SELECT {f}(c) FROM show_chunks('t') c."
                        )));
                    }
                }
                let schema = output_schema(plan.schema().as_arrow());
                if stream && plan_calls.is_none() && !newest_buckets::candidate(&plan) {
                    let started = self.start_stream(plan).await?;
                    let schema = with_computed_types(&schema, &started.0.schema());
                    return Ok(streamed(started, schema, deadline));
                }
                let result = self.collect_query(plan).await;
                // Functions such as compress_chunk raise NOTICEs as they run.
                let notices = self.take_notices();
                let batches = result?;
                let schema = match batches.first() {
                    Some(b) => with_computed_types(&schema, &b.schema()),
                    None => schema,
                };
                Ok((
                    Outcome::Rows {
                        schema,
                        batches,
                        tag: "SELECT".into(),
                    },
                    notices,
                ))
            }
            Kind::Optimized {
                plan,
                newest_buckets,
                reuse,
            } => {
                let plan = plan.as_ref().clone();
                let schema = output_schema(plan.schema().as_arrow());
                if stream && !newest_buckets {
                    let started = self.start_kept_stream(&plan, reuse.as_ref()).await?;
                    return Ok(streamed(started, schema, deadline));
                }
                // Statements asking for their newest buckets run over
                // narrowed windows, each planned anew.
                let narrowed =
                    *newest_buckets && newest_buckets::NewestBuckets::find(&plan).is_some();
                let batches = match reuse {
                    Some(reuse) if !narrowed => self.collect_kept(plan, reuse).await?,
                    _ => self.collect_optimized(plan).await?,
                };
                let outcome = Outcome::Rows {
                    schema,
                    batches,
                    tag: "SELECT".into(),
                };
                Ok((outcome, vec![]))
            }
            Kind::Gapfill(plan) => plan.execute(self, params).await.map(|o| (o, vec![])),
            Kind::Insert(plan) => plan.execute(self, params).await.map(|o| (o, vec![])),
            Kind::Copy(plan) => match plan.as_ref() {
                copy::CopyPlan::In(p) => {
                    let copy = p.start(self).await?;
                    let (format, columns) = p.wire_format();
                    Ok((
                        Outcome::CopyIn {
                            copy: Box::new(copy),
                            format,
                            columns,
                        },
                        vec![],
                    ))
                }
                copy::CopyPlan::Out(p) => {
                    let (stream, pin) = self.start_stream(p.plan.clone()).await?;
                    let (format, columns) = p.wire_format();
                    Ok((
                        Outcome::CopyOut {
                            stream,
                            encoder: Box::new(p.encoder(self)),
                            format,
                            columns,
                            pin,
                        },
                        vec![],
                    ))
                }
            },
            Kind::Rewrite(plan) => {
                // Inside a block the rewritten files stay the block's until
                // COMMIT (the rows the block inserted are rewritten in
                // `TxWrites`).
                let _capture = self.capture_in_block(statement_name_of(&p.sql), true, true)?;
                plan.execute(self, params).await.map(|o| (o, vec![]))
            }
            Kind::CreateHypertable(cmd) => {
                let _capture = self.capture_in_block("create_hypertable", true, false)?;
                cmd.execute(self).await
            }
            Kind::Job(cmd) => {
                self.reject_write_in_block("a job function")?;
                cmd.execute(self).await
            }
            Kind::RunJob(id) => {
                self.reject_write_in_block("run_job")?;
                jobs::run_job(self, id).await
            }
            Kind::Procedure(inner) => {
                let (_, notices) = Box::pin(self.execute_inner(inner, params, deadline)).await?;
                Ok((Outcome::Command("CALL".into()), notices))
            }
            Kind::SetChunkTimeInterval(cmd) => {
                self.reject_write_in_block("set_chunk_time_interval")?;
                cmd.execute(self).await
            }
            Kind::SetIntegerNowFunc(cmd) => {
                self.reject_write_in_block("set_integer_now_func")?;
                cmd.execute(self).await
            }
            Kind::AddDimension(cmd) => {
                let _capture = self.capture_in_block("add_dimension", true, false)?;
                cmd.execute(self).await
            }
            Kind::SetNumberPartitions(cmd) => {
                let _capture = self.capture_in_block("set_number_partitions", true, false)?;
                cmd.execute(self).await
            }
            Kind::DropChunks(cmd) => {
                self.reject_write_in_block("drop_chunks")?;
                cmd.execute(self).await
            }
            Kind::Ddl(stmt) => {
                let _capture = self.capture_in_block(
                    statement_name(stmt),
                    ddl::allowed_in_block(stmt),
                    false,
                )?;
                ddl::execute(self, stmt).await
            }
            Kind::Session(stmt) => session_cmds::execute(self, stmt).await,
            Kind::Maintenance(stmt) => self.maintenance(stmt).map(|o| (o, vec![])),
            Kind::SetConfig(args) => session_cmds::set_config(self, args).await,
            Kind::Cursor(command) => self.run_cursor(command).await,
            Kind::SqlPrepare {
                name,
                statement,
                text,
            } => {
                self.sql_prepared.add(name, statement.clone(), text)?;
                self.publish_prepared();
                Ok((Outcome::Command("PREPARE".into()), vec![]))
            }
            Kind::SqlExecute { name, args } => {
                let statement = self.sql_prepared.get(name)?;
                let params = sql_prepare::arguments(self, name, &statement, args).await?;
                // EXECUTE's rows are the prepared statement's own.
                self.stream_next = stream;
                Box::pin(self.execute_inner(&statement, params, deadline)).await
            }
            Kind::Deallocate(name) => {
                self.sql_prepared.remove(name.as_deref())?;
                self.publish_prepared();
                let tag = if name.is_some() {
                    "DEALLOCATE"
                } else {
                    "DEALLOCATE ALL"
                };
                Ok((Outcome::Command(tag.into()), vec![]))
            }
            Kind::Checkpoint => {
                self.engine.flush().await?;
                Ok((Outcome::Command("CHECKPOINT".into()), vec![]))
            }
            Kind::TableOptions(o) => o.execute(self).await,
            Kind::CreateCagg(c) => c.execute(self).await,
            Kind::Refresh(r) => r.execute(self).await,
            Kind::Sequence(c) => {
                self.reject_write_in_block(c.tag())?;
                c.execute(self).await
            }
            Kind::Database(c) => databases::execute(self, c).await,
            Kind::MatView(c) => {
                self.reject_write_in_block(c.tag())?;
                c.execute(self).await
            }
        }
    }

    /// `ANALYZE [t]`: Tempora keeps row counts and file statistics current
    /// on every write, so there is nothing to refresh; the table must exist.
    /// `VACUUM [t]`: wakes the compactor, which merges small files.
    fn maintenance(&self, stmt: &Statement) -> Result<Outcome> {
        let (table, tag) = match stmt {
            Statement::Analyze(a) => (a.table_name.as_ref(), "ANALYZE"),
            Statement::Vacuum(v) => {
                if v.full || v.sort_only || v.delete_only || v.reindex || v.recluster {
                    return Err(TemporaError::not_supported(format!("{stmt}")));
                }
                (v.table_name.as_ref(), "VACUUM")
            }
            _ => return Err(TemporaError::internal("not a maintenance statement")),
        };
        if let Some(name) = table {
            let (schema, table) = ddl::object_name(name)?;
            if self
                .engine
                .catalog()
                .snapshot()
                .table(&schema, &table)
                .is_none()
            {
                return Err(TemporaError::undefined_table(&table));
            }
        }
        if tag == "VACUUM" {
            self.engine.nudge_compactor();
        }
        Ok(Outcome::Command(tag.into()))
    }

    /// One of the session's configuration extensions, read in place (a
    /// copy of the session state clones every function registry).
    fn extension<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.ctx.state_ref().read().config().get_extension::<T>()
    }

    /// The NOTICEs functions raised while the statement ran.
    fn take_notices(&self) -> Vec<Notice> {
        self.extension::<tempora_query::compression::SessionNotices>()
            .map(|n| n.take())
            .unwrap_or_default()
            .into_iter()
            .map(|n| Notice {
                severity: n.severity,
                ..Notice::info(n.code, n.message)
            })
            .collect()
    }

    /// Statements whose effects a ROLLBACK could not undo yet are refused
    /// inside BEGIN ... COMMIT rather than applied outside the block.
    fn reject_write_in_block(&self, what: &str) -> Result<()> {
        if self.tx != TxState::Idle {
            return Err(TemporaError::not_supported(format!(
                "{what} inside a transaction block"
            )));
        }
        Ok(())
    }

    /// Evaluates a constant SQL expression (arguments of TimescaleDB calls).
    pub(crate) async fn eval_constant(
        &self,
        expr: &SqlExpr,
    ) -> Result<datafusion::common::ScalarValue> {
        self.eval_sql(&expr.to_string()).await
    }

    /// Evaluates one SQL expression given as text (a column DEFAULT).
    pub(crate) async fn eval_sql(&self, expr: &str) -> Result<datafusion::common::ScalarValue> {
        // Aliased: an unnamed column would be named after the expression,
        // which the literal analyzer rule rewrites (and DataFusion then
        // rejects the plan's changed schema).
        let sql = format!("SELECT {expr} AS v");
        let batches = self
            .ctx
            .sql(&sql)
            .await
            .map_err(TemporaError::from_datafusion)?
            .collect()
            .await
            .map_err(TemporaError::from_datafusion)?;
        let batch = batches
            .first()
            .filter(|b| b.num_rows() == 1)
            .ok_or_else(|| TemporaError::internal(format!("{expr} gave no value")))?;
        datafusion::common::ScalarValue::try_from_array(batch.column(0), 0)
            .map_err(TemporaError::from_datafusion)
    }
}

impl Drop for SqlSession {
    /// A connection that ends inside a block: the files its DELETEs and
    /// UPDATEs wrote are nobody's, and those it replaced stay as they are.
    fn drop(&mut self) {
        let written = self.tx_catalog.clear();
        self.engine.gc().retire(0, written);
        self.engine.release_files(&self.held_files);
    }
}

/// Runs `sql` over `batches` registered as table `name` in a scratch session
/// (used to project RETURNING and `SELECT ... FROM create_hypertable(...)`).
pub(crate) async fn query_rows(
    name: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let ctx = SessionContext::new();
    ctx.register_udf(tempora_query::time_bucket::time_bucket_udf());
    ctx.register_udf(tempora_query::expr_names::tempora_named_udf());
    let mem = datafusion::catalog::MemTable::try_new(schema, vec![batches])
        .map_err(TemporaError::from_datafusion)?;
    ctx.register_table(name, Arc::new(mem))
        .map_err(TemporaError::from_datafusion)?;
    let df = ctx.sql(sql).await.map_err(TemporaError::from_datafusion)?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(TemporaError::from_datafusion)?;
    Ok((schema, batches))
}

/// `declared` (a planned statement's column names and types) with the type
/// its analyzed or executed plan computes where the two differ in a way the
/// planner could not know: double precision for `real` (Tempora's analyzer
/// widens `real / integer` after the planner typed it), and a numeric's
/// scale (`round(x, 2)` folds its literal after; PostgreSQL's numeric values
/// carry their own scale, so a client sees no other type). Other
/// differences (a dictionary or view encoding of text) stay for [`conform`]
/// to undo.
fn with_computed_types(declared: &SchemaRef, computed: &SchemaRef) -> SchemaRef {
    fn widened(d: &DataType, c: &DataType) -> bool {
        match (d, c) {
            // An ARRAY of numeric literals beside floats (operand_types.rs).
            (DataType::List(d), DataType::List(c)) => widened(d.data_type(), c.data_type()),
            _ => {
                matches!(
                    (d, c),
                    (DataType::Float32, DataType::Float64)
                        | (DataType::Decimal128(..), DataType::Decimal128(..))
                        // A numeric literal beside a float (operand_types.rs).
                        | (DataType::Decimal128(..), DataType::Float64)
                        // A date plus an interval (operand_types.rs).
                        | (DataType::Date32, DataType::Timestamp(_, None))
                        // A sum of bigints (operand_types.rs).
                        | (DataType::Int64, DataType::Decimal128(..))
                ) && d != c
            }
        }
    }
    // A cast of a json or uuid value to text is text once analyzed.
    use tempora_query::jsonb::text_type;
    let differs = |d: &datafusion::arrow::datatypes::Field,
                   c: &datafusion::arrow::datatypes::Field| {
        widened(d.data_type(), c.data_type()) || text_type(d) != text_type(c)
    };
    if declared.fields().len() != computed.fields().len()
        || !declared
            .fields()
            .iter()
            .zip(computed.fields())
            .any(|(d, c)| differs(d, c))
    {
        return declared.clone();
    }
    Arc::new(datafusion::arrow::datatypes::Schema::new(
        declared
            .fields()
            .iter()
            .zip(computed.fields())
            .map(|(d, c)| {
                let mut f = d.as_ref().clone();
                if widened(d.data_type(), c.data_type()) {
                    f = f.with_data_type(c.data_type().clone());
                }
                if text_type(d) != text_type(c) {
                    let mut metadata = f.metadata().clone();
                    metadata.remove(tempora_catalog::PG_TYPE_KEY);
                    metadata.extend(
                        c.metadata()
                            .get(tempora_catalog::PG_TYPE_KEY)
                            .map(|v| (tempora_catalog::PG_TYPE_KEY.to_string(), v.clone())),
                    );
                    f = f.with_metadata(metadata);
                }
                f
            })
            .collect::<Vec<_>>(),
    ))
}

/// The result columns as the client sees them (generated name suffixes removed).
pub(crate) fn output_schema(schema: &datafusion::arrow::datatypes::Schema) -> SchemaRef {
    Arc::new(datafusion::arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_name(naming::output_name(f.name())))
            .collect::<Vec<_>>(),
    ))
}

/// PostgreSQL's error for a statement that ran past `statement_timeout`.
pub fn statement_timeout_error() -> TemporaError {
    TemporaError::new(
        SqlState::QUERY_CANCELED,
        "canceling statement due to statement timeout",
    )
}

/// The outcome of a query whose rows are sent as its plan computes them.
fn streamed(
    (stream, pin): (
        datafusion::execution::SendableRecordBatchStream,
        tempora_storage::ReadPin,
    ),
    schema: SchemaRef,
    deadline: Option<tokio::time::Instant>,
) -> (Outcome, Vec<Notice>) {
    let outcome = Outcome::Stream {
        schema,
        stream,
        deadline,
        pin,
    };
    (outcome, vec![])
}

/// Replaces the `$n` placeholders of a plan with values.
pub(crate) fn bind(plan: LogicalPlan, params: Option<ParamValues>) -> Result<LogicalPlan> {
    match params {
        Some(values) => plan
            .with_param_values(values)
            .map_err(TemporaError::from_datafusion),
        None => Ok(plan),
    }
}

/// Parameter types of a plan in `$1..$n` order.
pub(crate) fn param_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let mut types = plan
        .get_parameter_types()
        .map_err(TemporaError::from_datafusion)?;
    // `$1::bool`: DataFusion leaves the placeholder untyped; the cast names it.
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::{Cast, Expr};
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Cast(Cast { expr, field }) = e {
                    if let Expr::Placeholder(p) = expr.as_ref() {
                        let slot = types.entry(p.id.clone()).or_insert(None);
                        if slot.is_none() {
                            *slot = Some(field.data_type().clone());
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    let n = types
        .keys()
        .filter_map(|k| k.trim_start_matches('$').parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    Ok((1..=n)
        .map(|i| types.get(&format!("${i}")).cloned().flatten())
        .collect())
}

/// A single-column set-returning function in FROM with a bare alias names its
/// column after the alias, as in PostgreSQL: `FROM show_chunks('t') c` has column `c`.
/// A query as Tempora plans it: PostgreSQL's spellings DataFusion lacks
/// rewritten, set-returning calls moved to FROM, PostgreSQL's column names.
pub(crate) fn rewrite_query(stmt: Statement) -> Statement {
    let mut stmt = pg_compat::rewrite(rewrite_set_returning(stmt));
    alias_function_columns(&mut stmt);
    qualify_catalog_relations(&mut stmt);
    naming::apply(&mut stmt);
    // After pg_compat's catalog lookups (which it leaves alone, as they
    // aggregate) and after naming (a subquery's column keeps its name).
    subqueries::rewrite(&mut stmt);
    pg_compat::after_naming(&mut stmt);
    stmt
}

/// `pg_catalog` relations Tempora adds to the generic emulation's, found
/// unqualified as PostgreSQL finds them (pg_catalog is searched first).
const TEMPORA_PG_CATALOG_RELATIONS: &[&str] = &[
    "pg_available_extensions",
    "pg_indexes",
    "pg_prepared_statements",
    "pg_sequences",
];

/// Qualifies unqualified references to [`TEMPORA_PG_CATALOG_RELATIONS`].
pub(crate) fn qualify_catalog_relations(stmt: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectName, VisitMut, VisitorMut};
    struct Relations;
    impl VisitorMut for Relations {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> std::ops::ControlFlow<()> {
            if let [ObjectNamePart::Identifier(i)] = name.0.as_slice() {
                let folded = ddl::ident_name(i);
                if TEMPORA_PG_CATALOG_RELATIONS.contains(&folded.as_str()) {
                    name.0
                        .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Relations);
}

pub(crate) fn alias_function_columns(stmt: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{Query, VisitMut, VisitorMut};
    /// Every query of the statement: subqueries in FROM, CTEs, expressions.
    struct Queries;
    impl VisitorMut for Queries {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> std::ops::ControlFlow<()> {
            alias_function_columns_in(q);
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Queries);
}

fn alias_function_columns_in(q: &mut datafusion::sql::sqlparser::ast::Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return;
    };
    let relations = sel.from.iter_mut().flat_map(|t| {
        std::iter::once(&mut t.relation).chain(t.joins.iter_mut().map(|j| &mut j.relation))
    });
    for relation in relations {
        if let TableFactor::Table {
            name,
            args: Some(_),
            alias: Some(alias),
            ..
        } = relation
        {
            let single_column = matches!(
                function_name(name).as_str(),
                "show_chunks" | "generate_series" | "unnest"
            );
            if single_column && alias.columns.is_empty() {
                alias.columns = vec![
                    datafusion::sql::sqlparser::ast::TableAliasColumnDef::from_name(
                        alias.name.value.clone(),
                    ),
                ];
            }
        }
    }
}

/// `SELECT show_chunks('t')` (a set-returning function in the select list) as
/// `SELECT show_chunks FROM show_chunks('t')`, which DataFusion can plan.
fn rewrite_set_returning(stmt: Statement) -> Statement {
    if let Some(rewritten) = chunk_call_over_show_chunks(&stmt) {
        return rewritten;
    }
    let Some(call) = find_command_call(&stmt) else {
        return stmt;
    };
    if call.expand || call.name != "show_chunks" {
        return stmt;
    }
    let Statement::Query(q) = &stmt else {
        return stmt;
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return stmt;
    };
    let sql = match &sel.projection[0] {
        SelectItem::UnnamedExpr(f) => format!("SELECT show_chunks FROM {f}"),
        SelectItem::ExprWithAlias { expr, alias } => format!(
            "SELECT show_chunks AS {} FROM {expr}",
            ddl::quote_ident(&ddl::ident_name(alias))
        ),
        _ => return stmt,
    };
    match parse(&sql) {
        Ok(mut v) if v.len() == 1 => {
            let Statement::Query(mut nq) = v.remove(0) else {
                return stmt;
            };
            nq.order_by = q.order_by.clone();
            nq.limit_clause = q.limit_clause.clone();
            Statement::Query(nq)
        }
        _ => stmt,
    }
}

/// The functions that rewrite a chunk's files at once, which a ROLLBACK
/// could not undo.
const CHUNK_REWRITING_FUNCTIONS: &[&str] = &["compress_chunk", "decompress_chunk", "reorder_chunk"];

/// The first of [`CHUNK_REWRITING_FUNCTIONS`] a plan calls.
fn chunk_rewriting_call(plan: &LogicalPlan) -> Option<&'static str> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let datafusion::logical_expr::Expr::ScalarFunction(f) = e {
                    found = CHUNK_REWRITING_FUNCTIONS
                        .iter()
                        .find(|n| **n == f.func.name())
                        .copied();
                }
                Ok(if found.is_some() {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    });
    found
}

/// `SELECT compress_chunk(show_chunks('t', ...))` (a function of each row of
/// a set-returning call) as `SELECT compress_chunk(c) FROM show_chunks('t', ...) c`.
fn chunk_call_over_show_chunks(stmt: &Statement) -> Option<Statement> {
    let Statement::Query(q) = stmt else {
        return None;
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    if !sel.from.is_empty() || sel.projection.len() != 1 {
        return None;
    }
    let (SelectItem::UnnamedExpr(SqlExpr::Function(outer))
    | SelectItem::ExprWithAlias {
        expr: SqlExpr::Function(outer),
        ..
    }) = &sel.projection[0]
    else {
        return None;
    };
    let name = function_name(&outer.name);
    if !CHUNK_REWRITING_FUNCTIONS.contains(&name.as_str()) {
        return None;
    }
    let FunctionArguments::List(list) = &outer.args else {
        return None;
    };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Function(inner)))) =
        list.args.first()
    else {
        return None;
    };
    if function_name(&inner.name) != "show_chunks" {
        return None;
    }
    let mut call = outer.clone();
    if let FunctionArguments::List(l) = &mut call.args {
        l.args[0] = FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(
            "show_chunks".into(),
        )));
    }
    let alias = match &sel.projection[0] {
        SelectItem::ExprWithAlias { alias, .. } => format!(" AS {alias}"),
        _ => format!(" AS {name}"),
    };
    let sql = format!("SELECT {call}{alias} FROM {inner} AS show_chunks");
    let mut parsed = parse(&sql).ok()?;
    if parsed.len() != 1 {
        return None;
    }
    let Statement::Query(mut nq) = parsed.remove(0) else {
        return None;
    };
    nq.order_by = q.order_by.clone();
    nq.limit_clause = q.limit_clause.clone();
    Some(Statement::Query(nq))
}

/// DELETE or UPDATE, from the statement text (for messages).
fn statement_name_of(sql: &str) -> &'static str {
    if sql.trim_start().to_ascii_uppercase().starts_with("UPDATE") {
        "UPDATE"
    } else {
        "DELETE"
    }
}

/// TimescaleDB API calls Tempora does not implement, named with what they
/// do, so that a script meets 0A000 rather than "function does not exist".
fn unsupported_timescaledb_call(name: &str) -> Option<&'static str> {
    Some(match name {
        "by_hash" => "by_hash outside create_hypertable and add_dimension",
        "add_reorder_policy" | "remove_reorder_policy" => "add_reorder_policy (reorder policies)",
        "move_chunk" | "attach_tablespace" | "detach_tablespace" | "detach_tablespaces" => {
            "tablespaces for chunks"
        }
        "merge_chunks" | "split_chunk" => "merging and splitting chunks",
        "add_job" => "add_job (user-defined jobs)",
        "create_distributed_hypertable" | "add_data_node" | "delete_data_node" => {
            "multi-node hypertables"
        }
        _ => return None,
    })
}

/// The 0A000 error for a statement Tempora does not run, naming its command
/// (`CREATE FUNCTION is not supported`).
pub(crate) fn unsupported_statement(stmt: &Statement) -> TemporaError {
    let name = statement_name(stmt);
    if name != "this statement" {
        return TemporaError::not_supported(name);
    }
    // The command's leading keywords, as PostgreSQL names commands: the verb,
    // and for CREATE / ALTER / DROP the kind of object, past its modifiers.
    let text = stmt.to_string();
    let mut words = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty());
    let mut command = match words.next() {
        Some(verb) => verb.to_ascii_uppercase(),
        None => return TemporaError::not_supported(name),
    };
    if matches!(command.as_str(), "CREATE" | "ALTER" | "DROP") {
        let modifiers = [
            "OR",
            "REPLACE",
            "TEMP",
            "TEMPORARY",
            "UNIQUE",
            "IF",
            "NOT",
            "EXISTS",
        ];
        if let Some(object) = words.find(|w| !modifiers.contains(&w.to_ascii_uppercase().as_str()))
        {
            command.push(' ');
            command.push_str(&object.to_ascii_uppercase());
        }
    }
    TemporaError::not_supported(command)
}

/// The SQL command name of a statement, for messages and tags.
pub fn statement_name(stmt: &Statement) -> &'static str {
    match stmt {
        Statement::Query(_) => "SELECT",
        Statement::Insert(_) => "INSERT",
        Statement::Update(..) => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView(..) => "CREATE VIEW",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        Statement::DropFunction(_) => "DROP FUNCTION",
        Statement::CreateIndex(_) => "CREATE INDEX",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateExtension(..) => "CREATE EXTENSION",
        Statement::AlterTable(..) => "ALTER TABLE",
        Statement::Drop { .. } => "DROP",
        Statement::Truncate(..) => "TRUNCATE",
        Statement::Copy { .. } => "COPY",
        Statement::Merge(..) => "MERGE",
        Statement::Call(_) => "CALL",
        Statement::Analyze(..) => "ANALYZE",
        Statement::Comment { .. } => "COMMENT",
        Statement::Grant(..) => "GRANT",
        Statement::Prepare { .. } => "PREPARE",
        Statement::Execute { .. } => "EXECUTE",
        Statement::Declare { .. } => "DECLARE",
        Statement::Fetch { .. } => "FETCH",
        _ => "this statement",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_among_other_statements() {
        let sql =
            "INSERT INTO t VALUES ('a;b', 'it''s'); CHECKPOINT;\nSELECT ';' -- CHECKPOINT; x\n";
        assert_eq!(
            split_statements(sql).unwrap(),
            vec![
                "INSERT INTO t VALUES ('a;b', 'it''s')",
                " CHECKPOINT",
                "\nSELECT ';' -- CHECKPOINT; x\n"
            ]
        );
        let parsed = parse_query(sql).unwrap();
        assert_eq!(parsed.len(), 3);
        assert!(matches!(parsed[1], ParsedStatement::Checkpoint));
        match &parsed[0] {
            ParsedStatement::Sql { stmt, .. } => {
                assert_eq!(stmt.to_string(), "INSERT INTO t VALUES ('a;b', 'it''s')")
            }
            other => panic!("{other:?}"),
        }
        // Without CHECKPOINT the parser reads the whole string as before.
        assert_eq!(
            parse_query("SELECT 1; SELECT 'checkpoint'").unwrap().len(),
            2
        );
        assert!(matches!(
            parse_query(" checkpoint ; ").unwrap()[..],
            [ParsedStatement::Checkpoint]
        ));
    }

    #[test]
    fn vacuum_options_are_read() {
        assert_eq!(
            plain_vacuum("VACUUM ANALYZE t;").as_deref(),
            Some("VACUUM t")
        );
        assert_eq!(
            plain_vacuum("vacuum (verbose, analyze) t").as_deref(),
            Some("VACUUM t")
        );
        assert_eq!(plain_vacuum("VACUUM VERBOSE").as_deref(), Some("VACUUM "));
        assert_eq!(plain_vacuum("VACUUM t"), None);
        assert_eq!(plain_vacuum("VACUUM FULL t"), None);
        assert_eq!(plain_vacuum("SELECT 1"), None);
    }

    #[test]
    fn timescaledb_table_options_are_read_among_other_statements() {
        let parsed = parse_query(
            "SELECT 1; ALTER TABLE t SET (timescaledb.compress, timescaledb.compress_segmentby = 'd'); SELECT 2",
        )
        .unwrap();
        assert_eq!(parsed.len(), 3);
        assert!(matches!(parsed[1], ParsedStatement::TableOptions(_)));
    }
}
