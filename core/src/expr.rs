//! CEL expressions (through `cel-interpreter`): the values they see and the functions a
//! template may call beyond standard CEL.
//!
//! Dates are `YYYY-MM-DD` strings, so they compare with `<` and `==` as they are; the extra
//! functions do date arithmetic and sums over repeat groups:
//! - `sum(list)`: sum of the numbers in a list (nulls skipped), e.g. `sum(visits.map(v, v.tests))`;
//! - `days_between(a, b)`: days from date `a` to date `b`;
//! - `add_days(date, n)`, `add_months(date, n)`: shifted dates (month ends clamp);
//! - `latest(list)`: the latest date of a list (nulls skipped; `null` when none);
//! - `age_on(birth_date, date)`: age in whole years on `date`.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, ExecutionError, Value};
use serde_json::Value as Json;
use time::Date;

/// Names every expression can use besides the template's fields.
pub const TODAY: &str = "today";
pub const PERIOD_START: &str = "period_start";
pub const PERIOD_END: &str = "period_end";
/// In a constraint: the answer being checked.
pub const VALUE: &str = "value";
pub const RESERVED: &[&str] = &[TODAY, PERIOD_START, PERIOD_END, VALUE, "null", "true", "false", "in"];

/// Functions and macros an expression may call.
pub const FUNCTIONS: &[&str] = &[
    // standard CEL (cel-interpreter)
    "contains",
    "size",
    "max",
    "min",
    "startsWith",
    "endsWith",
    "string",
    "double",
    "int",
    "uint",
    "matches",
    "map",
    "filter",
    "all",
    "exists",
    "exists_one",
    "has",
    // ours
    "sum",
    "days_between",
    "add_days",
    "add_months",
    "latest",
    "age_on",
];

/// A context holding the standard and our functions; evaluations use child scopes of it.
pub fn root_context() -> Context<'static> {
    let mut ctx = Context::default();
    ctx.add_function("sum", sum);
    ctx.add_function("days_between", days_between);
    ctx.add_function("add_days", add_days);
    ctx.add_function("add_months", add_months);
    ctx.add_function("latest", latest);
    ctx.add_function("age_on", age_on);
    ctx
}

fn sum(list: Arc<Vec<Value>>) -> Result<Value, ExecutionError> {
    let mut int: i64 = 0;
    let mut float: Option<f64> = None;
    for v in list.iter() {
        match v {
            Value::Int(i) => {
                int = int.checked_add(*i).ok_or_else(|| ExecutionError::function_error("sum", "overflow"))?
            }
            Value::UInt(u) => {
                int = int.checked_add(*u as i64).ok_or_else(|| ExecutionError::function_error("sum", "overflow"))?
            }
            Value::Float(f) => *float.get_or_insert(0.0) += f,
            Value::Null => {}
            other => return Err(ExecutionError::function_error("sum", format!("not a number: {other:?}"))),
        }
    }
    Ok(match float {
        Some(f) => Value::Float(f + int as f64),
        None => Value::Int(int),
    })
}

fn parse_date(function: &str, s: &str) -> Result<Date, ExecutionError> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| ExecutionError::function_error(function, format!("{s:?} is not a date YYYY-MM-DD")))
}

fn format_date(d: Date) -> Value {
    Value::String(Arc::new(format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())))
}

fn days_between(a: Arc<String>, b: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::Int((parse_date("days_between", &b)? - parse_date("days_between", &a)?).whole_days()))
}

fn add_days(d: Arc<String>, n: i64) -> Result<Value, ExecutionError> {
    let date = parse_date("add_days", &d)?;
    date.checked_add(time::Duration::days(n))
        .map(format_date)
        .ok_or_else(|| ExecutionError::function_error("add_days", "date out of range"))
}

fn add_months(d: Arc<String>, n: i64) -> Result<Value, ExecutionError> {
    let date = parse_date("add_months", &d)?;
    let index = date.year() as i64 * 12 + date.month() as i64 - 1 + n;
    let year = i32::try_from(index.div_euclid(12))
        .map_err(|_| ExecutionError::function_error("add_months", "out of range"))?;
    let month = time::Month::try_from((index.rem_euclid(12) + 1) as u8)
        .map_err(|_| ExecutionError::function_error("add_months", "out of range"))?;
    let day = date.day().min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, day)
        .map(format_date)
        .map_err(|_| ExecutionError::function_error("add_months", "out of range"))
}

