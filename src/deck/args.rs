//! Reading a command's arguments: numbers, integers, yes/no, keyword-value pairs, with the
//! argument named in the error.

pub fn num(text: &str, what: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{what}: expected a number, got '{text}'"))
}

pub fn int(text: &str, what: &str) -> Result<i64, String> {
    text.parse::<i64>().map_err(|_| format!("{what}: expected an integer, got '{text}'"))
}

pub fn yes_no(text: &str, what: &str) -> Result<bool, String> {
    match text {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{what}: expected yes or no, got '{text}'")),
    }
}

/// Keyword/value pairs after the fixed arguments.
pub fn pairs<'a>(args: &'a [String], what: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    if args.len() % 2 != 0 {
        return Err(format!("{what}: keyword '{}' has no value", args[args.len() - 1]));
    }
    Ok(args.chunks(2).map(|c| (c[0].as_str(), c[1].as_str())).collect())
}
