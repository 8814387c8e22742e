//! The kubelet's probe loops, simulated from the service's own manifest:
//! what the kubelet would have done with a running service, and why.
//!
//! A [`Manifest`] is what the kubelet reads of the service's pod template
//! (its probes, as [`ProbeSpec`]s); a [`Kubelet`] runs the startup,
//! liveness and readiness probes on that schedule (periods and initial
//! delays optionally scaled down, probe timeouts real) against the
//! service's probe address. [`Kubelet::watch`] runs it for a while and
//! returns a [`KubeletReport`]; [`Kubelet::start`] runs it in the
//! background as a [`KubeletSession`] while the test acts on the service.
//! The report's [`KubeletEvent`]s (restarts, endpoint changes) carry the
//! [`ProbeRecord`]s that decided them.

mod back_off;
mod driver;
mod event;
mod kill;
mod manifest;
mod message;
mod pod;
mod prober;
mod report;
mod session;
#[cfg(test)]
mod tests;

#[cfg(test)]
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use event::EventKind;
pub(crate) use manifest::probe_defaults;
pub use manifest::{Manifest, PreStop, ProbeKind, ProbeSpec};
pub use report::{Kill, KubeletEvent, KubeletReport, ProbeRecord};
pub use session::KubeletSession;

use crate::error::Error;
#[cfg(doc)]
use crate::probe::http_probe;
use crate::service::{Lines, Service, ServiceBuilder};
use driver::{drive, Driver};
use pod::Target;
use session::Shared;

/// The shortest period a time scale leaves.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// Plays the kubelet against a service, on the schedule of its
/// [`Manifest`] (the one the binary derives, or the one you deploy), and
/// reports what the kubelet did or would have done.
///
/// ```no_run
/// use std::time::Duration;
///
/// use lifecycle_testing::{Kubelet, Manifest, Service};
///
/// # fn main() -> Result<(), lifecycle_testing::Error> {
/// # let binary = "my-service";
/// let builder = Service::builder(binary).env("DATABASE_URL", "postgres://127.0.0.1:1/down");
/// let kubelet = Kubelet::new(Manifest::from_builder(&builder)?).time_scale(0.1);
/// let service = builder.start()?;
///
/// // A dependency that is down: out of rotation, never restarted.
/// let report = kubelet.watch(&service, Duration::from_secs(5));
/// report.assert_started();
/// assert!(!report.in_endpoints(), "{report}");
/// report.assert_never_restarted();
/// # Ok(())
/// # }
/// ```
///
/// It follows the kubelet's prober
/// ([`pkg/kubelet/prober/worker.go`](https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/prober/worker.go)):
/// each probe is sent at once and then every period, skipped before its
/// initial delay (counted from the container's start, the process's start
/// for the first); a probe that outlasts its period is followed at once by
/// the next. Liveness and readiness probes wait until the startup probe
/// has passed, and readiness is probed at once when it does. The pod is
/// not ready until readiness passes `successThreshold` times in a row; it
/// leaves the endpoints after `failureThreshold` failures in a row, or
/// when its container exits. Start-up runs out of its budget at
/// `failureThreshold` failures in a row, or at the first failure once
/// `initialDelaySeconds + failureThreshold × periodSeconds` have passed
/// since the process started. HTTP probes follow redirects as the kubelet
/// does ([`http_probe`]), and one passing with a warning is a
/// [`EventKind::ProbeWarning`].
///
/// When liveness fails or start-up runs out of its budget, the container
/// is killed; once it has exited, a new one starts after the restart
/// back-off (`CrashLoopBackOff`: at once the first time, then 10 s,
/// doubling up to 5 min, and at once again after a container ran more
/// than 10 min; the back-off is scaled by the [time
/// scale](Self::time_scale)). [`KubeletSession::delete_pod`] deletes the
/// pod: liveness and startup stop, readiness goes on being probed until
/// the container exits, the pod leaves the endpoints and the container is
/// killed, never restarted.
///
/// What a kill does depends on who runs the process:
/// - [`Kubelet::run`] gives the kubelet a [`ServiceBuilder`]: it runs the
///   process and kills it as the kubelet does ([`Kill`]: the `preStop`
///   hook, the stop signal, SIGKILL at the end of the grace period), then
///   really starts a new one after the back-off. A process that exits by
///   itself is restarted the same way (`restartPolicy: Always`).
/// - [`Kubelet::watch`] and [`Kubelet::start`] probe a [`Service`] the
///   test owns, and never touch it: a kill ends at once and the "new
///   container" after the back-off is the same process, whose probes
///   start over. Stop it yourself after [`delete_pod`](KubeletSession::delete_pod).
///
/// Not simulated: `httpGet.httpHeaders`, exec and tcpSocket probes, an
/// httpGet `preStop` hook, other `restartPolicy` values than `Always`,
/// and the random delay before a worker's first probe.
#[derive(Debug, Clone)]
pub struct Kubelet {
    manifest: Manifest,
    time_scale: f64,
}

