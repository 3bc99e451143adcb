//! Keeping secrets out of places other processes can read: core dumps, `/proc/PID/mem` and
//! `/proc/PID/environ` (Linux).
//!
//! - [`forbid_core_dumps`] marks the process non-dumpable: no core dump is written, and its
//!   memory, environment and file descriptors under `/proc` (and ptrace) need `CAP_SYS_PTRACE`,
//!   even for the same user.
//! - [`take_env`] takes a variable out of the environment *and* wipes the bytes
//!   `/proc/PID/environ` shows. Removing a variable (`unsetenv`) only drops the pointer to it;
//!   the text stays where the kernel put it at exec, and that is the region the kernel reads
//!   for `/proc/PID/environ`.

use std::io;
use zeroize::{Zeroize, Zeroizing};

/// Marks the process non-dumpable (Linux; elsewhere nothing happens).
pub fn forbid_core_dumps() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_DUMPABLE takes plain integers and touches no memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the process is dumpable (Linux; elsewhere always `true`).
pub fn is_dumpable() -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_GET_DUMPABLE takes no pointer.
        let state = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        if state < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(state != 0)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(true)
}

#[cfg(target_os = "linux")]
unsafe extern "C" {
    /// The process's environment block (POSIX). Entries point into the region set up at exec.
    static mut environ: *mut *mut std::ffi::c_char;
}

/// Removes `name` from the environment and returns its value, in a zeroizing buffer of exactly
/// its size. On Linux the original bytes of every `name=` entry are overwritten with zeros
/// first, so `/proc/PID/environ` no longer shows the value.
///
/// # Safety
///
/// No other thread may read or change the environment meanwhile: call it at the start of
/// `main`, before any thread (or async runtime) exists.
pub unsafe fn take_env(name: &str) -> Option<Zeroizing<Vec<u8>>> {
    #[cfg(target_os = "linux")]
    // SAFETY: the caller guarantees nobody else touches the environment; `environ` is a
    // NULL-terminated array of NUL-terminated strings owned by this process, which it may write.
    let value = unsafe { wipe_environ_entries(name) };
    #[cfg(not(target_os = "linux"))]
    let value = std::env::var_os(name).map(|v| {
        let mut v = v.into_encoded_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(v.len()));
        out.extend_from_slice(&v);
        v.zeroize();
        out
    });
    // SAFETY: as above, no other thread uses the environment.
    unsafe { std::env::remove_var(name) };
    value
}

/// Copies the value of the first `name=` entry, then zeroes the value of every such entry in
/// place (they stay in `environ`, empty, until `remove_var` drops them).
#[cfg(target_os = "linux")]
unsafe fn wipe_environ_entries(name: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut value: Option<Zeroizing<Vec<u8>>> = None;
    // SAFETY: see `take_env`. Each entry is read up to its NUL and written only before it.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return None;
        }
        while !(*entry).is_null() {
            let text = *entry;
            let len = libc::strlen(text);
            let bytes = std::slice::from_raw_parts_mut(text.cast::<u8>(), len);
            if let Some(rest) = bytes.strip_prefix(name.as_bytes())
                && rest.first() == Some(&b'=')
            {
                let secret = &mut bytes[name.len() + 1..];
                if value.is_none() {
                    // Sized up front: no reallocation leaves a copy behind.
                    let mut copy = Zeroizing::new(Vec::with_capacity(secret.len()));
                    copy.extend_from_slice(secret);
                    value = Some(copy);
                }
                // Volatile writes: not optimised away although nothing reads them here.
                secret.zeroize();
            }
            entry = entry.add(1);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn forbidding_core_dumps_makes_the_process_non_dumpable() {
        forbid_core_dumps().unwrap();
        assert!(!is_dumpable().unwrap());
    }
}
