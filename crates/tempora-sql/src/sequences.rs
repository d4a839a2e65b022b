//! CREATE SEQUENCE, ALTER SEQUENCE and DROP SEQUENCE. The SQL parser reads
//! CREATE SEQUENCE's options in one order only and has no ALTER SEQUENCE,
//! so both are read here from tokens, options in any order as PostgreSQL
//! takes them. Values are handed out by the engine (`nextval`).

use datafusion::sql::sqlparser::ast::ObjectName;
use datafusion::sql::sqlparser::tokenizer::Token;
use tempora_catalog::{CatalogOp, CatalogState, PgType, SequenceDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::tokens::Cursor;
use crate::{Notice, Outcome, SqlSession};

/// A parsed CREATE or ALTER SEQUENCE.
#[derive(Debug, Clone)]
pub struct SequenceCommand {
    action: Action,
    schema: String,
    name: String,
    options: Options,
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Create { if_not_exists: bool },
    Alter { if_exists: bool },
    Rename { if_exists: bool, to: String },
}

/// The options given; None where the statement says nothing.
#[derive(Debug, Clone, Default)]
struct Options {
    type_oid: Option<u32>,
    increment: Option<i64>,
    /// `MINVALUE n` (Some(Some)) or `NO MINVALUE` (Some(None)).
    min: Option<Option<i64>>,
    max: Option<Option<i64>>,
    start: Option<i64>,
    /// `RESTART` (Some(None)) or `RESTART WITH n`.
    restart: Option<Option<i64>>,
    cache: Option<i64>,
    cycle: Option<bool>,
    /// `OWNED BY table.column` (Some(Some)) or `OWNED BY NONE`.
    owned_by: Option<Option<ObjectName>>,
}

/// Reads `CREATE SEQUENCE` or `ALTER SEQUENCE`; None for any other text.
pub fn parse(sql: &str) -> Option<Result<SequenceCommand>> {
    let head = sql.trim_start().get(..6)?;
    if !head.eq_ignore_ascii_case("create") && !head.eq_ignore_ascii_case("alter ") {
        return None;
    }
    let mut c = Cursor::new(sql)?;
    let create = c.eat("create");
    if !create && !c.eat("alter") {
        return None;
    }
    let temporary = create && (c.eat("temp") || c.eat("temporary"));
    // An unlogged sequence is kept as durably as any other.
    if create && !temporary {
        c.eat("unlogged");
    }
    if !c.eat("sequence") {
        return None;
    }
    if temporary {
        return Some(Err(TemporaError::not_supported(
            "CREATE TEMPORARY SEQUENCE",
        )));
    }
    Some(parse_rest(&mut c, create))
}

fn parse_rest(c: &mut Cursor, create: bool) -> Result<SequenceCommand> {
    let mut if_exists = false;
    let mut if_not_exists = false;
    if c.eat("if") {
        if create {
            c.expect("not")?;
            if_not_exists = true;
        } else {
            if_exists = true;
        }
        c.expect("exists")?;
    }
    let (schema, name) = crate::ddl::object_name(&c.name()?)?;
    let mut action = if create {
        Action::Create { if_not_exists }
    } else {
        Action::Alter { if_exists }
    };
    let mut options = Options::default();
    if !create && c.eat("rename") {
        c.expect("to")?;
        let to = c.name()?;
        let (_, to) = crate::ddl::object_name(&to)?;
        action = Action::Rename { if_exists, to };
    } else if !create
        && (c.word().as_deref() == Some("owner") || c.word().as_deref() == Some("set"))
    {
        return Err(TemporaError::not_supported(format!(
            "ALTER SEQUENCE ... {}",
            c.word().unwrap_or_default().to_uppercase()
        )));
    } else {
        read_options(c, create, &mut options)?;
    }
    if c.peek() == Some(&Token::SemiColon) {
        c.at += 1;
    }
    if c.peek().is_some() {
        return Err(c.error());
    }
    Ok(SequenceCommand {
        action,
        schema,
        name,
        options,
    })
}

fn read_options(c: &mut Cursor, create: bool, o: &mut Options) -> Result<()> {
    fn set<T>(slot: &mut Option<T>, value: T, c: &Cursor, at: usize) -> Result<()> {
        if slot.is_some() {
            return Err(TemporaError::syntax("conflicting or redundant options")
                .with_position(c.position_of(at)));
        }
        *slot = Some(value);
        Ok(())
    }
    while let Some(word) = c.word() {
        let at = c.at;
        c.at += 1;
        match word.as_str() {
            "as" => {
                let mut words = vec![];
                while let Some(w) = c.word() {
                    if is_option_word(&w) && !words.is_empty() {
                        break;
                    }
                    words.push(w);
                    c.at += 1;
                }
                let ty = crate::ddl::pg_type(&words.join(" "))?;
                let oid = match ty {
                    PgType::Int2 => 21,
                    PgType::Int4 => 23,
                    PgType::Int8 => 20,
                    _ => {
                        return Err(TemporaError::new(
                            SqlState::INVALID_PARAMETER_VALUE,
                            "sequence type must be smallint, integer, or bigint",
                        ))
                    }
                };
                set(&mut o.type_oid, oid, c, at)?;
            }
            "increment" => {
                c.eat("by");
                let n = c.number()?;
                set(&mut o.increment, n, c, at)?;
            }
            "minvalue" => {
                let n = c.number()?;
                set(&mut o.min, Some(n), c, at)?;
            }
            "maxvalue" => {
                let n = c.number()?;
                set(&mut o.max, Some(n), c, at)?;
            }
            "no" => match c.word().as_deref() {
                Some("minvalue") => {
                    c.at += 1;
                    set(&mut o.min, None, c, at)?;
                }
                Some("maxvalue") => {
                    c.at += 1;
                    set(&mut o.max, None, c, at)?;
                }
                Some("cycle") => {
                    c.at += 1;
                    set(&mut o.cycle, false, c, at)?;
                }
                _ => return Err(c.error()),
            },
            "start" => {
                c.eat("with");
                let n = c.number()?;
                set(&mut o.start, n, c, at)?;
            }
            "restart" if !create => {
                let with = c.eat("with");
                let n = if with || matches!(c.peek(), Some(Token::Number(..) | Token::Minus)) {
                    Some(c.number()?)
                } else {
                    None
                };
                set(&mut o.restart, n, c, at)?;
            }
            "cache" => {
                let n = c.number()?;
                set(&mut o.cache, n, c, at)?;
            }
            "cycle" => set(&mut o.cycle, true, c, at)?,
            "owned" => {
                c.expect("by")?;
                let target = if c.eat("none") { None } else { Some(c.name()?) };
                set(&mut o.owned_by, target, c, at)?;
            }
            _ => {
                c.at = at;
                return Err(c.error());
            }
        }
    }
    Ok(())
}

fn is_option_word(w: &str) -> bool {
    matches!(
        w,
        "increment"
            | "minvalue"
            | "maxvalue"
            | "no"
            | "start"
            | "restart"
            | "cache"
            | "cycle"
            | "owned"
    )
}

/// The name and bounds of a sequence value type.
fn type_bounds(oid: u32) -> (&'static str, i64, i64) {
    match oid {
        21 => ("smallint", i16::MIN.into(), i16::MAX.into()),
        23 => ("integer", i32::MIN.into(), i32::MAX.into()),
        _ => ("bigint", i64::MIN, i64::MAX),
    }
}

fn invalid(message: String) -> TemporaError {
    TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, message)
}

