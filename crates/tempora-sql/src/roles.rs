//! Roles: `CREATE ROLE | USER`, `ALTER ROLE | USER`, `DROP ROLE | USER`.
//!
//! A role's password is kept as PostgreSQL keeps it, hashed by the setting
//! `password_encryption` (a SCRAM-SHA-256 verifier by default, or MD5), or
//! as given when the client hashed it already (psql's `\password` does).
//! Who may change roles follows PostgreSQL: superusers change any role,
//! roles with CREATEROLE change roles that are not superusers, and every
//! role may change its own password.

use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, ObjectName, ObjectNamePart, ObjectType, Password,
    RoleOption, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use tempora_catalog::{CatalogOp, CatalogState, RoleDef, BOOTSTRAP_SUPERUSER_OID};
use tempora_common::{Result, SqlState, TemporaError};

use crate::ddl::ident_name;
use crate::{Notice, Outcome, SqlSession};

pub(crate) fn is_role_statement(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::Drop {
                object_type: ObjectType::Role | ObjectType::User,
                ..
            }
    )
}

/// `CREATE USER` and `ALTER USER` are PostgreSQL's spellings of `CREATE
/// ROLE ... LOGIN` and `ALTER ROLE`; `ENCRYPTED PASSWORD` is `PASSWORD`.
/// The SQL parser reads other dialects' statements there, so the text is
/// given to it in the ROLE spelling. Returns the text to parse and, for
/// each `CREATE ROLE | USER` in it, whether it was a `CREATE USER`.
pub(crate) fn role_spelling(sql: &str) -> Option<(String, Vec<bool>)> {
    let lower = sql.to_ascii_lowercase();
    // Most statements name neither; only these are tokenized again.
    let user_statement =
        lower.contains("user") && (lower.contains("create") || lower.contains("alter"));
    if !user_statement && !lower.contains("encrypted") {
        return None;
    }
    let mut tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut creates = Vec::new();
    let mut changed = false;
    // The first word of the statement, and how many tokens of it were seen.
    let mut verb = None;
    let mut position = 0;
    for i in 0..tokens.len() {
        let keyword = match &tokens[i] {
            Token::Whitespace(_) => continue,
            Token::SemiColon => {
                position = 0;
                continue;
            }
            Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
            _ => None,
        };
        if position == 0 {
            verb = keyword;
        }
        position += 1;
        match keyword {
            Some(k @ (Keyword::ROLE | Keyword::USER))
                if position == 2 && matches!(verb, Some(Keyword::CREATE | Keyword::ALTER)) =>
            {
                if verb == Some(Keyword::CREATE) {
                    creates.push(k == Keyword::USER);
                }
                if k == Keyword::USER {
                    tokens[i] = Token::make_keyword("ROLE");
                    changed = true;
                }
            }
            Some(Keyword::ENCRYPTED) => {
                let next = tokens[i + 1..]
                    .iter()
                    .find(|t| !matches!(t, Token::Whitespace(_)));
                if matches!(next, Some(Token::Word(w)) if w.keyword == Keyword::PASSWORD) {
                    tokens[i] = Token::Whitespace(Whitespace::Space);
                    changed = true;
                }
            }
            _ => {}
        }
    }
    if !changed {
        return None;
    }
    Some((tokens.iter().map(|t| t.to_string()).collect(), creates))
}

/// Gives each `CREATE ROLE` written as `CREATE USER` its LOGIN default.
pub(crate) fn apply_user_defaults(stmts: &mut [Statement], creates: &[bool]) {
    let mut flags = creates.iter();
    for stmt in stmts {
        if let Statement::CreateRole(c) = stmt {
            if flags.next() == Some(&true) && c.login.is_none() {
                c.login = Some(true);
            }
        }
    }
}

/// The role the session is logged in as.
fn current<'a>(session: &SqlSession, state: &'a CatalogState) -> Option<&'a RoleDef> {
    state.role(session.user())
}

fn denied(message: impl Into<String>) -> TemporaError {
    TemporaError::new(SqlState::INSUFFICIENT_PRIVILEGE, message)
}

fn no_role(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState::UNDEFINED_OBJECT,
        format!("role \"{name}\" does not exist"),
    )
}

fn role_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(i)] => Ok(ident_name(i)),
        _ => Err(TemporaError::syntax(format!(
            "syntax error at or near \"{name}\""
        ))),
    }
}

