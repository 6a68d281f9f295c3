//! Test helpers: a deterministic PRNG, ways of splitting bytes across pushes, and a driver that
//! runs a parser over them the way the worker does — checking that however the bytes are split,
//! the outcome is the same.

use super::{Event, Header, HttpError, Limits, RequestHead, RequestParser};

/// SplitMix64: tiny, and its stream is fixed by its definition, so seeds reproduce forever.
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    pub(super) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..bound` (`bound` > 0).
    pub(super) fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// One request as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) head: RequestHead,
    pub(super) body: Vec<u8>,
    /// `None` until `End`: a request cut short by an error or by the end of the bytes.
    pub(super) trailers: Option<Vec<Header>>,
}

/// Everything the parser said about a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) requests: Vec<Request>,
    /// From `next_event`, or from `eof` once all bytes were pushed.
    pub(super) error: Option<HttpError>,
}

/// How to cut a byte string into pushes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Split {
    Whole,
    Bytewise,
    /// Random cuts; odd seeds write through `buffer_mut`, as the worker does.
    Random(u64),
}

/// Runs a parser over `bytes` like the worker: push, take events until `Ok(None)`, repeat;
/// stop after a request that does not keep the connection alive; `eof` at the end.
pub(super) fn drive(mut parser: RequestParser, bytes: &[u8], split: Split) -> Outcome {
    let mut outcome = Outcome {
        requests: Vec::new(),
        error: None,
    };
    let mut rng = SplitMix64::new(match split {
        Split::Random(seed) => seed,
        _ => 0,
    });
    let mut offset = 0;
    while offset < bytes.len() {
        let len = match split {
            Split::Whole => bytes.len(),
            Split::Bytewise => 1,
            // Mostly short pieces, sometimes long ones, so cuts land everywhere.
            Split::Random(_) if rng.below(4) == 0 => 1 + rng.below(64),
            Split::Random(_) => 1 + rng.below(6),
        };
        let piece = &bytes[offset..(offset + len).min(bytes.len())];
        offset += piece.len();
        match split {
            Split::Random(seed) if seed % 2 == 1 => parser.buffer_mut().extend_from_slice(piece),
            _ => parser.push(piece),
        }
        loop {
            match parser.next_event() {
                Ok(Some(event)) => {
                    if record(&mut outcome, event) {
                        return outcome;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // Dead parsers stay dead.
                    assert_eq!(parser.next_event(), Err(error.clone()));
                    assert_eq!(parser.eof(), Err(error.clone()));
                    outcome.error = Some(error);
                    return outcome;
                }
            }
        }
    }
    if let Err(error) = parser.eof() {
        outcome.error = Some(error);
    }
    outcome
}

/// Adds an event to the outcome, checking the event order; true when the connection closes.
fn record(outcome: &mut Outcome, event: Event) -> bool {
    let in_progress = outcome
        .requests
        .last()
        .is_some_and(|r| r.trailers.is_none());
    match event {
        Event::Head(head) => {
            assert!(!in_progress, "Head before the previous request's End");
            outcome.requests.push(Request {
                head,
                body: Vec::new(),
                trailers: None,
            });
            false
        }
        Event::Body(piece) => {
            assert!(in_progress, "Body outside a request");
            assert!(!piece.is_empty(), "empty Body event");
            outcome
                .requests
                .last_mut()
                .unwrap()
                .body
                .extend_from_slice(&piece);
            false
        }
        Event::End { trailers } => {
            assert!(in_progress, "End outside a request");
            let request = outcome.requests.last_mut().unwrap();
            request.trailers = Some(trailers);
            !request.head.keep_alive
        }
    }
}

/// The outcome of `bytes`, after checking it is the same whole, byte by byte and in
/// `random_splits` random splits.
pub(super) fn outcome_all_splits(
    new_parser: &dyn Fn() -> RequestParser,
    bytes: &[u8],
    random_splits: u64,
) -> Outcome {
    let whole = drive(new_parser(), bytes, Split::Whole);
    let bytewise = drive(new_parser(), bytes, Split::Bytewise);
    assert_eq!(
        whole,
        bytewise,
        "whole vs byte by byte: {:?}",
        String::from_utf8_lossy(bytes)
    );
    for seed in 0..random_splits {
        let random = drive(new_parser(), bytes, Split::Random(seed));
        assert_eq!(
            whole,
            random,
            "whole vs random split {seed}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    whole
}

/// `outcome_all_splits` with the given limits and the server's rules.
pub(super) fn outcome_with(limits: Limits, bytes: &[u8]) -> Outcome {
    outcome_all_splits(&|| RequestParser::new(limits), bytes, 8)
}