/// Applies `o` to `seq` (a new sequence's defaults, or the one altered)
/// and checks the result as PostgreSQL does.
fn apply_options(seq: &mut SequenceDef, o: &Options, creating: bool) -> Result<()> {
    let old_type = seq.value_type_oid();
    let (_, old_low, old_high) = type_bounds(old_type);
    let type_oid = o.type_oid.unwrap_or(old_type);
    let (type_name, low, high) = type_bounds(type_oid);
    if let Some(increment) = o.increment {
        if increment == 0 {
            return Err(invalid("INCREMENT must not be zero".into()));
        }
        seq.increment = increment;
    }
    let ascending = seq.increment > 0;
    // A bound left at its type's limit follows a change of type, as in PostgreSQL.
    seq.max = match o.max {
        Some(Some(v)) => v,
        Some(None) => {
            if ascending {
                high
            } else {
                -1
            }
        }
        None if creating || o.increment.is_some_and(|_| seq.max == -1 && ascending) => {
            if ascending {
                high
            } else {
                -1
            }
        }
        None if seq.max == old_high => high,
        None => seq.max,
    };
    seq.min = match o.min {
        Some(Some(v)) => v,
        Some(None) => {
            if ascending {
                1
            } else {
                low
            }
        }
        None if creating || o.increment.is_some_and(|_| seq.min == 1 && !ascending) => {
            if ascending {
                1
            } else {
                low
            }
        }
        None if seq.min == old_low => low,
        None => seq.min,
    };
    if o.type_oid.is_some() || creating {
        seq.type_oid = Some(type_oid);
    }
    for (label, v) in [("MAXVALUE", seq.max), ("MINVALUE", seq.min)] {
        if v < low || v > high {
            return Err(invalid(format!(
                "{label} ({v}) is out of range for sequence data type {type_name}"
            )));
        }
    }
    if seq.min >= seq.max {
        return Err(invalid(format!(
            "MINVALUE ({}) must be less than MAXVALUE ({})",
            seq.min, seq.max
        )));
    }
    match o.start {
        Some(v) => seq.start = v,
        None if creating => seq.start = if ascending { seq.min } else { seq.max },
        None => {}
    }
    check_in_bounds("START", seq.start, seq)?;
    if let Some(restart) = o.restart {
        let value = restart.unwrap_or(seq.start);
        check_in_bounds("RESTART", value, seq)?;
        seq.reserved = Some(value);
        seq.pending = true;
    }
    if let Some(cache) = o.cache {
        if cache <= 0 {
            return Err(invalid(format!(
                "CACHE ({cache}) must be greater than zero"
            )));
        }
        seq.cache = cache;
    }
    if let Some(cycle) = o.cycle {
        seq.cycle = cycle;
    }
    Ok(())
}

