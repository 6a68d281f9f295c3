//! gunicorn's request-parser corpus (MIT, converted to JSON in ../shared/corpus, which is not
//! part of this repository): every case whole, byte by byte and in random splits, against what
//! gunicorn expects — except where a table below says why wsgilab differs.

use serde_json::Value;

use super::test_support::{outcome_all_splits, Outcome};
use super::{Header, HttpError, Limits, RequestParser};

include!("../../../tests/common/gunicorn_tables.rs");

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/gunicorn-requests.json"
);

/// Cases whose gunicorn options translate into wsgilab's behaviour: (name, --buffer-size, why).
const MAPPED: &[(&str, usize, &str)] = &[
    ("valid/024", 32768, "limit_request_line=8200, limit_request_field_size=8210 raise gunicorn's per-line limits; wsgilab: a 32 KiB --buffer-size"),
    ("valid/026", 32768, "limit_request_field_size=8210 raises gunicorn's per-line limit; wsgilab: a 32 KiB --buffer-size"),
    ("valid/031compat2", 4096, "permit_unconventional_http_method: wsgilab accepts any RFC 9110 token as a method anyway"),
    ("valid/040_compat", 4096, "header_map=dangerous keeps names with '_', as wsgilab's parser always does"),
    ("invalid/limit_header_default_01", 4096, "limit_request_field_size=0 means gunicorn's default; wsgilab's default --buffer-size"),
];

const NO_HOST: &str =
    "HTTP/1.1 without Host: 400 (RFC 9112 §3.2); the rest is checked with the Host rule off";

/// Valid HTTP/1.1 cases without a Host header: refused by wsgilab, as RFC 9112 §3.2 requires,
/// and also run with the Host requirement off so the rest of gunicorn's expectation is checked.
const MISSING_HOST: &[(&str, &str)] = &[
    ("valid/004", NO_HOST),
    ("valid/005", NO_HOST),
    ("valid/006", NO_HOST),
    ("valid/007", NO_HOST),
    ("valid/009", NO_HOST),
    ("valid/010", NO_HOST),
    ("valid/011", NO_HOST),
    ("valid/012", NO_HOST),
    ("valid/013", NO_HOST),
    ("valid/014", NO_HOST),
    ("valid/018", NO_HOST),
    ("valid/021", NO_HOST),
    ("valid/022", NO_HOST),
    ("valid/023", NO_HOST),
    ("valid/025", NO_HOST),
    ("valid/025_line", NO_HOST),
    ("valid/029", NO_HOST),
    ("valid/030", NO_HOST),
    ("valid/031", NO_HOST),
    ("valid/031compat2", NO_HOST),
    ("valid/100", NO_HOST),
];

#[derive(Default)]
struct Tally {
    valid_match: usize,
    valid_match_without_host_rule: usize,
    valid_refused_per_rfc: usize,
    invalid_refused: usize,
    invalid_accepted_per_rfc: usize,
    skipped: usize,
}

#[test]
fn gunicorn_corpus() {
    let Ok(json) = std::fs::read_to_string(CORPUS) else {
        eprintln!("SKIPPED: gunicorn corpus: ../shared/corpus absent ({CORPUS})");
        return;
    };
    let corpus: Value = serde_json::from_str(&json).expect("corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases");
    let mut tally = Tally::default();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        if let Some((_, reason)) = SKIPPED
            .iter()
            .chain(RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST)
            .find(|(n, _)| *n == name)
        {
            eprintln!("skipped {name}: {reason}");
            tally.skipped += 1;
            continue;
        }
        run_case(name, case, &mut tally);
    }
    eprintln!(
        "gunicorn corpus: {} valid cases match gunicorn ({} of them only with the Host rule \
         off), {} valid cases refused per RFC; {} invalid cases refused, {} accepted per RFC; \
         {} skipped; {} in all",
        tally.valid_match,
        tally.valid_match_without_host_rule,
        tally.valid_refused_per_rfc,
        tally.invalid_refused,
        tally.invalid_accepted_per_rfc,
        tally.skipped,
        cases.len(),
    );
    // Every table entry names a case that exists, so none goes stale silently.
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let listed = SKIPPED
        .iter()
        .map(|e| e.0)
        .chain(MAPPED.iter().map(|e| e.0))
        .chain(RFC_DISAGREEMENTS.iter().map(|e| e.0))
        .chain(MISSING_HOST.iter().map(|e| e.0));
    for name in listed {
        assert!(names.contains(&name), "table names unknown case {name}");
    }
}

