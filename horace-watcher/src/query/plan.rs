//! The `snapshot_plan` answer: the scheduler's dry run ([`crate::snapshots::dry_run`]) in
//! wire form, with its failures named (snapshots off, horace-zfsd unreachable or refusing).

use horace_client::{QueryError, SnapshotPlan};

use super::report::NS_PER_SEC;
use crate::snapshots::{self, retention::Plan};
use crate::Context;

/// Prefix of the D-Bus error names horace-zfsd itself answers with; any other failure
/// means zfsd (or the bus) did not answer.
const ZFSD_ERROR_PREFIX: &str = "org.horace.Zfs1.Error.";

/// What the next tick would do if it ran now, from horace-zfsd's current list.
pub async fn snapshot_plan(ctx: &Context) -> Result<SnapshotPlan, QueryError> {
    let snap = &ctx.config.snapshots;
    let Some(dataset) = snap.dataset.as_deref().filter(|_| snap.enabled) else {
        return Err(off());
    };
    match snapshots::dry_run(ctx).await {
        Ok(plan) => Ok(to_wire(dataset, plan)),
        Err(message) => Err(zfsd_error(message)),
    }
}

/// The answer when no snapshots are scheduled.
fn off() -> QueryError {
    QueryError::InvalidArgument {
        message: "snapshots are off in the config (set [snapshots] enabled = true and \
                  dataset), so there is no plan"
            .into(),
    }
}

/// A failed dry run: zfsd's own refusal is an internal error, anything else means zfsd
/// did not answer.
fn zfsd_error(message: String) -> QueryError {
    if message.starts_with(ZFSD_ERROR_PREFIX) {
        QueryError::Internal {
            message: format!("horace-zfsd refused to list the snapshots: {message}"),
        }
    } else {
        QueryError::ZfsdUnreachable { message }
    }
}

/// The plan as it crosses the wire: labels by name.
fn to_wire(dataset: &str, plan: Plan) -> SnapshotPlan {
    SnapshotPlan {
        dataset: dataset.to_string(),
        now_ns: plan.now.saturating_mul(NS_PER_SEC),
        create: plan.create.iter().map(|l| l.as_str().to_string()).collect(),
        destroy: plan.destroy,
        prune_refused: plan.prune_refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshots::retention::Label;

    #[test]
    fn the_wire_plan_keeps_labels_names_and_refusal_in_order() {
        let plan = Plan {
            now: 1_700_000_000,
            create: vec![Label::Hourly, Label::Monthly],
            destroy: vec!["p/f@horace_a_hourly".into(), "p/f@horace_b_hourly".into()],
            prune_refused: Some("clock behind".into()),
        };
        assert_eq!(
            to_wire("p/f", plan),
            SnapshotPlan {
                dataset: "p/f".into(),
                now_ns: 1_700_000_000_000_000_000,
                create: vec!["hourly".into(), "monthly".into()],
                destroy: vec!["p/f@horace_a_hourly".into(), "p/f@horace_b_hourly".into()],
                prune_refused: Some("clock behind".into()),
            }
        );
    }

    #[test]
    fn failures_are_named() {
        let gone = zfsd_error("org.freedesktop.DBus.Error.ServiceUnknown: no owner".into());
        assert!(
            matches!(&gone, QueryError::ZfsdUnreachable { message } if message.contains("ServiceUnknown")),
            "{gone:?}"
        );
        assert!(gone.to_string().contains("horace-zfsd is unreachable"));
        let refused = zfsd_error("org.horace.Zfs1.Error.NotAllowed: p/x".into());
        assert!(
            matches!(&refused, QueryError::Internal { message } if message.contains("NotAllowed")),
            "{refused:?}"
        );
        assert!(off()
            .to_string()
            .contains("snapshots are off in the config"));
    }
}