fn latest(list: Arc<Vec<Value>>) -> Result<Value, ExecutionError> {
    let mut best: Option<Date> = None;
    for v in list.iter() {
        match v {
            Value::String(s) => {
                let d = parse_date("latest", s)?;
                best = Some(best.map_or(d, |b| b.max(d)));
            }
            Value::Null => {}
            other => return Err(ExecutionError::function_error("latest", format!("not a date: {other:?}"))),
        }
    }
    Ok(best.map(format_date).unwrap_or(Value::Null))
}

fn age_on(birth: Arc<String>, on: Arc<String>) -> Result<Value, ExecutionError> {
    let (birth, on) = (parse_date("age_on", &birth)?, parse_date("age_on", &on)?);
    let mut age = on.year() as i64 - birth.year() as i64;
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    Ok(Value::Int(age))
}

/// The longest expression a template may hold, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 4_000;
/// The deepest nesting of brackets in an expression: the parser recurses on each level, and
/// a deep enough expression would overflow its stack.
pub const MAX_NESTING: usize = 40;
/// The most minus signs and negations (`-`, `!` but not `!=`) an expression may hold. The
/// parser's prediction for a `-` (a negative literal or an operator) grows exponentially with
/// the minus signs stacked across nesting levels: `--(`×18 took 2 s, `-size(-`×40 ran out of
/// 2 GB (found by the cel_expression fuzzer). No template needs more than a few.
pub const MAX_SIGNS: usize = 16;

/// Refuses what the parser should never see: an empty expression, an over-long one, one
/// nested too deep or with too many signs.
///
/// Brackets and signs count only outside string literals and comments, so this scan must
/// split the source exactly as the parser's lexer does: a literal it reads as text while the
/// parser reads code would hide brackets and signs (the fuzzer found `'` left open before a
/// newline hiding 150 levels). It therefore accepts only the literal forms it can split
/// exactly, plain `'…'` or `"…"` on one line without backslashes, and refuses the rest
/// (escapes, triple quotes, backtick names) with a clear error.
fn check_shape(source: &str) -> Result<(), String> {
    if source.trim().is_empty() {
        return Err("the expression is empty".to_owned());
    }
    crate::limits::check_chars("the expression", source, MAX_EXPRESSION_CHARS).map_err(|e| e.to_string())?;
    let (mut depth, mut deepest, mut signs) = (0usize, 0usize, 0usize);
    let mut chars = source.chars().peekable();
    // The last character of code seen, spaces aside: a `{` right after a name builds a message
    // (`Name{…}`), which the interpreter cannot evaluate (it panics).
    let mut last = ' ';
    while let Some(c) = chars.next() {
        if c == '{' && (last.is_alphanumeric() || last == '_') {
            return Err(
                "building a message (`Name{…}`) is not supported in expressions; a map is `{key: value}`".to_owned()
            );
        }
        if !c.is_whitespace() {
            last = c;
        }
        match c {
            '\'' | '"' => skip_literal(c, &mut chars)?,
            '`' => return Err("names in backticks are not supported in expressions".to_owned()),
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|&c| c != '\n').is_some() {},
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '-' => signs += 1,
            '!' if chars.peek() != Some(&'=') => signs += 1,
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(format!("the expression is nested more than {MAX_NESTING} levels deep"));
    }
    if signs > MAX_SIGNS {
        return Err(format!("the expression has more than {MAX_SIGNS} minus signs and negations"));
    }
    Ok(())
}

/// Consumes a plain string literal after its opening `quote`, up to the closing one.
fn skip_literal(quote: char, chars: &mut std::iter::Peekable<std::str::Chars>) -> Result<(), String> {
    const PLAIN: &str = "write text in an expression as plain 'text' on one line, without backslashes";
    if chars.peek() == Some(&quote) {
        chars.next();
        return match chars.peek() {
            Some(&c) if c == quote => Err(format!("triple quotes are not supported: {PLAIN}")),
            _ => Ok(()),
        };
    }
    for c in chars.by_ref() {
        match c {
            c if c == quote => return Ok(()),
            '\\' | '\n' | '\r' => return Err(format!("a string has a backslash or a line break: {PLAIN}")),
            _ => {}
        }
    }
    Err(format!("a string is not closed: {PLAIN}"))
}