fn check_in_bounds(label: &str, value: i64, seq: &SequenceDef) -> Result<()> {
    if value < seq.min {
        return Err(invalid(format!(
            "{label} value ({value}) cannot be less than MINVALUE ({})",
            seq.min
        )));
    }
    if value > seq.max {
        return Err(invalid(format!(
            "{label} value ({value}) cannot be greater than MAXVALUE ({})",
            seq.max
        )));
    }
    Ok(())
}

/// The table and column `OWNED BY` names, which must be in the sequence's schema.
fn owner_of(
    state: &CatalogState,
    schema: &str,
    target: &Option<ObjectName>,
) -> Result<Option<(u32, String)>> {
    let Some(target) = target else {
        return Ok(None);
    };
    let mut parts = target.0.clone();
    let column = parts.pop().filter(|_| !parts.is_empty()).ok_or_else(|| {
        TemporaError::syntax("invalid OWNED BY option")
            .with_hint("Specify OWNED BY table.column or OWNED BY NONE.")
    })?;
    let column = crate::ddl::object_name(&ObjectName(vec![column]))?.1;
    let (table_schema, table) = crate::ddl::object_name(&ObjectName(parts))?;
    let Some(def) = state.table(&table_schema, &table) else {
        return Err(TemporaError::undefined_table(&table));
    };
    if table_schema != schema {
        return Err(TemporaError::new(
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "sequence must be in same schema as table it is linked to",
        ));
    }
    if !def.columns.iter().any(|c| c.name == column) {
        return Err(TemporaError::new(
            SqlState::UNDEFINED_COLUMN,
            format!("column \"{column}\" of relation \"{table}\" does not exist"),
        ));
    }
    Ok(Some((def.oid, column)))
}

fn not_a_sequence(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::WRONG_OBJECT_TYPE,
        format!("\"{name}\" is not a sequence"),
    )
}

