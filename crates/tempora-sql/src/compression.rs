//! `ALTER TABLE t SET (timescaledb.compress, timescaledb.compress_segmentby =
//! '...', timescaledb.compress_orderby = '...')` and `RESET (...)`: a
//! hypertable's compression settings, with the 2.18+ spellings
//! (`timescaledb.enable_columnstore`, `timescaledb.segmentby`,
//! `timescaledb.orderby`) and the `tsdb.` prefix.
//!
//! The SQL parser does not read dotted option names, so the statement is
//! read here from its tokens.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use tempora_catalog::{CatalogOp, CompressionSettings, JobKind, OrderByColumn, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{Notice, Outcome, SqlSession};

/// `ALTER TABLE [IF EXISTS] [ONLY] name SET|RESET (option [= value], ...)`
/// with TimescaleDB options.
#[derive(Debug, Clone, PartialEq)]
pub struct TableOptions {
    /// `ALTER MATERIALIZED VIEW`: options of a continuous aggregate.
    pub(crate) view: bool,
    pub(crate) if_exists: bool,
    /// The table as written (`t`, `s.t`, `"T"`).
    pub(crate) table: String,
    pub(crate) reset: bool,
    /// (option name lowercased, value) pairs.
    pub(crate) options: Vec<TableOption>,
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_lowercase()),
        _ => None,
    }
}

fn is_word(t: Option<&Token>, w: &str) -> bool {
    t.and_then(word).is_some_and(|x| x == w)
}

/// Reads the statement if it is an `ALTER TABLE ... SET|RESET (...)` naming
/// at least one TimescaleDB option; None for any other text.
pub fn parse_table_options(sql: &str) -> Option<Result<TableOptions>> {
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("timescaledb.") && !lower.contains("tsdb.") {
        return None;
    }
    let tokens: Vec<Token> = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut i = 0;
    let next = |i: &mut usize| {
        *i += 1;
        tokens.get(*i - 1)
    };
    if !is_word(next(&mut i), "alter") {
        return None;
    }
    let view = match next(&mut i).and_then(word).as_deref() {
        Some("table") => false,
        Some("materialized") if is_word(next(&mut i), "view") => true,
        _ => return None,
    };
    let mut t = next(&mut i);
    let mut if_exists = false;
    if is_word(t, "if") {
        if !is_word(next(&mut i), "exists") {
            return None;
        }
        if_exists = true;
        t = next(&mut i);
    }
    if is_word(t, "only") {
        t = next(&mut i);
    }
    // The name: identifiers joined by dots.
    let mut table = String::new();
    loop {
        match t? {
            Token::Word(w) => table.push_str(&w.to_string()),
            _ => return None,
        }
        t = next(&mut i);
        if t == Some(&Token::Period) {
            table.push('.');
            t = next(&mut i);
        } else {
            break;
        }
    }
    let reset = match t.and_then(word).as_deref() {
        Some("set") => false,
        Some("reset") => true,
        _ => return None,
    };
    let (options, used) = option_list(&tokens[i..])?;
    i += used;
    match next(&mut i) {
        None | Some(Token::SemiColon) => {}
        _ => return None,
    }
    if next(&mut i).is_some() {
        return None;
    }
    if !options
        .iter()
        .any(|(n, _)| n.starts_with("timescaledb.") || n.starts_with("tsdb."))
    {
        return None;
    }
    Some(Ok(TableOptions {
        view,
        if_exists,
        table,
        reset,
        options,
    }))
}

/// One `name [= value]` option (name lowercased).
pub(crate) type TableOption = (String, Option<String>);

/// A parenthesized list of `name [= value]` options with dotted names
/// (`(timescaledb.compress, timescaledb.segmentby = 'a')`) at the start of
/// `tokens` (whitespace removed): the options, names lowercased, and the
/// number of tokens read.
pub(crate) fn option_list(tokens: &[Token]) -> Option<(Vec<TableOption>, usize)> {
    let mut i = 0;
    let mut next = || {
        i += 1;
        tokens.get(i - 1)
    };
    if next() != Some(&Token::LParen) {
        return None;
    }
    let mut options = Vec::new();
    loop {
        let mut name = String::new();
        let mut t;
        loop {
            match next()? {
                Token::Word(w) => name.push_str(&w.value.to_lowercase()),
                _ => return None,
            }
            match next()? {
                Token::Period => name.push('.'),
                other => {
                    t = Some(other);
                    break;
                }
            }
        }
        let mut value = None;
        if t == Some(&Token::Eq) {
            value = Some(match next()? {
                Token::SingleQuotedString(s) => s.clone(),
                Token::Number(n, _) => n.clone(),
                Token::Word(w) => w.value.clone(),
                _ => return None,
            });
            t = next();
        }
        options.push((name, value));
        match t? {
            Token::Comma => continue,
            Token::RParen => break,
            _ => return None,
        }
    }
    Some((options, i))
}

