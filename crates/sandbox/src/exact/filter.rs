//! The `$filter` subset the emulator understands: comparisons (`eq ne gt ge lt le`) joined
//! by `and`/`or` with parentheses, `trim(Prop)`, and the literals Exact's documentation
//! uses: `'text'` (with `''` as an escaped quote), `guid'…'`, `datetime'…'`, integers with
//! or without the Int64 `L` suffix, decimals, `true`, `false`, `null` (saas-contracts.md
//! §3.3).
//!
//! Type checking follows WCF Data Services, which Exact's API is built on: comparing a
//! property with a literal of another type (a GUID property with `'text'`, a date with a
//! string) is a 400 "Operator … incompatible with operand types …", and an unknown
//! property is a 400 "No property … exists". Anything outside the subset is a 400 too: the
//! emulator never guesses, so a client cannot come to lean on syntax it never checked.
//!
//! String comparison is ordinal (case-sensitive). The real database may compare
//! case-insensitively; ordinal is the stricter choice for check-before-create lookups.

use super::entities::EntityDef;
use super::lexer::{Tok, lex};
use super::values::{Kind, Val, compare, equal};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Field(String, Kind),
    Trim(String),
    Lit(Val, Kind),
}

impl Operand {
    /// `None` for `null`, which matches any type.
    fn kind(&self) -> Option<Kind> {
        match self {
            Operand::Field(_, k) => Some(*k),
            Operand::Trim(_) => Some(Kind::Str),
            Operand::Lit(Val::Null, _) => None,
            Operand::Lit(_, k) => Some(*k),
        }
    }

    fn value(&self, row: &dyn Fn(&str) -> Val) -> Val {
        match self {
            Operand::Field(name, _) => row(name),
            Operand::Trim(name) => match row(name) {
                Val::Str(s) => Val::Str(s.trim().to_owned()),
                other => other,
            },
            Operand::Lit(v, _) => v.clone(),
        }
    }
}

/// A parsed, type-checked filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Op, Operand, Operand),
}

impl Expr {
    /// Evaluates against one row; `row` returns a property's value (`Null` when unset).
    pub fn matches(&self, row: &dyn Fn(&str) -> Val) -> bool {
        match self {
            Expr::And(a, b) => a.matches(row) && b.matches(row),
            Expr::Or(a, b) => a.matches(row) || b.matches(row),
            Expr::Cmp(op, l, r) => {
                let (l, r) = (l.value(row), r.value(row));
                match op {
                    Op::Eq => equal(&l, &r),
                    Op::Ne => !equal(&l, &r),
                    // Ordering with null is never true (SQL semantics).
                    _ if l == Val::Null || r == Val::Null => false,
                    Op::Gt => compare(&l, &r).is_gt(),
                    Op::Ge => compare(&l, &r).is_ge(),
                    Op::Lt => compare(&l, &r).is_lt(),
                    Op::Le => compare(&l, &r).is_le(),
                }
            }
        }
    }
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    at: usize,
    def: &'a EntityDef,
    len: usize,
}

/// Parses and type-checks `text` against `def`. `Err` is the message for a 400.
pub(crate) fn parse(text: &str, def: &EntityDef) -> Result<Expr, String> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
        def,
        len: text.chars().count(),
    };
    let expr = p.or()?;
    match p.toks.get(p.at) {
        None => Ok(expr),
        Some((pos, _)) => Err(format!("Syntax error at position {pos}.")),
    }
}

