//! Primality, factorisation and divisibility for integers below 2^128.
//!
//! Miller–Rabin with the first twelve prime bases is proven exact below 3.3·10^24
//! (Sorenson and Webster, 2015). Above that bound the test is Baillie–PSW (those bases,
//! base 2 among them, plus a strong Lucas test with Selfridge's parameters): no
//! composite is known to pass it, but none is proven impossible, and the tool's
//! output says which case applies (`deterministic`). Factorisation uses trial
//! division then Pollard's rho (Brent's variant).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{arg_integer, to_output, Tool, ToolError};

const SMALL_BASES: [u128; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
/// Trial divisors beyond the bases, so small factors never reach the tests.
const EXTRA_BASES: [u128; 8] = [41, 43, 47, 53, 59, 61, 67, 71];
const DETERMINISTIC_LIMIT: u128 = 3_317_044_064_679_887_385_961_981;

fn mul_mod(a: u128, b: u128, m: u128) -> u128 {
    if let (Some(p), true) = (a.checked_mul(b), m > 0) {
        return p % m;
    }
    // Double-and-add so intermediate values never overflow.
    let (mut a, mut b, mut r) = (a % m, b % m, 0u128);
    while b > 0 {
        if b & 1 == 1 {
            r = add_mod(r, a, m);
        }
        a = add_mod(a, a, m);
        b >>= 1;
    }
    r
}

fn add_mod(a: u128, b: u128, m: u128) -> u128 {
    if a >= m - b {
        a - (m - b)
    } else {
        a + b
    }
}

fn pow_mod(mut b: u128, mut e: u128, m: u128) -> u128 {
    let mut r = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, b, m);
        }
        b = mul_mod(b, b, m);
        e >>= 1;
    }
    r
}

/// Whether `n` is prime: proven below 3.3·10^24, Baillie–PSW above (see the module).
pub fn is_prime(n: u128) -> bool {
    if n < 2 {
        return false;
    }
    for p in SMALL_BASES.iter().chain(EXTRA_BASES.iter()) {
        if n % p == 0 {
            return n == *p;
        }
    }
    SMALL_BASES.iter().all(|a| strong_probable_prime(n, *a)) && (n < DETERMINISTIC_LIMIT || strong_lucas(n))
}

/// The strong (Miller–Rabin) test of odd `n > a` to base `a`.
fn strong_probable_prime(n: u128, a: u128) -> bool {
    let (mut d, mut s) = (n - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    let mut x = pow_mod(a, d, n);
    if x == 1 || x == n - 1 {
        return true;
    }
    for _ in 1..s {
        x = mul_mod(x, x, n);
        if x == n - 1 {
            return true;
        }
    }
    false
}

/// The Jacobi symbol (a/n) for odd `n > 0`.
fn jacobi(mut a: u128, mut n: u128) -> i32 {
    a %= n;
    let mut sign = 1;
    while a != 0 {
        while a % 2 == 0 {
            a /= 2;
            if matches!(n % 8, 3 | 5) {
                sign = -sign;
            }
        }
        (a, n) = (n, a);
        if a % 4 == 3 && n % 4 == 3 {
            sign = -sign;
        }
        a %= n;
    }
    if n == 1 {
        sign
    } else {
        0
    }
}

fn is_square(n: u128) -> bool {
    let mut r = (n as f64).sqrt() as u128;
    // The float estimate is off by a little for large n; settle it exactly.
    while r.checked_mul(r).is_none_or(|sq| sq > n) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|sq| sq <= n) {
        r += 1;
    }
    r * r == n
}

/// `x / 2` modulo odd `n`, for `x < n`.
fn half_mod(x: u128, n: u128) -> u128 {
    if x % 2 == 0 {
        x / 2
    } else {
        // (x + n) / 2 without overflowing: both odd.
        x / 2 + n / 2 + 1
    }
}

fn sub_mod(a: u128, b: u128, n: u128) -> u128 {
    if a >= b {
        a - b
    } else {
        n - (b - a)
    }
}

/// `v` (a signed number) modulo `n`.
fn signed_mod(v: i128, n: u128) -> u128 {
    let m = v.unsigned_abs() % n;
    if v >= 0 || m == 0 {
        m
    } else {
        n - m
    }
}

