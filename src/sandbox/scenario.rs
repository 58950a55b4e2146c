//! The sandbox's image-tag convention, so a person driving `sluice sandbox --hold` with
//! `kubectl set image` picks each version's behaviour by its tag:
//!
//! | tag contains | behaviour |
//! |---|---|
//! | `bad` | 10% of responses fail (HTTP 500) |
//! | `slow` | p99 latency about 900 ms (p50 300 ms) |
//! | `broken` | pods never become ready |
//! | anything else | healthy: no errors, p50 20 ms, p99 50 ms |
//!
//! A profile set explicitly with `MeshSimulator::set_profile`, or an image marked with
//! `WorkloadSimulator::mark_broken`, takes precedence.

use super::mesh::Profile;

fn tag(image: &str) -> &str {
    let name = image.rsplit('/').next().unwrap_or(image);
    name.split_once(':').map(|(_, t)| t).unwrap_or("")
}

/// The traffic profile an image's tag asks for, if any.
pub fn profile_for(image: &str) -> Option<Profile> {
    let t = tag(image);
    if t.contains("bad") {
        Some(Profile {
            error_rate: 0.1,
            ..Profile::default()
        })
    } else if t.contains("slow") {
        Some(Profile {
            latency_p50_ms: 300.0,
            latency_p99_ms: 900.0,
            ..Profile::default()
        })
    } else {
        None
    }
}

/// Whether an image's tag says its pods never become ready.
pub fn is_broken(image: &str) -> bool {
    tag(image).contains("broken")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_not_the_repository_picks_the_behaviour() {
        assert_eq!(profile_for("ghcr.io/bad/podinfo:6.0.0"), None);
        assert_eq!(
            profile_for("podinfo:6.0.2-bad").map(|p| p.error_rate),
            Some(0.1)
        );
        assert!(profile_for("podinfo:slow").is_some_and(|p| p.latency_p99_ms > 500.0));
        assert!(is_broken("localhost:5000/podinfo:broken-1"));
        assert!(!is_broken("broken/podinfo:1.0"));
    }
}
