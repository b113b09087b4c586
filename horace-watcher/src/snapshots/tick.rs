//! One scheduler tick: list, plan, execute the plan unchanged, list again.
//!
//! Generic over [`SnapshotOps`] so the same code runs against horace-zfsd over D-Bus and
//! against the in-memory ZFS of the retention simulation tests.

use std::future::Future;

use horace_zfsd::api::SnapshotInfo;

use super::retention::{self, Plan, Policy};

/// The three zfsd calls a tick needs; errors are readable messages.
pub(crate) trait SnapshotOps {
    /// `ListSnapshots(dataset)`.
    fn list(&self, dataset: &str)
        -> impl Future<Output = Result<Vec<SnapshotInfo>, String>> + Send;
    /// `CreateSnapshot(dataset, label)`, returning the full name.
    fn create(
        &self,
        dataset: &str,
        label: &str,
    ) -> impl Future<Output = Result<String, String>> + Send;
    /// `DestroySnapshots(dataset, names, false)`, returning what was destroyed.
    fn destroy(
        &self,
        dataset: &str,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TickOutcome {
    /// The plan it executed.
    pub plan: Plan,
    /// Full names created, in plan order.
    pub created: Vec<String>,
    /// Full names destroyed.
    pub destroyed: Vec<String>,
    /// Planned destroys zfsd refused (a dependent clone, a hold), with its message. The
    /// rest of the plan went ahead; these are tried again next tick.
    pub refused: Vec<String>,
    /// The dataset's snapshots afterwards (for the catalog's mirror).
    pub snapshots: Vec<SnapshotInfo>,
}

/// Why a tick stopped; what it created before is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TickError {
    /// The call that failed: "list", "create" or "destroy".
    pub stage: &'static str,
    /// zfsd's message.
    pub message: String,
    /// Snapshots created before the failure.
    pub created: Vec<String>,
}

impl std::fmt::Display for TickError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.stage, self.message)
    }
}

/// Lists `dataset`'s snapshots, plans at `now`, creates the due snapshots, and destroys
/// the planned ones in one batch (only if every create succeeded, so no label drops below
/// its count), then lists again. zfsd stops a batch at the first snapshot it cannot
/// destroy; the rest are then destroyed one by one, so one snapshot an operator cloned or
/// held does not stop all pruning.
pub(crate) async fn tick(
    ops: &impl SnapshotOps,
    policy: &Policy,
    dataset: &str,
    now: i64,
) -> Result<TickOutcome, TickError> {
    let err = |stage, message, created: &Vec<String>| TickError {
        stage,
        message,
        created: created.clone(),
    };
    let mut created = Vec::new();
    let before = ops
        .list(dataset)
        .await
        .map_err(|m| err("list", m, &created))?;
    let plan = retention::plan(policy, dataset, &before, now);
    for label in &plan.create {
        let name = ops
            .create(dataset, label.as_str())
            .await
            .map_err(|m| err("create", m, &created))?;
        created.push(name);
    }
    let mut refused = Vec::new();
    let destroyed = if plan.destroy.is_empty() {
        Vec::new()
    } else {
        match ops.destroy(dataset, &plan.destroy).await {
            Ok(done) => done,
            Err(_) => {
                let left = ops
                    .list(dataset)
                    .await
                    .map_err(|m| err("list", m, &created))?;
                let mut done = Vec::new();
                for name in &plan.destroy {
                    if !left.iter().any(|s| &s.name == name) {
                        done.push(name.clone());
                        continue;
                    }
                    match ops.destroy(dataset, std::slice::from_ref(name)).await {
                        Ok(d) => done.extend(d),
                        Err(m) => refused.push(m),
                    }
                }
                done
            }
        }
    };
    let snapshots = if created.is_empty() && destroyed.is_empty() {
        before
    } else {
        ops.list(dataset)
            .await
            .map_err(|m| err("list", m, &created))?
    };
    Ok(TickOutcome {
        plan,
        created,
        destroyed,
        refused,
        snapshots,
    })
}
