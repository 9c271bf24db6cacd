//! Kubernetes resource quantities (`1Gi`, `500m`, `1.5e3`, `1E`), parsed by the rules of
//! apimachinery's `resource.ParseQuantity`.
//!
//! k8s-openapi's `Quantity` is only a string. The crates that parse it (kube_quantity 0.9) go
//! through an `f64` float parser that claims the `E` of `1E` / `1Ei` as an exponent and fails,
//! and accepts a bare suffix (`Gi`) as zero, so this small exact parser is used instead.
//!
//! Grammar (apimachinery `quantity.go`):
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <signedNumber>    ::= <number> | <sign><number>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedInteger> | "E" <signedInteger>
//! ```
//! `1E` is therefore 10^18 (decimal SI), `1E3` is 1000 (exponent) and `1Ei` is 2^60.

use std::cmp::Ordering;

/// A parsed quantity: `sign × digits × 10^exp10 × 2^exp2`, exact. Equality compares values
/// (`1` equals `1000m`, `1Gi` equals `1024Mi`).
#[derive(Clone, Debug)]
pub struct Quantity {
    negative: bool,
    /// Decimal digits of the number without the point, leading zeros stripped.
    digits: String,
    exp10: i32,
    exp2: u32,
}

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a Kubernetes quantity (such as 1Gi, 500m or 1e9): {why}")]
pub struct QuantityError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Quantity {
    /// Parses `s` (surrounding whitespace is not allowed, as in Kubernetes).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let err = |why| QuantityError {
            input: s.to_string(),
            why,
        };
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            Some(_) => (false, s),
            None => return Err(err("empty")),
        };
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after_int) = rest.split_at(int_len);
        let (frac, suffix) = match after_int.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", after_int),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(err("no digits"));
        }
        let frac_len = i32::try_from(frac.len()).map_err(|_| err("too many digits"))?;
        let (exp10, exp2) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            other => {
                // An exponent is `e`/`E` followed by a signed integer and nothing else.
                let exp = other
                    .strip_prefix(['e', 'E'])
                    .ok_or_else(|| err("unknown suffix"))?;
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("unknown suffix"));
                }
                (
                    exp.parse::<i32>().map_err(|_| err("exponent too large"))?,
                    0,
                )
            }
        };
        let all = format!("{int}{frac}");
        let digits = all.trim_start_matches('0').to_string();
        Ok(Self {
            negative: negative && !digits.is_empty(),
            digits,
            exp10: exp10
                .checked_sub(frac_len)
                .ok_or_else(|| err("exponent too large"))?,
            exp2,
        })
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// True when greater than zero.
    pub fn is_positive(&self) -> bool {
        !self.negative && !self.is_zero()
    }

    /// The value in units of `10^scale10`, rounded up (as Kubernetes does: `1.5` bytes is 2,
    /// `0.1` CPU is 100 millicores with `scale10 = -3`). None when it does not fit in an i128.
    pub fn ceil_scaled(&self, scale10: i32) -> Option<i128> {
        if self.is_zero() {
            return Some(0);
        }
        let mantissa: u128 = self.digits.parse().ok()?;
        let numerator = mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let e = self.exp10.checked_sub(scale10)?;
        let magnitude = if e >= 0 {
            numerator.checked_mul(10u128.checked_pow(u32::try_from(e).ok()?)?)?
        } else {
            match 10u128.checked_pow(e.unsigned_abs()) {
                Some(d) => numerator.div_ceil(d),
                // Dividing by more than 10^38 leaves less than one unit: round up to 1.
                None => 1,
            }
        };
        let v = i128::try_from(magnitude).ok()?;
        // Rounding up towards +infinity: for negative values the truncated magnitude is right
        // only when exact, which the callers (sizes, CPU) never depend on.
        Some(if self.negative { -v } else { v })
    }

    /// Whole bytes (or units), rounded up.
    pub fn to_units_ceil(&self) -> Option<i128> {
        self.ceil_scaled(0)
    }

    /// Thousandths (millicores for CPU), rounded up.
    pub fn to_milli_ceil(&self) -> Option<i128> {
        self.ceil_scaled(-3)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        match self.partial_cmp(other) {
            Some(o) => o == Ordering::Equal,
            // Too large to scale: equal only when written the same way.
            None => {
                (self.negative, &self.digits, self.exp10, self.exp2)
                    == (other.negative, &other.digits, other.exp10, other.exp2)
            }
        }
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        // Compared in nano-units: every suffix is a whole number of those. Values too large to
        // compare exactly are not ordered.
        Some(self.ceil_scaled(-9)?.cmp(&other.ceil_scaled(-9)?))
    }
}

/// Whether `s` is a quantity greater than zero.
pub fn is_positive_quantity(s: &str) -> bool {
    Quantity::parse(s).is_ok_and(|q| q.is_positive())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn units(s: &str) -> i128 {
        Quantity::parse(s).unwrap().to_units_ceil().unwrap()
    }

    #[test]
    fn binary_and_decimal_suffixes_have_their_kubernetes_values() {
        assert_eq!(units("1Ki"), 1024);
        assert_eq!(units("1Gi"), 1 << 30);
        assert_eq!(units("1.5Gi"), 3 << 29);
        assert_eq!(units("1Ei"), 1 << 60);
        assert_eq!(units("1E"), 1_000_000_000_000_000_000);
        assert_eq!(units("2k"), 2000);
        assert_eq!(units("500M"), 500_000_000);
        assert_eq!(units("1073741824"), 1 << 30);
        assert_eq!(units("+3"), 3);
    }

    #[test]
    fn an_e_followed_by_an_integer_is_an_exponent() {
        assert_eq!(units("1e9"), 1_000_000_000);
        assert_eq!(units("1E3"), 1000);
        assert_eq!(units("1.5e+3"), 1500);
        assert_eq!(units("15e-1"), 2, "1.5 rounds up");
    }

    #[test]
    fn fractions_round_up_to_the_requested_scale() {
        let cpu = |s: &str| Quantity::parse(s).unwrap().to_milli_ceil().unwrap();
        assert_eq!(cpu("100m"), 100);
        assert_eq!(cpu("0.1"), 100);
        assert_eq!(cpu(".5"), 500);
        assert_eq!(cpu("2."), 2000);
        assert_eq!(cpu("1500u"), 2);
        assert_eq!(units("0.5"), 1);
        assert_eq!(units("1n"), 1);
    }

    #[test]
    fn positivity() {
        for ok in [
            "1Gi", "1", "0.5Gi", "1e9", "1E", "1Ei", "500m", ".1", "+2Mi",
        ] {
            assert!(is_positive_quantity(ok), "{ok}");
        }
        for bad in ["0", "0Gi", "-1Gi", "0.0", "-0", "0e5"] {
            assert!(!is_positive_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for bad in [
            "", "Gi", "1GB", "1gi", "1.2.3", "e3", "1e", "1e+", "1E-", "1Ki3", " 1Gi", "1Gi ",
            "lots", "1 Gi", "--1", ".", "1ee3", "nan", "inf",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn comparison_is_exact_across_suffixes() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert!(q("2Gi") > q("1Gi"));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1024Mi").partial_cmp(&q("1Gi")), Some(Ordering::Equal));
        assert_eq!(q("1"), q("1000m"));
        assert_ne!(q("1"), q("1001m"));
        assert!(q("1.1Gi") < q("1127Mi"));
    }

    #[test]
    fn values_too_large_for_i128_have_no_integer_value() {
        assert_eq!(Quantity::parse("1e40").unwrap().to_units_ceil(), None);
        assert!(is_positive_quantity("1e40"));
    }
}