/// Compiles a CEL expression. The parser can panic on some malformed input; that is caught
/// and reported as a syntax error, since templates come from outside.
pub fn compile(source: &str) -> Result<cel_interpreter::Program, String> {
    check_shape(source)?;
    match std::panic::catch_unwind(|| cel_interpreter::Program::compile(source)) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the expression could not be parsed".to_owned()),
    }
}

/// Runs a compiled expression. The interpreter panics on some forms it parses (a message
/// construction, `todo!` in its code); that is an evaluation error here, never a crash of the
/// phone or of a server request.
pub fn execute(
    program: &cel_interpreter::Program,
    scope: &cel_interpreter::Context,
) -> Result<Value, cel_interpreter::ExecutionError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(scope))).unwrap_or_else(|_| {
        Err(cel_interpreter::ExecutionError::function_error("cel", "the expression could not be evaluated"))
    })
}

/// Compiles `source` and checks that every variable it uses is `visible` (or bound by a
/// comprehension) and every function it calls is known.
pub fn compile_checked(source: &str, visible: &dyn Fn(&str) -> bool) -> Result<cel_interpreter::Program, String> {
    let program = compile(source)?;
    let references = program.references();
    let bound = bound_names(source);
    if let Some(name) = references.variables().into_iter().find(|n| !visible(n) && !bound.contains(*n)) {
        return Err(format!("uses {name:?}, which is not a name visible there"));
    }
    if let Some(name) = references.functions().into_iter().find(|n| {
        let operator = n.starts_with('_') || n.starts_with('@') || *n == "!_";
        !operator && !FUNCTIONS.contains(n)
    }) {
        return Err(format!("calls unknown function {name:?}"));
    }
    Ok(program)
}

/// A stored JSON value as CEL sees it.
pub fn to_cel(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(map) => Value::Map(Map {
            map: Arc::new(map.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))).collect()),
        }),
    }
}

