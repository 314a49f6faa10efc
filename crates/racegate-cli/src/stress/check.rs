//! Answer checks. `consistent` compares every answer with the pipeline's first one (the first
//! smoke probe's, sent alone, so the reference is an answer given without concurrency).

use std::sync::OnceLock;

use crate::scenario::{Check, OPENAI_CONTENT_POINTER};

/// A pipeline's check, with its reference answer once known.
#[derive(Debug)]
pub struct Checker {
    check: Check,
    reference: OnceLock<Vec<u8>>,
}

/// Why an answer failed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure(pub String);

impl Checker {
    /// A checker with no reference yet.
    pub fn new(check: Check) -> Checker {
        Checker {
            check,
            reference: OnceLock::new(),
        }
    }

    /// The reference answer of `consistent`, once set.
    pub fn reference(&self) -> Option<&[u8]> {
        self.reference.get().map(Vec::as_slice)
    }

    /// Check one answer body.
    pub fn verify(&self, body: &[u8]) -> Result<(), CheckFailure> {
        match &self.check {
            Check::None => Ok(()),
            Check::Regex(re) => {
                let text = String::from_utf8_lossy(body);
                if re.is_match(&text) {
                    Ok(())
                } else {
                    Err(CheckFailure(format!(
                        "body does not match `{}`: {}",
                        re.as_str(),
                        excerpt(body)
                    )))
                }
            }
            Check::PointerEquals { pointer, value } => {
                let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                    CheckFailure(format!("answer is not JSON ({e}): {}", excerpt(body)))
                })?;
                match json.pointer(pointer) {
                    Some(v) if v == value => Ok(()),
                    Some(v) => Err(CheckFailure(format!(
                        "`{pointer}` is {v}, expected {value}"
                    ))),
                    None => Err(CheckFailure(format!("`{pointer}` is missing"))),
                }
            }
            Check::Consistent { pointer } => {
                let key = consistent_key(pointer.as_deref(), body)?;
                let reference = self.reference.get_or_init(|| key.clone());
                if *reference == key {
                    Ok(())
                } else {
                    Err(CheckFailure(format!(
                        "answer differs from the first one: expected {}, got {}",
                        excerpt(reference),
                        excerpt(&key)
                    )))
                }
            }
        }
    }
}

/// What `consistent` compares: the explicit pointer, else the OpenAI content field when the
/// body is OpenAI-shaped JSON, else the whole body.
fn consistent_key(pointer: Option<&str>, body: &[u8]) -> Result<Vec<u8>, CheckFailure> {
    match pointer {
        Some(p) => {
            let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                CheckFailure(format!("answer is not JSON ({e}): {}", excerpt(body)))
            })?;
            match json.pointer(p) {
                Some(v) => Ok(v.to_string().into_bytes()),
                None => Err(CheckFailure(format!("`{p}` is missing"))),
            }
        }
        None => {
            if body.first().is_some_and(|b| *b == b'{') {
                if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
                    if let Some(v) = json.pointer(OPENAI_CONTENT_POINTER) {
                        return Ok(v.to_string().into_bytes());
                    }
                }
            }
            Ok(body.to_vec())
        }
    }
}

fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out: String = s.chars().take(120).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    format!("`{}`", out.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai(content: &str, id: u32) -> Vec<u8> {
        format!(
            r#"{{"id":"cmpl-{id}","created":{id},"choices":[{{"message":{{"role":"assistant","content":"{content}"}}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn consistent_ignores_ids_of_openai_answers() {
        let c = Checker::new(Check::Consistent { pointer: None });
        c.verify(&openai("hi", 1)).unwrap();
        c.verify(&openai("hi", 2)).unwrap();
        let e = c.verify(&openai("ho", 3)).unwrap_err();
        assert!(e.0.contains("ho"), "{e:?}");
    }

    #[test]
    fn consistent_compares_whole_bodies_otherwise() {
        let c = Checker::new(Check::Consistent { pointer: None });
        c.verify(b"ok 1").unwrap();
        assert!(c.verify(b"ok 2").is_err());
        c.verify(b"ok 1").unwrap();
    }

    #[test]
    fn explicit_pointer_and_equals_and_regex() {
        let c = Checker::new(Check::Consistent {
            pointer: Some("/sum".into()),
        });
        c.verify(br#"{"sum":4,"t":1}"#).unwrap();
        c.verify(br#"{"sum":4,"t":2}"#).unwrap();
        assert!(c.verify(br#"{"sum":5}"#).is_err());
        assert!(c.verify(b"not json").is_err());

        let c = Checker::new(Check::PointerEquals {
            pointer: "/a/0".into(),
            value: serde_json::json!("x"),
        });
        c.verify(br#"{"a":["x"]}"#).unwrap();
        assert!(c.verify(br#"{"a":["y"]}"#).is_err());
        assert!(c.verify(br#"{"b":1}"#).is_err());

        let c = Checker::new(Check::Regex(regex::Regex::new("^ok").unwrap()));
        c.verify(b"ok!").unwrap();
        assert!(c.verify(b"nok").is_err());
    }
}
