use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::env::*;
use super::*;

fn config() -> ServiceConfig {
    ServiceConfig {
        probe_addr: Some("127.0.0.1:9000"),
        drain_delay_ms: Some(100),
        ..ServiceConfig::defaults()
    }
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

/// `before`, a byte that no UTF-8 text holds, then `after`.
#[cfg(unix)]
fn not_utf8(before: &str, after: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = before.as_bytes().to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(after.as_bytes());
    OsString::from_vec(bytes)
}

/// `before`, a lone UTF-16 surrogate (what Windows allows in a
/// variable and no UTF-8 text holds), then `after`.
#[cfg(windows)]
fn not_utf8(before: &str, after: &str) -> OsString {
    use std::os::windows::ffi::OsStringExt;
    let mut wide: Vec<u16> = before.encode_utf16().collect();
    wide.push(0xD800);
    wide.extend(after.encode_utf16());
    OsString::from_wide(&wide)
}

#[test]
fn a_value_that_is_no_utf8_is_a_bad_value_not_an_unset_one() {
    for variable in [
        SHUTDOWN_TIMEOUT,
        DRAIN_DELAY,
        CONNECTION_DRAIN,
        STALL_THRESHOLD,
        PROBE_ADDR,
        REASONS,
        PROBE_PROTOCOL,
        METRICS,
        PID1,
        STOP_SIGNAL,
    ] {
        let bytes = not_utf8("5", "0");
        let env = move |name: &str| (name == variable).then(|| bytes.clone());
        let err = Settings::resolve(&config(), &env).unwrap_err();
        assert_eq!(err.variable, variable);
        assert!(err.to_string().contains("expected "), "{err}");
    }
    let env = |name: &str| (name == LOG_FORMAT).then(|| not_utf8("js", "on"));
    assert_eq!(log_format(&env).unwrap_err().variable, LOG_FORMAT);
    // A path is bytes, and taken as they are.
    let path = not_utf8("/tmp/addr-", "");
    let given = path.clone();
    let env = move |name: &str| (name == PROBE_ADDR_FILE).then(|| given.clone());
    let settings = Settings::resolve(&config(), &env).unwrap();
    assert_eq!(settings.probe_addr_file, Some(PathBuf::from(path)));
}

#[test]
fn empty_and_blank_values_count_as_unset() {
    for blank in ["", "  ", "\t"] {
        for variable in [
            SHUTDOWN_TIMEOUT,
            DRAIN_DELAY,
            CONNECTION_DRAIN,
            PROBE_ADDR,
            PROBE_ADDR_FILE,
            REASONS,
            PROBE_PROTOCOL,
            METRICS,
            PID1,
            STOP_SIGNAL,
        ] {
            // Off by the argument: a blank variable must not turn them on.
            let without_metrics = ServiceConfig {
                metrics: false,
                ..config()
            };
            let settings = Settings::resolve(&without_metrics, &env(&[(variable, blank)])).unwrap();
            assert_eq!(settings.drain_delay, Duration::from_millis(100));
            assert_eq!(settings.probe_addr_file, None);
            assert!(!settings.metrics, "{variable}={blank:?}");
            assert_eq!(settings.stop_signal, StopSignal::Sigterm);
        }
        // Blank is unset: the argument's `true` stands.
        assert!(pid1_wanted(&config(), &env(&[(PID1, blank)])));
        assert_eq!(
            log_format(&env(&[(LOG_FORMAT, blank)])),
            Ok(LogFormat::Text)
        );
    }
}

#[test]
fn environment_beats_attribute_beats_default() {
    let settings = Settings::resolve(&config(), &env(&[(DRAIN_DELAY, "300")])).unwrap();
    assert_eq!(settings.drain_delay, Duration::from_millis(300));
    assert_eq!(settings.probe_addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(settings.shutdown_timeout, Duration::from_millis(25_000));
    let settings = Settings::resolve(&config(), &env(&[])).unwrap();
    assert_eq!(settings.drain_delay, Duration::from_millis(100));
}

#[test]
fn kubernetes_changes_the_default_drain_delay_only() {
    let mut cfg = config();
    cfg.drain_delay_ms = None;
    let on_k8s = env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
    assert_eq!(
        Settings::resolve(&cfg, &on_k8s).unwrap().drain_delay,
        Duration::from_millis(5_000)
    );
    assert_eq!(
        Settings::resolve(&cfg, &env(&[])).unwrap().drain_delay,
        Duration::ZERO
    );
}

#[test]
fn bad_values_name_the_variable() {
    let err = Settings::resolve(&config(), &env(&[(SHUTDOWN_TIMEOUT, "soon")])).unwrap_err();
    assert_eq!(err.variable, SHUTDOWN_TIMEOUT);
    assert!(err
        .to_string()
        .contains("LIFECYCLE_SHUTDOWN_TIMEOUT_MS=\"soon\""));
    let err = Settings::resolve(&config(), &env(&[(PROBE_ADDR, "8081")])).unwrap_err();
    assert_eq!(err.variable, PROBE_ADDR);
    let err = Settings::resolve(&config(), &env(&[(STALL_THRESHOLD, "0")])).unwrap_err();
    assert_eq!(err.variable, STALL_THRESHOLD);
    let err = Settings::resolve(&config(), &env(&[(REASONS, "everyone")])).unwrap_err();
    assert_eq!(err.variable, REASONS);
    assert!(
        err.to_string().contains("\"show\" or \"loopback\""),
        "{err}"
    );
    assert_eq!(
        log_format(&env(&[(LOG_FORMAT, "xml")]))
            .unwrap_err()
            .variable,
        LOG_FORMAT
    );
}

#[test]
fn every_millisecond_variable_is_at_most_a_day() {
    for variable in [SHUTDOWN_TIMEOUT, DRAIN_DELAY, STALL_THRESHOLD] {
        let day = Settings::resolve(&config(), &env(&[(variable, "86400000")]));
        assert!(day.is_ok(), "{variable}=86400000 is a day: {day:?}");
        for absurd in ["86400001", "18446744073709551615", "18446744073709551616"] {
            let err = Settings::resolve(&config(), &env(&[(variable, absurd)])).unwrap_err();
            assert_eq!(err.variable, variable);
            let message = err.to_string();
            assert!(
                message.contains(variable) && message.contains("86400000"),
                "names the variable and the bound: {message}"
            );
        }
    }
}

#[test]
fn reasons_follow_the_variable_over_the_argument() {
    let mut shown = config();
    shown.reasons = ReasonsPolicy::Show;
    let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
        Settings::resolve(config, &env(pairs)).unwrap().reasons
    };
    assert_eq!(resolve(&config(), &[]), ReasonsPolicy::Loopback);
    assert_eq!(resolve(&shown, &[]), ReasonsPolicy::Show);
    assert_eq!(
        resolve(&shown, &[(REASONS, "loopback")]),
        ReasonsPolicy::Loopback
    );
    assert_eq!(
        resolve(&config(), &[(REASONS, " Show ")]),
        ReasonsPolicy::Show
    );
}

#[test]
fn the_probe_protocol_follows_the_variable_over_the_argument() {
    let mut grpc = config();
    grpc.probe_protocol = ProbeProtocol::Grpc;
    let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
        Settings::resolve(config, &env(pairs)).map(|s| s.probe_protocol)
    };
    assert_eq!(resolve(&config(), &[]), Ok(ProbeProtocol::Http));
    assert_eq!(resolve(&grpc, &[]), Ok(ProbeProtocol::Grpc));
    assert_eq!(
        resolve(&grpc, &[(PROBE_PROTOCOL, " HTTP ")]),
        Ok(ProbeProtocol::Http)
    );
    for bad in ["h2", "https", "grpc,http", "tcp", "1"] {
        let err = resolve(&config(), &[(PROBE_PROTOCOL, bad)]).unwrap_err();
        assert_eq!(err.variable, PROBE_PROTOCOL);
        let message = err.to_string();
        assert!(
            message.contains(&format!("LIFECYCLE_PROBE_PROTOCOL={bad:?}"))
                && message.contains("expected \"http\" or \"grpc\""),
            "{message}"
        );
    }
}

