//! A/B testing end to end (`sluice.dev/strategy: ab-testing`, issue 6): while the canary is
//! analysed for `iterations` intervals, the requests matching `sluice.dev/match` go to it and
//! every other request stays on the primary; then traffic switches at once, or a failure takes
//! everything back to the primary.
//!
//! The mesh simulator sends 30% of the app's requests as the class `insiders`, which carries
//! what the rule matches (a header, or with `nginx` a cookie matched as a `Cookie` header
//! pattern), and 70% as `everyone`, which does not. It counts each class's requests by the
//! image that answered them, so the scenarios check the A/B invariant (issue 6) directly:
//! until the switch, no request of `everyone` reached the new version, and the `insiders`
//! did. The observer holds invariants 1 (with the matched share left to this check) and 2.
//!
//! A cluster has no load generator that sends request classes here: on one these scenarios say
//! so and stop.

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sluice::controller::status::Phase;
use sluice::sandbox::mesh::RequestClass;

use crate::harness::{APP, Harness, RouterKind, THRESHOLD, Version};
use crate::observer::{Story, follow};

/// Passing analyses before the switch.
const ITERATIONS: u32 = 2;
/// The class whose requests the rule matches.
const MATCHING: &str = "insiders";
/// The class whose requests it does not.
const OTHERS: &str = "everyone";

/// How the scenario's requests are told apart.
#[derive(Clone, Copy)]
enum Rule {
    /// `x-canary: insider`, an exact header match.
    Header,
    /// The cookie `beta=yes`, as a regular expression on the `Cookie` header.
    Cookie,
}

impl Rule {
    /// The `sluice.dev/match` value.
    fn annotation(self) -> &'static str {
        match self {
            Rule::Header => "[{headers: [{name: x-canary, value: insider}]}]",
            Rule::Cookie => {
                "[{headers: [{name: Cookie, type: RegularExpression, value: '(^|; )beta=yes(;|$)'}]}]"
            }
        }
    }

    /// 30% of the requests match, 70% carry a look-alike that does not.
    fn classes(self) -> Vec<RequestClass> {
        let pairs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let class = |name: &str, share: f64| RequestClass {
            name: name.into(),
            share,
            ..Default::default()
        };
        match self {
            Rule::Header => vec![
                RequestClass {
                    headers: pairs(&[("X-Canary", "insider")]),
                    ..class(MATCHING, 0.3)
                },
                RequestClass {
                    headers: pairs(&[("X-Canary", "outsider")]),
                    ..class(OTHERS, 0.7)
                },
            ],
            Rule::Cookie => vec![
                RequestClass {
                    cookies: pairs(&[("beta", "yes"), ("theme", "dark")]),
                    ..class(MATCHING, 0.3)
                },
                RequestClass {
                    cookies: pairs(&[("nobeta", "yes")]),
                    ..class(OTHERS, 0.7)
                },
            ],
        }
    }
}

/// Starts the scenario with A/B testing set on the app and the request classes flowing, or
/// `None` on a real cluster.
async fn start(router: RouterKind, rule: Rule) -> Option<Harness> {
    let h = Harness::start(router).await;
    let Some(sandbox) = h.sandbox() else {
        eprintln!("skipped: on a cluster no load generator sends request classes");
        h.finish().await;
        return None;
    };
    match router {
        RouterKind::Nginx => sandbox
            .mesh
            .set_ingress_request_classes(&h.ns, APP, rule.classes()),
        _ => sandbox.mesh.set_request_classes(&h.ns, APP, rule.classes()),
    }
    h.patch(json!({"metadata": {"annotations": {
        "sluice.dev/strategy": "ab-testing",
        "sluice.dev/iterations": ITERATIONS.to_string(),
        "sluice.dev/match": rule.annotation(),
    }}}))
    .await;
    Some(h)
}

/// When the matched route held, from the statuses Sluice wrote (each written before the route
/// moved): from the start of the iterations to the switch (`Promoting`) or the rollback.
#[derive(Debug, Default)]
struct MatchedSpan {
    from: Option<SystemTime>,
    until: Option<SystemTime>,
}

