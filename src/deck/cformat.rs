//! C `printf` number formatting (`%g`, `%f`, `%e`, `%d`), as LAMMPS prints its thermo table,
//! `${v}` substitutions ("%.15g") and `$(expr:%fmt)` immediates. Rust's `{:e}` rounds exactly,
//! as glibc does, so the digits agree with LAMMPS's.

/// `%.{precision}g`.
pub fn g(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return nonfinite(x);
    }
    let p = precision.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // The exponent after rounding to p significant digits decides the style.
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(mantissa);
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

/// `%.{precision}e`.
pub fn e(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return nonfinite(x);
    }
    let sci = format!("{x:.precision$e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

fn nonfinite(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats `x` with one C conversion such as `%.3f`, `%10.4g`, `%-12.6e`, `%d` or `%5i`; the
/// text around the conversion is kept. Errors name what is wrong with the format.
pub fn printf(format: &str, x: f64) -> Result<String, String> {
    let start = format
        .find('%')
        .ok_or_else(|| format!("format '{format}' has no % conversion"))?;
    let rest = &format[start + 1..];
    let mut chars = rest.char_indices();
    let mut left = false;
    let mut plus = false;
    let mut space = false;
    let mut zero = false;
    let mut end = None;
    let mut spec = String::new();
    for (i, c) in chars.by_ref() {
        match c {
            '-' if spec.is_empty() => left = true,
            '+' if spec.is_empty() => plus = true,
            ' ' if spec.is_empty() => space = true,
            '0' if spec.is_empty() => zero = true,
            '0'..='9' | '.' => spec.push(c),
            'l' | 'h' => {}
            'g' | 'G' | 'f' | 'F' | 'e' | 'E' | 'd' | 'i' => {
                end = Some((i, c));
                break;
            }
            _ => return Err(format!("format '{format}': unsupported conversion '%{}'", &rest[..i + c.len_utf8()])),
        }
    }
    let (at, conv) = end.ok_or_else(|| format!("format '{format}' has an unfinished % conversion"))?;
    if rest[at + 1..].contains('%') {
        return Err(format!("format '{format}' has more than one % conversion"));
    }
    let (width, precision) = match spec.split_once('.') {
        Some((w, p)) => (w, Some(p)),
        None => (spec.as_str(), None),
    };
    let parse = |s: &str| -> Result<usize, String> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse::<usize>()
                .ok()
                .filter(|&v| v <= 100)
                .ok_or_else(|| format!("format '{format}': bad width or precision '{s}'"))
        }
    };
    let width = parse(width)?;
    let precision = match precision {
        Some(p) => parse(p)?,
        None => 6,
    };
    let mut body = match conv {
        'g' | 'G' => g(x, precision),
        'f' | 'F' => {
            if x.is_finite() {
                format!("{x:.precision$}")
            } else {
                nonfinite(x)
            }
        }
        'e' | 'E' => e(x, precision),
        _ => {
            if !x.is_finite() || x.abs() > 9.2e18 {
                return Err(format!("format '{format}': {x} is not an integer"));
            }
            format!("{}", x as i64)
        }
    };
    if conv.is_ascii_uppercase() {
        body = body.to_uppercase();
    }
    if !body.starts_with('-') {
        if plus {
            body.insert(0, '+');
        } else if space {
            body.insert(0, ' ');
        }
    }
    let padded = if body.len() >= width {
        body
    } else if left {
        format!("{body:<width$}")
    } else if zero && x.is_finite() {
        let (sign, digits) = match body.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
            _ => (String::new(), body.clone()),
        };
        format!("{sign}{}{digits}", "0".repeat(width - body.len()))
    } else {
        format!("{body:>width$}")
    };
    Ok(format!("{}{padded}{}", &format[..start], &rest[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_c_printf() {
        assert_eq!(g(1.44, 8), "1.44");
        assert_eq!(g(-6.77336812345, 8), "-6.7733681");
        assert_eq!(g(0.0, 8), "0");
        assert_eq!(g(1202833.0, 6), "1.20283e+06");
        assert_eq!(g(0.0001234, 3), "0.000123");
        assert_eq!(g(0.00001234, 3), "1.23e-05");
        assert_eq!(g(100000.0, 6), "100000");
        assert_eq!(g(1e6, 6), "1e+06");
        assert_eq!(g(0.1 + 0.2, 15), "0.3");
        assert_eq!(g(0.1 + 0.2, 20), "0.30000000000000004441");
        assert_eq!(g(9.9999999, 6), "10");
        assert_eq!(printf("%.3f", 2.0f64.sqrt()).unwrap(), "1.414");
        assert_eq!(printf("T = %8.2f K", 300.0).unwrap(), "T =   300.00 K");
        assert_eq!(printf("%-6d|", 42.0).unwrap(), "42    |");
        assert_eq!(printf("%05d", -42.0).unwrap(), "-0042");
        assert_eq!(printf("%.2e", 12345.0).unwrap(), "1.23e+04");
        assert!(printf("%s", 1.0).is_err());
        assert!(printf("none", 1.0).is_err());
        // Found by the fuzzer: a multi-byte character where the conversion should be.
        assert!(printf("%\u{7a5}x", 1.0).is_err());
    }
}