#[test]
#[cfg(feature = "metrics")]
fn metrics_follow_the_variable_over_the_argument() {
    let without = ServiceConfig {
        metrics: false,
        ..config()
    };
    let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
        Settings::resolve(config, &env(pairs)).map(|s| s.metrics)
    };
    assert_eq!(resolve(&config(), &[]), Ok(true));
    assert_eq!(resolve(&without, &[]), Ok(false));
    for off in ["off", "OFF", " Off ", "false", "False", "0"] {
        assert_eq!(resolve(&config(), &[(METRICS, off)]), Ok(false), "{off:?}");
    }
    for on in ["on", "ON", " On\t", "true", "TRUE", "1"] {
        assert_eq!(resolve(&without, &[(METRICS, on)]), Ok(true), "{on:?}");
    }
    // Words other switches take elsewhere, numbers, typos, lists: none
    // is a guess at what was meant.
    for bad in [
        "yes", "no", "enabled", "disabled", "of", "2", "-1", "on,off", "o n",
    ] {
        let err = resolve(&config(), &[(METRICS, bad)]).unwrap_err();
        assert_eq!(err.variable, METRICS);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "invalid configuration: LIFECYCLE_METRICS={bad:?}: expected \"on\" or \"off\""
            )),
            "{message}"
        );
    }
}