fn check_reserved(name: &str) -> Result<()> {
    if name.starts_with("pg_") {
        return Err(TemporaError::new(
            SqlState::RESERVED_NAME,
            format!("role name \"{name}\" is reserved"),
        )
        .with_detail("Role names starting with \"pg_\" are reserved."));
    }
    if matches!(name, "public" | "none") {
        return Err(TemporaError::new(
            SqlState::RESERVED_NAME,
            format!("role name \"{name}\" is reserved"),
        ));
    }
    Ok(())
}

/// Whether `secret` is already hashed as PostgreSQL stores passwords.
fn is_hashed(secret: &str) -> bool {
    let md5 = secret.len() == 35
        && secret.starts_with("md5")
        && secret[3..].bytes().all(|b| b.is_ascii_hexdigit());
    md5 || scram_verifier_parts(secret).is_some()
}

/// The parts of a SCRAM-SHA-256 verifier: iterations, salt, StoredKey and
/// ServerKey (base64 as stored).
pub fn scram_verifier_parts(secret: &str) -> Option<(u32, &str, &str, &str)> {
    let rest = secret.strip_prefix("SCRAM-SHA-256$")?;
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    let iterations = iterations.parse().ok().filter(|n| *n > 0)?;
    if salt.is_empty() || stored.is_empty() || server.is_empty() {
        return None;
    }
    Some((iterations, salt, stored, server))
}

/// The secret to keep for `password`: hashed as `password_encryption`
/// says, unless the client sent it hashed.
fn secret_for(
    session: &SqlSession,
    role: &str,
    password: &str,
    notices: &mut Vec<Notice>,
) -> Option<String> {
    if password.is_empty() {
        notices.push(Notice::info(
            SqlState::SUCCESSFUL_COMPLETION,
            "empty string is not a valid password, clearing password",
        ));
        return None;
    }
    if is_hashed(password) {
        return Some(password.to_string());
    }
    Some(match session.settings.get("password_encryption") {
        Some("md5") => postgres_protocol::password::md5(password.as_bytes(), role),
        _ => postgres_protocol::password::scram_sha_256(password.as_bytes()),
    })
}

fn string_value(e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Ok(s.clone()),
            Value::Number(n, _) if what == "CONNECTION LIMIT" => Ok(n.clone()),
            other => Err(TemporaError::syntax(format!(
                "syntax error at or near \"{other}\""
            ))),
        },
        other => Err(TemporaError::syntax(format!(
            "syntax error at or near \"{other}\""
        ))),
    }
}

fn valid_until(session: &SqlSession, e: &Expr) -> Result<Option<i64>> {
    let text = string_value(e, "VALID UNTIL")?;
    // 'infinity' reads as the largest timestamp.
    tempora_query::pg_literals::parse_timestamp(&text, true, &session.time_zone()).map(Some)
}

fn connection_limit(e: &Expr) -> Result<i32> {
    parse_connection_limit(&string_value(e, "CONNECTION LIMIT")?)
}

/// A role's or database's `CONNECTION LIMIT`: -1 (none) or more.
pub(crate) fn parse_connection_limit(text: &str) -> Result<i32> {
    let n: i32 = text.trim().parse().map_err(|_| {
        TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid connection limit: {text}"),
        )
    })?;
    if n < -1 {
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid connection limit: {n}"),
        ));
    }
    Ok(n)
}

/// Attribute changes a statement asks for, applied to a role.
#[derive(Default)]
struct Changes {
    superuser: Option<bool>,
    login: Option<bool>,
    create_db: Option<bool>,
    create_role: Option<bool>,
    inherit: Option<bool>,
    replication: Option<bool>,
    bypass_rls: Option<bool>,
    connection_limit: Option<i32>,
    /// Some(None): PASSWORD NULL.
    password: Option<Option<String>>,
    valid_until: Option<Option<i64>>,
}

impl Changes {
    fn from_create(session: &SqlSession, c: &CreateRole) -> Result<Self> {
        if !c.in_role.is_empty()
            || !c.in_group.is_empty()
            || !c.role.is_empty()
            || !c.user.is_empty()
            || !c.admin.is_empty()
        {
            return Err(TemporaError::not_supported(
                "role membership (IN ROLE, IN GROUP, ROLE, USER, ADMIN)",
            ));
        }
        Ok(Self {
            superuser: c.superuser,
            login: c.login,
            create_db: c.create_db,
            create_role: c.create_role,
            inherit: c.inherit,
            replication: c.replication,
            bypass_rls: c.bypassrls,
            connection_limit: c
                .connection_limit
                .as_ref()
                .map(connection_limit)
                .transpose()?,
            password: c.password.as_ref().map(password_text).transpose()?,
            valid_until: c
                .valid_until
                .as_ref()
                .map(|e| valid_until(session, e))
                .transpose()?,
        })
    }

