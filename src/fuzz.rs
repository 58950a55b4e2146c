//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, nightly), kept in the library so that
//! the committed seed corpus also runs on stable in the ordinary test suite
//! (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes, feeds them to one parser of untrusted
//! input, and checks the properties every answer must have; a violation panics, which the
//! fuzzer reports as a finding.
//!
//! | target | what is fed | what must hold |
//! |---|---|---|
//! | `admission` | an AdmissionReview body | decoding fails cleanly, or `mutate` and `validate` answer (warm and cold caches): the request's uid, a refusal with a code and a message, an answer that encodes to JSON |
//! | `annotations` | `key=value` lines, as annotations or ConfigMap data | every annotation parser (`validate_annotations` at each level, `resolve`, the rollout status) answers; each error names its key |
//! | `promql_template` | a custom check's query | rendering never panics, leaves text without placeholders as written, and is idempotent |
//! | `prometheus_response` | an HTTP status and a body from Prometheus | decoding gives a finite sample, no sample, or an error with a message |

use std::collections::BTreeMap;
use std::time::Duration;

use crate::analysis::checks::CheckPlan;
use crate::analysis::checks::custom::render;
use crate::analysis::prometheus::{Sample, decode_response};
use crate::controller::status::RolloutStatus;
use crate::policy::keys::OPT_IN_LABEL;
use crate::policy::settings::{Layers, Level, resolve, validate_annotations};
use crate::webhook::server::encode_answer;
use crate::webhook::{Review, SLUICE_USER, StaticView, mutate, validate};

/// AdmissionReview decoding, then both decisions with warm and cold caches.
pub fn admission(data: &[u8]) {
    let Ok(review) = Review::from_slice(data) else {
        return;
    };
    let warm = StaticView::with_namespace("shop", &[(OPT_IN_LABEL, "enabled")]);
    let cold = StaticView::default();
    let uid = review.request.as_ref().map(|r| r.uid.as_str());
    for view in [&warm, &cold] {
        for answer in [
            mutate(&review, view, SLUICE_USER),
            validate(&review, view, SLUICE_USER),
        ] {
            if let Some(uid) = uid {
                assert_eq!(answer.uid, uid, "the answer echoes the request's uid");
            }
            if !answer.allowed {
                assert!(
                    !answer.result.message.is_empty(),
                    "a refusal says why: {answer:?}"
                );
                assert!(
                    answer.result.code >= 400,
                    "a refusal has an error code: {answer:?}"
                );
            }
            assert!(
                !(answer.allowed && answer.patch.is_some() && uid.is_none()),
                "no patch without a request"
            );
            let body = encode_answer(&answer, "admission.k8s.io/v1").expect("answers encode");
            serde_json::from_slice::<serde_json::Value>(&body).expect("answers are JSON");
        }
    }
}

/// Every annotation parser, on `key=value` lines (the first `=` splits; a line without one is a
/// key with an empty value).
pub fn annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let map: BTreeMap<String, String> = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.replace("\\n", "\n")),
            None => (line.to_string(), String::new()),
        })
        .collect();
    for level in [Level::Deployment, Level::Namespace, Level::Cluster] {
        for e in validate_annotations(&map, level) {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            assert!(
                msg.contains(e.key()),
                "the error names its key {:?}: {msg}",
                e.key()
            );
        }
    }
    let layers = [
        Layers {
            deployment: Some(&map),
            ..Layers::default()
        },
        Layers {
            namespace: Some(&map),
            ..Layers::default()
        },
        Layers {
            cluster: Some(&map),
            ..Layers::default()
        },
    ];
    for l in layers {
        match resolve(&l) {
            Ok(resolved) => {
                resolved.explain();
            }
            Err(errors) => assert!(!errors.is_empty(), "a failed resolution says why"),
        }
    }
    // The rollout status annotation is read by the webhook from any Deployment.
    if let Err(e) = RolloutStatus::from_annotations(Some(&map)) {
        assert!(!e.to_string().is_empty());
    }
}

/// A custom check's query template, rendered for a fixed Deployment.
pub fn promql_template(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let plan = CheckPlan {
        namespace: "shop".into(),
        canary: "podinfo".into(),
        primary: "podinfo-primary".into(),
        interval: Duration::from_secs(60),
        success_rate_min: 99.0,
        latency_p99_max: Duration::from_millis(500),
        min_requests: 10,
    };
    let rendered = render(&query, &plan);
    if !query.contains("{{") {
        assert_eq!(
            rendered, query,
            "a query without placeholders is sent as written"
        );
    }
    // The values (names, `1m`) hold no braces, so rendering twice changes nothing more: a
    // placeholder left after the first pass is one the validating webhook refuses.
    assert_eq!(render(&rendered, &plan), rendered, "rendering {query:?}");
    for known in [
        "{{namespace}}",
        "{{name}}",
        "{{canary}}",
        "{{primary}}",
        "{{interval}}",
    ] {
        if query == known {
            assert!(!rendered.contains('{'), "{known} rendered: {rendered:?}");
        }
    }
}

/// An `/api/v1/query` answer: the first two bytes are the HTTP status, the rest the body.
pub fn prometheus_response(data: &[u8]) {
    let (status, body) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]) % 600, rest),
        _ => (200, data),
    };
    match decode_response("http://prometheus:9090", "up", status, body) {
        Ok(Sample::Value(v)) => assert!(v.is_finite(), "a sample is finite: {v}"),
        Ok(Sample::Empty) => {}
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