/// The strong Lucas probable-prime test of odd `n` with Selfridge's parameters
/// (D the first of 5, -7, 9, -11, ... with (D/n) = -1; P = 1; Q = (1 - D) / 4).
fn strong_lucas(n: u128) -> bool {
    if n % 2 == 0 || is_square(n) {
        return n == 2;
    }
    let mut d: i128 = 5;
    loop {
        match jacobi(signed_mod(d, n), n) {
            -1 => break,
            0 if d.unsigned_abs() != n => return false,
            _ => d = if d > 0 { -(d + 2) } else { -d + 2 },
        }
    }
    let q = signed_mod((1 - d) / 4, n);
    let dm = signed_mod(d, n);
    // n + 1 = k * 2^s with k odd (2^128 - 1 is divisible by 3, so n + 1 fits).
    let (mut k, mut s) = (n + 1, 0u32);
    while k % 2 == 0 {
        k /= 2;
        s += 1;
    }
    // U_1 = 1, V_1 = P = 1, Q^1; walk the bits of k below the top one.
    let (mut u, mut v, mut qk) = (1u128, 1u128, q);
    for bit in (0..(127 - k.leading_zeros())).rev() {
        // k -> 2k
        u = mul_mod(u, v, n);
        v = sub_mod(mul_mod(v, v, n), add_mod(qk, qk, n), n);
        qk = mul_mod(qk, qk, n);
        if (k >> bit) & 1 == 1 {
            // k -> k + 1, with P = 1
            let next_u = half_mod(add_mod(u, v, n), n);
            let next_v = half_mod(add_mod(mul_mod(dm, u, n), v, n), n);
            (u, v) = (next_u, next_v);
            qk = mul_mod(qk, q, n);
        }
    }
    if u == 0 || v == 0 {
        return true;
    }
    for _ in 1..s {
        v = sub_mod(mul_mod(v, v, n), add_mod(qk, qk, n), n);
        qk = mul_mod(qk, qk, n);
        if v == 0 {
            return true;
        }
    }
    false
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A non-trivial factor of composite `n` (Brent's rho), trying several constants.
fn rho(n: u128) -> u128 {
    if n % 2 == 0 {
        return 2;
    }
    for c in 1..200u128 {
        let f = |x: u128| add_mod(mul_mod(x, x, n), c, n);
        let (mut x, mut y, mut d) = (2u128, 2u128, 1u128);
        while d == 1 {
            x = f(x);
            y = f(f(y));
            d = gcd(x.abs_diff(y), n);
        }
        if d != n {
            return d;
        }
    }
    n
}

/// Prime factors of `n` in ascending order, with multiplicity.
pub fn factorize(n: u128) -> Vec<u128> {
    let mut out = Vec::new();
    let mut n = n;
    for p in [2u128, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47] {
        while n % p == 0 && n > 1 {
            out.push(p);
            n /= p;
        }
    }
    let mut stack = vec![n];
    while let Some(m) = stack.pop() {
        if m == 1 {
            continue;
        }
        if is_prime(m) {
            out.push(m);
            continue;
        }
        let d = rho(m);
        if d == m {
            // rho failed (not seen in practice); keep the composite rather than loop.
            out.push(m);
            continue;
        }
        stack.push(d);
        stack.push(m / d);
    }
    out.sort_unstable();
    out
}

/// `primality`: is `n` prime, its factorisation, and optionally whether `divisor` divides it.
#[derive(Debug, Default)]
pub struct Primality;

/// What [`Primality`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimalityOutput {
    /// The number, in decimal.
    pub n: String,
    /// Whether it is prime.
    pub prime: bool,
    /// Its prime factors in ascending order, with multiplicity (empty below 2).
    pub factors: Vec<String>,
    /// Whether the primality test is proven exact for this `n` (below 3.3·10^24);
    /// above it, Baillie–PSW, with no known counterexample.
    pub deterministic: bool,
    /// The divisor asked about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divisor: Option<String>,
    /// Whether the divisor divides `n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divides: Option<bool>,
}

impl Tool for Primality {
    fn name(&self) -> &str {
        "primality"
    }

    fn description(&self) -> &str {
        "Exact primality test and factorisation of an integer below 2^128; with `divisor`, whether it divides n."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["n"], "properties": {
            "n": {"type": ["integer", "string"], "description": "the number"},
            "divisor": {"type": ["integer", "string"], "description": "optional divisor to check"}}})
    }

    fn call(&self, input: &Value) -> Result<Value, ToolError> {
        let n = arg_integer(input, "n")?;
        let prime = is_prime(n);
        let factors: Vec<String> = factorize(n).into_iter().map(|f| f.to_string()).collect();
        let mut out = PrimalityOutput {
            n: n.to_string(),
            prime,
            factors: if n < 2 { Vec::new() } else { factors },
            deterministic: n < DETERMINISTIC_LIMIT,
            divisor: None,
            divides: None,
        };
        if input.get("divisor").is_some() {
            let d = arg_integer(input, "divisor")?;
            if d == 0 {
                return Err(ToolError::BadInput { tool: "primality".into(), detail: "divisor must not be 0".into() });
            }
            out.divisor = Some(d.to_string());
            out.divides = Some(n % d == 0);
        }
        to_output("primality", &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(n: u128) -> bool {
        n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
    }

    #[test]
    fn agrees_with_trial_division_below_100k() {
        for n in 0..100_000u128 {
            assert_eq!(is_prime(n), naive(n), "{n}");
        }
    }

    #[test]
    fn known_large_cases() {
        assert!(is_prime(7411));
        assert!(!is_prime(3_215_031_751)); // strong pseudoprime to bases 2, 3, 5, 7
        assert!(is_prime(18_446_744_073_709_551_557)); // largest prime below 2^64
        assert!(is_prime(170_141_183_460_469_231_731_687_303_715_884_105_727)); // 2^127 - 1
        let m61 = (1u128 << 61) - 1;
        let m31 = (1u128 << 31) - 1;
        assert!(!is_prime(m61 * m31));
        assert_eq!(factorize(m61 * m31), vec![m31, m61]);
    }

    #[test]
    fn strong_lucas_fails_only_on_its_known_pseudoprimes() {
        // The strong Lucas pseudoprimes below 100,000 (OEIS A217255).
        let pseudoprimes = [5459u128, 5777, 10877, 16109, 18971, 22499, 24569, 25199, 40309, 58519, 75077, 97439];
        for n in (3..100_000u128).step_by(2) {
            if pseudoprimes.contains(&n) {
                assert!(strong_lucas(n) && !naive(n), "{n} is a strong Lucas pseudoprime");
            } else {
                assert_eq!(strong_lucas(n), naive(n), "{n}");
            }
        }
    }

    #[test]
    fn baillie_psw_above_the_proven_bound() {
        let m89 = (1u128 << 89) - 1;
        let m127 = (1u128 << 127) - 1;
        assert!(m89 > DETERMINISTIC_LIMIT);
        assert!(is_prime(m89) && is_prime(m127), "Mersenne primes");
        let m61 = (1u128 << 61) - 1;
        assert!(!is_prime(m61 * m61), "a square of a prime");
        assert!(!is_prime(m61 * ((1u128 << 31) - 1) * 1_000_003), "a product of three primes");
        assert!(!is_prime(m127 - 2), "2^127 - 3 is divisible by 5");
        let out = Primality.call(&json!({"n": m127.to_string()})).unwrap();
        assert_eq!((out["prime"].clone(), out["deterministic"].clone()), (json!(true), json!(false)));
    }

    #[test]
    fn factors_multiply_back() {
        for n in [2u128, 12, 7411 * 7417, 600_851_475_143, 18_446_744_073_709_551_557 * 3, 1 << 100] {
            let f = factorize(n);
            assert_eq!(f.iter().product::<u128>(), n, "{n}: {f:?}");
            assert!(f.iter().all(|p| is_prime(*p)), "{n}: {f:?}");
        }
    }

    #[test]
    fn tool_reports_divisibility() {
        let out = Primality.call(&json!({"n": "7411", "divisor": 3})).unwrap();
        assert_eq!(out["prime"], true);
        assert_eq!(out["divides"], false);
        let out = Primality.call(&json!({"n": 7413, "divisor": "3"})).unwrap();
        assert_eq!(out["prime"], false);
        assert_eq!(out["divides"], true);
        assert_eq!(out["factors"], json!(["3", "7", "353"]));
        assert!(Primality.call(&json!({"n": -5})).is_err());
        assert!(Primality.call(&json!({"n": 5, "divisor": 0})).is_err());
    }
}