impl From<Manifest> for Kubelet {
    fn from(manifest: Manifest) -> Kubelet {
        Kubelet::new(manifest)
    }
}

impl Kubelet {
    /// A kubelet for a pod of this manifest, on its real schedule.
    pub fn new(manifest: Manifest) -> Kubelet {
        Kubelet {
            manifest,
            time_scale: 1.0,
        }
    }

    /// Multiplies every probe's period and initial delay, and the restart
    /// back-off, by `scale`: 0.1 runs the schedule ten times faster (a
    /// period stays at least 1 ms). Probe timeouts stay real, as do the
    /// checks' own timeouts, the grace periods and `preStop` sleeps: they
    /// bound the service's real work.
    ///
    /// # Panics
    /// Unless `scale` is finite and above zero.
    #[must_use]
    pub fn time_scale(mut self, scale: f64) -> Kubelet {
        assert!(
            scale.is_finite() && scale > 0.0,
            "a time scale is finite and above zero, not {scale}"
        );
        self.time_scale = scale;
        self
    }

    /// The manifest it follows.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Probes `service` on the manifest's schedule for `duration` (real
    /// time: scale the schedule with [`time_scale`](Self::time_scale), not
    /// the duration), then reports what the kubelet would have done.
    pub fn watch(&self, service: &Service, duration: Duration) -> KubeletReport {
        self.start(service, duration).finish()
    }

