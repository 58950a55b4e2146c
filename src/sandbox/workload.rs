//! Workload simulator: rolls Deployments the way the deployment controller does.
