//! The crash sweep: `sluice serve` processes killed with SIGKILL at random moments across many
//! concurrent rollouts, each restarted as a new replica that must first wait out the dead one's
//! Lease. Every rollout must end as if nothing had happened: a healthy one promoted through
//! every step exactly once, a failing one rolled back after exactly `threshold` failed checks,
//! none lost (`assert_ended_right`), and each app back at rest.
//!
//! Size and randomness: `SLUICE_CRASH_SWEEP=ROLLOUTSxKILLS` (6x6 by default, so the suite stays
//! short; RELIABILITY.md records a 50x50 run) and `SLUICE_CRASH_SEED` (printed on every run, so
//! a failure can be replayed).

use std::time::Duration;

use crate::harness::{Harness, RouterKind, Run, Version};
use crate::observer::follow;
use crate::{assert_back_at_rest, assert_ended_right};

/// (rollouts, kills) from `SLUICE_CRASH_SWEEP`.
fn size() -> (usize, usize) {
    let Ok(v) = std::env::var("SLUICE_CRASH_SWEEP") else {
        return (6, 6);
    };
    let parsed = v
        .split_once('x')
        .and_then(|(r, k)| Some((r.parse().ok()?, k.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("SLUICE_CRASH_SWEEP={v:?}: write ROLLOUTSxKILLS, e.g. 50x50"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_survive_sigkills_of_sluice_serve_at_random_moments() {
    let _heavy = crate::HEAVY.lock().await;
    let (rollouts, kills) = size();
    let seed = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash sweep: {rollouts} rollouts, {kills} kills, SLUICE_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut apps = Harness::start_many_as(rollouts, RouterKind::Smi, Run::Process).await;
    // A replica lives up to two intervals after it starts leading; each restart then waits
    // out the dead replica's 2 s Lease and syncs its caches (a few seconds on a loaded machine).
    let life = apps[0].interval() * 2;
    for h in &mut apps {
        h.downtime = (life + Duration::from_secs(8)) * kills as u32;
        // A replica killed after writing a lower weight (a rollback) but before moving the
        // route leaves the old weight in the mesh until the next one leads.
        h.route_lag = crate::RESTART + Duration::from_secs(2);
    }
    if apps[0].is_cluster() {
        eprintln!("on a cluster the sweep kills the installed pods instead");
    }
    // One in four rollouts fails its analysis.
    let healthy = |i: usize| i % 4 != 3;
    futures::future::join_all(apps.iter().enumerate().map(|(i, h)| {
        h.roll_to(if healthy(i) {
            Version::Good(1)
        } else {
            Version::Bad
        })
    }))
    .await;
    // Kills at random moments while a replica runs the controller: each waits until the new
    // replica leads, then a random time up to two intervals, so every kill interrupts a
    // controller at work and the rollouts still move between kills.
    let killer = async {
        for _ in 0..kills {
            apps[0].wait_until_sluice_leads().await;
            tokio::time::sleep(life.mul_f64(rng.f64())).await;
            apps[0].kill_sluice().await;
            apps[0].start_sluice().await;
        }
    };
    let (stories, ()) = tokio::join!(futures::future::join_all(apps.iter().map(follow)), killer);
    for (i, story) in stories.iter().enumerate() {
        assert_ended_right(i, healthy(i), story);
    }
    for h in &apps {
        assert_back_at_rest(h).await;
    }
    eprintln!("crash sweep: all {rollouts} rollouts ended right after {kills} SIGKILLs");
    for h in apps {
        h.finish().await;
    }
}
