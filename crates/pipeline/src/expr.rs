//! Expressions of `filter` and `route` operations, in the Common Expression Language
//! (CEL, as Kubernetes and Envoy use it): `watch_duration > 60 && device == "tv"`. A
//! record's top-level value fields are variables; `value` is the whole value and `key`
//! the record key. JSON whole numbers are CEL `int`s (so `watch_duration * 2` works
//! whatever the sign), other numbers `double`s.

use cel_interpreter::{Context, Program, Value as CelValue};

/// A compiled expression.
pub struct Expr {
    text: String,
    program: Program,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.text)
    }
}

impl Expr {
    /// Compiles `text`, or says why it is not an expression.
    pub fn compile(text: &str) -> Result<Expr, String> {
        let program = Program::compile(text).map_err(|e| format!("expression {text:?}: {e}"))?;
        Ok(Expr {
            text: text.to_string(),
            program,
        })
    }

    fn eval(&self, key: &str, value: &serde_json::Value) -> Result<CelValue, String> {
        let mut ctx = Context::default();
        if let serde_json::Value::Object(fields) = value {
            for (k, v) in fields {
                ctx.add_variable_from_value(k.clone(), cel(v));
            }
        }
        ctx.add_variable_from_value("value", cel(value));
        ctx.add_variable_from_value("key", key.to_string());
        self.program
            .execute(&ctx)
            .map_err(|e| format!("expression {:?}: {e}", self.text))
    }

    /// Evaluates to a boolean (a `filter`); anything else is an error.
    pub fn test(&self, key: &str, value: &serde_json::Value) -> Result<bool, String> {
        match self.eval(key, value)? {
            CelValue::Bool(b) => Ok(b),
            other => Err(format!(
                "expression {:?} gave {other:?}, not true or false",
                self.text
            )),
        }
    }

    /// Evaluates to a string (a `route` name); anything else is an error.
    pub fn name(&self, key: &str, value: &serde_json::Value) -> Result<String, String> {
        match self.eval(key, value)? {
            CelValue::String(s) => Ok(s.to_string()),
            other => Err(format!(
                "expression {:?} gave {other:?}, not a string",
                self.text
            )),
        }
    }
}

/// A JSON value as CEL sees it: whole numbers that fit are `int` (cel-interpreter's own
/// conversion makes non-negative ones `uint`, which CEL will not multiply by an `int`).
fn cel(v: &serde_json::Value) -> CelValue {
    use serde_json::Value as J;
    match v {
        J::Null => CelValue::Null,
        J::Bool(b) => CelValue::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => CelValue::String(std::sync::Arc::new(s.clone())),
        J::Array(items) => CelValue::List(std::sync::Arc::new(items.iter().map(cel).collect())),
        J::Object(fields) => CelValue::from(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), cel(v)))
                .collect::<std::collections::HashMap<String, CelValue>>(),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_routes_over_json_fields() {
        let v = serde_json::json!({"watch_duration": 90, "device": "tv", "online": false});
        assert!(Expr::compile("watch_duration > 60 && device == \"tv\"")
            .unwrap()
            .test("k", &v)
            .unwrap());
        assert!(!Expr::compile("value.watch_duration < 10")
            .unwrap()
            .test("k", &v)
            .unwrap());
        let route = Expr::compile("online ? \"online_users\" : \"offline_users\"").unwrap();
        assert_eq!(route.name("k", &v).unwrap(), "offline_users");
        assert!(Expr::compile("key == \"k\"")
            .unwrap()
            .test("k", &v)
            .unwrap());
        // Whole numbers are ints: arithmetic with literals, negative or not.
        assert!(
            Expr::compile("watch_duration * 2 >= 180 && -watch_duration < 0")
                .unwrap()
                .test("k", &v)
                .unwrap()
        );
        let nested =
            serde_json::json!({"content": {"genre": "drama", "n": [1, 2.5]}, "none": null});
        assert!(Expr::compile(
            "content.genre == \"drama\" && content.n[0] + 1 == 2 && none == null"
        )
        .unwrap()
        .test("k", &nested)
        .unwrap());
        assert!(Expr::compile("watch_duration >").is_err());
        assert!(Expr::compile("device").unwrap().test("k", &v).is_err());
        assert!(Expr::compile("missing_field > 1")
            .unwrap()
            .test("k", &v)
            .is_err());
    }

    #[test]
    fn malformed_expressions_are_errors_not_panics() {
        // cel-interpreter 0.10's ANTLR parser panics on some of these; 0.9 does not.
        for bad in [
            "((", "a ? b", "\"open", "1 +", "a.(b)", "}", "a[", "&&", "a b c",
        ] {
            assert!(Expr::compile(bad).is_err(), "{bad}");
        }
    }
}
