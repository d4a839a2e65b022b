//! CREATE DATABASE, DROP DATABASE and ALTER DATABASE, read from tokens (the
//! SQL parser takes neither PostgreSQL's options nor `WITH (FORCE)`). The
//! databases themselves are the server's `Cluster`'s.

use datafusion::sql::sqlparser::tokenizer::Token;
use tempora_catalog::{DatabaseDef, FIRST_DATABASE};
use tempora_common::{Result, SqlState, TemporaError};

use crate::tokens::Cursor;
use crate::{Notice, Outcome, SqlSession};

/// A parsed database statement.
#[derive(Debug, Clone, PartialEq)]
pub enum DatabaseCommand {
    Create(CreateDatabase),
    Drop {
        name: String,
        if_exists: bool,
    },
    Alter {
        name: String,
        change: Change,
    },
    /// `ALTER DATABASE name RENAME TO to`.
    Rename {
        name: String,
        to: String,
    },
}

/// CREATE DATABASE's name and the options that shape the database.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateDatabase {
    name: String,
    owner: Option<String>,
    collate: Option<String>,
    ctype: Option<String>,
    connection_limit: Option<i32>,
    allow_connections: Option<bool>,
}

/// What ALTER DATABASE changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Owner(String),
    ConnectionLimit(i32),
    AllowConnections(bool),
    /// `SET name TO value` (Some) or `SET name TO DEFAULT` / `RESET name`.
    Setting(String, Option<String>),
    /// `RESET ALL`.
    ResetAll,
}

impl DatabaseCommand {
    pub fn tag(&self) -> &'static str {
        match self {
            DatabaseCommand::Create(_) => "CREATE DATABASE",
            DatabaseCommand::Drop { .. } => "DROP DATABASE",
            DatabaseCommand::Alter { .. } | DatabaseCommand::Rename { .. } => "ALTER DATABASE",
        }
    }
}

/// Reads CREATE, DROP or ALTER DATABASE; None for any other text.
pub fn parse(sql: &str) -> Option<Result<DatabaseCommand>> {
    let head = sql.trim_start().get(..4)?;
    if !["crea", "drop", "alte"]
        .iter()
        .any(|h| head.eq_ignore_ascii_case(h))
    {
        return None;
    }
    let mut c = Cursor::new(sql)?;
    let verb = c.word()?;
    c.at += 1;
    if !c.eat("database") {
        return None;
    }
    if !["create", "drop", "alter"].contains(&verb.as_str()) {
        return None;
    }
    // Several statements: each is read on its own.
    let end = c.tokens().iter().position(|(t, _)| *t == Token::SemiColon);
    if end.is_some_and(|i| i + 1 < c.tokens().len()) {
        return None;
    }
    let parsed = match verb.as_str() {
        "create" => parse_create(&mut c).map(DatabaseCommand::Create),
        "drop" => parse_drop(&mut c),
        _ => parse_alter(&mut c),
    };
    Some(parsed.and_then(|cmd| match c.peek() {
        None | Some(Token::SemiColon) => Ok(cmd),
        Some(_) => Err(c.error()),
    }))
}

/// A database or role name: folded to lower case unless quoted.
fn identifier(c: &mut Cursor) -> Result<String> {
    match c.peek() {
        Some(Token::Word(w)) => {
            let name = if w.quote_style.is_some() {
                w.value.clone()
            } else {
                w.value.to_lowercase()
            };
            c.at += 1;
            Ok(name)
        }
        _ => Err(c.error()),
    }
}

/// An option's value: a name, a string or a number, as text; None for DEFAULT.
fn option_value(c: &mut Cursor) -> Result<Option<String>> {
    if c.eat("default") {
        return Ok(None);
    }
    let value = match c.peek() {
        Some(Token::Word(w)) => {
            if w.quote_style.is_some() {
                w.value.clone()
            } else {
                w.value.to_lowercase()
            }
        }
        Some(Token::SingleQuotedString(s)) => s.clone(),
        Some(Token::Number(n, _)) => n.clone(),
        Some(Token::Minus) => {
            c.at += 1;
            match c.peek() {
                Some(Token::Number(n, _)) => format!("-{n}"),
                _ => return Err(c.error()),
            }
        }
        _ => return Err(c.error()),
    };
    c.at += 1;
    Ok(Some(value))
}

