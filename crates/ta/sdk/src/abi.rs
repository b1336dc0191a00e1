//! The audited unsafe core: host imports, the input buffer hand-over, the allocator and
//! the panic handler. Everything else in the SDK is safe code over these functions.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec;

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic (including allocation failure) ends the TA with a trap; the runtime reports
/// it as `Trap` (or `MemoryLimit` when the memory limit was hit).
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

mod host {
    #[link(wasm_import_module = "otrp")]
    extern "C" {
        pub fn set_output(ptr: *const u8, len: i32);
        pub fn storage_get(key: *const u8, key_len: i32, out: *mut u8, cap: i32) -> i32;
        pub fn storage_put(key: *const u8, key_len: i32, val: *const u8, val_len: i32) -> i32;
        pub fn storage_delete(key: *const u8, key_len: i32) -> i32;
        pub fn personalization(out: *mut u8, cap: i32) -> i32;
        pub fn public_key(out: *mut u8, cap: i32) -> i32;
        pub fn sign(msg: *const u8, msg_len: i32, out: *mut u8, cap: i32) -> i32;
        pub fn random(out: *mut u8, len: i32);
        pub fn time_ms() -> i64;
        pub fn sha256(data: *const u8, len: i32, out: *mut u8);
        pub fn log(ptr: *const u8, len: i32);
    }
}

/// Lengths cross the ABI as i32; wasm32 slices never exceed it (memory is < 4 GiB and
/// the runtime's limit is far lower), saturate defensively.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

pub(crate) fn alloc_input(len: i32) -> i32 {
    let len = usize::try_from(len).unwrap_or(0);
    let buf: Box<[u8]> = vec![0u8; len].into_boxed_slice();
    // Leaked here, reclaimed by `take_input` (the runtime calls `invoke` right after).
    Box::into_raw(buf).cast::<u8>() as usize as i32
}

pub(crate) fn take_input(ptr: i32, len: i32) -> Box<[u8]> {
    let len = usize::try_from(len).unwrap_or(0);
    let ptr = ptr as usize as *mut u8;
    // SAFETY: per the ABI the runtime passes to `invoke` exactly the pointer returned by
    // the preceding `alloc(len)` call with the same `len`, i.e. a `Box<[u8]>` of length
    // `len` leaked by `alloc_input`; ownership comes back here exactly once.
    unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)) }
}

pub(crate) fn set_output(out: &[u8]) {
    // SAFETY: the pointer and length describe a live slice; the host only reads it.
    unsafe { host::set_output(out.as_ptr(), len_i32(out.len())) }
}

pub(crate) fn storage_get(key: &[u8], out: &mut [u8]) -> i32 {
    // SAFETY: both slices are live for the call; the host writes at most `out.len()`
    // bytes into `out` and reads `key`.
    unsafe {
        host::storage_get(
            key.as_ptr(),
            len_i32(key.len()),
            out.as_mut_ptr(),
            len_i32(out.len()),
        )
    }
}

pub(crate) fn storage_put(key: &[u8], value: &[u8]) -> i32 {
    // SAFETY: both slices are live for the call and only read by the host.
    unsafe {
        host::storage_put(
            key.as_ptr(),
            len_i32(key.len()),
            value.as_ptr(),
            len_i32(value.len()),
        )
    }
}

pub(crate) fn storage_delete(key: &[u8]) -> i32 {
    // SAFETY: the slice is live for the call and only read by the host.
    unsafe { host::storage_delete(key.as_ptr(), len_i32(key.len())) }
}

pub(crate) fn personalization(out: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `out.len()` bytes into the live slice `out`.
    unsafe { host::personalization(out.as_mut_ptr(), len_i32(out.len())) }
}

pub(crate) fn public_key(out: &mut [u8]) -> i32 {
    // SAFETY: the host writes at most `out.len()` bytes into the live slice `out`.
    unsafe { host::public_key(out.as_mut_ptr(), len_i32(out.len())) }
}

pub(crate) fn sign(msg: &[u8], out: &mut [u8]) -> i32 {
    // SAFETY: `msg` is read, at most `out.len()` bytes are written into `out`; both live.
    unsafe {
        host::sign(
            msg.as_ptr(),
            len_i32(msg.len()),
            out.as_mut_ptr(),
            len_i32(out.len()),
        )
    }
}

pub(crate) fn random(out: &mut [u8]) {
    // SAFETY: the host fills exactly `out.len()` bytes of the live slice `out`.
    unsafe { host::random(out.as_mut_ptr(), len_i32(out.len())) }
}

pub(crate) fn time_ms() -> i64 {
    // SAFETY: no pointers involved.
    unsafe { host::time_ms() }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // SAFETY: `data` is read; exactly 32 bytes are written into the live array `out`.
    unsafe { host::sha256(data.as_ptr(), len_i32(data.len()), out.as_mut_ptr()) };
    out
}

pub(crate) fn log(msg: &str) {
    // SAFETY: the slice is live for the call and only read by the host.
    unsafe { host::log(msg.as_ptr(), len_i32(msg.len())) }
}