    /// Starts probing `service` in the background, for `duration` at most
    /// (real time), so that the test can act on the service meanwhile and
    /// [`wait_until`](KubeletSession::wait_until) the kubelet reacts; the
    /// session's [`stop`](KubeletSession::stop) or
    /// [`finish`](KubeletSession::finish) reports. The service stays the
    /// test's: never killed nor restarted (see [`run`](Self::run)).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use lifecycle_testing::{Kubelet, Manifest, Service};
    ///
    /// # fn main() -> Result<(), lifecycle_testing::Error> {
    /// # let binary = "my-service";
    /// let builder = Service::builder(binary);
    /// let kubelet = Kubelet::new(Manifest::from_builder(&builder)?).time_scale(0.1);
    /// let service = builder.start()?;
    ///
    /// let session = kubelet.start(&service, Duration::from_secs(30));
    /// session.wait_until("the pod joins the endpoints", Duration::from_secs(10), |report| {
    ///     report.in_endpoints()
    /// })?;
    /// // … break the service's dependency here …
    /// session.wait_until("the pod leaves the endpoints", Duration::from_secs(10), |report| {
    ///     !report.in_endpoints()
    /// })?;
    /// session.stop().assert_never_restarted();
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self, service: &Service, duration: Duration) -> KubeletSession {
        let target = Target::Borrowed {
            addr: service.probe_addr(),
            spawned: service.spawned(),
        };
        self.begin(target, Some(service.log_lines()), duration)
    }

    /// Starts the service from `builder` and runs it as the kubelet runs a
    /// container, for `duration` at most: probes it, kills it as the
    /// kubelet kills (its `preStop` hook, the stop signal — SIGTERM, or
    /// the manifest's `lifecycle.stopSignal` — and SIGKILL when the grace
    /// period runs out), and starts it again from the builder after the
    /// restart back-off, when liveness fails, start-up runs out of its
    /// budget or the process exits by itself.
    /// [`KubeletSession::delete_pod`] terminates it for good;
    /// [`KubeletSession::with_service`] reaches the process running now.
    /// The session's end kills what still runs. The error is the first
    /// start's, as [`ServiceBuilder::spawn`] returns it; a later start that
    /// fails is an [`EventKind::Exited`] and another back-off.
    ///
    /// An `exec` `preStop` hook cannot run inside a container here: its
    /// command runs on the host, in the service's environment (the
    /// builder's variables, then the manifest's `env` values). On Windows
    /// a kill ends the process with TerminateProcess after the hook.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use lifecycle_testing::{Kubelet, Manifest, Service};
    ///
    /// # fn main() -> Result<(), lifecycle_testing::Error> {
    /// # let binary = "my-service";
    /// let builder = Service::builder(binary);
    /// let kubelet = Kubelet::new(Manifest::from_file("deploy/app.yaml", "app")?).time_scale(0.1);
    /// let session = kubelet.run(builder, Duration::from_secs(60))?;
    /// session.wait_until("the pod joins", Duration::from_secs(10), |r| r.in_endpoints())?;
    /// session.delete_pod();
    /// let report = session.wait_until("the kill", Duration::from_secs(40), |r| {
    ///     !r.kills.is_empty()
    /// })?;
    /// assert!(!report.assert_killed().sigkilled, "{report}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn run(
        &self,
        builder: ServiceBuilder,
        duration: Duration,
    ) -> Result<KubeletSession, Error> {
        let service = builder.clone().spawn()?;
        let spawned = service.spawned();
        let addr = service.probe_addr();
        let slot = Arc::new(Mutex::new(Some(service)));
        let target = Target::Owned {
            builder,
            slot,
            first: (spawned, addr),
        };
        Ok(self.begin(target, None, duration))
    }

    /// The probes, with periods and initial delays scaled.
    fn schedule(&self) -> Vec<(ProbeKind, ProbeSpec)> {
        ProbeKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let mut spec = self.manifest.probe(kind)?.clone();
                spec.period = spec.period.mul_f64(self.time_scale).max(MIN_PERIOD);
                spec.initial_delay = spec.initial_delay.mul_f64(self.time_scale);
                Some((kind, spec))
            })
            .collect()
    }

    /// Probes `addr`, as a process started `spawned`.
    #[cfg(test)]
    fn start_at(&self, addr: SocketAddr, spawned: Instant, duration: Duration) -> KubeletSession {
        self.begin(Target::Borrowed { addr, spawned }, None, duration)
    }

    fn begin(&self, target: Target, log: Option<Lines>, duration: Duration) -> KubeletSession {
        let schedule = self.schedule();
        let started = Instant::now();
        let shared = Arc::new(Shared::new(KubeletReport::new(
            schedule.clone(),
            self.time_scale,
        )));
        let slot = match &target {
            Target::Owned { slot, .. } => Some(slot.clone()),
            Target::Borrowed { .. } => None,
        };
        let (sender, messages) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            let sender = sender.clone();
            let manifest = self.manifest.clone();
            let time_scale = self.time_scale;
            std::thread::Builder::new()
                .name("kubelet".into())
                .spawn(move || {
                    drive(Driver {
                        schedule,
                        manifest,
                        time_scale,
                        target,
                        started,
                        end: started + duration,
                        shared,
                        messages,
                        sender,
                    })
                })
                .expect("a thread for the kubelet")
        };
        KubeletSession::new(shared, sender, thread, started, log, slot)
    }
}