    fn from_options(session: &SqlSession, options: &[RoleOption]) -> Result<Self> {
        let mut c = Self::default();
        for o in options {
            match o {
                RoleOption::SuperUser(v) => c.superuser = Some(*v),
                RoleOption::Login(v) => c.login = Some(*v),
                RoleOption::CreateDB(v) => c.create_db = Some(*v),
                RoleOption::CreateRole(v) => c.create_role = Some(*v),
                RoleOption::Inherit(v) => c.inherit = Some(*v),
                RoleOption::Replication(v) => c.replication = Some(*v),
                RoleOption::BypassRLS(v) => c.bypass_rls = Some(*v),
                RoleOption::ConnectionLimit(e) => c.connection_limit = Some(connection_limit(e)?),
                RoleOption::Password(p) => c.password = Some(password_text(p)?),
                RoleOption::ValidUntil(e) => c.valid_until = Some(valid_until(session, e)?),
            }
        }
        Ok(c)
    }

    /// Whether only the password (and its expiry) changes.
    fn password_only(&self) -> bool {
        self.superuser.is_none()
            && self.login.is_none()
            && self.create_db.is_none()
            && self.create_role.is_none()
            && self.inherit.is_none()
            && self.replication.is_none()
            && self.bypass_rls.is_none()
            && self.connection_limit.is_none()
    }

    /// Attributes only a superuser may give.
    fn needs_superuser(&self) -> bool {
        self.superuser.is_some() || self.replication.is_some() || self.bypass_rls.is_some()
    }

    fn apply(&self, session: &SqlSession, role: &mut RoleDef, notices: &mut Vec<Notice>) {
        let set = |dst: &mut bool, v: Option<bool>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut role.superuser, self.superuser);
        set(&mut role.login, self.login);
        set(&mut role.create_db, self.create_db);
        set(&mut role.create_role, self.create_role);
        set(&mut role.inherit, self.inherit);
        set(&mut role.replication, self.replication);
        set(&mut role.bypass_rls, self.bypass_rls);
        if let Some(n) = self.connection_limit {
            role.connection_limit = n;
        }
        if let Some(p) = &self.password {
            role.password = p
                .as_deref()
                .and_then(|p| secret_for(session, &role.name, p, notices));
        }
        if let Some(v) = self.valid_until {
            role.valid_until = v;
        }
    }
}

fn password_text(p: &Password) -> Result<Option<String>> {
    match p {
        Password::NullPassword => Ok(None),
        Password::Password(e) => string_value(e, "PASSWORD").map(Some),
    }
}

pub(crate) async fn execute(
    session: &SqlSession,
    stmt: &Statement,
) -> Result<(Outcome, Vec<Notice>)> {
    match stmt {
        Statement::CreateRole(c) => create(session, c).await,
        Statement::AlterRole { name, operation } => {
            // PostgreSQL's role specifications for the session's own role.
            let target = match ident_name(name).as_str() {
                "current_user" | "current_role" | "session_user" if name.quote_style.is_none() => {
                    session.user().to_string()
                }
                other => other.to_string(),
            };
            alter(session, &target, operation).await
        }
        Statement::Drop {
            names, if_exists, ..
        } => drop_roles(session, names, *if_exists).await,
        other => Err(crate::unsupported_statement(other)),
    }
}

async fn create(session: &SqlSession, c: &CreateRole) -> Result<(Outcome, Vec<Notice>)> {
    let names = c.names.iter().map(role_name).collect::<Result<Vec<_>>>()?;
    for n in &names {
        check_reserved(n)?;
    }
    let changes = Changes::from_create(session, c)?;
    let mut notices = vec![];
    session
        .shared_catalog()
        .commit(|state| {
            notices.clear();
            let me = current(session, state);
            let superuser = me.is_some_and(|r| r.superuser);
            if !superuser {
                if !me.is_some_and(|r| r.create_role) {
                    return Err(denied("permission denied to create role"));
                }
                if changes.superuser == Some(true) {
                    return Err(denied("must be superuser to create superusers"));
                }
                if changes.needs_superuser() {
                    return Err(denied(
                        "must be superuser to create replication users or roles that bypass row-level security",
                    ));
                }
            }
            let mut ops = vec![];
            let mut next_oid = state.next_oid;
            for name in &names {
                if state.role(name).is_some() {
                    if c.if_not_exists {
                        notices.push(Notice::info(
                            SqlState::DUPLICATE_OBJECT,
                            format!("role \"{name}\" already exists, skipping"),
                        ));
                        continue;
                    }
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_OBJECT,
                        format!("role \"{name}\" already exists"),
                    ));
                }
                let mut role = RoleDef::new(next_oid, name.clone());
                next_oid += 1;
                changes.apply(session, &mut role, &mut notices);
                ops.push(CatalogOp::PutRole(role));
            }
            Ok(ops)
        })
        .await?;
    session.sync_shared().await?;
    Ok((Outcome::Command("CREATE ROLE".into()), notices))
}