#[test]
fn pid1_follows_the_variable_over_the_argument() {
    let without = ServiceConfig {
        pid1: false,
        ..config()
    };
    let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
        Settings::resolve(config, &env(pairs)).map(|_| ())
    };
    assert!(pid1_wanted(&config(), &env(&[])));
    assert!(!pid1_wanted(&without, &env(&[])));
    for off in ["off", "OFF", " Off ", "false", "False", "0"] {
        assert_eq!(resolve(&config(), &[(PID1, off)]), Ok(()), "{off:?}");
        assert!(!pid1_wanted(&config(), &env(&[(PID1, off)])), "{off:?}");
    }
    for on in ["on", "ON", " On\t", "true", "TRUE", "1"] {
        assert_eq!(resolve(&without, &[(PID1, on)]), Ok(()), "{on:?}");
        assert!(pid1_wanted(&without, &env(&[(PID1, on)])), "{on:?}");
    }
    for bad in ["yes", "no", "tini", "of", "2", "on,off", "o n"] {
        let err = resolve(&config(), &[(PID1, bad)]).unwrap_err();
        assert_eq!(err.variable, PID1);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "invalid configuration: LIFECYCLE_PID1={bad:?}: expected \"on\" or \"off\""
            )),
            "{message}"
        );
        // No fork on a bad value: the service runs and exits 2.
        assert!(!pid1_wanted(&config(), &env(&[(PID1, bad)])), "{bad:?}");
    }
}

#[test]
fn stop_signals_are_named_as_kubernetes_spells_them_with_or_without_sig() {
    let names: Vec<&str> = StopSignal::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"]
    );
    for signal in StopSignal::ALL {
        let name = signal.as_str();
        assert_eq!(StopSignal::parse(name), Some(signal));
        assert_eq!(StopSignal::parse(&name[3..]), Some(signal), "{name}");
        assert_eq!(signal.to_string(), name);
    }
    let listed: Vec<&str> = StopSignal::EXPECTED
        .trim_start_matches("one of ")
        .split(" (")
        .next()
        .unwrap()
        .split(", ")
        .collect();
    assert_eq!(listed, names, "the error lists exactly the accepted ones");
    assert_eq!(StopSignal::default(), StopSignal::Sigterm);
}

