//! Leader failover with real processes (issue 8): two `sluice serve` replicas, the leader
//! killed with SIGKILL mid-rollout, the standby taking the Lease over and finishing the rollout.
//!
//! - **Takeover time** is measured from the kill to the standby reporting `sluice_leader 1` on
//!   its `/metrics`. The bound asserted is what the election guarantees (the same as client-go's
//!   leaderelection): the dead leader's Lease expires at most one lease duration after the kill
//!   (it renewed at the latest just before dying), and the standby claims it at its next retry,
//!   at most one retry period (a third of the lease) later; a second of slack is added for a
//!   loaded 2-core machine and the 50 ms poll. The lease is `process::LEASE` (2 s).
//! - **Admission.** The sandbox Service `sluice-system/sluice` has one endpoint, so the webhook
//!   configurations point at one process. They are pointed at the standby when it starts (every
//!   replica answers admissions, the leader's own writes included), so killing the leader never
//!   leaves admission without a live process: in a cluster, the endpoints controller drops the
//!   dead pod from the Service the same way.
//! - **History.** The observer follows every status the rollout goes through; the weights must
//!   be exactly the promotion's steps (none repeated, none skipped), ending `Succeeded`.

use std::time::{Duration, Instant};

use sluice::controller::status::Phase;

use crate::harness::{APP, Harness, RouterKind, Run, STEP, Version, status};
use crate::observer::follow;
use crate::process::{LEASE, Process, Setup};
use crate::{assert_back_at_rest, assert_ended_right};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_process_takes_over_within_the_lease_when_the_leader_is_sigkilled() {
    let _heavy = crate::HEAVY.lock().await;
    let mut h = Harness::start_many_as(1, RouterKind::Smi, Run::Process)
        .await
        .pop()
        .expect("one app");
    let Some(sandbox) = h.sandbox() else {
        eprintln!(
            "on a cluster, failover is the installed Deployment's; this scenario needs the sandbox"
        );
        h.finish().await;
        return;
    };
    h.wait_until_sluice_leads().await;
    let standby_setup = Setup::new();
    let standby = Process::start(sandbox, &standby_setup).await;
    assert!(
        !standby.leads(&standby_setup).await,
        "the standby must not lead while the leader holds the Lease"
    );
    // The rollout pauses for the takeover, and a weight the leader wrote to the status but not
    // yet to the route reaches the mesh once the standby leads.
    h.downtime = Duration::from_secs(10);
    h.route_lag = crate::RESTART;
    h.roll_to(Version::Good(1)).await;

    let retry_period = LEASE / 3;
    let killer = async {
        // Mid-rollout: past the first step, before promotion.
        let deadline = Instant::now() + h.intervals(6);
        loop {
            let d = h.api.get(APP).await.unwrap();
            if status(&d).is_some_and(|s| s.phase == Phase::Progressing && s.weight >= STEP) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rollout never reached {STEP}%"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let killed = Instant::now();
        h.kill_sluice().await;
        while !standby.leads(&standby_setup).await {
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "the standby did not lead within 30 s of the kill"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        killed.elapsed()
    };
    let (story, took) = tokio::join!(follow(&h), killer);
    eprintln!(
        "failover: the standby led {:.2} s after the leader's SIGKILL (lease {} s, retry every {:.2} s)",
        took.as_secs_f64(),
        LEASE.as_secs(),
        retry_period.as_secs_f64()
    );
    let bound = LEASE + retry_period + Duration::from_secs(1);
    assert!(
        took <= bound,
        "the standby led {took:?} after the kill; the election allows at most {bound:?}"
    );
    assert_ended_right(0, true, &story);
    assert_back_at_rest(&h).await;
    standby.terminate().await;
    h.finish().await;
}
