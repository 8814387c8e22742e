//! Killing a container the kubelet runs, as `killContainer` does: the
//! `preStop` hook within the grace period, the stop signal, SIGKILL when
//! what the hook left of the grace period has passed.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::event::EventKind;
use super::manifest::{Manifest, PreStop};
use super::message::Message;
use super::pod::{Slot, Target};
use super::report::Kill;
use crate::service::{Exit, ServiceBuilder};
use crate::sync::lock;

/// The least time a container gets from its stop signal to SIGKILL,
/// whatever the `preStop` hook left of the grace period
/// (`minimumGracePeriodInSeconds` in `pkg/kubelet/kuberuntime`).
const MIN_STOP_WINDOW: Duration = Duration::from_secs(2);

/// A kill to carry out on the kubelet's own process.
struct KillPlan {
    /// The watch's start: the report's clock.
    started: Instant,
    at: Instant,
    reason: EventKind,
    grace: Duration,
    pre_stop: Option<PreStop>,
    signal: String,
    /// The `exec` hook's environment.
    builder: ServiceBuilder,
    env: Vec<(String, String)>,
}

/// Starts killing the kubelet's own process on a thread of its own;
/// `false` for the test's process, which is not touched.
pub(super) fn begin_kill(
    target: &Target,
    manifest: &Manifest,
    (at, reason, grace, signal): (Instant, EventKind, Duration, String),
    started: Instant,
    sender: &mpsc::Sender<Message>,
) -> bool {
    let Target::Owned { builder, slot, .. } = target else {
        return false;
    };
    let plan = KillPlan {
        started,
        at,
        reason,
        grace,
        pre_stop: manifest.pre_stop().cloned(),
        signal,
        builder: builder.clone(),
        env: manifest.env().to_vec(),
    };
    let (slot, sender) = (slot.clone(), sender.clone());
    std::thread::Builder::new()
        .name("kubelet-kill".into())
        .spawn(move || {
            let (ended, kill) = kill(&slot, plan);
            let _ = sender.send(Message::Killed { at: ended, kill });
        })
        .expect("a thread for a kill");
    true
}

/// How the process went once signalled.
struct Stopped {
    exit: Option<Exit>,
    sigkilled: bool,
    /// From the signal to the exit.
    exited_after: Duration,
}

/// Kills the process in `slot` as `killContainer` does, and takes it out
/// of the slot once it has exited: when, and how it went.
fn kill(slot: &Slot, plan: KillPlan) -> (Instant, Kill) {
    let began = Instant::now();
    let mut pre_stop = None;
    let mut pre_stop_error = None;
    if let Some(hook) = &plan.pre_stop {
        if !plan.grace.is_zero() {
            pre_stop_error = run_pre_stop(hook, &plan, began + plan.grace).err();
            pre_stop = Some(began.elapsed());
        }
    }
    // `executePreStopHook` returns whole seconds; the container gets what
    // is left of the grace period, never less than the minimum.
    let used = Duration::from_secs(began.elapsed().as_secs());
    let stop_window = plan.grace.saturating_sub(used).max(MIN_STOP_WINDOW);
    let stopped = signal_and_wait(slot, &plan.signal, stop_window);
    let ended = Instant::now();
    let log = match lock(slot).take() {
        // Exited: the wait returns at once, with its output complete.
        Some(mut service) => {
            let _ = service.wait_exit(Duration::ZERO);
            service.log()
        }
        None => Vec::new(),
    };
    let kill = Kill {
        at: plan.at.saturating_duration_since(plan.started),
        reason: plan.reason,
        grace: plan.grace,
        pre_stop,
        pre_stop_error,
        signal: plan.signal,
        stop_window,
        exited_after: stopped.exited_after,
        sigkilled: stopped.sigkilled,
        exit: stopped.exit,
        log,
    };
    (ended, kill)
}

/// Sends the stop signal to the process in `slot`, and SIGKILL once
/// `stop_window` has passed, until it exits.
fn signal_and_wait(slot: &Slot, signal: &str, stop_window: Duration) -> Stopped {
    let signalled = Instant::now();
    #[cfg(unix)]
    if let Some(service) = &*lock(slot) {
        let number = super::manifest::signal_number(signal).unwrap_or(libc::SIGTERM);
        service.signal(number);
    }
    #[cfg(not(unix))]
    if let Some(service) = &*lock(slot) {
        // Windows has no signals: the kill is at once.
        let _ = signal;
        service.send_kill();
    }
    let mut sigkilled = false;
    let exit = loop {
        {
            let service = lock(slot);
            let Some(service) = service.as_ref() else {
                break None;
            };
            if let Some(exit) = service.try_exit() {
                break Some(exit);
            }
            if !sigkilled && signalled.elapsed() >= stop_window {
                service.send_kill();
                sigkilled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Stopped {
        exit,
        sigkilled,
        exited_after: signalled.elapsed(),
    }
}

/// Runs a `preStop` hook, giving up at `until` (the end of the grace
/// period), as `executePreStopHook` does.
fn run_pre_stop(hook: &PreStop, plan: &KillPlan, until: Instant) -> Result<(), String> {
    match hook {
        PreStop::Sleep(seconds) => {
            std::thread::sleep((*seconds).min(until.saturating_duration_since(Instant::now())));
            Ok(())
        }
        PreStop::Exec(command) => {
            let mut process = std::process::Command::new(&command[0]);
            process
                .args(&command[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            plan.builder.apply_env(&mut process);
            process.envs(plan.env.iter().map(|(k, v)| (k, v)));
            let mut child = process
                .spawn()
                .map_err(|e| format!("cannot run {:?}: {e}", command[0]))?;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => return Ok(()),
                    Ok(Some(status)) => return Err(format!("{command:?} failed ({status})")),
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("not completed in the grace period".to_owned());
                    }
                }
            }
        }
    }
}