/// Watches every version of the app's status (a watch sees each write, where polling could
/// miss a short `Promoting`) until the rollout leaves the iterations, and says when the matched
/// route held.
async fn matched_span(h: &Harness) -> MatchedSpan {
    let mut span = MatchedSpan::default();
    h.each_status(h.intervals(25), |s| {
        if span.from.is_none() && s.phase == Phase::Progressing && s.iteration_goal.is_some() {
            // Set by the pass that started the iterations.
            span.from = s.last_analysis.map(|t| t.0);
        }
        if matches!(s.phase, Phase::Promoting | Phase::RollingBack) {
            span.until = Some(s.phase_since.0);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .await;
    span
}

/// The image `version` runs.
fn image(h: &Harness, version: Version) -> String {
    h.template_patch(version)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("an image")
        .to_string()
}

/// Requests of `class` to the app answered by `image`, in the seconds that began at `from` or
/// later and ended by `until`.
fn class_requests(
    h: &Harness,
    class: &str,
    image: &str,
    from: SystemTime,
    until: SystemTime,
) -> u64 {
    let sandbox = h.sandbox().expect("the sandbox");
    sandbox
        .mesh
        .traffic(&h.ns, APP)
        .iter()
        .filter(|s| {
            let start = UNIX_EPOCH + Duration::from_secs(s.unix_second);
            start >= from && start + Duration::from_secs(1) <= until
        })
        .filter_map(|s| s.by_class.get(class)?.get(image).copied())
        .sum()
}

/// The A/B invariant (issue 6): from `from` until the route left the matched state, no request
/// that does not match reached the new version (`new`); while the matched route held, the
/// matching requests reached it, and (past the traffic slack) only it.
fn assert_only_matching_requests_reached(
    h: &Harness,
    new: Version,
    from: SystemTime,
    span: &MatchedSpan,
) {
    let (Some(matched_from), Some(until)) = (span.from, span.until) else {
        panic!("the matched route never held or never ended: {span:?}");
    };
    let new = image(h, new);
    assert_eq!(
        class_requests(h, OTHERS, &new, from, until),
        0,
        "requests that do not match reached the new version before the switch ({span:?})"
    );
    assert!(
        class_requests(h, MATCHING, &new, matched_from, until) > 0,
        "the matching requests never reached the new version ({span:?})"
    );
    let settled = matched_from + h.traffic_slack();
    assert_eq!(
        class_requests(h, MATCHING, &image(h, Version::Stable), settled, until),
        0,
        "matching requests stayed on the stable version while the matched route held ({span:?})"
    );
}

/// A healthy A/B test with `router` and `rule`: promoted after its iterations, the weight
/// going from 0 to 100 at once, only matching requests on the new version before.
async fn a_healthy_ab_test_is_promoted_with(router: RouterKind, rule: Rule) {
    let Some(h) = start(router, rule).await else {
        return;
    };
    let from = SystemTime::now();
    h.roll_to(Version::Good(1)).await;
    let (story, span): (Story, MatchedSpan) = tokio::join!(follow(&h), matched_span(&h));
    assert_eq!(story.last.phase, Phase::Succeeded, "{:?}", story.points);
    assert_eq!(
        story.weights(),
        vec![0, 100],
        "no weighted step: {:?}",
        story.points
    );
    assert_eq!(
        (story.last.iterations, story.last.iteration_goal),
        (ITERATIONS, Some(ITERATIONS))
    );
    assert_only_matching_requests_reached(&h, Version::Good(1), from, &span);
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Good(1)));
    super::assert_back_at_rest(&h).await;
    super::assert_events_tell(
        &h,
        &[
            "Preparing",
            "Progressing",
            "Analysing",
            "IterationPassed",
            "Promoting",
            "Succeeded",
        ],
    )
    .await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_ab_test_is_promoted_through_an_httproute_with_only_matching_requests_before() {
    a_healthy_ab_test_is_promoted_with(RouterKind::GatewayApi, Rule::Header).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_ab_test_by_cookie_is_promoted_through_a_canary_ingress() {
    a_healthy_ab_test_is_promoted_with(RouterKind::Nginx, Rule::Cookie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ab_test_is_rolled_back_having_served_only_matching_requests() {
    a_failing_ab_test_is_rolled_back_with(RouterKind::GatewayApi, Rule::Header).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ab_test_by_header_is_rolled_back_through_a_canary_ingress() {
    a_failing_ab_test_is_rolled_back_with(RouterKind::Nginx, Rule::Header).await;
}

async fn a_failing_ab_test_is_rolled_back_with(router: RouterKind, rule: Rule) {
    let Some(h) = start(router, rule).await else {
        return;
    };
    let from = SystemTime::now();
    h.roll_to(Version::Bad).await;
    let (story, span) = tokio::join!(follow(&h), matched_span(&h));
    assert_eq!(story.last.phase, Phase::Failed, "{:?}", story.points);
    assert_eq!(story.last.failed_checks, THRESHOLD, "{:?}", story.points);
    assert!(
        story.points.iter().all(|(_, weight, _)| *weight == 0),
        "the weight never left 0%: {:?}",
        story.points
    );
    // Judged on live matching traffic; the rest never saw the failing version, even after.
    assert_only_matching_requests_reached(&h, Version::Bad, from, &span);
    assert_eq!(
        class_requests(
            &h,
            OTHERS,
            &image(&h, Version::Bad),
            from,
            SystemTime::now()
        ),
        0,
        "requests that do not match reached the failing version"
    );
    assert!(h.runs(&h.api.get(APP).await.unwrap(), Version::Stable));
    super::assert_back_at_rest(&h).await;
    h.finish().await;
}