#[test]
fn a_stop_signal_is_upper_case_and_exact() {
    for bad in [
        "sigquit",
        "quit",
        "SigQuit",
        "SIG",
        "",
        "SIGQUIT ",
        " QUIT",
        "SIGSIGQUIT",
        "3",
        "SIGQUIT,SIGTERM",
    ] {
        assert_eq!(StopSignal::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn signals_that_cannot_mean_stop_are_no_stop_signal() {
    // Uncatchable, raised by a fault, or reporting something else: as
    // an argument or a variable, with or without the prefix.
    for name in [
        "SIGKILL",
        "SIGSTOP",
        "SIGCHLD",
        "SIGPIPE",
        "SIGSEGV",
        "SIGBUS",
        "SIGFPE",
        "SIGILL",
        "SIGABRT",
        "SIGTRAP",
        "SIGSYS",
        "SIGALRM",
        "SIGCONT",
        "SIGTSTP",
        "SIGTTIN",
        "SIGURG",
        "SIGRTMIN",
        "SIGRTMIN+1",
    ] {
        for given in [name, &name[3..]] {
            assert_eq!(StopSignal::parse(given), None, "{given}");
            let err = Settings::resolve(&config(), &env(&[(STOP_SIGNAL, given)])).unwrap_err();
            assert_eq!(err.variable, STOP_SIGNAL);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!(
                    "invalid configuration: LIFECYCLE_STOP_SIGNAL={given:?}: expected "
                )),
                "{message}"
            );
            // Never taken for the default, before the settings either.
            assert_eq!(
                stop_signal_wanted(&config(), &env(&[(STOP_SIGNAL, given)])),
                StopSignal::Sigterm
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn the_stop_signal_follows_the_variable_over_the_argument() {
    let quit = ServiceConfig {
        stop_signal: StopSignal::Sigquit,
        ..config()
    };
    let resolve = |config: &ServiceConfig, pairs: &[(&str, &str)]| {
        Settings::resolve(config, &env(pairs)).map(|s| s.stop_signal)
    };
    assert_eq!(resolve(&config(), &[]), Ok(StopSignal::Sigterm));
    assert_eq!(resolve(&quit, &[]), Ok(StopSignal::Sigquit));
    assert_eq!(
        resolve(&quit, &[(STOP_SIGNAL, "SIGTERM")]),
        Ok(StopSignal::Sigterm)
    );
    for (given, signal) in [
        ("SIGHUP", StopSignal::Sighup),
        ("USR1", StopSignal::Sigusr1),
        (" SIGUSR2\t", StopSignal::Sigusr2),
        ("WINCH", StopSignal::Sigwinch),
        ("INT", StopSignal::Sigint),
    ] {
        assert_eq!(resolve(&config(), &[(STOP_SIGNAL, given)]), Ok(signal));
        assert_eq!(
            stop_signal_wanted(&config(), &env(&[(STOP_SIGNAL, given)])),
            signal
        );
    }
    assert_eq!(stop_signal_wanted(&quit, &env(&[])), StopSignal::Sigquit);
    for bad in ["sigquit", "quit", "SIGQUIT,SIGTERM", "15"] {
        let err = resolve(&quit, &[(STOP_SIGNAL, bad)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid configuration: LIFECYCLE_STOP_SIGNAL={bad:?}: expected one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH (upper case, the SIG prefix optional)"
            )
        );
        // A bad value installs nothing but the usual handlers, not
        // even the argument's.
        assert_eq!(
            stop_signal_wanted(&quit, &env(&[(STOP_SIGNAL, bad)])),
            StopSignal::Sigterm
        );
    }
}

#[cfg(unix)]
#[test]
fn stop_signals_have_this_systems_numbers() {
    let numbers: Vec<i32> = StopSignal::ALL.iter().map(|s| s.number()).collect();
    #[cfg(target_os = "linux")]
    assert_eq!(numbers, [15, 2, 3, 1, 10, 12, 28]);
    #[cfg(target_os = "macos")]
    assert_eq!(numbers, [15, 2, 3, 1, 30, 31, 28]);
    let _ = numbers;
}

#[cfg(windows)]
#[test]
fn on_windows_the_stop_signal_can_only_be_sigterm() {
    for term in ["SIGTERM", "TERM"] {
        let settings = Settings::resolve(&config(), &env(&[(STOP_SIGNAL, term)])).unwrap();
        assert_eq!(settings.stop_signal, StopSignal::Sigterm);
    }
    for other in ["SIGQUIT", "SIGINT", "HUP"] {
        let err = Settings::resolve(&config(), &env(&[(STOP_SIGNAL, other)])).unwrap_err();
        assert_eq!(err.variable, STOP_SIGNAL);
        assert!(
            err.to_string()
                .contains("Windows pods allow only SIGTERM and SIGKILL"),
            "{err}"
        );
    }
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_probes_are_taken_with_the_feature() {
    let settings = Settings::resolve(&config(), &env(&[(PROBE_PROTOCOL, "grpc")])).unwrap();
    assert_eq!(settings.probe_protocol, ProbeProtocol::Grpc);
    let settings = Settings::resolve(&config(), &env(&[(PROBE_PROTOCOL, "gRPC")])).unwrap();
    assert_eq!(settings.probe_protocol, ProbeProtocol::Grpc);
}

#[test]
#[cfg(not(feature = "metrics"))]
fn without_the_metrics_feature_there_are_none_and_asking_is_a_bad_value() {
    let settings = Settings::resolve(&config(), &env(&[])).unwrap();
    assert!(!settings.metrics, "off by default without the feature");
    let off = Settings::resolve(&config(), &env(&[(METRICS, "off")])).unwrap();
    assert!(!off.metrics);
    let message = Settings::resolve(&config(), &env(&[(METRICS, "on")]))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("built without lifecycle-runtime's cargo feature `metrics`"),
        "{message}"
    );
}

#[cfg(not(feature = "grpc"))]
#[test]
fn grpc_probes_without_the_feature_are_a_bad_value_naming_it() {
    let err = Settings::resolve(&config(), &env(&[(PROBE_PROTOCOL, "grpc")])).unwrap_err();
    assert_eq!(err.variable, PROBE_PROTOCOL);
    let message = err.to_string();
    assert!(
        message.starts_with("invalid configuration: LIFECYCLE_PROBE_PROTOCOL=\"grpc\": expected ")
            && message.contains("built without lifecycle-runtime's cargo feature `grpc`"),
        "{message}"
    );
}