fn invalid(message: impl Into<String>) -> TemporaError {
    TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, message)
}

/// A boolean option's value (no value: true).
pub(crate) fn boolean(name: &str, value: Option<&str>) -> Result<bool> {
    match value.map(|v| v.trim().to_lowercase()).as_deref() {
        None | Some("true" | "on" | "t" | "yes" | "1") => Ok(true),
        Some("false" | "off" | "f" | "no" | "0") => Ok(false),
        Some(other) => Err(invalid(format!(
            "invalid value for {name} '{other}': a boolean is expected"
        ))),
    }
}

/// A column list (`'a, b'`); each must be a column of the table.
fn columns(table: &TableDef, option: &str, value: Option<&str>) -> Result<Vec<String>> {
    let value = value.unwrap_or("");
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = ident(part);
        if table.column(&name).is_none() {
            return Err(
                bad_setting(format!("column \"{name}\" does not exist")).with_hint(format!(
                    "The timescaledb.{option} option must reference a valid column."
                )),
            );
        }
        if out.contains(&name) {
            return Err(duplicate_column(&name, option));
        }
        out.push(name);
    }
    Ok(out)
}

/// A segmentby or orderby setting TimescaleDB cannot read: 42601, as it
/// reports these.
fn bad_setting(message: String) -> TemporaError {
    TemporaError::new(SqlState::SYNTAX_ERROR, message)
}

/// A column named twice in a segmentby or orderby setting.
fn duplicate_column(column: &str, option: &str) -> TemporaError {
    bad_setting(format!("duplicate column name \"{column}\"")).with_hint(format!(
        "The timescaledb.{option} option must reference distinct column."
    ))
}

/// An identifier: unquoted ones fold to lower case.
fn ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(q) => q.replace("\"\"", "\""),
        None => s.to_lowercase(),
    }
}

/// `'time DESC, x ASC NULLS FIRST'`.
fn orderby(table: &TableDef, value: Option<&str>) -> Result<Vec<OrderByColumn>> {
    let mut out: Vec<OrderByColumn> = Vec::new();
    for item in value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let words: Vec<&str> = item.split_whitespace().collect();
        let column = ident(words[0]);
        if table.column(&column).is_none() {
            return Err(
                bad_setting(format!("column \"{column}\" does not exist")).with_hint(
                    "The timescaledb.compress_orderby option must reference a valid column.",
                ),
            );
        }
        let rest: Vec<String> = words[1..].iter().map(|w| w.to_lowercase()).collect();
        let (asc, tail) = match rest.first().map(String::as_str) {
            Some("asc") => (true, &rest[1..]),
            Some("desc") => (false, &rest[1..]),
            _ => (true, &rest[..]),
        };
        let nulls_first = match tail.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] => !asc,
            ["nulls", "first"] => true,
            ["nulls", "last"] => false,
            _ => {
                // The first word that cannot continue `column [ASC|DESC]`.
                let words: Vec<&str> = tail.iter().map(String::as_str).collect();
                let near = match words[..] {
                    ["nulls", next, ..] if next != "first" && next != "last" => next,
                    ["nulls", _, extra, ..] => extra,
                    [first, ..] => first,
                    [] => "",
                };
                return Err(bad_setting(format!(
                    "unable to parse ordering option \"{item}\""
                ))
                .with_detail(format!("syntax error at or near \"{near}\""))
                .with_hint("The timescaledb.compress_orderby option must be a set of column names with sort options, separated by commas. It is the same format as an ORDER BY clause."));
            }
        };
        if out.iter().any(|o| o.column == column) {
            return Err(duplicate_column(&column, "compress_orderby"));
        }
        out.push(OrderByColumn {
            column,
            asc,
            nulls_first,
        });
    }
    Ok(out)
}

