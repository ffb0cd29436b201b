//! MariaDB Connector/C (`libmariadb.so.3`), opened at run time for tests
//! that drive Funnel with the C client library real applications link.

use std::ffi::{c_void, CString};

/// The library's handle (`dlopen`); panics with how to install it when it
/// is missing, as a missing `mariadbd` does.
pub fn open() -> *mut c_void {
    let name = CString::new("libmariadb.so.3").unwrap();
    // SAFETY: dlopen with a NUL-terminated name; a null result is checked.
    let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
    assert!(
        !h.is_null(),
        "libmariadb.so.3 is missing: apt-get install -y libmariadb3"
    );
    h
}

/// Looks `name` up in the library `h` as a function pointer of type `F`.
///
/// # Safety
/// `F` must be the function's true signature.
pub unsafe fn sym<F>(h: *mut c_void, name: &str) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    let c = CString::new(name).unwrap();
    // SAFETY: `h` is a handle from dlopen and `c` a NUL-terminated name.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    assert!(!p.is_null(), "libmariadb has no {name}");
    // SAFETY: the caller names the function's signature; sizes match.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) }
}
