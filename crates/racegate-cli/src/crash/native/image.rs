//! A stopped process's code, as the unwinder and the symbolizer need it: the ELF files mapped
//! executable, where each is loaded, its unwind tables (`.eh_frame`, `.eh_frame_hdr`) and its
//! symbols (`.symtab`, else `.dynsym`).
//!
//! Files are read through `/proc/<pid>/root/<path>`, so a process in another mount namespace
//! (a container) is read from its own view. A file that cannot be read or parsed only costs the
//! names of its frames.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use framehop::{ExplicitModuleSectionInfo, Module};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

use super::maps::{self, Mapping};
use crate::crash::frames::Frame;

/// A file's bytes: mapped (libraries are large, and only a few pages of each are touched), or
/// read when mapping fails.
enum Data {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Mapped(m) => m,
            Data::Read(v) => v,
        }
    }
}

/// A range of a file's bytes, as framehop holds section data: no copy.
#[derive(Clone)]
pub struct Bytes {
    data: Arc<Data>,
    range: Range<usize>,
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes {
            data: Arc::new(Data::Read(Vec::new())),
            range: 0..0,
        }
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data.get(self.range.clone()).unwrap_or_default()
    }
}

/// A section: its stated address range and where its bytes are in the file.
#[derive(Clone)]
struct Section {
    svma: Range<u64>,
    bytes: Range<usize>,
}

/// One ELF file's unwind sections and symbols, shared between processes that map it. The
/// symbol table is built on the first lookup: a C++ library has hundreds of thousands.
pub struct ElfFile {
    data: Arc<Data>,
    /// PT_LOAD segments: `(file offset, virtual address)`.
    segments: Vec<(u64, u64)>,
    eh_frame: Option<Section>,
    eh_frame_hdr: Option<Section>,
    got: Option<Range<u64>>,
    /// `(start, size, name offset in the file, name length)`, sorted by start.
    symbols: std::sync::OnceLock<Vec<(u64, u64, usize, usize)>>,
}

impl ElfFile {
    /// Read the ELF file at `path`.
    pub fn open(path: &Path) -> Option<ElfFile> {
        let file = std::fs::File::open(path).ok()?;
        // SAFETY: the mapping is read-only and private; a library replaced on disk is a new
        // inode (installers rename), so the mapped pages stay valid.
        let data = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(m) => Data::Mapped(m),
            Err(_) => Data::Read(std::fs::read(path).ok()?),
        };
        ElfFile::from_data(Arc::new(data))
    }

    /// Parse the bytes of an ELF file.
    pub fn parse(data: &[u8]) -> Option<ElfFile> {
        ElfFile::from_data(Arc::new(Data::Read(data.to_vec())))
    }

    fn from_data(data: Arc<Data>) -> Option<ElfFile> {
        let file = object::File::parse(&**data).ok()?;
        let segments = file
            .segments()
            .map(|s| (s.file_range().0, s.address()))
            .collect();
        let section = |name: &str| {
            let s = file.section_by_name(name)?;
            let (off, len) = s.file_range()?;
            let bytes = usize::try_from(off).ok()?..usize::try_from(off.checked_add(len)?).ok()?;
            (bytes.end <= data.len()).then(|| Section {
                svma: s.address()..s.address().saturating_add(s.size()),
                bytes,
            })
        };
        let eh_frame = section(".eh_frame");
        let eh_frame_hdr = section(".eh_frame_hdr");
        let got = file
            .section_by_name(".got")
            .map(|s| s.address()..s.address().saturating_add(s.size()));
        Some(ElfFile {
            segments,
            eh_frame,
            eh_frame_hdr,
            got,
            symbols: std::sync::OnceLock::new(),
            data,
        })
    }

    fn symbols(&self) -> &[(u64, u64, usize, usize)] {
        self.symbols.get_or_init(|| {
            let Ok(file) = object::File::parse(&**self.data) else {
                return Vec::new();
            };
            let base = self.data.as_ptr() as usize;
            let mut out: Vec<(u64, u64, usize, usize)> = file
                .symbols()
                .chain(file.dynamic_symbols())
                .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
                .filter_map(|s| {
                    let name = s.name().ok().filter(|n| !n.is_empty())?;
                    // Names are slices of the file's string tables: keep where, not a copy.
                    let at = (name.as_ptr() as usize).checked_sub(base)?;
                    Some((s.address(), s.size(), at, name.len()))
                })
                .collect();
            out.sort_by_key(|s| s.0);
            out.dedup_by_key(|s| s.0);
            out
        })
    }

    /// The function at `svma` (an address as the file states it), demangled, if a symbol
    /// covers it.
    pub fn symbol(&self, svma: u64) -> Option<String> {
        let symbols = self.symbols();
        let i = symbols.partition_point(|s| s.0 <= svma).checked_sub(1)?;
        let (start, size, at, len) = symbols[i];
        // A sized symbol must contain the address; an unsized one (hand-written assembly) is
        // taken up to the next symbol.
        if size > 0 && svma >= start.saturating_add(size) {
            return None;
        }
        let name = std::str::from_utf8(self.data.get(at..at.checked_add(len)?)?).ok()?;
        Some(demangle(name))
    }

    /// The load bias of a file whose bytes at `offset` are mapped at `start`: what to add to a
    /// stated address to get the address in the process.
    fn bias(&self, start: u64, offset: u64, page: u64) -> u64 {
        let down = |x: u64| x & !(page - 1);
        self.segments
            .iter()
            .find(|(seg_off, _)| down(*seg_off) == offset)
            .map(|(_, vaddr)| start.wrapping_sub(down(*vaddr)))
            .unwrap_or_else(|| start.wrapping_sub(offset))
    }

    fn bytes(&self, s: &Option<Section>) -> (Option<Range<u64>>, Option<Bytes>) {
        match s {
            Some(s) => (
                Some(s.svma.clone()),
                Some(Bytes {
                    data: self.data.clone(),
                    range: s.bytes.clone(),
                }),
            ),
            None => (None, None),
        }
    }
}