/// TimescaleDB's default order: the time column, newest first.
fn default_orderby(table: &TableDef) -> Vec<OrderByColumn> {
    table
        .hypertable
        .as_ref()
        .map(|h| {
            vec![OrderByColumn {
                column: h.time_column.clone(),
                asc: false,
                nulls_first: true,
            }]
        })
        .unwrap_or_default()
}

impl TableOptions {
    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        if self.view {
            return crate::caggs::alter_view(session, self).await;
        }
        session.reject_write_in_block("ALTER TABLE")?;
        let engine = session.engine();
        let state = engine.catalog().snapshot();
        let (schema, name) = tempora_query::split_qualified(&self.table);
        let Some(table) = state.table(&schema, &name) else {
            if self.if_exists {
                return Ok((
                    Outcome::Command("ALTER TABLE".into()),
                    vec![Notice::info(
                        SqlState::UNDEFINED_TABLE,
                        format!("relation \"{name}\" does not exist, skipping"),
                    )],
                ));
            }
            return Err(TemporaError::undefined_table(&self.table));
        };
        if !table.is_hypertable() {
            return Err(invalid(
                "timescaledb table options can only be specified for hypertables",
            ));
        }
        let settings = self.apply(table)?;
        if settings.is_none() && table.compression.is_some() {
            if table.chunks.values().any(|c| c.compression.is_some()) {
                return Err(TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "cannot disable columnstore on hypertable with columnstore chunks",
                ));
            }
            if state
                .jobs
                .values()
                .any(|j| j.oid == table.oid && matches!(j.kind, JobKind::Compression { .. }))
            {
                return Err(TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "cannot disable columnstore on hypertable with a columnstore policy",
                )
                .with_hint("Remove the policy with remove_compression_policy() first."));
            }
        }
        let oid = table.oid;
        engine
            .catalog()
            .commit(|state| {
                let t = state
                    .table_by_oid(oid)
                    .ok_or_else(|| TemporaError::undefined_table(&self.table))?;
                if settings.is_none() && t.chunks.values().any(|c| c.compression.is_some()) {
                    return Err(TemporaError::not_supported(
                        "cannot disable columnstore on hypertable with columnstore chunks",
                    ));
                }
                Ok(vec![CatalogOp::SetCompression {
                    oid,
                    settings: settings.clone(),
                }])
            })
            .await?;
        Ok((Outcome::Command("ALTER TABLE".into()), vec![]))
    }

    /// The table's compression settings after the statement (None: disabled).
    fn apply(&self, table: &TableDef) -> Result<Option<CompressionSettings>> {
        let mut enable: Option<bool> = None;
        let mut segmentby: Option<Vec<String>> = None;
        let mut order: Option<Vec<OrderByColumn>> = None;
        for (option, value) in &self.options {
            let short = option
                .strip_prefix("timescaledb.")
                .or_else(|| option.strip_prefix("tsdb."))
                .ok_or_else(|| {
                    TemporaError::not_supported(format!(
                        "ALTER TABLE ... SET ({option}) together with timescaledb options"
                    ))
                })?;
            let value = if self.reset { None } else { value.as_deref() };
            match short {
                "compress" | "enable_columnstore" | "columnstore" => {
                    enable = Some(!self.reset && boolean(option, value)?);
                }
                "compress_segmentby" | "segmentby" => {
                    segmentby = Some(columns(table, "compress_segmentby", value)?);
                }
                "compress_orderby" | "orderby" => {
                    // Reset or empty: the default order.
                    order = Some(if self.reset {
                        vec![]
                    } else {
                        orderby(table, value)?
                    });
                }
                "compress_chunk_time_interval" | "compress_chunk_interval" => {
                    return Err(TemporaError::not_supported(format!(
                        "timescaledb.{short} (merging chunks when they are compressed)"
                    )));
                }
                _ => {
                    return Err(invalid(format!("unrecognized parameter \"{option}\""))
                        .with_hint("Valid timescaledb parameters are: chunk_interval, compress, compress_segmentby, compress_orderby, compress_chunk_interval, compress_index"));
                }
            }
        }
        let enabled = enable.unwrap_or(true);
        if !enabled {
            return Ok(None);
        }
        let current = table.compression.clone();
        let mut settings = current.unwrap_or_else(|| CompressionSettings {
            segmentby: vec![],
            orderby: default_orderby(table),
            orderby_default: true,
        });
        if let Some(s) = segmentby {
            settings.segmentby = s;
        }
        if let Some(o) = order {
            settings.orderby_default = o.is_empty();
            settings.orderby = if o.is_empty() {
                default_orderby(table)
            } else {
                o
            };
        }
        if let Some(c) = settings
            .orderby
            .iter()
            .find(|o| settings.segmentby.contains(&o.column))
        {
            return Err(bad_setting(format!(
                "cannot use column \"{}\" for both ordering and segmenting",
                c.column
            ))
            .with_hint("Use separate columns for the timescaledb.compress_orderby and timescaledb.compress_segmentby options."));
        }
        Ok(Some(settings))
    }
}