/// A CEL result as JSON; `None` for values JSON cannot hold.
pub fn from_cel(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number)?,
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(from_cel).collect::<Option<_>>()?),
        Value::Map(map) => Json::Object(
            map.map
                .iter()
                .map(|(k, v)| match k {
                    Key::String(s) => Some((s.to_string(), from_cel(v)?)),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// Names bound by comprehensions (`list.map(v, …)`): the parser reports them as variables,
/// but they are not references to fields.
pub fn bound_names(source: &str) -> HashSet<String> {
    static BINDER: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\.\s*(?:map|filter|all|exists|exists_one)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
            .unwrap_or_else(|e| panic!("static regex: {e}"))
    });
    BINDER.captures_iter(source).map(|c| c[1].to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel_interpreter::Program;

    fn eval(src: &str, vars: &[(&str, Json)]) -> Result<Value, ExecutionError> {
        let root = root_context();
        let mut ctx = root.new_inner_scope();
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, to_cel(value));
        }
        Program::compile(src).expect("compiles").execute(&ctx)
    }

    #[test]
    fn sums_counts_and_comprehensions_over_repeat_rows() {
        let rows =
            serde_json::json!([{"_id": "a", "plants": 120, "area": 50.5}, {"_id": "b", "plants": 30, "area": null}]);
        let vars = [("finds", rows)];
        assert_eq!(eval("sum(finds.map(f, f.plants))", &vars).unwrap(), Value::Int(150));
        assert_eq!(eval("sum(finds.map(f, f.area))", &vars).unwrap(), Value::Float(50.5));
        assert_eq!(eval("size(finds)", &vars).unwrap(), Value::Int(2));
        assert_eq!(eval("size(finds.filter(f, f.plants > 100))", &vars).unwrap(), Value::Int(1));
        assert_eq!(eval("finds.all(f, f.plants > 0)", &vars).unwrap(), Value::Bool(true));
    }

    #[test]
    fn date_functions_compare_and_shift_iso_dates() {
        let vars = [("start", Json::from("2026-01-31")), (TODAY, Json::from("2026-11-22"))];
        assert_eq!(eval("add_months(start, 1)", &vars).unwrap(), Value::String(Arc::new("2026-02-28".into())));
        assert_eq!(eval("add_months(start, 12)", &vars).unwrap(), Value::String(Arc::new("2027-01-31".into())));
        assert_eq!(eval("add_days(start, 1)", &vars).unwrap(), Value::String(Arc::new("2026-02-01".into())));
        assert_eq!(eval("days_between(start, today)", &vars).unwrap(), Value::Int(295));
        assert_eq!(eval("start <= today", &vars).unwrap(), Value::Bool(true));
        assert!(eval("add_days('31/01/2026', 1)", &vars).is_err());
    }

    #[test]
    fn expressions_the_parser_would_choke_on_are_refused_before_it_sees_them() {
        // Found by the fuzzer: minus signs stacked across levels made parsing exponential.
        let stacked = format!("{}p", "-size(-".repeat(40));
        assert!(compile(&stacked).unwrap_err().contains("minus signs"));
        assert!(compile(&format!("{}p{}", "--(".repeat(9), ")".repeat(9))).is_err());
        assert!(compile(&format!("{}1{}", "(".repeat(41), ")".repeat(41))).unwrap_err().contains("nested"));
        assert!(compile("  ").is_err());
        // Ordinary arithmetic, negative numbers and != stay well inside the limits.
        assert!(compile("a != b && !(c - 1 > -2) && d != -3").is_ok());
        assert!(compile(&format!("{}1", "x - ".repeat(16))).is_ok());
    }

    #[test]
    fn string_literals_cannot_hide_brackets_or_signs_from_the_shape_check() {
        // Found by the fuzzer: a quote left open before a line break is no string to the
        // parser, which then read 150 nested brackets and a row of negations (1.3 s).
        let open_quote = format!("status in ['ru\nx{}1", "[".repeat(150));
        assert!(compile(&open_quote).unwrap_err().contains("line break"));
        assert!(compile(&format!("'abc{}", "!".repeat(40))).unwrap_err().contains("not closed"));
        // Forms whose extent the scan cannot match exactly with the parser's are refused.
        assert!(compile(r"x == 'it\'s'").unwrap_err().contains("backslash"));
        assert!(compile(&format!("x == '''{}'''", "-(".repeat(20))).unwrap_err().contains("triple"));
        assert!(compile("`a-b` == 1").unwrap_err().contains("backticks"));
        // Found by the fuzzer: a message construction panics the interpreter when evaluated.
        for message in ["dg{}", "a.b {x: 1}", "size(T{ })"] {
            assert!(compile(message).unwrap_err().contains("message"), "{message}");
        }
        assert!(compile("{'a': 1, 'b': {'c': 2}}['a'] == 1 && size({}) == 0").is_ok());
        // And should another form panic the interpreter, its evaluation is an error.
        let message = Program::compile("dg{}").expect("the parser takes it");
        assert!(execute(&message, &root_context()).is_err());
        // A comment hides what follows it from the parser and from the scan alike.
        assert!(compile(&format!("1 // {}\n + 2", ")".repeat(50))).is_ok());
        let deep_after_comment =
            format!("{} // {}\n{}1{}", "(".repeat(30), ")".repeat(30), "(".repeat(11), ")".repeat(41));
        assert!(compile(&deep_after_comment).unwrap_err().contains("nested"));
        // Plain literals, empty ones and brackets or dashes inside them are fine.
        assert!(compile("status in ['rehab_home', \"post-rehab (12)\", ''] && d > '2026-07-01'").is_ok());
    }

    #[test]
    fn latest_date_and_age_in_whole_years() {
        let vars = [("checks", serde_json::json!(["2026-03-02", null, "2026-10-30", "2026-07-01"]))];
        assert_eq!(eval("latest(checks)", &vars).unwrap(), Value::String(Arc::new("2026-10-30".into())));
        assert_eq!(eval("latest([])", &vars).unwrap(), Value::Null);
        assert_eq!(eval("age_on('2008-11-15', '2026-11-14')", &vars).unwrap(), Value::Int(17));
        assert_eq!(eval("age_on('2008-11-15', '2026-11-15')", &vars).unwrap(), Value::Int(18));
        assert_eq!(eval("age_on('2008-02-29', '2026-02-28')", &vars).unwrap(), Value::Int(17));
    }

    #[test]
    fn comprehension_variables_are_not_field_references() {
        assert_eq!(
            bound_names("sum(finds.map(f, f.plants)) + size(x.filter( y ,y))"),
            HashSet::from(["f".into(), "y".into()])
        );
    }
}
