//! The one way Tempora parses SQL text: PostgreSQL's dialect of sqlparser,
//! bounded so that no statement can hold a worker for long or overflow its
//! stack.
//!
//! sqlparser backtracks, and three of its habits make parse time grow
//! exponentially with nesting:
//! - with PostgreSQL's dialect every function argument is parsed twice, once
//!   as the name of a named argument (`f(expr => value)`) and once as the
//!   value, so `abs(abs(... 1))` twenty-two deep took nine seconds;
//! - a reserved word where an expression should start is parsed again as an
//!   identifier;
//! - `x IN (` is tried as a subquery before a list.
//!
//! [`TemporaDialect`] is PostgreSQL's dialect with named arguments read as
//! PostgreSQL reads them (the name is an identifier, not an expression;
//! `:=` as well as `=>`), and with a budget of expression starts
//! proportional to the text: a statement that spends it is refused with
//! 54001 instead of parsing for minutes. [`parse_statements`] also refuses,
//! before parsing, text nested deeper than [`MAX_NESTING`] or holding many
//! `ARRAY<` types (quadratic to parse): sqlparser's recursion limit does not
//! count every kind of nesting (`TABLE(c TABLE(...))` types), and twelve
//! thousand of them overflowed the stack and aborted the server.

use std::any::TypeId;
use std::cell::Cell;

use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// How deep brackets, parentheses and CASE may nest (PostgreSQL accepts
/// about as much with its default `max_stack_depth`). The planner's limit on
/// expression depth is the same.
pub const MAX_NESTING: usize = 256;

/// sqlparser's own recursion limit: above [`MAX_NESTING`], so that what the
/// pre-scan admits parses.
const RECURSION_LIMIT: usize = 1024;

/// `ARRAY<` type constructors one statement may hold: PostgreSQL has no such
/// syntax, and sqlparser reads nested ones in quadratic time.
const MAX_ARRAY_ANGLES: usize = 64;

/// Expression starts a statement may spend: a fixed allowance plus a few per
/// byte. Statements of Tempora's own test suite spend under one per token.
const FUEL_BASE: u64 = 10_000;
const FUEL_PER_BYTE: u64 = 4;

/// PostgreSQL's dialect, with identifier-named function arguments and a
/// parse budget (see the module documentation).
#[derive(Debug)]
pub struct TemporaDialect {
    postgres: PostgreSqlDialect,
    fuel: Cell<u64>,
    exhausted: Cell<bool>,
}

impl TemporaDialect {
    /// A dialect for parsing `sql`, with the budget its length earns.
    pub fn for_text(sql: &str) -> Self {
        Self {
            postgres: PostgreSqlDialect {},
            fuel: Cell::new(
                FUEL_BASE.saturating_add(FUEL_PER_BYTE.saturating_mul(sql.len() as u64)),
            ),
            exhausted: Cell::new(false),
        }
    }

    /// True when a parse with this dialect was stopped for spending its
    /// budget.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// A parser over `sql` with Tempora's recursion limit.
pub fn parser<'a>(dialect: &'a TemporaDialect, sql: &str) -> Result<Parser<'a>, ParserError> {
    Parser::new(dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
}

/// Parses `sql` into statements: refuses text nested past [`MAX_NESTING`]
/// before parsing, and parses the rest within its budget. Either refusal is
/// [`ParserError::RecursionLimitExceeded`], which callers report as 54001.
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    bounded(sql, |p| p.parse_statements())
}

/// Parses one expression, as [`parse_statements`] parses a statement.
pub fn parse_expr(sql: &str) -> Result<Expr, ParserError> {
    bounded(sql, |p| p.parse_expr())
}

fn bounded<T>(
    sql: &str,
    parse: impl FnOnce(&mut Parser) -> Result<T, ParserError>,
) -> Result<T, ParserError> {
    let dialect = TemporaDialect::for_text(sql);
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location()?;
    check_nesting(&tokens)?;
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let parsed = parse(&mut parser);
    // Backtracking swallows the refusal; what surfaces then is whichever
    // error the last alternative met.
    if dialect.exhausted() {
        return Err(ParserError::RecursionLimitExceeded);
    }
    parsed
}

/// Refuses tokens nested deeper than [`MAX_NESTING`] or holding more than
/// [`MAX_ARRAY_ANGLES`] `ARRAY<` constructors.
fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), ParserError> {
    let (mut depth, mut angles) = (0usize, 0usize);
    let mut after_array = false;
    for t in tokens {
        let keyword = match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.keyword,
            _ => Keyword::NoKeyword,
        };
        match &t.token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Lt if after_array => angles += 1,
            _ if keyword == Keyword::CASE => depth += 1,
            _ if keyword == Keyword::END => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING || angles > MAX_ARRAY_ANGLES {
            return Err(ParserError::RecursionLimitExceeded);
        }
        after_array = keyword == Keyword::ARRAY;
    }
    Ok(())
}