impl SequenceCommand {
    pub(crate) fn tag(&self) -> &'static str {
        match self.action {
            Action::Create { .. } => "CREATE SEQUENCE",
            _ => "ALTER SEQUENCE",
        }
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let mut notices = vec![];
        let (schema, name) = (&self.schema, &self.name);
        session
            .engine()
            .change_sequences(|state| {
                notices.clear();
                let existing = state.sequence(schema, name);
                match &self.action {
                    Action::Create { if_not_exists } => {
                        if !state.schema_exists(schema) {
                            return Err(crate::ddl::no_schema(schema));
                        }
                        if state.relation_exists(schema, name) {
                            if *if_not_exists {
                                notices.push(Notice::info(
                                    SqlState::DUPLICATE_TABLE,
                                    format!("relation \"{name}\" already exists, skipping"),
                                ));
                                return Ok(vec![]);
                            }
                            return Err(TemporaError::new(
                                SqlState::DUPLICATE_TABLE,
                                format!("relation \"{name}\" already exists"),
                            ));
                        }
                        let mut seq = SequenceDef::new(state.next_oid, schema, name);
                        apply_options(&mut seq, &self.options, true)?;
                        if let Some(target) = &self.options.owned_by {
                            seq.owned_by = owner_of(state, schema, target)?;
                        }
                        Ok(vec![CatalogOp::PutSequence(seq)])
                    }
                    Action::Alter { if_exists } | Action::Rename { if_exists, .. } => {
                        let Some(current) = existing else {
                            if state.relation_exists(schema, name) {
                                return Err(not_a_sequence(name));
                            }
                            if *if_exists {
                                notices.push(Notice::info(
                                    SqlState::SUCCESSFUL_COMPLETION,
                                    format!("relation \"{name}\" does not exist, skipping"),
                                ));
                                return Ok(vec![]);
                            }
                            return Err(TemporaError::undefined_table(name));
                        };
                        let mut seq = current.clone();
                        if let Action::Rename { to, .. } = &self.action {
                            return rename(state, &seq, to);
                        }
                        apply_options(&mut seq, &self.options, false)?;
                        if let Some(target) = &self.options.owned_by {
                            seq.owned_by = owner_of(state, schema, target)?;
                        }
                        // Keeps its position unless restarted.
                        if self.options.restart.is_none() {
                            seq.reserved = current.reserved;
                            seq.pending = current.pending;
                        }
                        Ok(vec![CatalogOp::PutSequence(seq)])
                    }
                }
            })
            .await?;
        Ok((Outcome::Command(self.tag().into()), notices))
    }
}

/// Whether a column DEFAULT calls `nextval` on the sequence.
fn default_uses(default: &str, seq: &SequenceDef) -> bool {
    let lower = default.to_ascii_lowercase();
    let quoted = |n: &str| n.replace('\'', "''");
    [
        format!("nextval('{}'", quoted(&seq.name)),
        format!("nextval('{}.{}'", quoted(&seq.schema), quoted(&seq.name)),
        format!("nextval('\"{}\"'", quoted(&seq.name)),
    ]
    .iter()
    .any(|needle| lower.contains(&needle.to_ascii_lowercase()))
}

/// The tables and columns whose DEFAULT draws from `seq`.
fn dependent_defaults<'a>(
    state: &'a CatalogState,
    seq: &'a SequenceDef,
) -> impl Iterator<Item = (&'a tempora_catalog::TableDef, &'a str)> + 'a {
    state.tables.values().flat_map(move |t| {
        t.columns
            .iter()
            .filter(|c| c.default.as_deref().is_some_and(|d| default_uses(d, seq)))
            .map(move |c| (t, c.name.as_str()))
    })
}

/// Sets `column`'s DEFAULT in the altered copy of `t` among `tables`
/// (added on first change).
fn set_default(
    tables: &mut Vec<tempora_catalog::TableDef>,
    t: &tempora_catalog::TableDef,
    column: &str,
    default: Option<String>,
) {
    let i = match tables.iter().position(|x| x.oid == t.oid) {
        Some(i) => i,
        None => {
            tables.push(t.definition_only());
            tables.len() - 1
        }
    };
    if let Some(c) = tables[i].columns.iter_mut().find(|c| c.name == column) {
        c.default = default;
    }
}

/// RENAME TO: the sequence and the defaults that name it.
fn rename(state: &CatalogState, seq: &SequenceDef, to: &str) -> Result<Vec<CatalogOp>> {
    if state.relation_exists(&seq.schema, to) {
        return Err(TemporaError::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{to}\" already exists"),
        ));
    }
    let mut renamed = seq.clone();
    renamed.name = to.to_string();
    let mut ops = vec![];
    let mut tables: Vec<tempora_catalog::TableDef> = vec![];
    for (t, column) in dependent_defaults(state, seq) {
        set_default(
            &mut tables,
            t,
            column,
            Some(format!("nextval('{}')", to.replace('\'', "''"))),
        );
    }
    ops.push(CatalogOp::PutSequence(renamed));
    ops.extend(
        tables
            .into_iter()
            .map(|t| CatalogOp::AlterTable(Box::new(t))),
    );
    Ok(ops)
}