fn run_case(name: &str, case: &Value, tally: &mut Tally) {
    let raw = latin1(case["raw"].as_str().expect("raw"));
    let options = case["options"].as_object().expect("options");
    let limits = match MAPPED.iter().find(|(n, _, _)| *n == name) {
        Some((_, max_head, why)) => {
            eprintln!("{name}: run with --buffer-size {max_head}: {why}");
            Limits {
                max_head: *max_head,
                max_body: None,
            }
        }
        None => {
            assert!(
                options.is_empty(),
                "{name}: options {options:?} are neither skipped nor mapped"
            );
            Limits::default()
        }
    };
    let strict = outcome_all_splits(&|| RequestParser::new(limits), &raw, 8);
    let lenient = outcome_all_splits(
        &|| RequestParser::new(limits).without_host_requirement(),
        &raw,
        8,
    );
    let missing_host = MISSING_HOST.iter().any(|(n, _)| *n == name);
    let valid = case["valid"].as_bool().expect("valid");
    if valid {
        if missing_host {
            assert_eq!(
                strict.error,
                Some(HttpError::Malformed(
                    "HTTP/1.1 request without a Host header"
                )),
                "{name}: listed in MISSING_HOST"
            );
        } else {
            assert_eq!(
                strict, lenient,
                "{name}: differs with the Host rule off, but not listed in MISSING_HOST"
            );
        }
    } else {
        assert!(!missing_host, "{name}: MISSING_HOST is for valid cases");
    }

    match (valid, RFC_DISAGREEMENTS.iter().find(|(n, _, _)| *n == name)) {
        (true, Some((_, status, _))) => {
            let error = lenient
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: accepted, but listed as refused"));
            assert_eq!(Some(error.status()), *status, "{name}: {error}");
            if *error == HttpError::Malformed("connection closed mid-request") {
                let expected = case["expect"].as_array().expect("expect");
                let complete = Outcome {
                    error: None,
                    ..lenient.clone()
                };
                assert_matches_expectation(name, &complete, expected, Completeness::LastMayBeCut);
            }
            tally.valid_refused_per_rfc += 1;
        }
        (true, None) => {
            let expected = case["expect"].as_array().expect("expect");
            assert_matches_expectation(name, &lenient, expected, Completeness::All);
            tally.valid_match += 1;
            tally.valid_match_without_host_rule += usize::from(missing_host);
        }
        (false, Some((_, status, _))) => {
            assert_eq!(
                *status, None,
                "{name}: invalid cases in the table are ones we accept"
            );
            assert_eq!(lenient.error, None, "{name}: listed as accepted");
            assert!(!lenient.requests.is_empty());
            tally.invalid_accepted_per_rfc += 1;
        }
        (false, None) => {
            // Any refusal will do: gunicorn's exception classes do not map one-to-one onto
            // status codes, and the lenient run (a superset of what the server accepts)
            // must refuse too, so a case is not passed merely for lacking a Host header.
            let error = lenient.error.as_ref().unwrap_or_else(|| {
                panic!(
                    "{name}: accepted, gunicorn says {}: {:?}",
                    case["error"], lenient.requests
                )
            });
            assert!((400..600).contains(&error.status()));
            assert!(strict.error.is_some());
            tally.invalid_refused += 1;
        }
    }
}

#[derive(PartialEq)]
enum Completeness {
    All,
    /// The bytes end inside the last request: its body is compared with the expected body's
    /// start, and it has no trailers.
    LastMayBeCut,
}

fn assert_matches_expectation(
    name: &str,
    outcome: &Outcome,
    expected: &[Value],
    completeness: Completeness,
) {
    assert_eq!(outcome.error, None, "{name}");
    assert_eq!(
        outcome.requests.len(),
        expected.len(),
        "{name}: number of requests"
    );
    for (request, expected) in outcome.requests.iter().zip(expected) {
        let head = &request.head;
        assert_eq!(
            head.method,
            expected["method"].as_str().unwrap(),
            "{name}: method"
        );
        assert_eq!(
            head.target.as_bytes(),
            latin1(expected["uri"].as_str().unwrap()),
            "{name}: uri"
        );
        // gunicorn's `path` is the raw path (valid/027 keeps "%20"): compare with raw_path.
        // It is null for the asterisk-form, where ours is "*".
        match expected["path"].as_str() {
            Some(path) => assert_eq!(head.raw_path.as_bytes(), latin1(path), "{name}: path"),
            None => assert_eq!(head.raw_path, "*", "{name}: path"),
        }
        let query = expected["query"].as_str().unwrap_or("");
        assert_eq!(head.query.as_bytes(), latin1(query), "{name}: query");
        let version = [1, u64::from(head.minor_version)];
        assert_eq!(
            expected["version"],
            serde_json::json!(version),
            "{name}: version"
        );
        assert_fields(name, "headers", &head.headers, &expected["headers"]);
        let expected_body = latin1(expected["body"].as_str().unwrap());
        if request.trailers.is_none() && completeness == Completeness::LastMayBeCut {
            assert!(expected_body.starts_with(&request.body), "{name}: body");
            continue;
        }
        assert_eq!(request.body, expected_body, "{name}: body");
        let trailers = request
            .trailers
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_fields(name, "trailers", trailers, &expected["trailers"]);
    }
}

fn assert_fields(name: &str, what: &str, fields: &[Header], expected: &Value) {
    let expected: Vec<(String, Vec<u8>)> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                latin1(pair[1].as_str().unwrap()),
            )
        })
        .collect();
    let ours: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|field| (field.name.to_ascii_uppercase(), field.value.clone()))
        .collect();
    assert_eq!(ours, expected, "{name}: {what}");
}

/// The corpus stores bytes as latin-1 strings: one char per byte.
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 char"))
        .collect()
}
