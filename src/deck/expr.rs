//! LAMMPS equal-style formulas: numbers, constants, thermo keywords, `v_name` references, math
//! functions and the operators with LAMMPS's precedence (lowest first):
//! `|| |^`, `&&`, `== !=`, `< <= > >=`, `+ -`, `* / %`, `^`, unary `- !`; all left to right, so
//! `-2^2` is 4 and `2^3^2` is 64, as in LAMMPS.
//!
//! The parser evaluates as it reads (no tree); names it does not know itself are asked of a
//! [`Context`]. Errors say what was wrong and where; nesting is capped so no input can overflow
//! the stack.

/// What a formula can look up outside itself.
pub trait Context {
    /// A bare word: a thermo keyword (`temp`, `pe`, `step`, ...) or `v_name`.
    fn word(&mut self, name: &str) -> Result<f64, String>;
    /// A function the evaluator does not know (group and step functions such as
    /// `count(all)`, `xcm(all,x)`, `ramp(x,y)`), with its raw arguments; None if unknown.
    fn function(&mut self, name: &str, args: &[&str]) -> Option<Result<f64, String>>;
}

/// Deepest nesting of parentheses and unary operators accepted.
const MAX_DEPTH: usize = 200;

pub fn evaluate(text: &str, ctx: &mut dyn Context) -> Result<f64, String> {
    let mut p = Parser { s: text.as_bytes(), text, pos: 0, ctx, depth: 0 };
    let v = p.or()?;
    p.skip_space();
    if p.pos < p.s.len() {
        return Err(p.error("unexpected text"));
    }
    Ok(v)
}

struct Parser<'a, 'c> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    ctx: &'c mut dyn Context,
    depth: usize,
}