/// DROP SEQUENCE [IF EXISTS] names [CASCADE]: a sequence some column's
/// DEFAULT draws from is kept unless CASCADE, which drops those defaults.
pub(crate) async fn drop_sequences(
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let targets = names
        .iter()
        .map(crate::ddl::object_name)
        .collect::<Result<Vec<_>>>()?;
    let mut notices = vec![];
    session
        .engine()
        .change_sequences(|state| {
            notices.clear();
            let mut ops = vec![];
            let mut tables: Vec<tempora_catalog::TableDef> = vec![];
            let mut cascaded = vec![];
            for (schema, name) in &targets {
                let Some(seq) = state.sequence(schema, name) else {
                    if state.relation_exists(schema, name) {
                        let hint = if state.view(schema, name).is_some() {
                            "Use DROP VIEW to remove a view."
                        } else {
                            "Use DROP TABLE to remove a table."
                        };
                        return Err(not_a_sequence(name).with_hint(hint));
                    }
                    if if_exists {
                        notices.push(Notice::info(
                            SqlState::SUCCESSFUL_COMPLETION,
                            format!("sequence \"{name}\" does not exist, skipping"),
                        ));
                        continue;
                    }
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_TABLE,
                        format!("sequence \"{name}\" does not exist"),
                    ));
                };
                for (t, column) in dependent_defaults(state, seq) {
                    if !cascade {
                        return Err(TemporaError::new(
                            SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop sequence {name} because other objects depend on it"
                            ),
                        )
                        .with_detail(format!(
                            "default value for column {column} of table {} depends on sequence {name}",
                            t.name
                        ))
                        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                    cascaded.push(format!(
                        "default value for column {column} of table {}",
                        t.name
                    ));
                    set_default(&mut tables, t, column, None);
                }
                if !ops
                    .iter()
                    .any(|op| matches!(op, CatalogOp::DropSequence { oid } if *oid == seq.oid))
                {
                    ops.push(CatalogOp::DropSequence { oid: seq.oid });
                }
            }
            ops.extend(
                tables
                    .drain(..)
                    .map(|t| CatalogOp::AlterTable(Box::new(t))),
            );
            notices.extend(Notice::cascade(&cascaded));
            Ok(ops)
        })
        .await?;
    Ok((Outcome::Command("DROP SEQUENCE".into()), notices))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> SequenceCommand {
        parse(sql).expect("a sequence statement").expect("parses")
    }

    #[test]
    fn options_in_any_order() {
        let c = parsed("CREATE SEQUENCE s2 START 100 INCREMENT BY -5 MAXVALUE 200 CYCLE");
        assert_eq!(c.name, "s2");
        assert_eq!(c.options.start, Some(100));
        assert_eq!(c.options.increment, Some(-5));
        assert_eq!(c.options.max, Some(Some(200)));
        assert_eq!(c.options.cycle, Some(true));
        let c = parsed("alter sequence if exists public.\"S\" restart with 7 no maxvalue");
        assert_eq!(c.action, Action::Alter { if_exists: true });
        assert_eq!(c.name, "S");
        assert_eq!(c.options.restart, Some(Some(7)));
        assert_eq!(c.options.max, Some(None));
        assert!(parse("CREATE TABLE s (a int)").is_none());
        assert!(parse("SELECT 1").is_none());
    }

    #[test]
    fn refusals() {
        let err = |sql: &str| parse(sql).unwrap().unwrap_err();
        assert_eq!(
            err("CREATE SEQUENCE s INCREMENT 1 INCREMENT 2").message,
            "conflicting or redundant options"
        );
        assert_eq!(err("CREATE SEQUENCE s BOGUS").code, SqlState::SYNTAX_ERROR);
        assert_eq!(
            err("CREATE SEQUENCE s RESTART").code,
            SqlState::SYNTAX_ERROR
        );
    }

    #[test]
    fn bounds_follow_postgresql() {
        let mut seq = SequenceDef::new(1, "public", "s");
        let o = Options {
            increment: Some(-1),
            ..Default::default()
        };
        apply_options(&mut seq, &o, true).unwrap();
        assert_eq!((seq.min, seq.max, seq.start), (i64::MIN, -1, -1));
        let o = Options {
            type_oid: Some(23),
            ..Default::default()
        };
        apply_options(&mut seq, &o, false).unwrap();
        assert_eq!(seq.min, i32::MIN as i64);
        let o = Options {
            max: Some(Some(5)),
            min: Some(Some(5)),
            ..Default::default()
        };
        assert_eq!(
            apply_options(&mut seq, &o, false).unwrap_err().message,
            "MINVALUE (5) must be less than MAXVALUE (5)"
        );
    }
}
