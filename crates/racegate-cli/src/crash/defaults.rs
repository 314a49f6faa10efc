//! Where crash reports are looked for by default, and under which names: the report formats
//! the parsers of this module read, narrowed to one program's reports so that another process
//! crashing on the machine does not fail a run. The folders per OS are
//! [`default_dirs`](super::default_dirs).

use super::CrashDir;

/// Every report format the crash parsers read: macOS `.ips`, apport `.crash`, systemd cores.
pub const REPORT_PATTERNS: [&str; 3] = ["*.ips", "*.crash", "core.*"];

/// [`REPORT_PATTERNS`] as owned strings.
pub fn report_patterns() -> Vec<String> {
    REPORT_PATTERNS.iter().map(|p| p.to_string()).collect()
}

/// The OS's crash folders; with a program (a managed target's), their patterns are narrowed to
/// its reports.
pub fn default_crash_dirs(program: Option<&str>) -> Vec<CrashDir> {
    let mut dirs = super::default_dirs();
    for d in &mut dirs {
        d.patterns = scoped_patterns(&d.patterns, program);
    }
    dirs
}

/// Narrow the standard report patterns to one program's reports (`<prog>*.ips`,
/// `core.<comm>.*`, `*<prog>*.crash`); other patterns are kept as written.
pub fn scoped_patterns(patterns: &[String], program: Option<&str>) -> Vec<String> {
    let Some(prog) = program.filter(|p| !p.is_empty()) else {
        return patterns.to_vec();
    };
    let prog = globset::escape(prog);
    // systemd keeps the kernel's `comm`: the first 15 bytes of the program name.
    let comm: String = {
        let mut end = prog.len().min(15);
        while !prog.is_char_boundary(end) {
            end -= 1;
        }
        prog[..end].to_string()
    };
    patterns
        .iter()
        .map(|p| match p.as_str() {
            "*.ips" => format!("{prog}*.ips"),
            "core.*" => format!("core.{comm}.*"),
            "*.crash" => format!("*{prog}*.crash"),
            other => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_scoped_to_the_program() {
        let dirs = default_crash_dirs(Some("sanctum-mlx-server-long"));
        for d in &dirs {
            for p in &d.patterns {
                assert!(p.contains("sanctum-mlx"), "{p}");
            }
        }
    }

    #[test]
    fn only_the_standard_patterns_are_narrowed() {
        let scoped = scoped_patterns(
            &["*.ips".into(), "core.*".into(), "mine-*.log".into()],
            Some("a-very-long-server-name"),
        );
        assert_eq!(
            scoped,
            [
                "a-very-long-server-name*.ips",
                "core.a-very-long-ser.*",
                "mine-*.log"
            ]
        );
        assert_eq!(scoped_patterns(&report_patterns(), None), REPORT_PATTERNS);
    }
}
