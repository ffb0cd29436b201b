//! `proxy_header::parse`, the PROXY protocol header a listed balancer
//! sends before the greeting.
//!
//! Checked: no panic; a header's length lies inside the input, and the
//! input cut anywhere before that length is never taken for a different
//! whole header; `Incomplete` asks for more than it was given; what is
//! invalid stays invalid however many bytes follow.

#![no_main]

use funnel_protocol::proxy_header::{parse, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Parsed::Header { len, header } => {
            assert!(len > 0 && len <= data.len());
            assert_eq!(parse(&data[..len]), Parsed::Header { len, header });
            for cut in 0..len {
                assert!(!matches!(parse(&data[..cut]), Parsed::Header { .. }), "{cut}");
            }
        }
        Parsed::Incomplete { want } => assert!(want > data.len()),
        Parsed::Invalid(_) => {
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\n0123456789");
            assert!(matches!(parse(&longer), Parsed::Invalid(_)));
        }
    }
});