fn boolean(option: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" | "t" | "y" => Ok(true),
        "false" | "off" | "no" | "0" | "f" | "n" => Ok(false),
        _ => Err(TemporaError::new(
            SqlState::SYNTAX_ERROR,
            format!("{option} requires a Boolean value"),
        )),
    }
}

fn redundant() -> TemporaError {
    TemporaError::new(SqlState::SYNTAX_ERROR, "conflicting or redundant options")
}

/// `name [WITH] [option [=] value] ...`, PostgreSQL's options in any order.
fn parse_create(c: &mut Cursor) -> Result<CreateDatabase> {
    let mut create = CreateDatabase {
        name: identifier(c)?,
        ..Default::default()
    };
    c.eat("with");
    let mut seen: Vec<String> = vec![];
    while let Some(option) = c.word() {
        c.at += 1;
        let option = if option == "connection" {
            c.expect("limit")?;
            "connection limit".to_string()
        } else {
            option
        };
        if seen.contains(&option) {
            return Err(redundant());
        }
        seen.push(option.clone());
        if c.peek() == Some(&Token::Eq) {
            c.at += 1;
        }
        let value = option_value(c)?;
        let Some(value) = value else {
            continue; // DEFAULT: what a new database gets anyway
        };
        match option.as_str() {
            "owner" => create.owner = Some(value),
            "template" => {
                if value != "template0" && value != "template1" {
                    return Err(TemporaError::not_supported(format!(
                        "CREATE DATABASE ... TEMPLATE {value} (databases are created empty, \
                         as from template0)"
                    )));
                }
            }
            "encoding" => {
                let utf8 = matches!(
                    value.to_ascii_lowercase().replace('-', "").as_str(),
                    "utf8" | "unicode" | "6"
                );
                if !utf8 {
                    return Err(TemporaError::not_supported(format!(
                        "CREATE DATABASE ... ENCODING {value} (Tempora stores text as UTF8)"
                    )));
                }
            }
            "locale" => {
                if create.collate.is_some() || create.ctype.is_some() {
                    return Err(redundant());
                }
                create.collate = Some(value.clone());
                create.ctype = Some(value);
            }
            "lc_collate" => create.collate = Some(value),
            "lc_ctype" => create.ctype = Some(value),
            "locale_provider" => {
                if !value.eq_ignore_ascii_case("libc") {
                    return Err(TemporaError::not_supported(format!(
                        "CREATE DATABASE ... LOCALE_PROVIDER {value}"
                    )));
                }
            }
            "strategy" => {
                if !["wal_log", "file_copy"].contains(&value.to_ascii_lowercase().as_str()) {
                    return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid create database strategy \"{value}\""),
                    )
                    .with_hint("Valid strategies are \"wal_log\", and \"file_copy\"."));
                }
            }
            "tablespace" => {
                if value != "pg_default" {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("tablespace \"{value}\" does not exist"),
                    ));
                }
            }
            "allow_connections" => {
                create.allow_connections = Some(boolean("allow_connections", &value)?)
            }
            "connection limit" => {
                create.connection_limit = Some(crate::roles::parse_connection_limit(&value)?)
            }
            "is_template" => {
                if boolean("is_template", &value)? {
                    return Err(TemporaError::not_supported(
                        "CREATE DATABASE ... IS_TEMPLATE true",
                    ));
                }
            }
            "icu_locale" | "icu_rules" | "collation_version" | "oid" => {
                return Err(TemporaError::not_supported(format!(
                    "CREATE DATABASE ... {}",
                    option.to_uppercase()
                )));
            }
            other => {
                return Err(TemporaError::new(
                    SqlState::SYNTAX_ERROR,
                    format!("option \"{other}\" not recognized"),
                ))
            }
        }
    }
    Ok(create)
}

/// `[IF EXISTS] name [[WITH] (FORCE)]`.
fn parse_drop(c: &mut Cursor) -> Result<DatabaseCommand> {
    let if_exists = c.eat("if");
    if if_exists {
        c.expect("exists")?;
    }
    let name = identifier(c)?;
    let with = c.eat("with");
    if with || c.peek() == Some(&Token::LParen) {
        if c.peek() != Some(&Token::LParen) {
            return Err(c.error());
        }
        c.at += 1;
        if c.eat("force") {
            return Err(
                TemporaError::not_supported("DROP DATABASE ... WITH (FORCE)")
                    .with_hint("End the database's sessions first; then DROP DATABASE."),
            );
        }
        let option = c.word().unwrap_or_default();
        return Err(TemporaError::new(
            SqlState::SYNTAX_ERROR,
            format!("unrecognized DROP DATABASE option \"{option}\""),
        ));
    }
    Ok(DatabaseCommand::Drop { name, if_exists })
}