/// Everything PostgreSQL's dialect decides, forwarded; what Tempora changes
/// is how named arguments are read and [`Dialect::parse_prefix`]. Keep the forwarded list equal to the methods
/// `PostgreSqlDialect` overrides when sqlparser is upgraded.
impl Dialect for TemporaDialect {
    /// Parser checks of the form "is this PostgreSQL" answer yes.
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    /// PostgreSQL names a function argument with an identifier; reading the
    /// name as an expression parsed every argument twice.
    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        false
    }

    /// `f(name := value)`, PostgreSQL's older spelling of `=>`.
    fn supports_named_fn_args_with_assignment_operator(&self) -> bool {
        true
    }

    /// Called at the start of every expression: spends one unit of the
    /// budget, and stops the parse when none is left.
    fn parse_prefix(&self, _parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        match self.fuel.get().checked_sub(1) {
            Some(left) => {
                self.fuel.set(left);
                None
            }
            None => {
                self.exhausted.set(true);
                Some(Err(ParserError::RecursionLimitExceeded))
            }
        }
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.postgres.identifier_quote_style(identifier)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.postgres.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.postgres.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.postgres.is_identifier_part(ch)
    }
    fn supports_unicode_string_literal(&self) -> bool {
        self.postgres.supports_unicode_string_literal()
    }
    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.postgres.is_reserved_for_identifier(kw)
    }
    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.postgres.is_custom_operator_part(ch)
    }
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        self.postgres.get_next_precedence(parser)
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        self.postgres.supports_filter_during_aggregation()
    }
    fn supports_group_by_expr(&self) -> bool {
        self.postgres.supports_group_by_expr()
    }
    fn prec_value(&self, prec: Precedence) -> u8 {
        self.postgres.prec_value(prec)
    }
    fn allow_extract_custom(&self) -> bool {
        self.postgres.allow_extract_custom()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        self.postgres.allow_extract_single_quotes()
    }
    fn supports_create_index_with_clause(&self) -> bool {
        self.postgres.supports_create_index_with_clause()
    }
    fn supports_explain_with_utility_options(&self) -> bool {
        self.postgres.supports_explain_with_utility_options()
    }
    fn supports_listen_notify(&self) -> bool {
        self.postgres.supports_listen_notify()
    }
    fn supports_factorial_operator(&self) -> bool {
        self.postgres.supports_factorial_operator()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        self.postgres.supports_bitwise_shift_operators()
    }
    fn supports_comment_on(&self) -> bool {
        self.postgres.supports_comment_on()
    }
    fn supports_load_extension(&self) -> bool {
        self.postgres.supports_load_extension()
    }
    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        self.postgres.supports_named_fn_args_with_colon_operator()
    }
    fn supports_empty_projections(&self) -> bool {
        self.postgres.supports_empty_projections()
    }
    fn supports_nested_comments(&self) -> bool {
        self.postgres.supports_nested_comments()
    }
    fn supports_string_escape_constant(&self) -> bool {
        self.postgres.supports_string_escape_constant()
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        self.postgres.supports_numeric_literal_underscores()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.postgres.supports_array_typedef_with_brackets()
    }
    fn supports_geometric_types(&self) -> bool {
        self.postgres.supports_geometric_types()
    }
    fn supports_set_names(&self) -> bool {
        self.postgres.supports_set_names()
    }
    fn supports_alter_column_type_using(&self) -> bool {
        self.postgres.supports_alter_column_type_using()
    }
    fn supports_notnull_operator(&self) -> bool {
        self.postgres.supports_notnull_operator()
    }
    fn supports_interval_options(&self) -> bool {
        self.postgres.supports_interval_options()
    }
    fn supports_insert_table_alias(&self) -> bool {
        self.postgres.supports_insert_table_alias()
    }
    fn supports_create_table_like_parenthesized(&self) -> bool {
        self.postgres.supports_create_table_like_parenthesized()
    }
    fn supports_select_wildcard_with_alias(&self) -> bool {
        self.postgres.supports_select_wildcard_with_alias()
    }
    fn supports_comma_separated_trim(&self) -> bool {
        self.postgres.supports_comma_separated_trim()
    }
    fn supports_xml_expressions(&self) -> bool {
        self.postgres.supports_xml_expressions()
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        self.postgres.supports_comment_optimizer_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, depth: usize) -> String {
        format!("SELECT {}1{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn nested_function_calls_parse_in_linear_time() {
        // Two to the 40th argument parses before the change.
        let sql = nested("abs(", ")", 40);
        let started = std::time::Instant::now();
        assert!(parse_statements(&sql).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn nesting_past_the_limit_is_refused_before_parsing() {
        assert!(parse_statements(&nested("(", ")", MAX_NESTING)).is_ok());
        assert!(matches!(
            parse_statements(&nested("(", ")", MAX_NESTING + 1)),
            Err(ParserError::RecursionLimitExceeded)
        ));
        let table_types = format!(
            "SELECT CAST(x AS {}INT{})",
            "TABLE(c ".repeat(12_000),
            ")".repeat(12_000)
        );
        assert!(matches!(
            parse_statements(&table_types),
            Err(ParserError::RecursionLimitExceeded)
        ));
        let cases = nested("CASE WHEN true THEN ", " END", MAX_NESTING + 1);
        assert!(matches!(
            parse_statements(&cases),
            Err(ParserError::RecursionLimitExceeded)
        ));
    }

    #[test]
    fn a_statement_that_spends_its_budget_stops() {
        // Invalid text that makes sqlparser backtrack at every level.
        let sql = format!("SELECT {}1 = {}", "NOT (".repeat(40), ")".repeat(40));
        let dialect = TemporaDialect::for_text(&sql);
        let _ = parser(&dialect, &sql).and_then(|mut p| p.parse_statements());
        assert!(dialect.exhausted());
        assert!(matches!(
            parse_statements(&sql),
            Err(ParserError::RecursionLimitExceeded)
        ));
    }

    #[test]
    fn named_arguments_are_identifiers() {
        let Statement::Query(q) = parse_statements("SELECT make_interval(days => 1, hours := 2)")
            .unwrap()
            .remove(0)
        else {
            panic!("not a query")
        };
        let text = q.to_string();
        assert_eq!(text, "SELECT make_interval(days => 1, hours := 2)");
    }
}