fn truth(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

impl<'a> Parser<'a, '_> {
    fn error(&self, what: &str) -> String {
        let at = self.pos.min(self.text.len());
        let shown: String = self.text[at..].chars().take(20).collect();
        if shown.is_empty() {
            format!("formula '{}': {what} at its end", self.text)
        } else {
            format!("formula '{}': {what} at '{shown}'", self.text)
        }
    }

    fn skip_space(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Consumes `op` if it comes next (and is not the start of a longer operator in `not`).
    fn eat(&mut self, op: &str, not: &[&str]) -> bool {
        self.skip_space();
        let rest = &self.s[self.pos..];
        if rest.starts_with(op.as_bytes()) && !not.iter().any(|n| rest.starts_with(n.as_bytes())) {
            self.pos += op.len();
            true
        } else {
            false
        }
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<f64, String> {
        let mut v = self.and()?;
        loop {
            if self.eat("||", &[]) {
                let r = self.and()?;
                v = truth(v != 0.0 || r != 0.0);
            } else if self.eat("|^", &[]) {
                let r = self.and()?;
                v = truth((v != 0.0) != (r != 0.0));
            } else {
                return Ok(v);
            }
        }
    }

    fn and(&mut self) -> Result<f64, String> {
        let mut v = self.equality()?;
        while self.eat("&&", &[]) {
            let r = self.equality()?;
            v = truth(v != 0.0 && r != 0.0);
        }
        Ok(v)
    }

    fn equality(&mut self) -> Result<f64, String> {
        let mut v = self.relation()?;
        loop {
            if self.eat("==", &[]) {
                v = truth(v == self.relation()?);
            } else if self.eat("!=", &[]) {
                v = truth(v != self.relation()?);
            } else {
                return Ok(v);
            }
        }
    }

    fn relation(&mut self) -> Result<f64, String> {
        let mut v = self.sum()?;
        loop {
            if self.eat("<=", &[]) {
                v = truth(v <= self.sum()?);
            } else if self.eat(">=", &[]) {
                v = truth(v >= self.sum()?);
            } else if self.eat("<", &[]) {
                v = truth(v < self.sum()?);
            } else if self.eat(">", &[]) {
                v = truth(v > self.sum()?);
            } else {
                return Ok(v);
            }
        }
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        loop {
            if self.eat("+", &[]) {
                v += self.product()?;
            } else if self.eat("-", &[]) {
                v -= self.product()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.power()?;
        loop {
            if self.eat("*", &[]) {
                v *= self.power()?;
            } else if self.eat("/", &[]) {
                let r = self.power()?;
                if r == 0.0 {
                    return Err(self.error("divide by 0"));
                }
                v /= r;
            } else if self.eat("%", &[]) {
                let r = self.power()?;
                if r == 0.0 {
                    return Err(self.error("modulo by 0"));
                }
                v %= r;
            } else {
                return Ok(v);
            }
        }
    }

    fn power(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while self.eat("^", &[]) {
            let r = self.unary()?;
            if v == 0.0 && r < 0.0 {
                return Err(self.error("0 raised to a negative power"));
            }
            v = v.powf(r);
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        self.deeper()?;
        let v = if self.eat("-", &[]) {
            -self.unary()?
        } else if self.eat("!", &["!="]) {
            truth(self.unary()? == 0.0)
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(v)
    }

    fn primary(&mut self) -> Result<f64, String> {
        self.skip_space();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.error("expected a value"));
        };
        if c == b'(' {
            self.pos += 1;
            let v = self.or()?;
            if !self.eat(")", &[]) {
                return Err(self.error("expected ')'"));
            }
            return Ok(v);
        }
        if c.is_ascii_digit() || c == b'.' {
            return self.number();
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = self.pos;
            while self.pos < self.s.len()
                && (self.s[self.pos].is_ascii_alphanumeric() || matches!(self.s[self.pos], b'_' | b'[' | b']'))
            {
                self.pos += 1;
            }
            let name = &self.text[start..self.pos];
            self.skip_space();
            if self.s.get(self.pos) == Some(&b'(') {
                return self.call(name);
            }
            return self.word(name);
        }
        Err(self.error("expected a number, a name or '('"))
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            while p.pos < p.s.len() && p.s[p.pos].is_ascii_digit() {
                p.pos += 1;
            }
        };
        digits(self);
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            digits(self);
        }
        if matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.s.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
                digits(self);
            } else {
                self.pos = save;
            }
        }
        self.text[start..self.pos]
            .parse::<f64>()
            .map_err(|_| self.error("malformed number"))
    }

    fn word(&mut self, name: &str) -> Result<f64, String> {
        Ok(match name {
            "PI" => std::f64::consts::PI,
            "version" => 20250722.0,
            "on" | "yes" | "true" => 1.0,
            "off" | "no" | "false" => 0.0,
            _ => self.ctx.word(name)?,
        })
    }

    /// The text of the arguments between the parentheses, split at top-level commas.
    fn arguments(&mut self) -> Result<Vec<&'a str>, String> {
        // at '('
        let open = self.pos;
        let mut depth = 0usize;
        let mut splits = vec![open + 1];
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                b',' if depth == 1 => splits.push(self.pos + 1),
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos >= self.s.len() {
            return Err(self.error("missing ')'"));
        }
        let close = self.pos;
        self.pos += 1;
        splits.push(close + 1);
        let text: &'a str = self.text;
        let args: Vec<&'a str> = splits.windows(2).map(|w| text[w[0]..w[1] - 1].trim()).collect();
        if args.len() == 1 && args[0].is_empty() {
            return Ok(Vec::new());
        }
        Ok(args)
    }

    fn call(&mut self, name: &str) -> Result<f64, String> {
        self.deeper()?;
        let args = self.arguments()?;
        let n = args.len();
        let math = |want: usize, p: &mut Self| -> Result<Vec<f64>, String> {
            if n != want {
                return Err(format!("formula '{}': {name}() takes {want} argument(s), got {n}", p.text));
            }
            let mut values = Vec::with_capacity(n);
            for a in &args {
                p.depth += 1;
                if p.depth > MAX_DEPTH {
                    return Err(p.error("nested too deeply"));
                }
                let mut inner = Parser { s: a.as_bytes(), text: a, pos: 0, ctx: &mut *p.ctx, depth: p.depth };
                let v = inner.or()?;
                inner.skip_space();
                if inner.pos < inner.s.len() {
                    return Err(inner.error("unexpected text"));
                }
                p.depth -= 1;
                values.push(v);
            }
            Ok(values)
        };
        let domain = |ok: bool, what: &str, p: &Self| if ok { Ok(()) } else { Err(p.error(what)) };
        let v = match name {
            "sqrt" => {
                let a = math(1, self)?[0];
                domain(a >= 0.0, "sqrt of a negative value", self)?;
                a.sqrt()
            }
            "exp" => math(1, self)?[0].exp(),
            "ln" => {
                let a = math(1, self)?[0];
                domain(a > 0.0, "ln of a value <= 0", self)?;
                a.ln()
            }
            "log" => {
                let a = math(1, self)?[0];
                domain(a > 0.0, "log of a value <= 0", self)?;
                a.log10()
            }
            "abs" => math(1, self)?[0].abs(),
            "sin" => math(1, self)?[0].sin(),
            "cos" => math(1, self)?[0].cos(),
            "tan" => math(1, self)?[0].tan(),
            "asin" => {
                let a = math(1, self)?[0];
                domain((-1.0..=1.0).contains(&a), "asin of a value outside [-1, 1]", self)?;
                a.asin()
            }
            "acos" => {
                let a = math(1, self)?[0];
                domain((-1.0..=1.0).contains(&a), "acos of a value outside [-1, 1]", self)?;
                a.acos()
            }
            "atan" => math(1, self)?[0].atan(),
            "atan2" => {
                let a = math(2, self)?;
                a[0].atan2(a[1])
            }
            "ceil" => math(1, self)?[0].ceil(),
            "floor" => math(1, self)?[0].floor(),
            "round" => math(1, self)?[0].round(),
            "sign" => {
                let a = math(1, self)?[0];
                if a >= 0.0 { 1.0 } else { -1.0 }
            }
            "min" => {
                let a = math(2, self)?;
                a[0].min(a[1])
            }
            "max" => {
                let a = math(2, self)?;
                a[0].max(a[1])
            }
            // Not a LAMMPS function (LAMMPS writes x^y); accepted as the same thing.
            "pow" => {
                let a = math(2, self)?;
                if a[0] == 0.0 && a[1] < 0.0 {
                    return Err(self.error("0 raised to a negative power"));
                }
                a[0].powf(a[1])
            }
            "ternary" => {
                let a = math(3, self)?;
                if a[0] != 0.0 { a[1] } else { a[2] }
            }
            _ => match self.ctx.function(name, &args) {
                Some(r) => r?,
                None => {
                    return Err(format!(
                        "formula '{}': unknown function {name}(); mdrun knows sqrt exp ln log abs sin cos tan asin acos atan atan2 ceil floor round sign min max pow ternary ramp stagger logfreq count mass xcm vcm",
                        self.text
                    ));
                }
            },
        };
        self.depth -= 1;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vars;
    impl Context for Vars {
        fn word(&mut self, name: &str) -> Result<f64, String> {
            match name {
                "v_a" => Ok(2.0),
                "temp" => Ok(1.5),
                _ => Err(format!("unknown word {name}")),
            }
        }
        fn function(&mut self, _: &str, _: &[&str]) -> Option<Result<f64, String>> {
            None
        }
    }

    fn ev(s: &str) -> Result<f64, String> {
        evaluate(s, &mut Vars)
    }

    #[test]
    fn lammps_precedence_and_functions() {
        assert_eq!(ev("1+2*3").unwrap(), 7.0);
        assert_eq!(ev("-2^2").unwrap(), 4.0);
        assert_eq!(ev("2^3^2").unwrap(), 64.0);
        assert_eq!(ev("20*v_a").unwrap(), 40.0);
        assert_eq!(ev("sqrt(16)+exp(0)+ln(1)").unwrap(), 5.0);
        assert_eq!(ev("2 > 1 && temp < 2").unwrap(), 1.0);
        assert_eq!(ev("!0 + !1").unwrap(), 1.0);
        assert_eq!(ev("1 != 2").unwrap(), 1.0);
        assert_eq!(ev("7 % 3").unwrap(), 1.0);
        assert_eq!(ev("ternary(temp>1, 10, 20)").unwrap(), 10.0);
        assert_eq!(ev("pow").unwrap_err(), "unknown word pow");
        assert_eq!(ev("1.5e2 + .5").unwrap(), 150.5);
        assert!((ev("PI").unwrap() - std::f64::consts::PI).abs() < 1e-15);
        assert!(ev("1/0").unwrap_err().contains("divide by 0"));
        assert!(ev("sqrt(-1)").unwrap_err().contains("sqrt"));
        assert!(ev("(1+2").unwrap_err().contains("')'"));
        assert!(ev("1 2").unwrap_err().contains("unexpected"));
        assert!(ev("max(1)").unwrap_err().contains("2 argument"));
        assert!(ev(&"(".repeat(10_000)).is_err());
        assert!(ev(&"-".repeat(10_000)).is_err());
        assert!(ev(&"sqrt(".repeat(10_000)).is_err());
    }
}