/// A parameter name: `timezone`, `timescaledb.telemetry_level`, `"DateStyle"`.
fn parameter_name(c: &mut Cursor) -> Result<String> {
    let mut name = identifier(c)?;
    while c.peek() == Some(&Token::Period) {
        c.at += 1;
        name = format!("{name}.{}", identifier(c)?);
    }
    Ok(name)
}

/// `name OWNER TO role`, `name [WITH] CONNECTION LIMIT n`, `name [WITH]
/// ALLOW_CONNECTIONS b`, `name SET p {TO | =} v`, `name RESET {p | ALL}`;
/// the other forms are refused by name.
fn parse_alter(c: &mut Cursor) -> Result<DatabaseCommand> {
    let name = identifier(c)?;
    let change = if c.eat("owner") {
        c.expect("to")?;
        Change::Owner(identifier(c)?)
    } else if c.eat("rename") {
        c.expect("to")?;
        let to = identifier(c)?;
        return Ok(DatabaseCommand::Rename { name, to });
    } else if c.eat("set") {
        let parameter = parameter_name(c)?;
        if !c.eat("to") {
            if c.peek() == Some(&Token::Eq) {
                c.at += 1;
            } else if c.eat("from") {
                return Err(TemporaError::not_supported(
                    "ALTER DATABASE ... SET ... FROM CURRENT",
                ));
            } else {
                return Err(c.error());
            }
        }
        // A list (`search_path = a, b`) is kept as PostgreSQL prints it.
        let mut values = vec![];
        loop {
            match option_value(c)? {
                Some(v) => values.push(v),
                None if values.is_empty() => break,
                None => return Err(c.error()),
            }
            if c.peek() != Some(&Token::Comma) {
                break;
            }
            c.at += 1;
        }
        Change::Setting(parameter, (!values.is_empty()).then(|| values.join(", ")))
    } else if c.eat("reset") {
        if c.eat("all") {
            Change::ResetAll
        } else {
            Change::Setting(parameter_name(c)?, None)
        }
    } else {
        c.eat("with");
        if c.eat("connection") {
            c.expect("limit")?;
            let value = option_value(c)?.ok_or_else(|| c.error())?;
            Change::ConnectionLimit(crate::roles::parse_connection_limit(&value)?)
        } else if c.eat("allow_connections") {
            if c.peek() == Some(&Token::Eq) {
                c.at += 1;
            }
            let value = option_value(c)?.ok_or_else(|| c.error())?;
            Change::AllowConnections(boolean("allow_connections", &value)?)
        } else {
            let what = c.word().unwrap_or_default().to_uppercase();
            return Err(TemporaError::not_supported(format!(
                "ALTER DATABASE ... {what}"
            )));
        }
    };
    Ok(DatabaseCommand::Alter { name, change })
}

