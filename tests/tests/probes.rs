//! The probe endpoints of a running service, over real TCP: paths, status
//! codes, body formats, per-check paths, and checks that change at run time.

use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::{fixture, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

fn running_testbed() -> Service {
    fixture(TESTBED).start().unwrap()
}

#[test]
fn readiness_check_toggled_at_run_time_moves_readyz_not_livez() {
    let mut service = running_testbed();
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));

    service.command("set down");
    let ready = service.probe(Endpoint::Readyz);
    assert_eq!(ready.status, Some(503), "the next probe sees the change");
    assert_eq!(ready.body, "[-]toggle failed: toggled down by the test\n");
    let live = service.probe(Endpoint::Livez);
    assert_eq!((live.status, live.body.as_str()), (Some(200), "ok"));
    assert_eq!(service.probe(Endpoint::Healthz).status, Some(503));

    service.command("clear down");
    let ready = service.probe(Endpoint::Readyz);
    assert_eq!((ready.status, ready.body.as_str()), (Some(200), "ok"));
    assert_eq!(service.probe(Endpoint::Healthz).status, Some(200));
}

#[test]
fn a_checks_reason_keeps_the_causes_of_its_error() {
    let mut service = running_testbed();
    service.command("set refused");
    let ready = service.probe(Endpoint::Readyz);
    assert_eq!(ready.status, Some(503));
    // The error's own message, then its source's, as anyhow's `{:#}` joins
    // them: the check's Display alone would say only the first.
    assert_eq!(
        ready.body,
        "[-]toggle failed: error connecting to server: Connection refused (os error 111)\n"
    );
    service.command("clear refused");
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
}

#[test]
fn verbose_answers_list_every_check_in_kube_style() {
    let service = running_testbed();
    let ready = service.request("GET", "/readyz?verbose", &[]);
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.body,
        "[+]lifecycle ok\n\
         [+]background ok\n\
         [+]blocking-io ok\n\
         [+]boom ok\n\
         [+]coalesced ok\n\
         [+]hang ok\n\
         [+]huge-reason ok\n\
         [+]newline-reason ok\n\
         [-]optional-cache failed: cache unreachable\n\
         [+]toggle ok\n\
         [+]too-many-details ok\n\
         readyz check passed\n",
        "a failing non-critical check is reported but does not fail /readyz"
    );
    assert_eq!(
        ready.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let live = service.get("/livez?verbose");
    assert_eq!(live.status, Some(200));
    // The task count varies: check its shape, then compare the rest.
    let alive = live
        .body
        .split("[+]tasks ok (alive=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("a tasks line");
    assert!(alive.parse::<u64>().unwrap() <= 50);
    assert_eq!(
        live.body
            .replacen(&format!("alive={alive},"), "alive=ALIVE,", 1),
        "[+]lifecycle ok\n\
         [+]runtime ok\n\
         [+]tasks ok (alive=ALIVE, max=50)\n\
         [+]event_loop ok (workers=2, mode=test)\n\
         [+]library_worker ok (connected=true)\n\
         livez check passed\n"
    );
    let startup = service.get("/startupz?verbose");
    assert_eq!(
        (startup.status, startup.body.as_str()),
        (
            Some(200),
            "[+]lifecycle ok\n[+]drop-guard ok\n[+]migrations ok\nstartupz check passed\n"
        )
    );
    let health = service.get("/healthz?verbose");
    assert_eq!(health.status, Some(200));
    assert!(
        health.body.ends_with("healthz check passed\n"),
        "{}",
        health.body
    );
    // The same answer, read as structured per-check results.
    let health = health.verbose();
    assert_eq!(health.passed, Some(true));
    for name in ["event_loop", "toggle"] {
        let check = health.check(name).unwrap();
        assert!(check.passed && !check.excluded, "{check:?}");
    }
}

#[test]
fn exclude_leaves_a_check_out_and_warns_about_unknown_names() {
    let mut service = running_testbed();
    service.command("set down");
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(503));
    let ready = service.get("/readyz?exclude=toggle");
    assert_eq!((ready.status, ready.body.as_str()), (Some(200), "ok"));

    let ready = service.get("/readyz?verbose&exclude=toggle&exclude=nonexistent");
    assert_eq!(ready.status, Some(200));
    let lines: Vec<&str> = ready.body.lines().collect();
    assert!(lines.contains(&"[+]toggle excluded: ok"), "{lines:?}");
    assert_eq!(
        lines[lines.len() - 2],
        "warn: some health checks cannot be excluded: no matches for \"nonexistent\""
    );
    assert_eq!(lines[lines.len() - 1], "readyz check passed");
    let verbose = ready.verbose();
    assert!(verbose.check("toggle").unwrap().excluded);
    assert_eq!(
        verbose.warnings,
        ["some health checks cannot be excluded: no matches for \"nonexistent\""]
    );
}

