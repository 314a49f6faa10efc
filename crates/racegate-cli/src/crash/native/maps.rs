//! `/proc/<pid>/maps`: which file is mapped where in a process.
//!
//! Each line is `start-end perms offset dev inode [path]`, e.g.
//! `7f3a1c000000-7f3a1c200000 r-xp 00001000 08:01 393231   /usr/lib/libmlx.so`. The path may
//! contain spaces and end in ` (deleted)`; anonymous mappings have none, or a bracketed name
//! (`[stack]`, `[vdso]`). Lines that do not parse are skipped: the kernel's format is stable,
//! and one odd line must not cost the whole stack.

/// One mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Whether the mapping is executable (`x` in the permissions).
    pub executable: bool,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The file's inode (0 for anonymous mappings).
    pub inode: u64,
    /// The path, or a bracketed name (`[vdso]`); `None` for anonymous memory.
    pub path: Option<String>,
}

impl Mapping {
    /// Whether this maps a file (not `[vdso]`, `[stack]` or anonymous memory).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.as_deref().is_some_and(|p| p.starts_with('/'))
    }

    /// Whether `addr` falls in this mapping.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Parse the text of a maps file.
pub fn parse(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mapping> {
    let mut rest = line.trim_start();
    let mut field = || {
        let s = rest.trim_start();
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        let (f, r) = s.split_at(end);
        rest = r;
        (!f.is_empty()).then_some(f)
    };
    let range = field()?;
    let perms = field()?;
    let offset = field()?;
    let _dev = field()?;
    let inode = field()?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if end < start {
        return None;
    }
    let path = rest.trim();
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    Some(Mapping {
        start,
        end,
        executable: perms.as_bytes().get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        path: (!path.is_empty()).then(|| path.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_format() {
        let text = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1050 /usr/bin/python3.11
7f3a1c001000-7f3a1c200000 r-xp 00001000 08:01 393231                     /opt/my libs/libmlx.so (deleted)
7ffd4a1e0000-7ffd4a201000 rw-p 00000000 00:00 0                          [stack]
7f3a1c300000-7f3a1c301000 rw-p 00000000 00:00 0
garbage line
";
        let maps = parse(text);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[1].path.as_deref(), Some("/opt/my libs/libmlx.so"));
        assert!(maps[1].executable && maps[1].is_file());
        assert_eq!(maps[1].offset, 0x1000);
        assert!(!maps[2].is_file());
        assert_eq!(maps[3].path, None);
        assert!(maps[1].contains(0x7f3a1c001000) && !maps[1].contains(0x7f3a1c200000));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn round_trips(start in 0u64..u64::MAX / 2, len in 1u64..1 << 40, off in 0u64..1 << 40, inode in 1u64..1 << 40) {
            let line = format!("{start:x}-{:x} r-xp {off:08x} 08:01 {inode} /lib/x.so", start + len);
            let m = &parse(&line)[0];
            proptest::prop_assert_eq!((m.start, m.end, m.offset, m.inode), (start, start + len, off, inode));
        }
    }
}
