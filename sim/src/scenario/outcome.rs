//! How one request ended, as its client saw it: an HTTP status, or one of the ways a request
//! ends without one. Read once where a scenario names it (`expect.outcomes`), written once by
//! the client that saw it, and compared as a value everywhere else. Written as text (`"200"`,
//! `"refused"`) in scenario files, traces and tables.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The end of one request. The order is the order of the texts (statuses, then the words
/// alphabetically), so tables keyed by it print as they always have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A whole response with this status.
    Status(u16),
    /// The client closed the connection itself (`close_after_ms`).
    ClientClosed,
    /// A response began but the connection ended before all of it arrived.
    Cut,
    /// The client stopped waiting (`give_up_ms`).
    GaveUp,
    /// The connection closed without a byte of response.
    NoResponse,
    /// `connect()` got ECONNREFUSED: nothing listens.
    Refused,
    /// The connection was reset (ECONNRESET, EPIPE, ...).
    Reset,
    /// ETIMEDOUT: every SYN retransmission, or the data, went unanswered.
    Timeout,
    /// Still running when the run ended.
    Unfinished,
}

impl Outcome {
    /// Every outcome that is not a status, as written.
    pub const WORDS: [Outcome; 8] = [
        Outcome::Refused,
        Outcome::Reset,
        Outcome::NoResponse,
        Outcome::Timeout,
        Outcome::GaveUp,
        Outcome::ClientClosed,
        Outcome::Cut,
        Outcome::Unfinished,
    ];

    /// The word for an outcome that is not a status.
    fn word(self) -> Option<&'static str> {
        Some(match self {
            Outcome::Status(_) => return None,
            Outcome::ClientClosed => "client_closed",
            Outcome::Cut => "cut",
            Outcome::GaveUp => "gave_up",
            Outcome::NoResponse => "no_response",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::Unfinished => "unfinished",
        })
    }

    /// The status, if a whole response came.
    pub fn status(self) -> Option<u16> {
        match self {
            Outcome::Status(status) => Some(status),
            _ => None,
        }
    }

    pub fn is_status(self) -> bool {
        self.status().is_some()
    }

    /// A 2xx or 3xx response: the request was served.
    pub fn is_success(self) -> bool {
        self.status().is_some_and(|s| (200..400).contains(&s))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.word()) {
            (Outcome::Status(status), _) => write!(f, "{status}"),
            (_, Some(word)) => f.write_str(word),
            (_, None) => unreachable!("every outcome but a status has a word"),
        }
    }
}

/// The message for a text that names no outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOutcome(pub String);

impl fmt::Display for UnknownOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = Outcome::WORDS.iter().map(Outcome::to_string).collect();
        write!(
            f,
            "unknown outcome {:?}: expected an HTTP status such as \"200\", or one of {}",
            self.0,
            words.join(", ")
        )
    }
}

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(status) = text.parse() {
                return Ok(Outcome::Status(status));
            }
        }
        Outcome::WORDS
            .into_iter()
            .find(|o| o.word() == Some(text))
            .ok_or_else(|| UnknownOutcome(text.to_string()))
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_written() {
        for outcome in Outcome::WORDS
            .into_iter()
            .chain([Outcome::Status(200), Outcome::Status(503)])
        {
            assert_eq!(outcome.to_string().parse(), Ok(outcome));
        }
        assert_eq!("ok".parse::<Outcome>(), Err(UnknownOutcome("ok".into())));
        assert!("20".parse::<Outcome>().is_err());
        assert!("2000".parse::<Outcome>().is_err());
    }

    #[test]
    fn outcomes_sort_as_their_texts() {
        let mut outcomes: Vec<Outcome> = Outcome::WORDS
            .into_iter()
            .chain([Outcome::Status(500), Outcome::Status(200)])
            .collect();
        outcomes.sort();
        let mut texts: Vec<String> = outcomes.iter().map(Outcome::to_string).collect();
        let sorted = texts.clone();
        texts.sort();
        assert_eq!(texts, sorted);
    }
}
