//! When a certificate stops being valid: its `notAfter`, read from the DER
//! encoding, so operators can alert on client TLS before it expires (the
//! Prometheus gauge and the warning at load). Only the path down to the
//! validity field is walked; anything else in the certificate is skipped.

/// The Unix time (seconds) at which the X.509 certificate `der` expires,
/// or `None` when it cannot be read as one.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = element(certificate)? else {
        return None;
    };
    // version [0] EXPLICIT, present from X.509 v2 on.
    if tbs.first() == Some(&VERSION_TAG) {
        tbs = element(tbs)?.2;
    }
    // serialNumber, signature (algorithm), issuer.
    for _ in 0..3 {
        tbs = element(tbs)?.2;
    }
    let (SEQUENCE, validity, _) = element(tbs)? else {
        return None;
    };
    let after_not_before = element(validity)?.2;
    let (tag, time, _) = element(after_not_before)?;
    parse_time(tag, time)
}

const SEQUENCE: u8 = 0x30;
const VERSION_TAG: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element at the start of `d`: its tag, its contents, and what
/// follows it.
fn element(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = d.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A `UTCTime` (`YYMMDDHHMMSSZ`, years 1950-2049) or `GeneralizedTime`
/// (`YYYYMMDDHHMMSSZ`) as Unix seconds; DER writes both in UTC, with seconds.
fn parse_time(tag: u8, t: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, t.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&t[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&t[..4])?, &t[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let [month, day, hour, minute, second] = [0, 2, 4, 6, 8].map(|i| digits(&rest[i..i + 2]));
    let (month, day) = (month?, day?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour? * 3600 + minute? * 60 + second?)
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian
/// calendar (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_expiry_reads_both_time_forms() {
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(parse_time(UTC_TIME, b"500101000000Z"), Some(-631_152_000));
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20261124143000Z"),
            Some(1_795_530_600)
        );
        assert_eq!(
            parse_time(GENERALIZED_TIME, b"20240229000000Z"),
            Some(1_709_164_800)
        );
        for bad in [
            &b"20261124143000"[..],
            b"2026112414300Z",
            b"2026x124143000Z",
            b"20261324143000Z",
        ] {
            assert_eq!(parse_time(GENERALIZED_TIME, bad), None, "{bad:?}");
        }
        assert_eq!(parse_time(0x04, b"700101000000Z"), None);
    }

    #[test]
    fn cert_expiry_refuses_what_is_not_a_certificate() {
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x02, 0x01, 0x00]), None);
        // A length longer than the input.
        assert_eq!(element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    /// A minimal hand-made certificate: only the fields walked matter.
    #[test]
    fn cert_expiry_walks_to_not_after() {
        let wrap = |tag: u8, body: &[u8]| [&[tag, body.len() as u8][..], body].concat();
        let validity = [
            wrap(UTC_TIME, b"251124000000Z"),
            wrap(GENERALIZED_TIME, b"20261124143000Z"),
        ]
        .concat();
        let tbs = [
            wrap(VERSION_TAG, &wrap(0x02, &[2])),
            wrap(0x02, &[1, 2, 3]),
            wrap(SEQUENCE, &wrap(0x06, &[1])),
            wrap(SEQUENCE, &[]),
            wrap(SEQUENCE, &validity),
        ]
        .concat();
        let cert = wrap(SEQUENCE, &[wrap(SEQUENCE, &tbs), wrap(SEQUENCE, &[])].concat());
        assert_eq!(not_after(&cert), Some(1_795_530_600));
        // Without the version field (X.509 v1).
        let v1 = wrap(SEQUENCE, &wrap(SEQUENCE, &tbs[5..]));
        assert_eq!(not_after(&v1), Some(1_795_530_600));
    }
}