/// Runs a database statement.
pub async fn execute(
    session: &SqlSession,
    cmd: &DatabaseCommand,
) -> Result<(Outcome, Vec<Notice>)> {
    if session.in_block() {
        return Err(TemporaError::new(
            SqlState::ACTIVE_SQL_TRANSACTION,
            format!("{} cannot run inside a transaction block", cmd.tag()),
        ));
    }
    let cluster = session.cluster().cloned().ok_or_else(|| {
        TemporaError::not_supported(format!("{} outside a server session", cmd.tag()))
    })?;
    let state = session.shared_catalog().shared_snapshot();
    let me = state.role(session.user());
    let superuser = me.is_some_and(|r| r.superuser);
    let mut notices = vec![];
    // Database `name`, when it exists (3D000) and the session may change it
    // (its owner or a superuser; 42501).
    let owned = |state: &tempora_catalog::CatalogState, name: &str| {
        let def = state
            .database_or_first(name)
            .ok_or_else(|| tempora_storage::cluster::no_such_database(name))?;
        if !superuser && me.is_none_or(|r| r.oid != def.owner) {
            return Err(not_owner(name));
        }
        Ok(def)
    };
    match cmd {
        DatabaseCommand::Create(create) => {
            if !superuser && !me.is_some_and(|r| r.create_db) {
                return Err(TemporaError::new(
                    SqlState::INSUFFICIENT_PRIVILEGE,
                    "permission denied to create database",
                ));
            }
            let owner = match &create.owner {
                Some(name) => {
                    let role = state.role(name).ok_or_else(|| {
                        TemporaError::new(
                            SqlState::UNDEFINED_OBJECT,
                            format!("role \"{name}\" does not exist"),
                        )
                    })?;
                    if !superuser && name != session.user() {
                        return Err(TemporaError::new(
                            SqlState::INSUFFICIENT_PRIVILEGE,
                            format!("must be able to SET ROLE \"{name}\""),
                        ));
                    }
                    role.oid
                }
                None => me.map_or(tempora_catalog::BOOTSTRAP_SUPERUSER_OID, |r| r.oid),
            };
            let locale = |v: &Option<String>| {
                v.clone()
                    .unwrap_or_else(|| tempora_query::DEFAULT_LOCALE.into())
            };
            cluster
                .create_database(DatabaseDef {
                    oid: 0,
                    name: create.name.clone(),
                    owner,
                    connection_limit: create.connection_limit.unwrap_or(-1),
                    allow_connections: create.allow_connections.unwrap_or(true),
                    collate: locale(&create.collate),
                    ctype: locale(&create.ctype),
                    settings: Default::default(),
                })
                .await?;
        }
        DatabaseCommand::Drop { name, if_exists } => {
            // PostgreSQL's order of checks: existence, ownership, use.
            let Some(owner) = state.database_or_first(name).map(|d| d.owner) else {
                if *if_exists {
                    notices.push(Notice::info(
                        SqlState::SUCCESSFUL_COMPLETION,
                        format!("database \"{name}\" does not exist, skipping"),
                    ));
                    return Ok((Outcome::Command(cmd.tag().into()), notices));
                }
                return Err(tempora_storage::cluster::no_such_database(name));
            };
            if !superuser && me.is_none_or(|r| r.oid != owner) {
                return Err(not_owner(name));
            }
            if name == session.database() {
                return Err(TemporaError::new(
                    SqlState::OBJECT_IN_USE,
                    "cannot drop the currently open database",
                ));
            }
            if name == FIRST_DATABASE {
                return Err(TemporaError::not_supported(format!(
                    "DROP DATABASE {FIRST_DATABASE} (it holds the server's roles and its list \
                     of databases)"
                )));
            }
            cluster.drop_database(name).await?;
        }
        DatabaseCommand::Rename { name, to } => {
            owned(&state, name)?;
            if name == session.database() {
                return Err(TemporaError::not_supported(
                    "current database cannot be renamed",
                ));
            }
            if name == FIRST_DATABASE {
                return Err(TemporaError::not_supported(format!(
                    "ALTER DATABASE {FIRST_DATABASE} RENAME (it holds the server's roles \
                     and its list of databases)"
                )));
            }
            if !superuser && !me.is_some_and(|r| r.create_db) {
                return Err(TemporaError::new(
                    SqlState::INSUFFICIENT_PRIVILEGE,
                    "permission denied to rename database",
                ));
            }
            cluster.rename_database(name, to).await?;
        }
        DatabaseCommand::Alter { name, change } => {
            owned(&state, name)?;
            // Checked as SET would check it, on settings of its own, and kept
            // under PostgreSQL's spelling of the name.
            let mut scratch = crate::session_cmds::Settings::default();
            let change = &match change {
                Change::Setting(parameter, value) => {
                    if let Some(value) = value {
                        scratch.set(parameter, value)?;
                    }
                    Change::Setting(scratch.canonical_name(parameter), value.clone())
                }
                other => other.clone(),
            };
            let new_owner = match change {
                Change::Owner(role) => Some(
                    state
                        .role(role)
                        .ok_or_else(|| {
                            TemporaError::new(
                                SqlState::UNDEFINED_OBJECT,
                                format!("role \"{role}\" does not exist"),
                            )
                        })?
                        .oid,
                ),
                _ => None,
            };
            cluster
                .alter_database(name, |def| {
                    match change {
                        Change::Owner(_) => def.owner = new_owner.unwrap_or(def.owner),
                        Change::ConnectionLimit(n) => def.connection_limit = *n,
                        Change::AllowConnections(b) => def.allow_connections = *b,
                        Change::Setting(parameter, Some(value)) => {
                            def.settings.insert(parameter.clone(), value.clone());
                        }
                        Change::Setting(parameter, None) => {
                            def.settings.remove(parameter);
                        }
                        Change::ResetAll => def.settings.clear(),
                    }
                    Ok(())
                })
                .await?;
        }
    }
    Ok((Outcome::Command(cmd.tag().into()), notices))
}

