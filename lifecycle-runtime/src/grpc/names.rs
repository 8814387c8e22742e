//! The service names of `grpc.health.v1.Health` and what they answer,
//! shared by `Check`, `List` and `Watch`: names to endpoints, whether a
//! name is known, its status, and the response that carries it.

#[cfg(feature = "metrics")]
use std::borrow::Cow;

use crate::grpc::proto::health_check_response::ServingStatus;
use crate::grpc::proto::HealthCheckResponse;
use crate::probe::endpoint::{parse_service, service_of, Endpoint};
use crate::probe::evaluate::Evaluator;

/// The `endpoint` label of service `name` (`""` is `/healthz`'s).
#[cfg(feature = "metrics")]
pub(crate) fn endpoint_label(evaluator: &Evaluator, name: &str) -> Cow<'static, str> {
    evaluator.endpoint_label(parse_service(name))
}

/// Whether `name` is one of the names the service answers for.
pub(crate) fn known(evaluator: &Evaluator, name: &str) -> bool {
    parse_service(name).is_some_and(|target| evaluator.knows(target))
}

/// The status of service `name` now; `None` when it names nothing.
pub(crate) async fn status(evaluator: &Evaluator, name: &str) -> Option<ServingStatus> {
    let (endpoint, only) = parse_service(name)?;
    // A built-in check failing (the phase, mark_broken) decides at once.
    if evaluator.fails_on_builtins(endpoint, only) {
        return Some(ServingStatus::NotServing);
    }
    let evaluation = evaluator.evaluate(endpoint, only, &[]).await?;
    Some(serving(evaluation.passed()))
}

fn serving(passed: bool) -> ServingStatus {
    if passed {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

pub(crate) fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// Every name a client may ask for: `""`, each probed endpoint, and each
/// of their checks.
pub(crate) fn all(evaluator: &Evaluator) -> Vec<String> {
    let mut names = vec![service_of((Endpoint::Healthz, None))];
    for endpoint in Endpoint::PROBED {
        names.push(service_of((endpoint, None)));
        for check in evaluator.check_names(endpoint) {
            names.push(service_of((endpoint, Some(&check))));
        }
    }
    names
}
