//! Exact arithmetic over big rationals: `+ - * / ^`, parentheses, decimals.
//! Never floats, so `0.1 + 0.2 = 0.3` holds and 30-digit products are exact.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{arg_str, to_output, Tool, ToolError};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(BigRational),
    Op(char),
    Open,
    Close,
}

fn parse_number(s: &str) -> Option<BigRational> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = format!("{int}{frac}");
    let n: BigInt = digits.parse().ok()?;
    let d = num_traits::pow(BigInt::from(10), frac.len());
    Some(BigRational::new(n, d))
}

fn tokenize(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '0'..='9' | '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == ',' || chars[i] == '_')
                {
                    i += 1;
                }
                let raw: String = chars[start..i].iter().filter(|c| **c != ',' && **c != '_').collect();
                out.push(Token::Num(parse_number(&raw).ok_or_else(|| format!("bad number {raw:?}"))?));
            }
            '+' | '-' | '^' | '/' => {
                out.push(Token::Op(c));
                i += 1;
            }
            '*' | '×' | '·' => {
                // `**` is exponentiation too.
                if c == '*' && chars.get(i + 1) == Some(&'*') {
                    out.push(Token::Op('^'));
                    i += 2;
                } else {
                    out.push(Token::Op('*'));
                    i += 1;
                }
            }
            '÷' => {
                out.push(Token::Op('/'));
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn expr(&mut self) -> Result<BigRational, String> {
        let mut v = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.term()?;
            v = if op == '+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn term(&mut self) -> Result<BigRational, String> {
        let mut v = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.unary()?;
            if op == '/' {
                if r.is_zero() {
                    return Err("division by zero".into());
                }
                v /= r;
            } else {
                v *= r;
            }
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<BigRational, String> {
        match self.peek() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<BigRational, String> {
        let base = self.atom()?;
        if let Some(Token::Op('^')) = self.peek() {
            self.pos += 1;
            let exp = self.unary()?; // right-associative
            if !exp.is_integer() {
                return Err("exponents must be integers".into());
            }
            let e = exp.to_integer().to_i64().filter(|e| e.abs() <= 10_000).ok_or("exponent too large")?;
            if e < 0 && base.is_zero() {
                return Err("division by zero".into());
            }
            let p = num_traits::pow(base, e.unsigned_abs() as usize);
            return Ok(if e < 0 { p.recip() } else { p });
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<BigRational, String> {
        match self.peek().cloned() {
            Some(Token::Num(n)) => {
                self.pos += 1;
                Ok(n)
            }
            Some(Token::Open) => {
                self.pos += 1;
                let v = self.expr()?;
                match self.peek() {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(v)
                    }
                    _ => Err("missing `)`".into()),
                }
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

/// Evaluate an expression exactly; a malformed one is [`ToolError::BadInput`].
pub fn evaluate_expression(expr: &str) -> Result<BigRational, ToolError> {
    evaluate(expr).map_err(|detail| ToolError::BadInput { tool: "arithmetic".into(), detail })
}

fn evaluate(expr: &str) -> Result<BigRational, String> {
    let tokens = tokenize(expr)?;
    if tokens.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser { tokens, pos: 0 };
    let v = p.expr()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {:?}", p.tokens[p.pos]));
    }
    Ok(v)
}

/// `p/q` or an integer.
fn exact(v: &BigRational) -> String {
    if v.is_integer() {
        v.to_integer().to_string()
    } else {
        format!("{}/{}", v.numer(), v.denom())
    }
}

/// Decimal expansion to 20 places, trailing zeros trimmed.
fn decimal(v: &BigRational) -> String {
    let scale = num_traits::pow(BigInt::from(10), 20);
    let scaled = (v.abs() * BigRational::from_integer(scale.clone())).round().to_integer();
    let (int, frac) = (&scaled / &scale, &scaled % &scale);
    let mut frac = format!("{frac:0>20}");
    while frac.ends_with('0') {
        frac.pop();
    }
    let sign = if v.is_negative() && !scaled.is_zero() { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `arithmetic`: evaluate `expression`; with `claimed`, whether it equals that value.
#[derive(Debug, Default)]
pub struct Arithmetic;

/// What [`Arithmetic`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArithmeticOutput {
    /// The expression as given.
    pub expression: String,
    /// Its exact value (`p/q` or an integer).
    pub value: String,
    /// Its value as a decimal.
    pub decimal: String,
    /// Whether the value is an integer.
    pub integer: bool,
    /// The claimed value, exactly, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<String>,
    /// Whether the claimed value equals the expression's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<bool>,
}

impl Tool for Arithmetic {
    fn name(&self) -> &str {
        "arithmetic"
    }

    fn description(&self) -> &str {
        "Exact rational arithmetic on + - * / ^ and parentheses; with `claimed`, checks a claimed result."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["expression"], "properties": {
            "expression": {"type": "string"}, "claimed": {"type": "string"}}})
    }

    fn call(&self, input: &Value) -> Result<Value, ToolError> {
        let bad = |detail: String| ToolError::BadInput { tool: "arithmetic".into(), detail };
        let expr = arg_str(input, "arithmetic", "expression")?;
        let v = evaluate(expr).map_err(|e| bad(format!("{e} in {expr:?}")))?;
        let mut out = ArithmeticOutput {
            expression: expr.to_string(),
            value: exact(&v),
            decimal: decimal(&v),
            integer: v.is_integer(),
            claimed: None,
            matches: None,
        };
        if let Some(claimed) = input.get("claimed") {
            let text = match claimed {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let c = evaluate(&text).map_err(|e| bad(format!("claimed value {text:?}: {e}")))?;
            out.claimed = Some(exact(&c));
            out.matches = Some(c == v);
        }
        to_output("arithmetic", &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(s: &str) -> String {
        exact(&evaluate_expression(s).unwrap())
    }

    #[test]
    fn exact_results() {
        assert_eq!(eval("12 * 3 + 4"), "40");
        assert_eq!(eval("0.1 + 0.2 - 0.3"), "0");
        assert_eq!(eval("-(2 + 3) * 4 / 6"), "-10/3");
        assert_eq!(eval("2^3^2"), "512");
        assert_eq!(eval("2**10 - 1,000"), "24");
        assert_eq!(eval("98765 × 43210"), "4267635650");
        assert_eq!(eval("123456789012345678901234567890 * 10"), "1234567890123456789012345678900");
        assert_eq!(eval("2^-2"), "1/4");
        assert_eq!(decimal(&evaluate_expression("1/3").unwrap()), "0.33333333333333333333");
        assert_eq!(decimal(&evaluate_expression("-5/2").unwrap()), "-2.5");
    }

    #[test]
    fn errors_are_clear() {
        for (e, msg) in [
            ("1/0", "division by zero"),
            ("(1+2", "missing `)`"),
            ("2 +", "end of expression"),
            ("2 $ 3", "unexpected character"),
            ("", "empty"),
        ] {
            let err = evaluate_expression(e).unwrap_err().to_string();
            assert!(err.contains(msg), "{e}: {err}");
        }
    }

    #[test]
    fn checks_claims() {
        let out = Arithmetic.call(&json!({"expression": "12*3", "claimed": "38"})).unwrap();
        assert_eq!(out["value"], "36");
        assert_eq!(out["matches"], false);
        let out = Arithmetic.call(&json!({"expression": "1/4", "claimed": 0.25})).unwrap();
        assert_eq!(out["matches"], true);
    }
}
