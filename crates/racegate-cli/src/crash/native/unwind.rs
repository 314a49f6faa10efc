//! Unwind one ptrace-stopped thread: its registers (`PTRACE_GETREGS`), its stack read through
//! `/proc/<tid>/mem`, and the modules' CFI, walked by framehop.

use std::fs::File;
use std::os::unix::fs::FileExt;

use framehop::{FrameAddress, Unwinder};
use nix::unistd::Pid;

use super::image::ProcessImage;
use crate::crash::frames::Frame;

/// Frames walked at most: deep recursion is cut here, and a corrupt stack cannot loop forever.
const MAX_DEPTH: usize = 128;

/// The frames of thread `tid` (stopped by ptrace), innermost first. Errors only when its
/// registers cannot be read; a stack that cannot be walked to its root ends early.
pub fn thread_frames(tid: i32, image: &ProcessImage) -> std::io::Result<Vec<Frame>> {
    let regs = nix::sys::ptrace::getregs(Pid::from_raw(tid)).map_err(std::io::Error::from)?;
    let mem = File::open(format!("/proc/{tid}/mem"))?;
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        let mut buf = [0u8; 8];
        match mem.read_at(&mut buf, addr) {
            Ok(8) => Ok(u64::from_ne_bytes(buf)),
            _ => Err(()),
        }
    };
    let mut addresses = Vec::new();
    walk(image, regs, &mut read_stack, &mut addresses);
    Ok(addresses
        .into_iter()
        .map(|a| match a {
            FrameAddress::InstructionPointer(pc) => image.frame(pc),
            // A return address points after the call; the call itself is one byte before.
            FrameAddress::ReturnAddress(ra) => {
                let mut f = image.frame(ra.get().saturating_sub(1));
                f.address = Some(ra.get());
                f
            }
        })
        .collect())
}

#[cfg(target_arch = "x86_64")]
fn walk(
    image: &ProcessImage,
    regs: libc::user_regs_struct,
    read_stack: &mut impl FnMut(u64) -> Result<u64, ()>,
    out: &mut Vec<FrameAddress>,
) {
    use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
    let mut unwinder = UnwinderX86_64::new();
    for m in image.unwind_modules() {
        unwinder.add_module(m);
    }
    let mut cache = CacheX86_64::<_>::new();
    let start = UnwindRegsX86_64::new(regs.rip, regs.rsp, regs.rbp);
    let mut iter = unwinder.iter_frames(regs.rip, start, &mut cache, read_stack);
    while let Ok(Some(frame)) = iter.next() {
        out.push(frame);
        if out.len() >= MAX_DEPTH {
            break;
        }
    }
}

#[cfg(target_arch = "aarch64")]
fn walk(
    image: &ProcessImage,
    regs: libc::user_regs_struct,
    read_stack: &mut impl FnMut(u64) -> Result<u64, ()>,
    out: &mut Vec<FrameAddress>,
) {
    use framehop::aarch64::{CacheAarch64, UnwindRegsAarch64, UnwinderAarch64};
    let mut unwinder = UnwinderAarch64::new();
    for m in image.unwind_modules() {
        unwinder.add_module(m);
    }
    let mut cache = CacheAarch64::<_>::new();
    let start = UnwindRegsAarch64::new(regs.regs[30], regs.sp, regs.regs[29]);
    let mut iter = unwinder.iter_frames(regs.pc, start, &mut cache, read_stack);
    while let Ok(Some(frame)) = iter.next() {
        out.push(frame);
        if out.len() >= MAX_DEPTH {
            break;
        }
    }
}