#[test]
fn per_check_paths_answer_for_one_check() {
    let mut service = running_testbed();
    let one = service.get("/readyz/toggle");
    assert_eq!((one.status, one.body.as_str()), (Some(200), "ok"));
    // A non-critical check does not fail /readyz, but its own path does.
    let optional = service.get("/readyz/optional-cache");
    assert_eq!(optional.status, Some(503));
    assert_eq!(
        optional.body,
        "[-]optional-cache failed: cache unreachable\n"
    );
    assert_eq!(service.get("/livez/event_loop").status, Some(200));
    assert_eq!(service.get("/livez/runtime").status, Some(200));
    assert_eq!(service.get("/startupz/migrations").status, Some(200));
    // Names are per kind: a readiness check is not on /livez.
    assert_eq!(service.get("/livez/toggle").status, Some(404));
    assert_eq!(service.get("/readyz/no-such-check").status, Some(404));

    service.command("set down");
    let one = service.get("/readyz/toggle?verbose");
    assert_eq!(one.status, Some(503));
    assert_eq!(
        one.body,
        "[-]toggle failed: toggled down by the test\nreadyz check failed\n"
    );
}

#[test]
fn json_answers_are_microprofile_health_documents() {
    let mut service = running_testbed();
    let by_query = service.request("GET", "/livez?format=json", &[]);
    let by_accept = service.request("GET", "/livez", &[("Accept", "application/json")]);
    for answer in [&by_query, &by_accept] {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(doc["status"], "UP");
        let checks = doc["checks"].as_array().unwrap();
        let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "lifecycle",
                "runtime",
                "tasks",
                "event_loop",
                "library_worker"
            ]
        );
        assert_eq!(checks[2]["data"]["max"], 50);
        let event_loop = &checks[3];
        assert_eq!(event_loop["status"], "UP");
        assert_eq!(event_loop["data"]["workers"], 2);
        assert_eq!(event_loop["data"]["mode"], "test");
        assert!(event_loop["data"]["duration_ms"].as_f64().unwrap() >= 0.0);
    }

    service.command("set down");
    let ready = service.get("/readyz?format=json");
    assert_eq!(ready.status, Some(503));
    let doc: serde_json::Value = serde_json::from_str(&ready.body).unwrap();
    assert_eq!(doc["status"], "DOWN");
    let toggle = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "toggle")
        .unwrap();
    assert_eq!(toggle["status"], "DOWN");
    assert_eq!(toggle["data"]["reason"], "toggled down by the test");
    let optional = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "optional-cache")
        .unwrap();
    assert_eq!(optional["data"]["critical"], false);
}

#[test]
fn head_other_methods_and_unknown_paths() {
    let service = running_testbed();
    let head = service.request("HEAD", "/readyz", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");

    for method in ["POST", "PUT", "DELETE"] {
        let answer = service.request(method, "/livez", &[]);
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{method}");
    }
    for path in ["/", "/livezz", "/livez/", "/healthz/toggle"] {
        assert_eq!(service.get(path).status, Some(404), "{path}");
    }
}

#[test]
fn checks_and_hooks_from_a_library_crate_are_registered() {
    let service = running_testbed();
    let library = service.get("/livez/library_worker?verbose");
    assert_eq!(library.status, Some(200));
    // `connected=true` is set by the library's own on_startup hook.
    assert_eq!(
        library.body,
        "[+]library_worker ok (connected=true)\nlivez check passed\n"
    );
    let library = library.verbose();
    assert_eq!(
        library.check("library_worker").unwrap().details,
        [("connected".to_owned(), "true".to_owned())]
    );
}
