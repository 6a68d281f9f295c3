//! HTTP/1.x requests, sans-IO: the worker feeds received bytes to a [`RequestParser`] and gets
//! back [`Event`]s — a request head, pieces of its decoded body, its end — or an [`HttpError`]
//! naming the status to answer before closing. Responses are framed by [`response`], also
//! sans-IO: the worker hands it the app's status and headers and writes the bytes it returns.
//!
//! httparse splits the request line and header fields; this module adds what it leaves out:
//! finding where a head ends as bytes trickle in, the request-target forms, the rules that
//! decide how a body is framed (RFC 9112 §6), chunked decoding, limits, keep-alive and pipelining.
//! The rules lean strict where a lenient reading would let a front proxy and wsgilab disagree on
//! where a request ends: bare LF, obs-fold, Transfer-Encoding with Content-Length, codings other
//! than chunked, conflicting lengths, repeated Host are all refused.

mod chunked;
mod error;
mod head;
mod parser;
pub mod response;
mod scan;
mod target;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod parser_tests;
#[cfg(test)]
mod proptest_tests;
#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod test_support;

pub use error::HttpError;
pub use head::{BodyFraming, Header, RequestHead};
pub use parser::{Event, Limits, RequestParser};