/// The procedures of TimescaleDB 2.18+'s columnstore API as the functions
/// they stand for: `CALL convert_to_columnstore(c)` is `compress_chunk(c)`,
/// `convert_to_rowstore` `decompress_chunk`, `add_columnstore_policy`
/// `add_compression_policy` and `remove_columnstore_policy`
/// `remove_compression_policy`, with their parameters' names mapped. None
/// for any other statement.
pub(crate) fn columnstore_procedure(
    stmt: &datafusion::sql::sqlparser::ast::Statement,
) -> Result<Option<datafusion::sql::sqlparser::ast::Statement>> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArguments, Ident, Statement};
    let Statement::Call(f) = stmt else {
        return Ok(None);
    };
    let (function, renames): (&str, &[(&str, &str)]) = match crate::function_name(&f.name).as_str()
    {
        "convert_to_columnstore" => (
            "compress_chunk",
            &[("if_not_columnstore", "if_not_compressed")],
        ),
        "convert_to_rowstore" => ("decompress_chunk", &[("if_columnstore", "if_compressed")]),
        "add_columnstore_policy" => (
            "add_compression_policy",
            &[
                ("after", "compress_after"),
                ("created_before", "compress_created_before"),
            ],
        ),
        "remove_columnstore_policy" => ("remove_compression_policy", &[]),
        _ => return Ok(None),
    };
    let mut call = f.clone();
    call.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![Ident::new(function)]);
    if let FunctionArguments::List(list) = &mut call.args {
        for arg in &mut list.args {
            let name = match arg {
                FunctionArg::Named { name, .. } => name,
                FunctionArg::ExprNamed {
                    name: datafusion::sql::sqlparser::ast::Expr::Identifier(name),
                    ..
                } => name,
                _ => continue,
            };
            if let Some((_, to)) = renames
                .iter()
                .find(|(from, _)| name.value.eq_ignore_ascii_case(from))
            {
                *name = Ident::new(*to);
            }
        }
    }
    let mut parsed = crate::parse(&format!("SELECT {call}"))?;
    Ok(parsed.pop())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> Option<TableOptions> {
        parse_table_options(sql).map(|r| r.unwrap())
    }

    #[test]
    fn reads_timescaledb_options() {
        let o = parsed(
            "ALTER TABLE IF EXISTS s.t SET (timescaledb.compress, timescaledb.compress_segmentby = 'a, b', timescaledb.compress_orderby = 'time DESC');",
        )
        .unwrap();
        assert!(o.if_exists);
        assert_eq!(o.table, "s.t");
        assert!(!o.reset);
        assert_eq!(
            o.options,
            vec![
                ("timescaledb.compress".to_string(), None),
                (
                    "timescaledb.compress_segmentby".to_string(),
                    Some("a, b".to_string())
                ),
                (
                    "timescaledb.compress_orderby".to_string(),
                    Some("time DESC".to_string())
                ),
            ]
        );
        let o = parsed("alter table t reset (timescaledb.compress_segmentby)").unwrap();
        assert!(o.reset);
        let o = parsed("ALTER TABLE t SET (tsdb.enable_columnstore = false)").unwrap();
        assert_eq!(o.options[0].1.as_deref(), Some("false"));
    }

    #[test]
    fn leaves_other_statements_alone() {
        assert!(parsed("ALTER TABLE t SET (fillfactor = 70)").is_none());
        assert!(parsed("SELECT 'timescaledb.compress'").is_none());
        assert!(parsed("ALTER TABLE t ADD COLUMN x int").is_none());
        assert!(parsed("ALTER TABLE t SET (timescaledb.compress); SELECT 1").is_none());
    }
}