fn not_owner(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INSUFFICIENT_PRIVILEGE,
        format!("must be owner of database {name}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> DatabaseCommand {
        parse(sql).expect("a database statement").expect("parses")
    }

    fn refused(sql: &str) -> TemporaError {
        parse(sql)
            .expect("a database statement")
            .expect_err("refused")
    }

    #[test]
    fn create_takes_postgres_options_in_any_order() {
        let DatabaseCommand::Create(c) = parsed(
            "CREATE DATABASE \"Metrics\" WITH OWNER = alice TEMPLATE template0 \
             ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE = 'C' CONNECTION LIMIT 5 \
             ALLOW_CONNECTIONS true STRATEGY wal_log TABLESPACE pg_default;",
        ) else {
            panic!("not a CREATE");
        };
        assert_eq!(c.name, "Metrics");
        assert_eq!(c.owner.as_deref(), Some("alice"));
        assert_eq!(c.collate.as_deref(), Some("C"));
        assert_eq!(c.ctype.as_deref(), Some("C"));
        assert_eq!(c.connection_limit, Some(5));
        assert_eq!(c.allow_connections, Some(true));
        let DatabaseCommand::Create(c) = parsed("create database Tsdb") else {
            panic!("not a CREATE");
        };
        assert_eq!(c.name, "tsdb");
    }

    #[test]
    fn create_refuses_what_it_cannot_honour_by_name() {
        for (sql, code) in [
            ("CREATE DATABASE a TEMPLATE postgres", "0A000"),
            ("CREATE DATABASE a ENCODING LATIN1", "0A000"),
            ("CREATE DATABASE a IS_TEMPLATE true", "0A000"),
            ("CREATE DATABASE a LOCALE_PROVIDER icu", "0A000"),
            ("CREATE DATABASE a TABLESPACE fast", "42704"),
            ("CREATE DATABASE a COLOR blue", "42601"),
            ("CREATE DATABASE a OWNER x OWNER y", "42601"),
            ("CREATE DATABASE a CONNECTION LIMIT -2", "22023"),
            ("CREATE DATABASE a STRATEGY quick", "22023"),
            ("CREATE DATABASE a ALLOW_CONNECTIONS maybe", "42601"),
            ("CREATE DATABASE", "42601"),
            ("DROP DATABASE a WITH (FORCE)", "0A000"),
            ("DROP DATABASE a extra", "42601"),
            ("ALTER DATABASE a SET timezone FROM CURRENT", "0A000"),
            ("ALTER DATABASE a SET timezone", "42601"),
        ] {
            assert_eq!(refused(sql).code.0, code, "{sql}");
        }
    }

    #[test]
    fn drop_and_alter_forms() {
        assert_eq!(
            parsed("DROP DATABASE IF EXISTS tsdb"),
            DatabaseCommand::Drop {
                name: "tsdb".into(),
                if_exists: true
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb OWNER TO bob"),
            DatabaseCommand::Alter {
                name: "tsdb".into(),
                change: Change::Owner("bob".into())
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb WITH CONNECTION LIMIT 3"),
            DatabaseCommand::Alter {
                name: "tsdb".into(),
                change: Change::ConnectionLimit(3)
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb SET search_path = app, public"),
            DatabaseCommand::Alter {
                name: "tsdb".into(),
                change: Change::Setting("search_path".into(), Some("app, public".into()))
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb SET TimeZone TO 'Europe/Berlin'"),
            DatabaseCommand::Alter {
                name: "tsdb".into(),
                change: Change::Setting("timezone".into(), Some("Europe/Berlin".into()))
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb SET timescaledb.telemetry_level TO DEFAULT"),
            DatabaseCommand::Alter {
                name: "tsdb".into(),
                change: Change::Setting("timescaledb.telemetry_level".into(), None)
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb RENAME TO metrics"),
            DatabaseCommand::Rename {
                name: "tsdb".into(),
                to: "metrics".into()
            }
        );
        assert_eq!(
            parsed("ALTER DATABASE tsdb RESET ALL"),
            DatabaseCommand::Alter {
                name: "tsdb".into(),
                change: Change::ResetAll
            }
        );
        assert!(parse("CREATE TABLE database (x int)").is_none());
        assert!(parse("CREATE DATABASE a; SELECT 1").is_none());
        assert!(parse("CREATE DATABASE a;").is_some());
        assert!(parse("DROP TABLE t").is_none());
    }
}