async fn alter(
    session: &SqlSession,
    name: &str,
    operation: &AlterRoleOperation,
) -> Result<(Outcome, Vec<Notice>)> {
    let changes = match operation {
        AlterRoleOperation::WithOptions { options } => {
            Some(Changes::from_options(session, options)?)
        }
        AlterRoleOperation::RenameRole { role_name } => {
            return rename(session, name, &ident_name(role_name)).await
        }
        AlterRoleOperation::Set { .. } | AlterRoleOperation::Reset { .. } => {
            return Err(TemporaError::not_supported(
                "ALTER ROLE ... SET / RESET (per-role parameter defaults)",
            ))
        }
        _ => None,
    };
    let Some(changes) = changes else {
        return Err(TemporaError::not_supported("this form of ALTER ROLE"));
    };
    let mut notices = vec![];
    session
        .shared_catalog()
        .commit(|state| {
            notices.clear();
            let target = state.role(name).ok_or_else(|| no_role(name))?;
            let me = current(session, state);
            let superuser = me.is_some_and(|r| r.superuser);
            let myself = me.is_some_and(|r| r.oid == target.oid);
            if !superuser {
                if target.superuser || changes.superuser.is_some() {
                    return Err(denied(
                        "must be superuser to alter superuser roles or change superuser attribute",
                    ));
                }
                if changes.needs_superuser() {
                    return Err(denied(
                        "must be superuser to alter replication roles or change replication attribute",
                    ));
                }
                let may = me.is_some_and(|r| r.create_role)
                    || (myself && changes.password_only() && changes.valid_until.is_none());
                if !may {
                    return Err(denied("permission denied"));
                }
            }
            if target.oid == BOOTSTRAP_SUPERUSER_OID && changes.superuser == Some(false) {
                return Err(denied(
                    "permission denied: bootstrap user must be superuser",
                ));
            }
            let mut role = target.clone();
            changes.apply(session, &mut role, &mut notices);
            Ok(vec![CatalogOp::PutRole(role)])
        })
        .await?;
    session.sync_shared().await?;
    Ok((Outcome::Command("ALTER ROLE".into()), notices))
}

async fn rename(session: &SqlSession, from: &str, to: &str) -> Result<(Outcome, Vec<Notice>)> {
    if from == session.user() {
        return Err(TemporaError::not_supported(
            "session user cannot be renamed",
        ));
    }
    check_reserved(to)?;
    let mut notices = vec![];
    session
        .shared_catalog()
        .commit(|state| {
            notices.clear();
            let target = state.role(from).ok_or_else(|| no_role(from))?;
            if state.role(to).is_some() {
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_OBJECT,
                    format!("role \"{to}\" already exists"),
                ));
            }
            let me = current(session, state);
            if !me.is_some_and(|r| r.superuser) {
                if target.superuser {
                    return Err(denied("must be superuser to rename superusers"));
                }
                if !me.is_some_and(|r| r.create_role) {
                    return Err(denied("permission denied to rename role"));
                }
            }
            let mut role = target.clone();
            role.name = to.to_string();
            // An MD5 hash salts with the name: it no longer matches.
            if role
                .password
                .as_deref()
                .is_some_and(|p| p.starts_with("md5"))
            {
                role.password = None;
                notices.push(Notice::info(
                    SqlState::SUCCESSFUL_COMPLETION,
                    "MD5 password cleared because of role rename",
                ));
            }
            Ok(vec![CatalogOp::PutRole(role)])
        })
        .await?;
    session.sync_shared().await?;
    Ok((Outcome::Command("ALTER ROLE".into()), notices))
}