impl Parser<'_> {
    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.len, |(p, _)| *p)
    }

    fn keyword(&mut self, word: &str) -> bool {
        let hit = matches!(self.toks.get(self.at), Some((_, Tok::Ident(w))) if w == word);
        self.at += usize::from(hit);
        hit
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), String> {
        match self.toks.get(self.at) {
            Some((_, t)) if t == tok => {
                self.at += 1;
                Ok(())
            }
            _ => Err(format!("{what} expected at position {}.", self.pos())),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.comparison()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        if matches!(self.toks.get(self.at), Some((_, Tok::Open))) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(&Tok::Close, "')' or operator")?;
            return Ok(inner);
        }
        let left = self.operand()?;
        let op_pos = self.pos();
        let op = match self.toks.get(self.at) {
            Some((_, Tok::Ident(w))) => Op::parse(w),
            _ => None,
        }
        .ok_or_else(|| format!("Expression expected at position {op_pos}: a comparison operator (eq, ne, gt, ge, lt, le)."))?;
        self.at += 1;
        let right = self.operand()?;
        if let (Some(l), Some(r)) = (left.kind(), right.kind())
            && !compatible(l, r)
        {
            return Err(format!(
                "Operator '{}' incompatible with operand types '{}' and '{}' at position {op_pos}.",
                op.name(),
                l.edm(),
                r.edm()
            ));
        }
        Ok(Expr::Cmp(op, left, right))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let pos = self.pos();
        let Some((_, tok)) = self.toks.get(self.at).cloned() else {
            return Err(format!("Expression expected at position {pos}."));
        };
        self.at += 1;
        match tok {
            Tok::Lit(v, k) => Ok(Operand::Lit(v, k)),
            Tok::Ident(name) if matches!(self.toks.get(self.at), Some((_, Tok::Open))) => {
                if name != "trim" {
                    return Err(format!("Unknown function '{name}' at position {pos}."));
                }
                self.at += 1;
                let arg_pos = self.pos();
                let field = match self.operand()? {
                    Operand::Field(f, Kind::Str) => f,
                    _ => {
                        return Err(format!(
                            "No applicable function found for 'trim' at position {arg_pos}."
                        ));
                    }
                };
                self.expect(&Tok::Close, "')'")?;
                Ok(Operand::Trim(field))
            }
            Tok::Ident(name) => match self.def.kind_of(&name) {
                Some(kind) => Ok(Operand::Field(name, kind)),
                None => Err(format!(
                    "No property '{name}' exists in type '{}' at position {pos}.",
                    self.def.type_name
                )),
            },
            Tok::Open | Tok::Close | Tok::Comma => {
                Err(format!("Expression expected at position {pos}."))
            }
        }
    }
}

fn compatible(a: Kind, b: Kind) -> bool {
    a == b || (a.is_numeric() && b.is_numeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::entities::{ACCOUNTS, SYNC_ACCOUNTS};
    use super::super::values::parse_local;
    use super::*;

    fn row(name: &str) -> Val {
        match name {
            "Code" => Val::Str("                25".into()),
            "Name" => Val::Str("Acme BV".into()),
            "Email" => Val::Null,
            "Timestamp" => Val::Int(5_000_000_001),
            "Modified" => Val::Date(parse_local("2024-01-02T00:00:00").unwrap()),
            _ => Val::Null,
        }
    }

    fn check(text: &str, def: &EntityDef) -> bool {
        parse(text, def).unwrap().matches(&row)
    }

    #[test]
    fn the_documented_filters_work() {
        assert!(check("trim(Code) eq '25'", &ACCOUNTS));
        assert!(check("Code eq '                25'", &ACCOUNTS));
        assert!(!check("Code eq '25'", &ACCOUNTS), "the padding matters");
        assert!(check(
            "Modified ge datetime'2024-01-01T00:00:00'",
            &ACCOUNTS
        ));
        assert!(!check("Modified ge datetime'2024-01-03'", &ACCOUNTS));
        assert!(check("Timestamp gt 5000000000L", &SYNC_ACCOUNTS));
        assert!(check(
            "Name eq 'Acme BV' and (Email eq null or Email eq 'x')",
            &ACCOUNTS
        ));
        assert!(check("Name ne 'acme bv'", &ACCOUNTS), "ordinal comparison");
        assert!(!check("Email gt 'a'", &ACCOUNTS), "null never orders");
        assert!(check("Name eq 'O''Neil' or Name eq 'Acme BV'", &ACCOUNTS));
    }

    #[test]
    fn type_errors_and_unknown_things_are_refused() {
        let e = parse("ID eq '5d0c6d0f-0000-0000-0000-000000000000'", &ACCOUNTS).unwrap_err();
        assert!(
            e.contains("incompatible with operand types 'Edm.Guid' and 'Edm.String'"),
            "{e}"
        );
        assert!(
            parse("Nope eq 1", &ACCOUNTS)
                .unwrap_err()
                .contains("No property 'Nope'")
        );
        assert!(
            parse("substringof('a', Name)", &ACCOUNTS)
                .unwrap_err()
                .contains("Unknown function")
        );
        assert!(parse("Name eq", &ACCOUNTS).is_err());
        assert!(parse("Name eq 'x' xor", &ACCOUNTS).is_err());
        assert!(parse("Name eq 'unterminated", &ACCOUNTS).is_err());
        assert!(parse("Modified ge '2024-01-01'", &ACCOUNTS).is_err());
        assert!(parse("ID eq guid'nope'", &ACCOUNTS).is_err());
    }
}
