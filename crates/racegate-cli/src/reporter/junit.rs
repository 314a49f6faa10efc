//! `--junit FILE`: one testcase per pipeline and one for crashes, for CI dashboards.

use std::io::Write;

use crate::report::RunReport;
use crate::verdict::Verdict;

/// Escape text for XML attributes and content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

enum Case {
    Pass,
    Failure(String),
    Error(String),
    Skipped(String),
}

/// Write the JUnit XML report.
pub fn write<W: Write>(r: &RunReport, mut w: W) -> std::io::Result<()> {
    let mut cases: Vec<(String, f64, Case)> = Vec::new();
    let time = r.duration.as_secs_f64();
    for p in &r.pipelines {
        let case = match r.verdict {
            Verdict::Error => Case::Error(r.probe_failures.join("; ")),
            Verdict::Aborted => Case::Skipped(r.reason.clone()),
            _ => match &p.problem {
                Some(problem) => Case::Failure(problem.clone()),
                None => Case::Pass,
            },
        };
        cases.push((format!("pipeline {}", p.name), time, case));
    }
    let crash_case = if r.crashes.is_empty() && r.restarts.is_empty() {
        match r.verdict {
            Verdict::Error => Case::Error(r.probe_failures.join("; ")),
            _ => Case::Pass,
        }
    } else {
        let mut lines: Vec<String> = r
            .crashes
            .iter()
            .map(|c| format!("{}x {} ({})", c.count, c.signature, c.source_label()))
            .collect();
        if !r.restarts.is_empty() {
            lines.push(format!("{} restarts of the target", r.restarts.len()));
        }
        Case::Failure(lines.join("\n"))
    };
    cases.push(("crashes".into(), time, crash_case));
    let failures = cases
        .iter()
        .filter(|c| matches!(c.2, Case::Failure(_)))
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(c.2, Case::Error(_)))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.2, Case::Skipped(_)))
        .count();
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="racegate stress" tests="{}" failures="{failures}" errors="{errors}" skipped="{skipped}" time="{time:.3}">"#,
        cases.len()
    )?;
    writeln!(
        w,
        r#"  <testsuite name="racegate stress {}" tests="{}" failures="{failures}" errors="{errors}" skipped="{skipped}" time="{time:.3}">"#,
        escape(&r.target),
        cases.len()
    )?;
    writeln!(w, "    <properties>")?;
    writeln!(
        w,
        r#"      <property name="verdict" value="{}"/>"#,
        r.verdict
    )?;
    writeln!(
        w,
        r#"      <property name="reason" value="{}"/>"#,
        escape(&r.reason)
    )?;
    writeln!(w, "    </properties>")?;
    for (name, t, case) in &cases {
        let open = format!(
            r#"    <testcase classname="racegate.stress" name="{}" time="{t:.3}""#,
            escape(name)
        );
        match case {
            Case::Pass => writeln!(w, "{open}/>")?,
            Case::Failure(m) => writeln!(
                w,
                "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                escape(m.lines().next().unwrap_or("")),
                escape(m)
            )?,
            Case::Error(m) => writeln!(
                w,
                "{open}>\n      <error message=\"{}\">{}</error>\n    </testcase>",
                escape(m.lines().next().unwrap_or("")),
                escape(m)
            )?,
            Case::Skipped(m) => writeln!(
                w,
                "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                escape(m)
            )?,
        }
    }
    writeln!(w, "  </testsuite>")?;
    writeln!(w, "</testsuites>")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;?");
    }
}