async fn drop_roles(
    session: &SqlSession,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<(Outcome, Vec<Notice>)> {
    let names = names.iter().map(role_name).collect::<Result<Vec<_>>>()?;
    let mut notices = vec![];
    session
        .shared_catalog()
        .commit(|state| {
            notices.clear();
            let me = current(session, state);
            let superuser = me.is_some_and(|r| r.superuser);
            if !superuser && !me.is_some_and(|r| r.create_role) {
                return Err(denied("permission denied to drop role"));
            }
            let mut ops = vec![];
            for name in &names {
                let Some(target) = state.role(name) else {
                    if if_exists {
                        notices.push(Notice::info(
                            SqlState::UNDEFINED_OBJECT,
                            format!("role \"{name}\" does not exist, skipping"),
                        ));
                        continue;
                    }
                    return Err(no_role(name));
                };
                if name == session.user() {
                    return Err(TemporaError::new(
                        SqlState::OBJECT_IN_USE,
                        "current user cannot be dropped",
                    ));
                }
                if target.oid == BOOTSTRAP_SUPERUSER_OID {
                    return Err(TemporaError::new(
                        SqlState::OBJECT_IN_USE,
                        format!(
                            "cannot drop role {name} because it is required by the database system"
                        ),
                    ));
                }
                if target.superuser && !superuser {
                    return Err(denied("must be superuser to drop superusers"));
                }
                if let Some(db) = state.databases.values().find(|d| d.owner == target.oid) {
                    return Err(TemporaError::new(
                        SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!(
                            "role \"{name}\" cannot be dropped because some objects depend on it"
                        ),
                    )
                    .with_detail(format!("owner of database {}", db.name)));
                }
                ops.push(CatalogOp::DropRole { oid: target.oid });
            }
            Ok(ops)
        })
        .await?;
    session.sync_shared().await?;
    Ok((Outcome::Command("DROP ROLE".into()), notices))
}

/// Makes the superuser when the data directory has none (its first
/// start), and gives it `password` when it has none. Returns whether any
/// role has a password, that is whether anyone can log in with one.
pub async fn bootstrap_superuser(
    engine: &tempora_storage::Engine,
    name: &str,
    password: Option<&str>,
) -> Result<bool> {
    let secret = password
        .filter(|p| !p.is_empty())
        .map(|p| postgres_protocol::password::scram_sha_256(p.as_bytes()));
    let state = engine
        .catalog()
        .commit(|state| {
            let role = match state.roles.get(&BOOTSTRAP_SUPERUSER_OID) {
                Some(r) if r.password.is_some() || secret.is_none() => return Ok(vec![]),
                Some(r) => r.clone(),
                None => {
                    check_reserved(name)?;
                    RoleDef::bootstrap(name)
                }
            };
            Ok(vec![CatalogOp::PutRole(RoleDef {
                password: secret.clone(),
                ..role
            })])
        })
        .await?;
    Ok(state.roles.values().any(|r| r.password.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_spelling_becomes_role() {
        let (sql, creates) = role_spelling(
            "CREATE USER alice WITH ENCRYPTED PASSWORD 'x'; ALTER USER bob NOLOGIN; CREATE ROLE r",
        )
        .unwrap();
        assert_eq!(
            sql,
            "CREATE ROLE alice WITH   PASSWORD 'x'; ALTER ROLE bob NOLOGIN; CREATE ROLE r"
        );
        assert_eq!(creates, vec![true, false]);
        let mut stmts = crate::parse(&sql).unwrap();
        apply_user_defaults(&mut stmts, &creates);
        match (&stmts[0], &stmts[2]) {
            (Statement::CreateRole(a), Statement::CreateRole(r)) => {
                assert_eq!(a.login, Some(true));
                assert_eq!(r.login, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn user_elsewhere_is_left_alone() {
        assert!(role_spelling("SELECT user, current_user").is_none());
        assert!(role_spelling("SELECT 'CREATE USER x'").is_none());
        assert!(role_spelling("CREATE TABLE users (\"user\" text)").is_none());
    }

    #[test]
    fn verifiers_are_recognized() {
        let v = postgres_protocol::password::scram_sha_256(b"secret");
        assert!(is_hashed(&v));
        let (iterations, ..) = scram_verifier_parts(&v).unwrap();
        assert_eq!(iterations, 4096);
        assert!(is_hashed(&postgres_protocol::password::md5(
            b"secret", "alice"
        )));
        assert!(!is_hashed("md5 is not a hash"));
        assert!(!is_hashed("SCRAM-SHA-256$x"));
    }
}