/// `_ZN3mlx4core5array7releaseEv` → `mlx::core::array::release`; Rust symbols without their hash;
/// anything else unchanged.
pub fn demangle(name: &str) -> String {
    let bare = name.split('@').next().unwrap_or(name);
    let rust_legacy = bare.starts_with("_ZN") && bare.contains("17h") && bare.ends_with('E');
    if bare.starts_with("_R") || rust_legacy {
        if let Ok(d) = rustc_demangle::try_demangle(bare) {
            return format!("{d:#}");
        }
    }
    if bare.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(bare) {
            let options = cpp_demangle::DemangleOptions::new()
                .no_params()
                .no_return_type();
            if let Ok(s) = sym.demangle(&options) {
                return s;
            }
        }
    }
    bare.to_string()
}

/// One loaded module of the process.
struct Loaded {
    range: Range<u64>,
    bias: u64,
    path: String,
    file: Option<Arc<ElfFile>>,
}

/// The code of one process at one moment.
pub struct ProcessImage {
    maps: Vec<Mapping>,
    modules: Vec<Loaded>,
}

/// Parsed files by path, kept across captures (one helper may see many processes of one suite).
#[derive(Default)]
pub struct FileCache {
    files: HashMap<(PathBuf, u64), Option<Arc<ElfFile>>>,
}

impl FileCache {
    fn get(&mut self, pid: i32, path: &str, inode: u64) -> Option<Arc<ElfFile>> {
        self.files
            .entry((PathBuf::from(path), inode))
            .or_insert_with(|| {
                let rooted = Path::new("/proc")
                    .join(pid.to_string())
                    .join("root")
                    .join(path.trim_start_matches('/'));
                ElfFile::open(&rooted)
                    .or_else(|| ElfFile::open(Path::new(path)))
                    .map(Arc::new)
            })
            .clone()
    }
}

