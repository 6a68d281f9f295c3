//! Mutated requests in random splits: whatever the bytes, the parser must not panic, and must
//! say the same thing however they are split. Deterministic: a failure names its iteration.

use super::test_support::{outcome_all_splits, SplitMix64};
use super::{Limits, RequestParser};

/// Valid requests to mutate, covering every part of the grammar.
const SEEDS: &[&[u8]] = &[
    b"GET /a%20b?q=1#f HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    b"\r\nPOST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b c\"\r\nhello\r\n6\r\n world\r\n0\r\nVary: *\r\n\r\n",
    b"GET http://u@example.com:80/p?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nb",
];

/// Bytes that sit on the grammar's edges.
const INTERESTING: &[u8] = b"\r\n \t:;,=\"\\0123456789aAfFxX-+/?#%*\x00\x01\x7f\x80\xc3\xff";

fn mutate(bytes: &mut Vec<u8>, rng: &mut SplitMix64) {
    let pick = |rng: &mut SplitMix64| INTERESTING[rng.below(INTERESTING.len())];
    if bytes.is_empty() {
        bytes.push(pick(rng));
        return;
    }
    let at = rng.below(bytes.len());
    match rng.below(6) {
        0 => bytes[at] = pick(rng),
        1 => bytes.insert(at, pick(rng)),
        2 => {
            bytes.remove(at);
        }
        3 => {
            // Repeat a stretch: duplicated headers, chunks, CRLFs.
            let end = (at + 1 + rng.below(24)).min(bytes.len());
            let stretch = bytes[at..end].to_vec();
            bytes.splice(at..at, stretch);
        }
        4 => bytes.truncate(at),
        _ => bytes[at] = rng.next_u64() as u8,
    }
}

#[test]
fn mutated_requests_never_panic_and_do_not_depend_on_splits() {
    let mut rng = SplitMix64::new(0x7773_696c_6162);
    for iteration in 0..4000 {
        let mut bytes = SEEDS[rng.below(SEEDS.len())].to_vec();
        for _ in 0..1 + rng.below(3) {
            mutate(&mut bytes, &mut rng);
        }
        // Small limits now and then, to cross them at every point of a request.
        let limits = if rng.below(4) == 0 {
            Limits {
                max_head: 8 + rng.below(120),
                max_body: Some(rng.below(16) as u64),
            }
        } else {
            Limits::default()
        };
        let result = std::panic::catch_unwind(|| {
            outcome_all_splits(&|| RequestParser::new(limits), &bytes, 3);
        });
        assert!(
            result.is_ok(),
            "iteration {iteration}, limits {limits:?}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
