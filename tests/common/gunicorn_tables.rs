// gunicorn's request corpus: the cases wsgilab answers differently from gunicorn, and why.
// One list for every test that runs the corpus — the parser's own (server/src/http/
// corpus_tests.rs) and the whole server's over real and simulated sockets (tests/common/
// gunicorn.rs) — each of which `include!`s this file.

/// Cases run under gunicorn options that wsgilab has no equivalent for (the parser's
/// corpus test skips [`RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST`] too).
pub const SKIPPED: &[(&str, &str)] = &[
    ("valid/028", "strip_header_spaces: gunicorn's lenient mode; wsgilab always refuses whitespace before ':' (invalid/020)"),
    ("valid/031compat", "casefold_http_method: gunicorn upper-cases the method; wsgilab passes it on as sent"),
    ("valid/compat_obs_fold", "permit_obsolete_folding: wsgilab always refuses obs-fold (RFC 9112 §5.2; invalid/obs_fold_01)"),
    ("valid/compat_obs_fold_huge", "permit_obsolete_folding: wsgilab always refuses obs-fold (RFC 9112 §5.2)"),
    ("valid/pp_01", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_02", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_03", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_04", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_05", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/pp_01", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/pp_02", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/pp_03", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/010", "limit_request_field_size=10: a per-field limit; wsgilab has one limit for the whole head (--buffer-size)"),
    ("invalid/011", "limit_request_fields=2: wsgilab's field count limit is fixed (100)"),
    ("invalid/012", "limit_request_field_size=98: a per-field limit; wsgilab has one limit for the whole head (--buffer-size)"),
    ("invalid/013", "limit_request_field_size=14 with permit_obsolete_folding: neither exists in wsgilab"),
    ("invalid/019", "forwarded_allow_ips: X-Forwarded-* consistency is not the parser's business"),
    ("invalid/040", "header_map=refuse: wsgilab keeps names with '_' in the parser and drops them from the environ (see valid/040)"),
    ("invalid/chunked_07", "header_map=refuse: wsgilab keeps names with '_' in the parser and drops them from the environ (see valid/040)"),
];

/// Skipped by the parser's corpus test, but checkable here, where the environ is what counts.
pub const RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST: &[(&str, &str)] = &[
    ("valid/040", "gunicorn's default header_map=drop discards names with '_'; wsgilab's parser keeps them, and its environ drops them, so the app sees what gunicorn's would"),
];

/// Where wsgilab answers differently from gunicorn, on the RFC's side: (name, the status it
/// answers, or `None` where it accepts what gunicorn refuses, why).
pub const RFC_DISAGREEMENTS: &[(&str, Option<u16>, &str)] = &[
    ("valid/009", Some(400), "Transfer-Encoding with Content-Length: refused (RFC 9112 §6.1 allows it; the classic smuggling setup)"),
    ("valid/025", Some(501), "gzip transfer coding: wsgilab does not decode it, so cannot find the body (RFC 9112 §6.1)"),
    ("valid/025_line", Some(501), "gzip transfer coding: not decoded by wsgilab (RFC 9112 §6.1)"),
    ("valid/rfc9112_smuggle_gzip_chunked_01", Some(501), "gzip transfer coding: not decoded by wsgilab (RFC 9112 §6.1)"),
    ("valid/029", Some(501), "identity is not a transfer coding since RFC 7230 (reserved in the registry)"),
    ("valid/030", Some(501), "identity is not a transfer coding since RFC 7230 (reserved in the registry)"),
    ("valid/rfc9112_smuggle_te_identity_chunked_01", Some(501), "identity is not a transfer coding since RFC 7230 (reserved in the registry)"),
    ("valid/rfc9112_target_authority_connect_01", Some(501), "CONNECT: wsgilab is not a proxy and opens no tunnels (RFC 9110 §9.3.6, §15.6.2)"),
    ("valid/rfc9112_target_authority_ipv6_01", Some(501), "CONNECT: wsgilab is not a proxy and opens no tunnels (RFC 9110 §9.3.6, §15.6.2)"),
    ("valid/099", Some(400), "the body is 8599 of the 17914 bytes its Content-Length announces: an incomplete request (RFC 9112 §8); see REFUSED_ONLY_AT_EOF"),
    ("invalid/003c", None, "'-bl' is a valid RFC 9110 method token; whether the app knows it is the app's business (405/501)"),
    ("invalid/rfc9112_smuggle_cl_list_form_01", None, "'Content-Length: 5, 5' may be accepted as 5 (RFC 9110 §8.6), and wsgilab does"),
];