impl ProcessImage {
    /// Read the maps of `pid` and the files mapped executable in it.
    pub fn load(pid: i32, cache: &mut FileCache) -> std::io::Result<ProcessImage> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        let maps = maps::parse(&text);
        let page = page_size();
        let mut by_path: HashMap<&str, Vec<&Mapping>> = HashMap::new();
        for m in maps.iter().filter(|m| m.is_file()) {
            by_path
                .entry(m.path.as_deref().unwrap_or(""))
                .or_default()
                .push(m);
        }
        let mut modules = Vec::new();
        for (path, ms) in by_path {
            if !ms.iter().any(|m| m.executable) {
                continue;
            }
            let first = ms.iter().min_by_key(|m| m.start).expect("non-empty");
            let end = ms.iter().map(|m| m.end).max().unwrap_or(first.end);
            let file = cache.get(pid, path, first.inode);
            let bias = match &file {
                Some(f) => f.bias(first.start, first.offset, page),
                None => first.start.wrapping_sub(first.offset),
            };
            modules.push(Loaded {
                range: first.start..end,
                bias,
                path: path.to_string(),
                file,
            });
        }
        modules.sort_by_key(|m| m.range.start);
        Ok(ProcessImage { maps, modules })
    }

    fn module(&self, addr: u64) -> Option<&Loaded> {
        let i = self
            .modules
            .partition_point(|m| m.range.start <= addr)
            .checked_sub(1)?;
        let m = &self.modules[i];
        (addr < m.range.end).then_some(m)
    }

    /// Name the code at `addr`.
    pub fn frame(&self, addr: u64) -> Frame {
        let mut frame = Frame {
            kind: crate::crash::frames::FrameKind::Native,
            function: None,
            library: None,
            file: None,
            line: None,
            address: Some(addr),
        };
        if let Some(m) = self.module(addr) {
            frame.library = Some(m.path.rsplit('/').next().unwrap_or(&m.path).to_string());
            frame.file = Some(m.path.clone());
            frame.function = m
                .file
                .as_ref()
                .and_then(|f| f.symbol(addr.wrapping_sub(m.bias)));
        } else if let Some(named) = self.maps.iter().find(|m| m.contains(addr)) {
            // `[vdso]`: the kernel's signal trampoline lives there.
            frame.library = named.path.clone();
        }
        frame
    }

    /// Modules for framehop.
    pub fn unwind_modules(&self) -> Vec<Module<Bytes>> {
        self.modules
            .iter()
            .filter_map(|m| {
                let f = m.file.as_ref()?;
                let (eh_frame_svma, eh_frame) = f.bytes(&f.eh_frame);
                let (eh_frame_hdr_svma, eh_frame_hdr) = f.bytes(&f.eh_frame_hdr);
                // No `.text`: framehop reads code only to guess rules at function starts, which
                // the CFI covers in compiled code.
                let info = ExplicitModuleSectionInfo {
                    base_svma: 0,
                    got_svma: f.got.clone(),
                    eh_frame_svma,
                    eh_frame,
                    eh_frame_hdr_svma,
                    eh_frame_hdr,
                    ..Default::default()
                };
                Some(Module::new(m.path.clone(), m.range.clone(), m.bias, info))
            })
            .collect()
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_and_rust() {
        assert_eq!(
            demangle("_ZN3mlx4core5array7releaseESt10shared_ptrINS1_9ArrayDescEE"),
            "mlx::core::array::release"
        );
        assert_eq!(
            demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(demangle("raise@@GLIBC_2.2.5"), "raise");
        assert_eq!(demangle("_Znot valid"), "_Znot valid");
    }

    #[test]
    fn our_own_process_is_symbolized() {
        let mut cache = FileCache::default();
        let image = ProcessImage::load(std::process::id() as i32, &mut cache).unwrap();
        let addr = demangles_cpp_and_rust as *const () as usize as u64;
        let frame = image.frame(addr);
        let name = frame.function.unwrap_or_default();
        assert!(name.contains("demangles_cpp_and_rust"), "{name}");
        assert!(!image.unwind_modules().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn demangling_never_panics(s in "\\PC*") {
            let _ = demangle(&s);
            let _ = demangle(&format!("_Z{s}"));
            let _ = demangle(&format!("_ZN{s}17h0123456789abcdefE"));
        }

        #[test]
        fn elf_parsing_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
            bytes.extend(data);
            if let Some(f) = ElfFile::parse(&bytes) {
                let _ = f.symbol(0x1000);
            }
        }
    }
}
